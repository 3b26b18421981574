"""Bearer-token authentication: every ``/v1`` request resolves to a :class:`~goalkeeper.api.config.Tenant`.

The token comes from ``Authorization: Bearer <token>``, or from the ``access_token`` query parameter
for clients that cannot set headers (the browser's ``EventSource`` used by the dashboard). Without
configured tokens (a loopback-only server) every request is the single default tenant.
"""

from __future__ import annotations

from fastapi import Request

from .config import ApiConfig, Tenant
from .problems import ApiError

__all__ = ["tenant_dependency", "token_of"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="goalkeeper"'}


def token_of(request: Request) -> str | None:
    """The bearer token the request carries, if any."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return ""  # present but not a bearer token: refused, never silently ignored
    return request.query_params.get("access_token")


async def tenant_dependency(request: Request) -> Tenant:
    """FastAPI dependency: the caller's tenant, or 401 with a ``WWW-Authenticate`` challenge."""
    config: ApiConfig = request.app.state.runtime.config
    token = token_of(request)
    tenant = config.tenant_for(token)
    if tenant is None:
        message = (
            "missing bearer token: send Authorization: Bearer <token>"
            if token is None
            else "invalid bearer token"
        )
        raise ApiError(401, message, headers=_CHALLENGE)
    return tenant
