"""authorize: what this key may ask for here. On the OpenAI endpoints, its namespace's view
of the host (401 on a host none of its namespace's Routes serve, 404 where the host serves it
no OpenAI API); for a chatTemplate Route, the Route must be its namespace's (404) and in its
list (403); an MCP model tool calls its server namespace's models. The model itself is
checked when it is chosen."""

from __future__ import annotations

from lockgate.proxy.auth import openai_view_of, template_view
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.step import Step


class AuthorizeStep(Step):
    name = "authorize"

    def request(self, ctx: Context) -> None:
        entry = ctx.entry
        assert entry is not None
        if ctx.kind == "openai":
            ctx.view = openai_view_of(ctx.host_view, entry, ctx.path)
            ctx.timeout = ctx.view.timeout
        elif ctx.kind == "template":
            assert ctx.route is not None
            ctx.view = template_view(ctx.snapshot, entry, ctx.raw_host, ctx.route)
            ctx.timeout = ctx.route.timeout
        else:
            ctx.view = ctx.snapshot.namespace_view(entry.namespace if ctx.namespace is None else ctx.namespace)
