"""A fixture MCP server built with the official SDK, put behind the gateway in tests.

It carries the primitives the conformance suite calls by name (tools
`test_*`, resources `test://...`, prompts `test_*`, completion), plus a few
the gateway tests use (`echo`, `whoami`, `add`). Run it as a program:
`python -m tests.integration.mcp_fixtures.upstream_server --port N [--stateless]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from typing import Annotated, Any

from mcp.server import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer, RequestStateSecurity, Resolve, Sample
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    AudioContent,
    Completion,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    InputRequest,
    InputRequiredResult,
    JSONRPCMessage,
    ListRootsRequest,
    ListRootsResult,
    ModelHint,
    ModelPreferences,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field

PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
TINY_WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="


class MemoryEvents(EventStore):
    """Keeps every event so a client can resume a stream with Last-Event-ID."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int, JSONRPCMessage | None]] = []

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        self.log.append((stream_id, len(self.log) + 1, message))
        return str(len(self.log))

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        if not last_event_id.isdigit() or not 0 < int(last_event_id) <= len(self.log):
            return None
        stream = self.log[int(last_event_id) - 1][0]
        for stream_id, number, message in self.log[int(last_event_id):]:
            if stream_id == stream and message is not None:
                await send_callback(EventMessage(message, str(number)))
        return stream


def _ask(message: str, field: str = "name", kind: str = "string") -> ElicitRequest:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))


def _sample(text: str, max_tokens: int = 100) -> CreateMessageRequest:
    message = SamplingMessage(role="user", content=TextContent(type="text", text=text))
    return CreateMessageRequest(params=CreateMessageRequestParams(messages=[message], max_tokens=max_tokens))


def _accepted(answer: Any, field: str) -> Any:
    return answer.content.get(field) if isinstance(answer, ElicitResult) and answer.content else None


class Reply(BaseModel):
    response: str = Field(description="The answer")


class Defaults(BaseModel):
    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(default="active", description="User status",
                        json_schema_extra={"enum": ["active", "inactive", "pending"]})
    verified: bool = Field(default=True, description="Verification status")


class Enums(BaseModel):
    untitledSingle: str = Field(description="Plain enum", json_schema_extra={"enum": ["active", "inactive", "pending"]})
    titledSingle: str = Field(description="Titled enum", json_schema_extra={"oneOf": [
        {"const": "low", "title": "Low Priority"}, {"const": "medium", "title": "Medium Priority"},
        {"const": "high", "title": "High Priority"}]})
    untitledMulti: list[str] = Field(description="Plain multi-select", json_schema_extra={
        "items": {"type": "string", "enum": ["read", "write", "execute"]}})
    titledMulti: list[str] = Field(description="Titled multi-select", json_schema_extra={"items": {"anyOf": [
        {"const": "feature", "title": "New Feature"}, {"const": "bug", "title": "Bug Fix"},
        {"const": "docs", "title": "Documentation"}]}})
    legacyEnum: str = Field(description="Enum with enumNames", json_schema_extra={
        "enum": ["small", "medium", "large"], "enumNames": ["Small Size", "Medium Size", "Large Size"]})


def build(name: str = "lockgate-fixture") -> MCPServer:
    server = MCPServer(name=name, version="1.0.0",
                       request_state_security=RequestStateSecurity(keys=[b"lockgate-fixture-request-state-key-32b"]))
    _content_tools(server)
    _interactive_tools(server)
    _input_required_tools(server)
    _resources_and_prompts(server)
    _gateway_test_tools(server)
    _sampling_tools(server)
    _schema_tool(server)
    return server


