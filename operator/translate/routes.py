"""Route -> ir.Route: aliases over known models, prompt templates checked."""

from __future__ import annotations

from collections.abc import Collection

from lockgate.api import ir
from lockgate.api.cache import RouteCache
from lockgate.api.duration import parse_duration
from lockgate.api.resources import Route
from lockgate.api.route import ModelPreferences
from lockgate.operator.translate.templates import check_template
from lockgate.operator.translate.tenancy import ModelPools


def preferences_of(prefs: ModelPreferences | None) -> ir.ModelPreferences | None:
    if prefs is None:
        return None
    return ir.ModelPreferences(hints=tuple(h.name for h in prefs.hints), cost_priority=prefs.cost_priority,
                               speed_priority=prefs.speed_priority, intelligence_priority=prefs.intelligence_priority)


def translate_route(obj: Route, pools: ModelPools, aliases: Collection[str]) -> ir.Route:
    """`pools`: the models each namespace may use; `aliases`: virtual models
    of the accepted openai routes of the route's namespace (a template may
    call a model or an alias)."""
    spec, ns = obj.spec, obj.metadata.namespace
    for i, alias in enumerate(spec.aliases):
        wanted = [t.model for t in alias.targets] + list(alias.fallbacks)
        pools.require(ns, wanted, f"spec.aliases[{i}] ({alias.name})")
    chat_template: ir.ChatTemplate | None = None
    if spec.chat_template is not None:
        ct = spec.chat_template
        pools.require(ns, [ct.model], "spec.chatTemplate.model (a provider model or an alias)", also=aliases)
        check_template(ct.prompt_template, "spec.chatTemplate.promptTemplate")
        if ct.system_prompt is not None:
            check_template(ct.system_prompt, "spec.chatTemplate.systemPrompt")
        chat_template = ir.ChatTemplate.model_validate(ct.model_dump())
    cache: ir.CachePolicy | None = None
    if spec.cache is not None:
        cache = cache_policy(spec.cache)
        if cache.semantic is not None:
            pools.require(ns, [cache.semantic.embedding_model], "spec.cache.semantic.embeddingModel")
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
                strategy=a.strategy,
                preferences=preferences_of(a.preferences),
            )
            for a in spec.aliases
        ),
        path=spec.path,
        timeout=parse_duration(spec.timeout) if spec.timeout else None,
        chat_template=chat_template,
        priority=spec.priority,
        queue_max_wait=parse_duration(spec.queue.max_wait) if spec.queue is not None else None,
        cache=cache,
    )


def cache_policy(spec: RouteCache) -> ir.CachePolicy:
    semantic = spec.semantic
    return ir.CachePolicy(
        mode=spec.mode,
        ttl=parse_duration(spec.ttl),
        max_entry_bytes=spec.max_entry_bytes,
        endpoints=tuple(dict.fromkeys(spec.endpoints)),
        cache_sampled=spec.cache_sampled,
        scope=spec.scope,
        hits_spend_tokens=spec.hits_spend_tokens,
        semantic=None if semantic is None else ir.SemanticCache(
            embedding_model=semantic.embedding_model, threshold=semantic.threshold, input=semantic.input,
            max_entries=semantic.max_entries),
    )

