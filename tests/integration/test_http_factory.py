"""The one HTTP client factory: every session it makes reaches `*.localhost` names on loopback,
with the timeout its use asks for."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from lockgate.common.http import client_session
from lockgate.proxy.balancing.external import PickerClient
from tests.loopback import serve_app


def _app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        if request.path == "/slow":
            await asyncio.sleep(1)
        return web.json_response({"host": request.host})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    return app


async def test_sessions_reach_localhost_names_and_keep_their_timeout() -> None:
    async with serve_app(_app()) as url:
        port = url.rsplit(":", 1)[1]
        async with client_session(timeout=aiohttp.ClientTimeout(total=0.2)) as session:
            async with session.get(f"http://metrics.engine-0.localhost:{port}/metrics") as answer:
                assert (await answer.json())["host"] == f"metrics.engine-0.localhost:{port}"
            with pytest.raises(asyncio.TimeoutError):
                async with session.get(f"http://127.0.0.1:{port}/slow"):
                    pass


async def test_the_endpoint_picker_takes_its_session_from_the_factory() -> None:
    from lockgate.api.ir import ExternalPicker

    async with serve_app(_app()) as url:
        port = url.rsplit(":", 1)[1]
        picker = PickerClient(ExternalPicker(url=f"http://picker.localhost:{port}/pick", timeout=1.0))
        try:
            assert await picker.ask({}, []) is None  # answered, named no candidate
            assert picker.last_error.startswith("status 200")  # reached: not a resolver failure
        finally:
            await picker.close()