def _content_tools(server: MCPServer) -> None:
    @server.tool()
    def test_simple_text() -> str:
        """Answers with one text block."""
        return "This is a simple text response for testing."

    @server.tool()
    def test_image_content() -> list[ImageContent]:
        """Answers with an image."""
        return [ImageContent(type="image", data=PIXEL_PNG, mime_type="image/png")]

    @server.tool()
    def test_audio_content() -> list[AudioContent]:
        """Answers with audio."""
        return [AudioContent(type="audio", data=TINY_WAV, mime_type="audio/wav")]

    @server.tool()
    def test_embedded_resource() -> list[EmbeddedResource]:
        """Answers with an embedded resource."""
        return [EmbeddedResource(type="resource", resource=TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."))]

    @server.tool()
    def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
        """Answers with text, an image and a resource."""
        return [
            TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=PIXEL_PNG, mime_type="image/png"),
            EmbeddedResource(type="resource", resource=TextResourceContents(
                uri="test://mixed-content-resource", mime_type="application/json", text='{"test": "data", "value": 123}')),
        ]

    @server.tool()
    def test_error_handling() -> str:
        """Always fails."""
        raise RuntimeError("This tool intentionally returns an error for testing")

    @server.tool()
    def test_x_mcp_header(region: str = Field(default="<none>", description="Mirrored into Mcp-Param-Region",
                                              json_schema_extra={"x-mcp-header": "Region"})) -> str:
        """Echoes a header-mirrored argument."""
        return f"region={region}"


def _interactive_tools(server: MCPServer) -> None:
    @server.tool()
    async def test_tool_with_logging(ctx: Context) -> str:
        """Logs three messages while it runs."""
        for step in ("Tool execution started", "Tool processing data", "Tool execution completed"):
            await ctx.info(step)
            await asyncio.sleep(0.02)
        return "Tool with logging executed successfully"

    @server.tool()
    async def test_logging_tool(ctx: Context) -> str:
        """Logs once (only clients that asked for logs get it)."""
        await ctx.info("logging tool ran")
        return "logged"

    @server.tool()
    async def test_tool_with_progress(ctx: Context) -> str:
        """Reports progress 0, 50, 100 and returns its progress token."""
        for done in (0, 50, 100):
            await ctx.report_progress(progress=done, total=100, message=f"Completed step {done} of 100")
            await asyncio.sleep(0.02)
        meta = ctx.request_context.meta if ctx.request_context else None
        return str(meta.get("progress_token") if meta else 0)

    @server.tool()
    async def test_sampling(prompt: str, ctx: Context) -> str:
        """Asks the client's model (sampling) and returns its answer."""
        result = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            max_tokens=100, related_request_id=ctx.request_id)
        text = result.content.text if result.content.type == "text" else "No response"
        return f"LLM response: {text}"

    @server.tool()
    async def test_elicitation(message: str, ctx: Context) -> str:
        """Asks the user (elicitation)."""
        result = await ctx.elicit(message=message, schema=Reply)
        content = result.data.model_dump_json() if result.action == "accept" else "{}"
        return f"User response: action={result.action}, content={content}"

    @server.tool()
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        """Elicits a form whose fields all have defaults."""
        result = await ctx.elicit(message="Please provide user information", schema=Defaults)
        content = result.data.model_dump_json() if result.action == "accept" else "{}"
        return f"Elicitation result: action={result.action}, content={content}"

    @server.tool()
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        """Elicits a form with every enum style."""
        result = await ctx.elicit(message="Please select values using different enum schema types", schema=Enums)
        content = result.data.model_dump_json() if result.action == "accept" else "{}"
        return f"Elicitation completed: action={result.action}, content={content}"

    @server.tool()
    async def test_missing_capability(ctx: Context) -> str:
        """Needs the client's sampling capability; refuses with -32021 without it."""
        capabilities = ctx.session.client_capabilities
        if capabilities is None or capabilities.sampling is None:
            raise MCPError(code=MISSING_REQUIRED_CLIENT_CAPABILITY, message="the client must declare sampling",
                           data={"requiredCapabilities": {"sampling": {}}})
        return "sampling declared"

    @server.tool()
    async def test_reconnection(ctx: Context) -> str:
        """Closes its SSE stream mid-call; the client resumes it with Last-Event-ID."""
        await ctx.info("Before disconnect")
        await ctx.close_sse_stream()
        await asyncio.sleep(0.2)
        await ctx.info("After reconnect")
        return "Reconnection test completed"

    @server.tool()
    async def test_trigger_tool_change(ctx: Context) -> str:
        """Adds and removes a tool, then announces the change."""
        server.add_tool(lambda: "dynamic", name="test_dynamic_tool", description="dynamic")
        server.remove_tool("test_dynamic_tool")
        await ctx.notify_tools_changed()
        return "tool list changed"


