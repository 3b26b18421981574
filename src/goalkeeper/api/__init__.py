"""goalkeeper's HTTP API, Server-Sent Events and live dashboard (the ``server`` extra).

``create_app(ApiConfig(...))`` returns the FastAPI app that ``goalkeeper serve`` runs; see
``docs/api.md`` for the routes and ``docs/dashboard.md`` for the page. :class:`ApiConfig` is
importable without FastAPI installed (the CLI validates options before loading the server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ApiConfig, Tenant

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["ApiConfig", "Tenant", "create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported only when the app is actually built.
    if name == "create_app":
        try:
            from .app import create_app
        except ImportError as exc:
            if exc.name and exc.name.split(".")[0] in (
                "fastapi",
                "starlette",
                "prometheus_client",
                "pydantic",
            ):
                from ..errors import ConfigurationError

                raise ConfigurationError(
                    f'the HTTP API needs the {exc.name!r} package: pip install "goalkeeper[server]"'
                ) from exc
            raise
        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
