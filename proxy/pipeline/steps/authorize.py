"""authorize: may this key ask for this? A chatTemplate Route needs the key's right to the
Route (403); a model hidden from the host's OpenAI view does not exist (404); a model outside
the key's globs is refused (403) once it is known to be served."""

from __future__ import annotations

from lockgate.proxy.auth import check_model, check_route
from lockgate.proxy.errors import model_not_found
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.step import Step


class AuthorizeStep(Step):
    name = "authorize"

    def request(self, ctx: Context) -> None:
        assert ctx.entry is not None
        if ctx.route is not None:
            check_route(ctx.entry, ctx.route.id)
        model = ctx.model
        if ctx.view is not None and not ctx.view.shows(model):
            raise model_not_found(model)
        if ctx.check_key and (model in ctx.snapshot.tiers or (ctx.aliases is not None and model in ctx.aliases)):
            check_model(ctx.entry, model)