def _input_required_tools(server: MCPServer) -> None:
    @server.tool()
    async def test_input_required_result_elicitation(ctx: Context) -> str | InputRequiredResult:
        """Asks for a name through an input_required result."""
        answers = ctx.input_responses or {}
        if "user_name" in answers:
            return f"Hello, {_accepted(answers['user_name'], 'name') or '?'}!"
        return InputRequiredResult(input_requests={"user_name": _ask("What is your name?")})

    @server.tool()
    async def test_input_required_result_sampling(ctx: Context) -> str | InputRequiredResult:
        """Asks the client's model through an input_required result."""
        answers = ctx.input_responses or {}
        answer = answers.get("capital_question")
        if answer is not None:
            text = answer.content.text if isinstance(answer, CreateMessageResult) and answer.content.type == "text" else "?"
            return f"Model said: {text}"
        return InputRequiredResult(input_requests={"capital_question": _sample("What is the capital of France?")})

    @server.tool()
    async def test_input_required_result_list_roots(ctx: Context) -> str | InputRequiredResult:
        """Asks for the client's roots through an input_required result."""
        answer = (ctx.input_responses or {}).get("client_roots")
        if answer is not None:
            return f"Client exposed {len(answer.roots) if isinstance(answer, ListRootsResult) else 0} root(s)."
        return InputRequiredResult(input_requests={"client_roots": ListRootsRequest()})

    @server.tool()
    async def test_input_required_result_request_state(ctx: Context) -> str | InputRequiredResult:
        """Round-trips requestState."""
        if "confirm" in (ctx.input_responses or {}) and ctx.request_state == "state-token":
            return "state-ok: confirmation received"
        return InputRequiredResult(input_requests={"confirm": _ask("Please confirm", "ok", "boolean")},
                                   request_state="state-token")

    @server.tool()
    async def test_input_required_result_multiple_inputs(ctx: Context) -> str | InputRequiredResult:
        """Asks for elicitation, sampling and roots at once."""
        if {"user_name", "greeting", "client_roots"} <= set(ctx.input_responses or {}):
            return "All inputs received."
        return InputRequiredResult(input_requests={
            "user_name": _ask("What is your name?"), "greeting": _sample("Generate a greeting", 50),
            "client_roots": ListRootsRequest()}, request_state="multiple-inputs")

    @server.tool()
    async def test_input_required_result_multi_round(ctx: Context) -> str | InputRequiredResult:
        """Three rounds, the state growing each time."""
        state = json.loads(ctx.request_state) if ctx.request_state else {"round": 0}
        answers = ctx.input_responses or {}
        if state["round"] == 1 and "step1" in answers:
            return InputRequiredResult(
                input_requests={"step2": _ask("Step 2: What is your favorite color?", "color")},
                request_state=json.dumps({"round": 2, "name": _accepted(answers["step1"], "name")}))
        if state["round"] == 2 and "step2" in answers:
            return f"{state.get('name')} likes {_accepted(answers['step2'], 'color')}."
        return InputRequiredResult(input_requests={"step1": _ask("Step 1: What is your name?")},
                                   request_state=json.dumps({"round": 1}))

    @server.tool()
    async def test_input_required_result_tampered_state(ctx: Context) -> str | InputRequiredResult:
        """The SDK's request-state boundary rejects a tampered echo."""
        if ctx.request_state is None:
            return InputRequiredResult(input_requests={"confirm": _ask("Please confirm", "ok", "boolean")},
                                       request_state="round-1")
        return f"state-ok: {ctx.request_state}"

    @server.tool()
    async def test_input_required_result_capabilities(ctx: Context) -> InputRequiredResult:
        """Asks only for what the client declared."""
        caps = ctx.client_capabilities
        wanted: dict[str, InputRequest] = {}
        if caps is None or caps.sampling is not None:
            wanted["sample"] = _sample("Say hello", 50)
        if caps is None or caps.elicitation is not None:
            wanted["ask"] = _ask("What is your name?")
        return InputRequiredResult(input_requests=wanted, request_state="capability-gated")

    @server.prompt()
    async def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | InputRequiredResult:
        """A prompt that first asks for context."""
        answer = (ctx.input_responses or {}).get("user_context")
        if answer is not None:
            return [UserMessage(role="user", content=TextContent(
                type="text", text=f"Use the following context: {_accepted(answer, 'context') or '?'}"))]
        return InputRequiredResult(input_requests={"user_context": _ask("What context should the prompt use?", "context")})


