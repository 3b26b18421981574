"""``WorkerConfig``: every knob of :class:`~goalkeeper.worker.GoalFeedbackWorker` in one frozen dataclass.

Values come from code (``WorkerConfig(batch_size=200)``), from the environment
(:meth:`WorkerConfig.from_env` reads ``GOALKEEPER_<FIELD>``, for example ``GOALKEEPER_BATCH_SIZE``) or
from the ``goalkeeper worker`` command line. Every value is checked at construction: a bad one raises
:class:`~goalkeeper.errors.ConfigurationError` naming the field, never a failure mid-stream.
"""

from __future__ import annotations

import math
import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from ..errors import ConfigurationError

__all__ = ["ENV_PREFIX", "WorkerConfig", "default_worker_name"]

ENV_PREFIX = "GOALKEEPER_"
"""Prefix of the environment variables read by :meth:`WorkerConfig.from_env`."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def default_worker_name() -> str:
    """A name unique to this process: ``<host>-<pid>-<random>`` cut to the bus's 64-character limit.

    The random part matters: a worker restarted after SIGKILL may get the same pid in a container,
    and it must not be mistaken for the dead instance (whose leases have to expire first).
    """
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:32] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Configuration of a :class:`~goalkeeper.worker.GoalFeedbackWorker` (all fields optional).

    Raises:
        ConfigurationError: a field has a bad type or value (the message names it).
    """

    group: str = "goalkeeper-workers"
    """Consumer group on the bus; workers of one group share the partitions (and the leases)."""
    name: str | None = None
    """This worker's member name in the group; ``None`` picks :func:`default_worker_name`."""
    batch_size: int = 500
    """Most events fetched and committed per batch (bigger batches amortise the commit)."""
    fetch_timeout: float = 0.5
    """Seconds one fetch waits for events before the worker looks at leases, outbox and sources."""
    session_cache: int = 10_000
    """Goal sessions kept in memory (least recently used are dropped and reloaded from the store)."""
    max_commit_retries: int = 5
    """Compare-and-set conflicts tolerated per goal and batch before the goal's events are nacked."""
    lease_url: str | None = None
    """Where partition leases live: ``sqlite:///file``, ``postgresql://...``, ``redis://...`` or
    ``local://`` (one worker per process, no sharing). ``None`` derives it from the store URL."""
    lease_ttl: float = 10.0
    """Seconds a partition lease (and a member's heartbeat) lasts without renewal; a dead worker's
    partitions are taken over this long after its last renewal (plus the bus visibility timeout)."""
    drain_timeout: float = 10.0
    """Seconds a graceful shutdown waits for in-flight acknowledgements and sink deliveries."""
    outbox_interval: float = 5.0
    """Seconds between sweeps of the store's outbox for suggestions not yet delivered."""
    outbox_grace: float = 2.0
    """A pending suggestion younger than this is left to the worker that committed it (avoids a
    duplicate delivery racing the normal one)."""
    poll_interval: float = 1.0
    """Seconds before polling an :class:`~goalkeeper.worker.ActionSource` again after an empty poll
    (doubling per further empty poll); a poll that returned events is followed at once."""
    poll_max_interval: float = 30.0
    """Upper bound of the back-off between polls of an idle or failing source."""
    listener_timeout: float = 5.0
    """Seconds an async listener may run per commit before it is abandoned (and logged)."""
    metrics_port: int | None = None
    """Serve Prometheus metrics over HTTP on this port (0 picks a free one); ``None`` serves none."""
    metrics_host: str = "127.0.0.1"
    """Interface of the metrics endpoint."""
    profile: Literal["goalkeeper", "reference"] = "goalkeeper"
    """Profile of new goal sessions (see :class:`~goalkeeper.core.session.GoalSession`)."""
    install_signal_handlers: bool = True
    """Let :meth:`~goalkeeper.worker.GoalFeedbackWorker.run` stop gracefully on SIGTERM/SIGINT."""

    def __post_init__(self) -> None:
        """Validate every field (see the class docstring)."""
        if not isinstance(self.group, str) or not _NAME.match(self.group):
            raise ConfigurationError(f"group must match {_NAME.pattern}, got {self.group!r}")
        if self.name is not None and (not isinstance(self.name, str) or not _NAME.match(self.name)):
            raise ConfigurationError(f"name must match {_NAME.pattern}, got {self.name!r}")
        for name in ("batch_size", "session_cache", "max_commit_retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        for name in (
            "fetch_timeout",
            "lease_ttl",
            "drain_timeout",
            "outbox_interval",
            "poll_interval",
            "poll_max_interval",
            "listener_timeout",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
            if value <= 0:
                raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
        grace = self.outbox_grace
        if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace < math.inf:
            raise ConfigurationError(f"outbox_grace must be a number of seconds >= 0, got {grace!r}")
        if self.poll_max_interval < self.poll_interval:
            raise ConfigurationError("poll_max_interval must be >= poll_interval")
        self._check_rest()

    def _check_rest(self) -> None:
        port = self.metrics_port
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
        ):
            raise ConfigurationError(f"metrics_port must be an integer in [0, 65535], got {port!r}")
        if not isinstance(self.metrics_host, str) or not self.metrics_host:
            raise ConfigurationError("metrics_host must be a non-empty string")
        if self.lease_url is not None and (
            not isinstance(self.lease_url, str) or "://" not in self.lease_url
        ):
            raise ConfigurationError(f"lease_url must be a URL, got {self.lease_url!r}")
        if self.profile not in ("goalkeeper", "reference"):
            raise ConfigurationError(f"profile must be 'goalkeeper' or 'reference', got {self.profile!r}")
        if not isinstance(self.install_signal_handlers, bool):
            raise ConfigurationError("install_signal_handlers must be a bool")

    @property
    def member_name(self) -> str:
        """The configured :attr:`name`, or a fresh :func:`default_worker_name` if there is none."""
        return self.name if self.name is not None else default_worker_name()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> WorkerConfig:
        """Build a config from ``GOALKEEPER_<FIELD>`` variables; ``overrides`` win over them.

        Args:
            environ: the variables to read (default ``os.environ``).
            **overrides: field values that take precedence (for example from command-line options).

        Raises:
            ConfigurationError: a variable cannot be read as its field's type, or a value is invalid.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"{ENV_PREFIX}{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, raw, cls.__dataclass_fields__[f.name].default)
        values.update(overrides)
        return cls(**values)


def _convert(name: str, raw: str, default: object) -> object:
    """Read one environment variable as the type of its field's default."""
    var = f"{ENV_PREFIX}{name.upper()}"
    text = raw.strip()
    if isinstance(default, bool):
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"{var}: expected true or false, got {raw!r}")
    if isinstance(default, int) or name == "metrics_port":
        try:
            return int(text)
        except ValueError:
            raise ConfigurationError(f"{var}: expected an integer, got {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigurationError(f"{var}: expected a number, got {raw!r}") from None
    return text
