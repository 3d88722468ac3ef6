"""Per-request state: the one object the pipeline's steps read and write.

An entry point makes a `Context` (what came in: kind, operation, headers,
body or request), the steps fill in the rest (key, model, targets,
reservation, upstream answer, usage), and the account step turns the
finished context into metrics and an access log line. Slots, no defaults
made by factories on the hot path beyond what a request needs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from lockgate.api.ir import Priority
from lockgate.proxy.admission import effective_wait
from lockgate.proxy.errors import ApiError, ErrorType
from lockgate.proxy.providers.base import Adapter, Operation, StreamTranslator, Usage
from lockgate.proxy.snapshot import CompiledSnapshot, KeyEntry, Target

if TYPE_CHECKING:
    from aiohttp import web

    from lockgate.api.ir import Route
    from lockgate.proxy.balancing import Lease
    from lockgate.proxy.cache.service import Lookup
    from lockgate.proxy.estimate import Estimate
    from lockgate.proxy.preferences import Preferences
    from lockgate.proxy.quota import Reservation
    from lockgate.proxy.snapshot import HostView, OpenAIView
    from lockgate.proxy.tracing.request import RequestTrace
    from lockgate.proxy.upstream import Response

# openai: the OpenAI endpoints and /v1/messages; template: a chatTemplate Route; internal: an MCP model tool.
Kind = Literal["openai", "template", "internal"]


class Runner(Protocol):
    """The pipeline a request runs through (the one built for its snapshot)."""

    async def run(self, ctx: Context) -> None: ...

    async def finish(self, ctx: Context) -> None: ...


@dataclass(slots=True, eq=False)
class Context:
    # --- what came in (set by the entry point) ---
    request_id: str
    snapshot: CompiledSnapshot
    method: str
    path: str
    host: str  # a bounded label: the matched host name, or "*"
    kind: Kind = "openai"
    op: Operation = "chat"
    headers: Mapping[str, str] = field(default_factory=dict)
    raw_host: str = ""  # the Host header as sent (route looks it up)
    request: web.Request | None = None  # the HTTP request whose body parse reads (None: `body` is given)
    route: Route | None = None  # the chatTemplate Route (kind "template")
    started: float = field(default_factory=time.perf_counter)
    pipeline: Runner | None = None
    trace: RequestTrace | None = None  # trace: the request's spans (None: tracing off or not begun)
    # --- filled in by the steps ---
    entry: KeyEntry | None = None  # authenticate (given for kind "internal")
    host_view: HostView | None = None  # route: what the request's host serves
    namespace: str | None = None  # whose models an internal request may use (None: the key's namespace)
    view: OpenAIView | None = None  # authorize: the models and aliases the key may ask for here, and their pool
    body: dict[str, Any] = field(default_factory=dict)  # parse: the OpenAI-shaped request
    size: int | None = None  # parse: the body's size in bytes, when read from the wire
    # parse: the body's bytes as read, while `body` says exactly what they say (a step that changes `body`
    # clears them): a provider that would get the body unchanged gets these bytes, not a new serialisation.
    raw_body: bytes = b""
    model: str = ""
    stream: bool = False
    timeout: float | None = None  # the whole request's deadline over the provider's own
    # The request's class in the queues for capacity. An entry point may set batch (batch lines); classify
    # makes it batch when the key or a Route says so.
    priority: Priority = "interactive"
    max_wait: float | None = None  # the most the request itself will wait in a queue (set by an entry point, or
    # classify from the x-lockgate-max-wait header); None: what the Route or the provider allows
    route_wait: float | None = None  # classify: the Route's queue wait, over the provider's
    estimate: Estimate | None = None
    targets: list[Target] = field(default_factory=list)  # choose: in failover order
    candidates: tuple[str, ...] = ()  # models to choose among by preferences (given for kind "internal")
    preferences: Preferences | None = None  # the request's model preferences (given for kind "internal")
    chosen_by: str = ""  # choose: the virtual model whose candidates were ranked by preferences
    target: Target | None = None  # the target being tried
    target_index: int = 0
    reservation: Reservation | None = None  # admit
    counted: str = ""  # admit: the first reservation's id, once a failover settled it with nothing
    adapter: Adapter | None = None  # request filters: the provider type's translation
    upstream_body: dict[str, Any] = field(default_factory=dict)  # request filters: the body as the provider wants it
    upstream_raw: bytes = b""  # request filters: `raw_body` when `upstream_body` is the client's body unchanged
    lease: Lease | None = None  # send: the endpoint chosen (self-hosted providers)
    client_wants_usage: bool = True
    response: Response | None = None  # send: an open upstream stream
    translator: StreamTranslator | None = None  # send: the stream's response filter
    pending: list[bytes] = field(default_factory=list)  # send: client events read before any byte was sent
    deadline: float = 0.0
    answer: bytes = b""  # the whole answer (or error body) in the client's format
    translated: bool = False  # send: `answer` (a 2xx) is already in the client's format
    upstream_status: int = 0  # send: the status of the upstream's answer
    provider: str = ""
    upstream_model: str = ""
    status: int = 0
    error_type: ErrorType = ""
    error_code: str | None = None
    usage: Usage = field(default_factory=Usage)
    prompt_tokens: int = 0  # the prompt estimate, settled when the upstream reports no usage
    upstream_seconds: float = 0.0  # time spent waiting on upstreams
    ttft: float | None = None
    attempts: int = 0
    answered: bool = False  # send: an upstream answered (whole, or the stream's first events)
    ok: bool = False  # the answer reached the client whole
    finished: bool = False
    cache: Lookup | None = None  # cache: the lookup's result (hit, miss or bypass) on a cached endpoint
    replay: bool = False  # a stream answered from `pending` alone, with no upstream (a cache hit)

    def fail(self, error: ApiError) -> None:
        self.status = error.status
        self.error_type = error.error_type
        self.error_code = error.code

    def queue_wait(self, any_target: bool = False) -> float:
        """Seconds the request may wait for capacity on its current target: the Route's queue wait when set,
        else the provider's, lowered to what the request asked for. Only on its last target unless
        `any_target` (before that, a busy or ejected provider fails over at once)."""
        target = self.target
        if target is None or (not any_target and self.target_index + 1 < len(self.targets)):
            return 0.0
        return effective_wait(target.provider.queue_max_wait, self.route_wait, self.max_wait)

    def first_byte(self) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.started

    def final_usage(self) -> Usage:
        """The tokens to settle: the upstream's count, else the prompt estimate plus the output produced."""
        usage = self.usage if self.translator is None else self.translator.usage
        if usage.reported or self.upstream_status >= 400 or not self.answered:
            return usage
        output = max(usage.output_tokens, getattr(self.translator, "chunks", 0))
        return Usage(usage.input_tokens or self.prompt_tokens, output, False)

    def cost(self) -> int:
        """What the usage costs at the prices of the target that served it, micro-units (0: unpriced)."""
        target = self.target
        if target is None or target.rates is None or not self.provider:
            return 0
        usage = self.usage
        return target.rates.cost(usage.input_tokens, usage.output_tokens, usage.cached_tokens)

    def response_headers(self) -> dict[str, str]:
        headers = {"x-request-id": self.request_id}
        if self.reservation is not None and self.reservation.headers:
            headers.update(self.reservation.headers)
        if self.cache is not None:
            headers["x-lockgate-cache"] = self.cache.status
        if self.chosen_by and self.target is not None:
            headers["x-lockgate-model"] = self.target.model.name  # the model chosen for a virtual one
        return headers