def _resources_and_prompts(server: MCPServer) -> None:
    @server.resource("test://static-text")
    def static_text() -> str:
        """Static text."""
        return "This is the content of the static text resource."

    @server.resource("test://static-binary")
    def static_binary() -> bytes:
        """A PNG pixel."""
        return base64.b64decode(PIXEL_PNG)

    @server.resource("test://template/{id}/data")
    def templated(id: str) -> str:
        """Data by id."""
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.resource("test://watched-resource")
    def watched() -> str:
        """A resource clients may subscribe to."""
        return "Watched resource content"

    @server.prompt()
    def test_simple_prompt() -> list[UserMessage]:
        """No arguments."""
        return [UserMessage(role="user", content=TextContent(type="text", text="This is a simple prompt for testing."))]

    @server.prompt()
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
        """Two arguments."""
        return [UserMessage(role="user", content=TextContent(
            type="text", text=f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]

    @server.prompt()
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
        """Embeds a resource."""
        return [
            UserMessage(role="user", content=EmbeddedResource(type="resource", resource=TextResourceContents(
                uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."))),
            UserMessage(role="user", content=TextContent(type="text", text="Please process the embedded resource above.")),
        ]

    @server.prompt()
    def test_prompt_with_image() -> list[UserMessage]:
        """Includes an image."""
        return [
            UserMessage(role="user", content=ImageContent(type="image", data=PIXEL_PNG, mime_type="image/png")),
            UserMessage(role="user", content=TextContent(type="text", text="Please analyze the image above.")),
        ]

    @server.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Completion:
        return Completion(values=[], total=0, has_more=False)

    async def set_level(ctx: ServerRequestContext, params: SetLevelRequestParams) -> EmptyResult:
        return EmptyResult()

    async def subscribe(ctx: ServerRequestContext, params: SubscribeRequestParams) -> EmptyResult:
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext, params: UnsubscribeRequestParams) -> EmptyResult:
        return EmptyResult()

    lowlevel = server._lowlevel_server  # no public hook for these legacy handlers yet
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


def _preferring(hint: str) -> ModelPreferences:
    return ModelPreferences(hints=[ModelHint(name=hint)] if hint else None, cost_priority=1.0)


def _capital_question(hint: str) -> Sample:
    """The Sample resolver: the model's answer is injected before the tool body runs (both eras)."""
    question = SamplingMessage(role="user", content=TextContent(type="text", text="What is the capital of France?"))
    return Sample([question], max_tokens=40, system_prompt="Answer in one word.", model_preferences=_preferring(hint))


def _sampling_tools(server: MCPServer) -> None:
    @server.tool()
    async def ask_model(hint: str, answer: Annotated[CreateMessageResult, Resolve(_capital_question)]) -> str:
        """Samples the client's model through the Sample resolver; answers '<model>: <text>'."""
        text = answer.content.text if answer.content.type == "text" else "?"
        return f"{answer.model}: {text}"

    @server.tool()
    async def ask_model_in_session(hint: str, ctx: Context) -> str:
        """Samples the client's model with the session's create_message (2025-11-25 only)."""
        question = SamplingMessage(role="user", content=TextContent(type="text", text="Name a colour."))
        result = await ctx.session.create_message(messages=[question], max_tokens=30,
                                                  model_preferences=_preferring(hint),
                                                  related_request_id=ctx.request_id)
        text = result.content.text if result.content.type == "text" else "?"
        return f"{result.model}: {text}"


def _gateway_test_tools(server: MCPServer) -> None:
    @server.tool()
    def add(a: int, b: int) -> int:
        """Adds two integers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Echoes its text."""
        return text

    @server.tool()
    def whoami(ctx: Context) -> str:
        """The Authorization header the upstream received (tests check it is the gateway's)."""
        headers = ctx.headers or {}
        return str(headers.get("authorization", "<none>"))

    @server.tool()
    def secret_tool() -> str:
        """A tool some keys may not call."""
        return "classified"


# The schema the json-schema-2020-12 scenario looks for, keyword by keyword.
SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"$anchor": "addressDef", "type": "object",
                          "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"},
                   "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                   "phone": {"type": "string"}, "email": {"type": "string"}},
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


def _schema_tool(server: MCPServer) -> None:
    server.add_tool(lambda: "json_schema_2020_12_tool", name="json_schema_2020_12_tool",
                    description="Carries a JSON Schema 2020-12 input schema.")
    server._tool_manager.get_tool("json_schema_2020_12_tool").parameters = SCHEMA_2020_12  # no public override


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stateless", action="store_true")
    parser.add_argument("--json", action="store_true", help="answer with JSON instead of SSE")
    parser.add_argument("--name", default="lockgate-fixture")
    parser.add_argument("--sse", action="store_true", help="serve the older HTTP+SSE transport at /sse")
    args = parser.parse_args(argv)
    server = build(args.name)
    if args.sse:
        server.run(transport="sse", host="127.0.0.1", port=args.port,
                   transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        return
    server.run(transport="streamable-http", host="127.0.0.1", port=args.port, stateless_http=args.stateless,
               json_response=args.json, event_store=None if args.stateless else MemoryEvents(),
               retry_interval=None if args.stateless else 100,
               transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))


if __name__ == "__main__":
    sys.exit(main())
