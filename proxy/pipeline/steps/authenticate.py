"""authenticate: the caller's key from its Authorization (or x-api-key) header; 401 otherwise.
An MCP model tool comes with the key its MCP session authenticated."""

from __future__ import annotations

from lockgate.proxy.auth import authenticate
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.step import Step


class AuthenticateStep(Step):
    name = "authenticate"

    def request(self, ctx: Context) -> None:
        if ctx.entry is None:
            ctx.entry = authenticate(ctx.snapshot, ctx.headers)
