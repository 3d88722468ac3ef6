"""Jinja2 templates compiled in a sandbox, only to refuse broken ones early."""

from __future__ import annotations

from functools import lru_cache

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lockgate.operator.translate.conditions import Rejected


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(autoescape=False)


def check_template(source: str, where: str) -> None:
    try:
        _environment().parse(source)
    except TemplateSyntaxError as exc:
        raise Rejected("InvalidTemplate", f"{where}: line {exc.lineno}: {exc.message}") from None
