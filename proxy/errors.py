"""Errors in OpenAI's error JSON, with the closed `error_type` set used in metrics.

Every failure the proxy answers with is an `ApiError`: an HTTP status, OpenAI's
`type` and `code`, a message without secrets, extra headers (Retry-After,
x-ratelimit-*) and the `error_type` label for `lockgate_requests_total`.
"""

from __future__ import annotations

from typing import Literal

import orjson
from aiohttp import web

# The closed set of the error_type metric label ("" for a success).
ErrorType = Literal[
    "",
    "auth",
    "forbidden",
    "not_found",
    "bad_request",
    "payload_too_large",
    "policy_rate_limited",
    "provider_rate_limited",
    "upstream_error",
    "timeout",
    "no_upstream",
    "client_closed",
    "internal",
]


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        error_type: ErrorType = "bad_request",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.error_type: ErrorType = error_type
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def anthropic_body(self) -> dict[str, object]:
        """The same error in Anthropic's format (for /v1/messages)."""
        kind = ANTHROPIC_TYPES.get(self.status, "api_error" if self.status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": self.message}}

    def response(self, request_id: str, anthropic: bool = False) -> web.Response:
        headers = {"x-request-id": request_id, **self.headers}
        body = self.anthropic_body() if anthropic else self.body()
        return web.Response(status=self.status, body=orjson.dumps(body), content_type="application/json",
                            headers=headers)


ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


def unauthorized(message: str, code: str = "invalid_api_key") -> ApiError:
    return ApiError(401, message, type="authentication_error", code=code, error_type="auth")


def forbidden(message: str, code: str) -> ApiError:
    return ApiError(403, message, type="permission_error", code=code, error_type="forbidden")


def model_not_found(model: str) -> ApiError:
    return ApiError(404, f"The model '{model}' does not exist or is not served here.", code="model_not_found",
                    param="model", error_type="not_found")


def bad_request(message: str, code: str = "invalid_request", param: str | None = None) -> ApiError:
    return ApiError(400, message, code=code, param=param, error_type="bad_request")


def path_not_found(path: str) -> ApiError:
    return ApiError(404, f"Unknown path {path}.", code="unknown_url", error_type="not_found")


def upstream_timeout(message: str = "The upstream did not answer in time.") -> ApiError:
    return ApiError(504, message, type="api_error", code="upstream_timeout", error_type="timeout")


def shutting_down() -> ApiError:
    """What a request still running when a draining replica's deadline passes is told."""
    return ApiError(503, "The gateway replica is shutting down and ended this request; please retry.",
                    type="api_error", code="server_shutting_down", error_type="upstream_error")


def no_upstream(message: str, status: int = 503) -> ApiError:
    return ApiError(status, message, type="api_error", code="no_upstream_available", error_type="no_upstream")


def upstream_error(message: str, status: int = 502, error_type: ErrorType = "upstream_error") -> ApiError:
    return ApiError(status, message, type="api_error", code="upstream_error", error_type=error_type)
