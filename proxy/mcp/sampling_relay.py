"""The gateway answering sampling on a proxied server, in both protocol eras.

2026-07-28: the upstream asks through an `input_required` result. When the
gateway answers for this client, it declares `sampling` in the client
capabilities it forwards, answers each `sampling/createMessage` input request
itself and retries upstream (a new id, `inputResponses`, the `requestState`
echoed) until the call completes. Input requests for the client (elicitation,
roots) still go to it: the result it gets carries only those, and a
`requestState` sealed by the gateway that holds the upstream's state and the
gateway's own answers; the client's retry is unsealed, completed and sent on.

2025-11-25: the session the client opens upstream declares `sampling`; a
`sampling/createMessage` request on a call's stream is answered by the
gateway (its answer POSTed upstream in the session) instead of reaching the
client, and a refusal is error -1 as the spec defines.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from lockgate.api.ir import ConsumerKey, McpServer
from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp.sampling import METHOD, Sampler, client_declares_sampling, gateway_answers, with_sampling
from lockgate.proxy.mcp.session_token import SessionSigner

Send = Callable[[rpc.Message], Awaitable[rpc.Message]]  # one request upstream -> its response
INPUT_METHODS = ("tools/call", "prompts/get", "resources/read")  # the methods that may need input (MRTR)
MAX_ROUNDS = 8
SEALED = "io.lockgate/sampling"  # marks the gateway's own requestState


def intercepts(server: McpServer, message: rpc.Message) -> bool:
    """Whether the gateway answers sampling inside this 2026-07-28 request."""
    if server.sampling is None or message.get("method") not in INPUT_METHODS:
        return False
    capabilities = rpc.meta_of(message).get(rpc.META_CLIENT_CAPABILITIES)
    return gateway_answers(server, client_declares_sampling(capabilities))


def upstream_params(params: dict[str, Any]) -> dict[str, Any]:
    """The client's params with `sampling` among the capabilities the upstream sees."""
    meta = dict(params.get("_meta") or {})
    meta[rpc.META_CLIENT_CAPABILITIES] = with_sampling(meta.get(rpc.META_CLIENT_CAPABILITIES))
    return {**params, "_meta": meta}


async def modern_rounds(sampler: Sampler, signer: SessionSigner, key: ConsumerKey, server: McpServer,
                        message: rpc.Message, send: Send) -> rpc.Message:
    """The client's request through every round the gateway answers; the final message for the client."""
    request_id, method = message["id"], str(message.get("method"))
    params = _unsealed(signer, key, server, upstream_params(rpc.params_of(message)))
    upstream_id: Any = request_id
    for _ in range(MAX_ROUNDS):
        answer = await send({"jsonrpc": "2.0", "id": upstream_id, "method": method, "params": params})
        result = answer.get("result")
        if not isinstance(result, dict) or result.get("resultType") != "input_required":
            return {**answer, "id": request_id}
        requests = result.get("inputRequests")
        requests = requests if isinstance(requests, dict) else {}
        ours = {name: r for name, r in requests.items() if isinstance(r, dict) and r.get("method") == METHOD}
        answers = {name: await sampler.answer(key, server, r.get("params")) for name, r in ours.items()}
        state = result.get("requestState")
        rest = {name: r for name, r in requests.items() if name not in ours}
        if rest:  # the client answers these; the gateway's answers wait, sealed, in the state it echoes
            sealed = signer.seal({SEALED: [key.id, server.id, state, answers]})
            return rpc.result_message(request_id, {**result, "inputRequests": rest, "requestState": sealed})
        params = {k: v for k, v in params.items() if k not in ("inputResponses", "requestState")}
        params["inputResponses"] = answers
        if state is not None:
            params["requestState"] = state
        upstream_id = f"lockgate-{secrets.token_hex(6)}"  # a retry is a new request
    raise rpc.RpcError(rpc.INTERNAL_ERROR, f"the call still needed input after {MAX_ROUNDS} rounds")


def _unsealed(signer: SessionSigner, key: ConsumerKey, server: McpServer, params: dict[str, Any]) -> dict[str, Any]:
    """A retry whose requestState the gateway sealed: the upstream's state back, the gateway's answers added."""
    state = params.get("requestState")
    if not isinstance(state, str):
        return params
    value = signer.open(state)
    if not isinstance(value, dict) or SEALED not in value:
        return params  # the upstream's own state
    sealed = value[SEALED]
    if not (isinstance(sealed, list) and len(sealed) == 4 and sealed[:2] == [key.id, server.id]
            and isinstance(sealed[3], dict)):
        raise rpc.RpcError(rpc.INVALID_PARAMS, "requestState was not issued for this key and server")
    _, _, upstream_state, answers = sealed
    client_answers = params.get("inputResponses")
    out = {k: v for k, v in params.items() if k != "requestState"}
    out["inputResponses"] = {**(client_answers if isinstance(client_answers, dict) else {}), **answers}
    if upstream_state is not None:
        out["requestState"] = upstream_state
    return out


async def legacy_answer(sampler: Sampler, key: ConsumerKey, server: McpServer, request: rpc.Message) -> rpc.Message:
    """The response to an upstream's sampling request in a 2025-11-25 session (error -1 when refused)."""
    try:
        return rpc.result_message(request["id"], await sampler.answer(key, server, request.get("params")))
    except rpc.RpcError as exc:
        return rpc.error_message(request["id"], exc.code, exc.message, exc.data)


def legacy_intercepts(server: McpServer, message: rpc.Message, client_samples: bool) -> bool:
    return (message.get("method") == METHOD and rpc.is_request(message)
            and gateway_answers(server, client_samples))
