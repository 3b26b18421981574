"""Configuration of the HTTP API: :class:`ApiConfig`, bearer tokens and tenants.

Nothing here imports FastAPI, so the CLI can validate options (and print a clear message) before
the server's dependencies are even loaded.

Tenants and isolation: a bearer token maps to a tenant name. A goal that tenant ``teamA`` creates
as ``g1`` is stored under the id ``teamA/g1`` (:meth:`Tenant.store_id`); every read filters by
the ``teamA/`` prefix and strips it again, so one tenant can neither name, list, stream nor post
to another tenant's goals. Tenant names cannot contain ``/``, which makes the prefixes disjoint.
Without tokens (a loopback-only server) there is a single tenant with an empty prefix, so the
stored ids are the ids clients use and ``goalkeeper goals list`` shows them unchanged.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigurationError
from ..events import MAX_ID_LENGTH

__all__ = ["ApiConfig", "Tenant", "check_exposure", "parse_tokens"]

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TOKEN = re.compile(r"^[\x21-\x7e]{8,512}$")

DEFAULT_STORE_URL = "sqlite:///goalkeeper.db"


@dataclass(frozen=True, slots=True)
class Tenant:
    """Who is calling: the tenant a bearer token belongs to.

    Attributes:
        name: the tenant's name (``"default"`` when the server has no tokens).
        prefix: what stored goal ids of this tenant start with (``"<name>/"``, or ``""`` without tokens).
    """

    name: str
    prefix: str

    @property
    def max_goal_id(self) -> int:
        """Longest client goal id this tenant may use (the stored id must fit the wire limit)."""
        return MAX_ID_LENGTH - len(self.prefix)

    def store_id(self, goal_id: str) -> str:
        """The id under which the store keeps this tenant's goal ``goal_id``."""
        return self.prefix + goal_id

    def owns(self, stored_id: str) -> bool:
        """True if ``stored_id`` is one of this tenant's goals."""
        return stored_id.startswith(self.prefix)

    def client_id(self, stored_id: str) -> str:
        """The id the client knows for the stored id ``stored_id`` (which it must own)."""
        return stored_id[len(self.prefix) :]


SINGLE_TENANT = Tenant("default", "")
"""The only tenant of a server without tokens."""


def parse_tokens(spec: str) -> dict[str, str]:
    """Parse ``"tok1=teamA,tok2=teamB"`` into ``{"tok1": "teamA", "tok2": "teamB"}``.

    Raises:
        ConfigurationError: an entry is not ``TOKEN=TENANT``, a token is shorter than 8 printable
            characters, or a tenant name is not 1-64 of ``[A-Za-z0-9_.-]`` starting alphanumeric.
    """
    tokens: dict[str, str] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        token, sep, tenant = entry.partition("=")
        token, tenant = token.strip(), tenant.strip()
        if not sep or not token or not tenant:
            raise ConfigurationError(f"token entry {_mask(entry)!r} must be TOKEN=TENANT")
        if not _TOKEN.match(token):
            raise ConfigurationError(
                f"token {_mask(token)!r} must be 8-512 printable characters without spaces or commas"
            )
        if not _TENANT.match(tenant):
            raise ConfigurationError(
                f"tenant {tenant!r} must be 1-64 characters of A-Z a-z 0-9 _ . - "
                "starting with a letter or digit"
            )
        tokens[token] = tenant
    return tokens


