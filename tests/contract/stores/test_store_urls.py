"""open_store: the scheme table, URL options, clear errors for bad URLs, missing drivers, dead servers."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time

import pytest

from goalkeeper.errors import ConfigurationError, StoreError
from goalkeeper.ports.store import Commit
from goalkeeper.stores import DEFAULT_STORE_URL, SCHEMES, open_store
from goalkeeper.stores.memory import MemoryStore
from goalkeeper.stores.sqlite import SQLiteStore
from services import free_port


def test_scheme_table_is_explicit() -> None:
    assert sorted(SCHEMES) == ["memory", "postgres", "postgresql", "redis", "rediss", "sqlite"]
    assert DEFAULT_STORE_URL == "sqlite:///goalkeeper.db"
    assert SCHEMES["postgres"] == SCHEMES["postgresql"]
    assert (SCHEMES["redis"].extra, SCHEMES["postgresql"].extra) == ("redis", "postgres")


def test_default_store_is_sqlite_in_the_working_directory() -> None:
    store = open_store()
    assert isinstance(store, SQLiteStore)
    assert store.path == "goalkeeper.db"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///state.db", "state.db"),
        ("sqlite:///data/state.db", "data/state.db"),
        ("sqlite:////var/lib/gk/state.db", "/var/lib/gk/state.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite://", "goalkeeper.db"),
    ],
)
def test_sqlite_url_forms(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    assert store.path == path


def test_url_options_are_parsed() -> None:
    store = open_store("sqlite:///x.db?synchronous=full&busy_timeout=2.5&inbox_keep=7")
    assert isinstance(store, SQLiteStore)
    assert (store.synchronous, store.busy_timeout, store.inbox_keep) == ("FULL", 2.5, 7)
    memory = open_store("memory://?inbox_keep=5&metrics_retention=9")
    assert isinstance(memory, MemoryStore)
    assert (memory.inbox_keep, memory.metrics_retention) == (5, 9)
    sqlite = open_store("sqlite:///x.db?metrics_retention=50")
    assert (sqlite.metrics_retention, sqlite.inbox_keep) == (50, 10_000)
    # The server backends take the option too, and pass everything else to their driver.
    pg = open_store("postgresql://h/db?metrics_retention=11&sslmode=disable")
    assert pg.metrics_retention == 11
    assert "metrics_retention" not in getattr(pg, "conninfo")  # noqa: B009
    redis_store = open_store("redis://h:6379/0?metrics_retention=12&prefix=x:")
    assert redis_store.metrics_retention == 12


@pytest.mark.parametrize("value", [0, -1, True, 2.5, "10"])
def test_retention_arguments_are_checked(value: object) -> None:
    with pytest.raises(ConfigurationError, match="metrics_retention must be an int >= 1"):
        MemoryStore(metrics_retention=value)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="inbox_keep must be an int >= 1"):
        SQLiteStore(":memory:", inbox_keep=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mem://", r"scheme 'mem' is not known; known: memory://, postgres://, .*Did you mean memory://\?"),
        ("postgress://h/db", r"Did you mean postgres://\?"),
        ("sqlit:///x.db", r"Did you mean sqlite://\?"),
        ("mongodb://h", r"scheme 'mongodb' is not known; known: .*sqlite://\.$"),
        ("goalkeeper.db", "scheme missing is not known"),
        ("sqlite://host/x.db", "a SQLite URL has no host"),
        ("sqlite:///x.db?journal=wal", "unknown store URL option 'journal'.*known: busy_timeout, inbox_keep"),
        ("sqlite:///x.db?inbox_keep=0", "inbox_keep='0' is invalid: must be >= 1"),
        ("sqlite:///x.db?metrics_retention=0", "metrics_retention='0' is invalid: must be >= 1"),
        ("memory://?metrics_retention=many", "metrics_retention='many' is invalid"),
        ("redis://h/0?metrics_retention=-5", "metrics_retention='-5' is invalid"),
        ("postgresql://h/db?metrics_retention=1.5", "metrics_retention='1.5' is invalid"),
        ("sqlite:///x.db?busy_timeout=nan", "busy_timeout='nan' is invalid"),
        ("sqlite:///x.db?synchronous=off", "synchronous must be 'normal' or 'full'"),
        ("postgresql://h/db?schema=a-b", "schema must be a plain SQL identifier"),
        ("memory://?size=3", "unknown store URL option 'size'"),
    ],
)
def test_bad_urls_raise_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_store(url)


def test_url_must_be_a_string() -> None:
    with pytest.raises(ConfigurationError, match="must be a string"):
        open_store(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "driver", "extra"), [("redis://h", "redis", "redis"), ("postgresql://h/d", "psycopg", "postgres")]
)
def test_missing_driver_gives_the_install_command(
    monkeypatch: pytest.MonkeyPatch, url: str, driver: str, extra: str
) -> None:
    # A None entry in sys.modules makes `import driver` raise ImportError, as if not installed.
    monkeypatch.setitem(sys.modules, driver, None)
    for name in ("goalkeeper.stores.redis", "goalkeeper.stores.postgres"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(
        ConfigurationError, match=rf'needs the \'{driver}\' package: pip install "goalkeeper\[{extra}\]"'
    ):
        open_store(url)


def test_importing_stores_imports_no_driver() -> None:
    code = (
        "import sys, goalkeeper.stores, goalkeeper.ports.store; "
        "goalkeeper.stores.open_store('memory://'); goalkeeper.stores.open_store('sqlite:///x.db'); "
        "assert not {'redis', 'psycopg'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_passwords_are_masked() -> None:
    store = open_store("postgresql://app:s3cret@db.example:5432/gk?schema=gk_x")
    assert store.url == "postgresql://app:***@db.example:5432/gk?schema=gk_x"
    assert "s3cret" not in repr(store)


@pytest.mark.parametrize("scheme", ["postgresql", "redis"])
async def test_unreachable_server_fails_fast_naming_host_and_port(scheme: str) -> None:
    port = free_port()
    store = open_store(f"{scheme}://127.0.0.1:{port}/0?connect_timeout=2")
    started = time.monotonic()
    with pytest.raises(StoreError, match=rf"cannot connect to \w+ at 127\.0\.0\.1:{port}"):
        await store.open()
    assert time.monotonic() - started < 5
    with pytest.raises(StoreError, match="not open"):
        await store.load("g")


async def test_sqlite_in_memory_database_works() -> None:
    # The reference's SQLite backend failed here: every call opened a fresh, empty :memory: database.
    async with open_store("sqlite:///:memory:") as store:
        await store.commit(Commit("g", 0, {"a": 1}))
        record = await store.load("g")
        assert record is not None
        assert record.snapshot == {"a": 1}


async def test_sqlite_refuses_a_newer_schema(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'gk.db'}"
    async with open_store(url):
        pass
    with sqlite3.connect(tmp_path / "gk.db") as con:
        con.execute("INSERT INTO gk_schema VALUES (99, 'from the future', 0)")
    with pytest.raises(StoreError, match="schema version 99, newer than the 2 this goalkeeper supports"):
        await open_store(url).open()


async def test_sqlite_is_safe_with_several_processes(tmp_path) -> None:
    """Two processes race read-modify-write commits on one file; none is lost."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with open_store(url):
        pass
    code = """
import asyncio, sys
from goalkeeper.errors import ConflictError
from goalkeeper.ports.store import Commit
from goalkeeper.stores import open_store
async def main():
    async with open_store(sys.argv[1]) as s:
        done = 0
        while done < 100:
            r = await s.load("g")
            try:
                await s.commit(Commit("g", r.version if r else 0, {"n": (r.snapshot["n"] if r else 0) + 1}))
                done += 1
            except ConflictError:
                pass
asyncio.run(main())
"""
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", code, url) for _ in range(2)]
    assert [await p.wait() for p in procs] == [0, 0]
    async with open_store(url) as store:
        record = await store.load("g")
        assert record is not None
        assert (record.version, record.snapshot) == (200, {"n": 200})
