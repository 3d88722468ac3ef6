"""IR objects built without a second validation, for the translator's hot paths."""

from __future__ import annotations

from typing import Any, TypeVar

from lockgate.api.ir import IRModel

M = TypeVar("M", bound=IRModel)
_FIELDS_SET: dict[type[IRModel], set[str]] = {}  # every field: pydantic's updates of it change nothing
_IMMUTABLE = (IRModel, str, int, float, tuple, frozenset, type(None))  # IR models are frozen


def trusted(cls: type[M], /, **values: Any) -> M:
    """An IR object from values already valid for it (taken from a validated resource, or from IR
    objects): no second validation, and the bookkeeping of which fields were set shared by every
    object of the class. Fields left out take their defaults. Only for the translator's hot paths."""
    fields = cls.model_fields
    for name, info in fields.items():
        if name not in values:
            if info.is_required():
                raise TypeError(f"{cls.__name__}.{name} is required")
            shared = info.default_factory is None and isinstance(info.default, _IMMUTABLE)
            values[name] = info.default if shared else info.get_default(call_default_factory=True)
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    names = _FIELDS_SET.get(cls)
    if names is None:
        names = _FIELDS_SET[cls] = set(fields)
    object.__setattr__(obj, "__pydantic_fields_set__", names)
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj
