"""The errors only a client raises, placed in goalkeeper's one exception tree.

::

    ConfigurationError
    └── AuthenticationError     the server refused the token (HTTP 401): fix the configuration
    BackendError
    └── ServiceUnavailable      the server is unreachable, failed (5xx) or did not apply an event in
                                time, after the retries the policy allows: retry later or alert

Every other failure maps onto the existing tree (:mod:`goalkeeper.errors`) exactly as the in-process
client raises it, so code written against :class:`~goalkeeper.client.LocalClient` handles a remote
server's errors unchanged: a bad event is a :class:`~goalkeeper.errors.ValidationError` naming the
field, an unknown goal a :class:`~goalkeeper.errors.GoalNotFound`, a duplicate or closed goal a
:class:`~goalkeeper.errors.GoalError`.
"""

from __future__ import annotations

from ..errors import BackendError, ConfigurationError

__all__ = ["AuthenticationError", "ServiceUnavailable"]


class AuthenticationError(ConfigurationError):
    """The server refused the request's bearer token (missing or unknown): HTTP 401."""


class ServiceUnavailable(BackendError):
    """The server could not be reached, kept failing, or did not apply an event in time.

    Raised only after the retries the client's :class:`~goalkeeper.client.RetryPolicy` allows.
    The transport error (if any) is kept as ``__cause__``.

    Attributes:
        status: the last HTTP status received, or ``None`` when no response arrived.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
