"""route: what the request's host serves. The OpenAI endpoints look the host up (its views
per namespace, compiled once per configuration); a chatTemplate Route was matched by its
host and path already; an MCP model tool has no host (its server's namespace says whose
models it may call)."""

from __future__ import annotations

from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.step import Step


class RouteStep(Step):
    name = "route"

    def request(self, ctx: Context) -> None:
        if ctx.kind == "openai":
            ctx.host_view = ctx.snapshot.host_view(ctx.raw_host)
