"""route: which API of which host the request is for.

The OpenAI endpoints need the host's OpenAI view (404 without one); a
chatTemplate Route was matched by its path already and sees the host's
aliases; an MCP model tool sees every served model and alias.
"""

from __future__ import annotations

from lockgate.proxy.errors import path_not_found
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.step import Step


class RouteStep(Step):
    name = "route"

    def request(self, ctx: Context) -> None:
        if ctx.kind == "internal":
            ctx.aliases = ctx.snapshot.all_aliases
            return
        view = ctx.snapshot.host_view(ctx.raw_host)
        openai = view.openai if view is not None else None
        if ctx.kind == "template":
            ctx.check_key = False  # the Route's own model: the key's right to the Route is what counts
            ctx.aliases = openai.aliases if openai is not None else None
            if ctx.route is not None:
                ctx.timeout = ctx.route.timeout
            return
        if openai is None:
            raise path_not_found(ctx.path)
        ctx.view = openai
        ctx.aliases = openai.aliases
        ctx.timeout = openai.timeout
