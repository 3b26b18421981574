"""The backend URLs the StateStore contract suite runs against, and a URL helper.

A module of its own (not ``conftest``) so that test files can import it by a unique name.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from services import service_url

STORE_URLS = [
    pytest.param("memory://", id="memory"),
    pytest.param("sqlite://", id="sqlite"),
    pytest.param(service_url("postgres"), id="postgres", marks=pytest.mark.postgres),
    pytest.param(service_url("redis"), id="redis", marks=pytest.mark.redis),
]


#: The backends whose state outlives the store object (everything but memory://): reopening and
#: crash tests run on these only.
DURABLE_STORE_URLS = [p for p in STORE_URLS if p.id != "memory"]


def with_options(url: str, **options: object) -> str:
    """``url`` with query options added (``?schema=...&inbox_keep=...``)."""
    # Plain string concatenation: urlunsplit would turn "memory://" into "memory:".
    extra = urlencode({k: str(v) for k, v in options.items()})
    return f"{url}{'&' if '?' in url else '?'}{extra}"
