"""Store URL helpers: goalkeeper's own query options, option parsers and password masking."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError

__all__ = ["mask_url", "positive_float", "positive_int", "split_options"]


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (safe to log and to put in error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def split_options(
    url: str, known: Mapping[str, Callable[[str], Any]], *, pass_through: bool
) -> tuple[str, dict[str, Any]]:
    """Take goalkeeper's own options out of ``url``'s query string.

    Args:
        url: The store URL.
        known: option name -> converter (raising ``ValueError`` on a bad value).
        pass_through: keep unknown options in the returned URL (they belong to the driver, e.g.
            ``sslmode``); if False, an unknown option is an error.

    Returns:
        The URL without goalkeeper's options, and the converted options.

    Raises:
        ConfigurationError: a bad value, or an unknown option when ``pass_through`` is False.
    """
    parts = urlsplit(url)
    options: dict[str, Any] = {}
    rest: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in known:
            try:
                options[name] = known[name](value)
            except ValueError as exc:
                raise ConfigurationError(f"store URL option {name}={value!r} is invalid: {exc}") from None
        elif pass_through:
            rest.append((name, value))
        else:
            raise ConfigurationError(
                f"unknown store URL option {name!r} in {mask_url(url)}; known: {', '.join(sorted(known))}"
            )
    return urlunsplit(parts._replace(query=urlencode(rest))), options


def positive_int(value: str) -> int:
    """Parse a URL option that must be an integer >= 1."""
    number = int(value)
    if number < 1:
        raise ValueError("must be >= 1")
    return number


def positive_float(value: str) -> float:
    """Parse a URL option that must be a finite number > 0."""
    number = float(value)
    if not 0 < number < float("inf"):
        raise ValueError("must be > 0")
    return number
