"""Route -> ir.Route: aliases over known models, prompt templates checked."""

from __future__ import annotations

from collections.abc import Collection

from lockgate.api import ir
from lockgate.api.duration import parse_duration
from lockgate.api.resources import Route
from lockgate.operator.translate.conditions import Rejected
from lockgate.operator.translate.templates import check_template


def translate_route(obj: Route, models: Collection[str], aliases: Collection[str]) -> ir.Route:
    """`models`: names served by accepted providers; `aliases`: virtual
    models of accepted openai routes (a template may call either)."""
    spec = obj.spec
    for i, alias in enumerate(spec.aliases):
        wanted = [t.model for t in alias.targets] + list(alias.fallbacks)
        _require_models(wanted, models, f"spec.aliases[{i}] ({alias.name})")
    chat_template: ir.ChatTemplate | None = None
    if spec.chat_template is not None:
        ct = spec.chat_template
        if ct.model not in models and ct.model not in aliases:
            raise Rejected("UnknownModel", f"spec.chatTemplate.model: {ct.model!r} is neither a provider model nor an alias; {_known(models)}")
        check_template(ct.prompt_template, "spec.chatTemplate.promptTemplate")
        if ct.system_prompt is not None:
            check_template(ct.system_prompt, "spec.chatTemplate.systemPrompt")
        chat_template = ir.ChatTemplate.model_validate(ct.model_dump())
    return ir.Route(
        id=f"{obj.metadata.namespace}/{obj.metadata.name}",
        type=spec.type,
        hosts=tuple(spec.hosts),
        models=tuple(spec.models),
        aliases=tuple(
            ir.Alias(
                name=a.name,
                targets=tuple(ir.AliasTarget(model=t.model, weight=t.weight) for t in a.targets),
                fallbacks=tuple(a.fallbacks),
            )
            for a in spec.aliases
        ),
        path=spec.path,
        timeout=parse_duration(spec.timeout) if spec.timeout else None,
        chat_template=chat_template,
    )


def _require_models(wanted: list[str], models: Collection[str], where: str) -> None:
    unknown = [m for m in wanted if m not in models]
    if unknown:
        raise Rejected("UnknownModel", f"{where}: no accepted ModelProvider serves {', '.join(map(repr, unknown))}; {_known(models)}")


def _known(models: Collection[str]) -> str:
    names = sorted(models)
    if not names:
        return "no models are served yet"
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"known models: {shown}"
