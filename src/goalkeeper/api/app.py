"""The FastAPI application: :func:`create_app`.

One app = one :class:`~goalkeeper.api.runtime.Runtime` (store, bus, embedded worker, change hub),
started and stopped by the app's lifespan. Around the routes sit two plain ASGI middlewares:

* :class:`BodyLimit` reads request bodies up to ``max_body_bytes`` and answers 413 beyond that,
  before any handler runs (a declared ``Content-Length`` that is too large is refused unread);
* :class:`RequestMetrics` counts requests and their latency per route template for ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from . import routes, streams
from .config import ApiConfig
from .problems import error_response, install_handlers
from .runtime import Runtime

__all__ = ["create_app", "end_streams"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyLimit:
    """ASGI middleware: refuse request bodies larger than ``limit`` bytes with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffer the body (bounded), then hand it to the app; 413 when it is too large."""
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, f"request body larger than {self.limit} bytes", code="payload_too_large"
        )
        await response(scope, receive, send)


class RequestMetrics:
    """ASGI middleware: per-route request counts and latency (SSE streams: counts only)."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and record it under its route template."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        streaming = False

        async def observe(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                streaming = headers.get(b"content-type", b"").startswith(b"text/event-stream")
                if streaming:  # an SSE stream lasts as long as the client: count it now
                    self._record(scope, status, None)
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            if not streaming:
                self._record(scope, status, time.perf_counter() - start)

    def _record(self, scope: Scope, status: int, seconds: float | None) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "GET")
        metrics = self.runtime.metrics
        metrics.requests.labels(method, path, str(status)).inc()
        if seconds is not None:
            metrics.latency.labels(method, path).observe(seconds)


def end_streams(app: FastAPI) -> None:
    """End every open SSE stream of ``app`` now (call it when the server starts shutting down).

    A server waits for open responses before it runs the lifespan's shutdown, and SSE responses
    never finish by themselves; ending them first makes shutdown prompt and clean.
    """
    runtime: Runtime = app.state.runtime
    if runtime.hub is not None:
        runtime.hub.close()


def _static_dir() -> str:
    return str(resources.files("goalkeeper.api").joinpath("static"))


def create_app(config: ApiConfig | None = None) -> FastAPI:
    """Build the goalkeeper HTTP API and dashboard.

    Args:
        config: the configuration; default :class:`ApiConfig` (SQLite ``./goalkeeper.db``, an
            embedded worker, no tokens — loopback only).

    Returns:
        A FastAPI app whose lifespan opens the store, starts the bus and runs the embedded worker.
        Serve it with uvicorn (``goalkeeper serve`` does), or drive it in tests with
        ``httpx.ASGITransport`` inside ``app.router.lifespan_context(app)``.
    """
    cfg = config or ApiConfig()
    runtime = Runtime(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="goalkeeper",
        version=__version__,
        description=(
            "Keeps AI agents on their goals: post an agent's events, read progress, drift, loop risk, "
            "the recommended action and suggestions, live over Server-Sent Events."
        ),
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_handlers(app)

    @app.exception_handler(RequestValidationError)
    async def _query_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first: dict[str, Any] = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "header", "body")]
        field = ".".join(loc) or None
        message = first.get("msg", "invalid request")
        return error_response(422, f"{field}: {message}" if field else message, field=field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    app.include_router(routes.router)
    app.include_router(streams.router)

    @app.get("/healthz", tags=["service"], summary="Health")
    async def healthz() -> JSONResponse:
        """``200 {"status": "ok", ...}`` when the store, bus and (embedded) worker are up, else 503."""
        parts = runtime.health()
        ok = parts["store"] == "ok" and parts["bus"] == "ok" and parts["worker"] in ("running", "external")
        if ok:
            try:
                await runtime.store.schema_version()
            except Exception:  # any store failure means "not healthy"; the reason is in the log
                runtime.log.exception("health check: store query failed")
                parts["store"], ok = "failing", False
        body = {"status": "ok" if ok else "unavailable", "version": __version__, **parts}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics")
    async def metrics() -> Response:
        """Prometheus text exposition: the API's metrics and the embedded worker's."""
        worker_registry = getattr(runtime.worker, "registry", None)
        return Response(
            runtime.metrics.render(worker_registry), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get("/", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        html = resources.files("goalkeeper.api").joinpath("static", "index.html").read_text("utf-8")
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")
    # The last added is the outermost: metrics see every answer, including the body limit's 413.
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)
    app.add_middleware(RequestMetrics, runtime=runtime)
    return app
