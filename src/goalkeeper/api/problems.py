"""HTTP errors of the API: one JSON shape for every 4xx/5xx, built from goalkeeper's exception tree.

Every error body is ``{"error": <code>, "message": <text>, "field": <dotted field or null>}``. The
code is stable (clients branch on it); the message is for humans; ``field`` names the offending
input field for validation errors (``events[2].args``), exactly as :mod:`goalkeeper.events` reports it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import (
    BackendError,
    ConfigurationError,
    ConflictError,
    GoalNotFound,
    InvalidInputError,
)

__all__ = ["ApiError", "error_response", "install_handlers"]

_CODES = {
    400: "malformed_json",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error answered with ``status`` and the standard body.

    Args:
        status: the HTTP status.
        message: human-readable text.
        field: the offending input field, if any.
        code: the stable error code (default: derived from ``status``).
        headers: extra response headers (``WWW-Authenticate`` for 401).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.code = code or _CODES.get(status, "error")
        self.headers = headers


def error_response(
    status: int, message: str, *, field: str | None = None, code: str | None = None, headers: Any = None
) -> JSONResponse:
    """The standard error response."""
    body = {"error": code or _CODES.get(status, "error"), "message": message, "field": field}
    return JSONResponse(body, status_code=status, headers=headers)


def _bare(exc: InvalidInputError) -> str:
    text, prefix = str(exc), f"{exc.field}: "
    return text[len(prefix) :] if exc.field and text.startswith(prefix) else text


def invalid(exc: InvalidInputError, prefix: str = "") -> ApiError:
    """A 422 for a validation error, with the field path prefixed by ``prefix`` (``events[3]``)."""
    field: str | None = (f"{prefix}.{exc.field}" if prefix else exc.field) if exc.field else prefix or None
    message = _bare(exc)
    return ApiError(422, f"{field}: {message}" if field else message, field=field)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, field=exc.field, code=exc.code, headers=exc.headers)


async def _invalid_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInputError)
    err = invalid(exc)
    return error_response(err.status, err.message, field=err.field)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, str(exc))


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, str(exc) or "the goal changed concurrently; retry")


async def _backend(request: Request, exc: Exception) -> JSONResponse:
    # The driver's message may name hosts or credentials: keep it in the server log only.
    request.app.state.runtime.log.error(
        "backend failure on %s %s", request.method, request.url.path, exc_info=exc
    )
    return error_response(503, f"{type(exc).__name__}: the store or bus is unavailable; retry later")


async def _configuration(request: Request, exc: Exception) -> JSONResponse:
    request.app.state.runtime.log.error("configuration error on %s", request.url.path, exc_info=exc)
    return error_response(500, "server misconfigured; see the server log", code="server_error")


def install_handlers(app: Any) -> None:
    """Register the handlers that turn exceptions into the standard error body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(InvalidInputError, _invalid_input)
    app.add_exception_handler(GoalNotFound, _not_found)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(BackendError, _backend)
    app.add_exception_handler(ConfigurationError, _configuration)