def _mask(secret: str) -> str:
    # Error messages end up in logs: show only enough of a token to recognise it.
    return secret[:3] + "…" if len(secret) > 3 else "…"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Everything :func:`goalkeeper.api.create_app` needs; immutable.

    Build it directly, or with :meth:`from_env` (``GOALKEEPER_*`` variables), and derive variants
    with :meth:`replace`.
    """

    store_url: str = DEFAULT_STORE_URL
    """State store URL (``sqlite:///goalkeeper.db``, ``postgresql://...``, ``redis://...``, ``memory://``)."""
    bus_url: str | None = None
    """Event bus URL; ``None`` derives it: the durable embedded queue ``memory:///<file>`` in the
    SQLite store's file, or the volatile ``memory://`` for any other store."""
    tokens: Mapping[str, str] = field(default_factory=dict)
    """Bearer token -> tenant name. Empty: no auth, one tenant (allowed on loopback only)."""
    embedded_worker: bool = True
    """Run a :class:`~goalkeeper.worker.GoalFeedbackWorker` in the server's event loop. Off when
    separate ``goalkeeper worker`` processes consume the bus."""
    max_body_bytes: int = 1_048_576
    """Largest accepted request body (bytes); larger ones get 413 before they are read in full."""
    max_batch_events: int = 1000
    """Most events accepted in one ``POST /v1/events`` request (more: 413)."""
    commit_wait: float = 5.0
    """Seconds ``POST /v1/goals`` waits for the worker to commit the new goal before answering 202."""
    heartbeat: float = 15.0
    """Seconds between SSE heartbeat comments (keeps proxies from closing idle streams)."""
    poll_interval: float = 1.0
    """Seconds between store polls of an SSE stream when no commit notification arrives (an
    external worker commits without telling this process)."""
    list_limit: int = 500
    """Largest page size of the list endpoints."""
    event_log_retention: int = 10_000
    """Events kept per goal in the store's event log (what ``GET /v1/goals/{id}/events`` and the
    dashboard's step log read); older entries are trimmed as new ones arrive."""

    def __post_init__(self) -> None:
        """Validate the fields (raises :class:`~goalkeeper.errors.ConfigurationError`)."""
        for name in ("store_url",):
            value = getattr(self, name)
            if not isinstance(value, str) or "://" not in value:
                raise ConfigurationError(
                    f"{name} must be a URL such as sqlite:///goalkeeper.db, got {value!r}"
                )
        if self.bus_url is not None and (not isinstance(self.bus_url, str) or "://" not in self.bus_url):
            raise ConfigurationError(
                f"bus_url must be a URL such as memory:// or redis://..., got {self.bus_url!r}"
            )
        object.__setattr__(self, "tokens", MappingProxyType(dict(self.tokens)))
        for token, tenant in self.tokens.items():
            parse_tokens(f"{token}={tenant}")  # the same rules as the command line
        for name in ("max_body_bytes", "max_batch_events", "list_limit", "event_log_retention"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("commit_wait", "heartbeat", "poll_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
                raise ConfigurationError(f"{name} must be a number of seconds in (0, 3600], got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        """Read ``GOALKEEPER_STORE``, ``GOALKEEPER_BUS``, ``GOALKEEPER_TOKENS`` (``tok=tenant,...``),
        ``GOALKEEPER_MAX_BODY_BYTES``, ``GOALKEEPER_MAX_BATCH_EVENTS`` and ``GOALKEEPER_COMMIT_WAIT``;
        absent variables keep the defaults.

        Raises:
            ConfigurationError: a variable holds a malformed value (the message names it).
        """
        kwargs: dict[str, Any] = {}
        if environ.get("GOALKEEPER_STORE"):
            kwargs["store_url"] = environ["GOALKEEPER_STORE"]
        if environ.get("GOALKEEPER_BUS"):
            kwargs["bus_url"] = environ["GOALKEEPER_BUS"]
        if environ.get("GOALKEEPER_TOKENS"):
            kwargs["tokens"] = parse_tokens(environ["GOALKEEPER_TOKENS"])
        for var, name, kind in (
            ("GOALKEEPER_MAX_BODY_BYTES", "max_body_bytes", int),
            ("GOALKEEPER_MAX_BATCH_EVENTS", "max_batch_events", int),
            ("GOALKEEPER_COMMIT_WAIT", "commit_wait", float),
        ):
            raw = environ.get(var)
            if raw:
                try:
                    kwargs[name] = kind(raw)
                except ValueError:
                    raise ConfigurationError(f"{var} must be a number, got {raw!r}") from None
        return cls(**kwargs)

    def replace(self, **changes: Any) -> ApiConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    @property
    def auth_required(self) -> bool:
        """True when requests must carry a bearer token (tokens are configured)."""
        return bool(self.tokens)

    def tenant_for(self, token: str | None) -> Tenant | None:
        """The tenant of ``token``; :data:`SINGLE_TENANT` without auth; ``None`` if refused."""
        if not self.tokens:
            return SINGLE_TENANT
        if token is None:
            return None
        # Compare against every token in constant time, so response timing reveals nothing about
        # how much of a guessed token was right.
        found: str | None = None
        given = token.encode("utf-8", "surrogatepass")
        for candidate, name in self.tokens.items():
            if hmac.compare_digest(candidate.encode("utf-8"), given):
                found = name
        return None if found is None else Tenant(found, f"{found}/")

    def resolved_bus_url(self) -> str:
        """The bus URL to open (see :attr:`bus_url`)."""
        if self.bus_url is not None:
            return self.bus_url
        path = sqlite_path(self.store_url)
        if path is None:
            return "memory://"
        return "memory://" + str(Path(path).resolve())

    def masked_store_url(self) -> str:
        """The store URL with any password replaced by ``***`` (safe to print)."""
        return mask_url(self.store_url)


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///path.db`` URL (as the SQLite store reads it), or ``None`` for other
    schemes and ``:memory:``."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        return None
    path = parts.path
    # sqlite:///rel.db -> "/rel.db" (relative); sqlite:////abs.db -> "//abs.db" (absolute).
    path = path[1:] if path.startswith("/") else path
    if path == ":memory:":
        return None
    return path or "goalkeeper.db"  # what the SQLite store opens for an empty path


def mask_url(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def is_loopback(host: str) -> bool:
    """True if ``host`` only listens on this machine (``127.x``, ``::1``, ``localhost``)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public interface, so treat it as exposed


def check_exposure(host: str, config: ApiConfig) -> None:
    """Refuse to serve without tokens on anything but loopback.

    Raises:
        ConfigurationError: ``host`` is not a loopback address and no token is configured.
    """
    if not is_loopback(host) and not config.auth_required:
        raise ConfigurationError(
            f"refusing to listen on {host!r} without authentication: anyone who can reach it could read "
            "and steer every goal. Give bearer tokens with --token TOKEN=TENANT (or "
            "GOALKEEPER_TOKENS=tok1=teamA,tok2=teamB), or listen on 127.0.0.1."
        )
