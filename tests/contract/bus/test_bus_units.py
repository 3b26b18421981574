"""Backend-independent parts of the transport: partitioning, URL options, the scheme table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.bus import SCHEMES, open_bus
from goalkeeper.bus._common import BusOptions, split_options
from goalkeeper.errors import ConfigurationError, InvalidInputError
from goalkeeper.ports.bus import DEFAULT_PARTITIONS, Batch, Consumer, Delivery, Transport, partition_for

DOCS = Path(__file__).resolve().parents[3] / "docs" / "transport.md"


def test_partition_for_is_stable_across_processes() -> None:
    # Pinned: BLAKE2b of the goal id, never the per-process salted hash().
    assert [partition_for(g, 16) for g in ["goal-1", "goal-2", "a", "日本"]] == [14, 12, 15, 1]
    assert partition_for("goal-1", 1_000_003) == 485863
    code = "from goalkeeper.ports.bus import partition_for; print(partition_for('goal-1', 16))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "14"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1), st.integers(min_value=1, max_value=10_000))
def test_partition_for_is_in_range(goal_id: str, n: int) -> None:
    assert 0 <= partition_for(goal_id, n) < n


def test_partition_for_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidInputError) as info:
        partition_for("", 4)
    assert info.value.field == "goal_id"
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ConfigurationError):
            partition_for("g", bad)  # type: ignore[arg-type]


def test_default_options_are_pinned() -> None:
    assert DEFAULT_PARTITIONS == 16
    assert BusOptions() == BusOptions(
        partitions=16, prefix="goalkeeper", visibility_timeout=30.0, max_in_flight=1000, max_backlog=100_000,
        dedup_window=120.0, reconnect_timeout=30.0, connect_timeout=5.0, poll_interval=0.05,
    )  # fmt: skip


def test_options_come_from_the_query_and_keywords_and_the_rest_stays_for_the_driver() -> None:
    rest, options = split_options("redis://h:1/0?partitions=8&ssl_cert_reqs=none&visibility_timeout=2.5", {})
    assert rest == "redis://h:1/0?ssl_cert_reqs=none"
    assert (options.partitions, options.visibility_timeout) == (8, 2.5)
    _, options = split_options("memory://?partitions=8", {"partitions": 3})
    assert options.partitions == 3
    assert open_bus("memory://?partitions=4").partitions == 4


@pytest.mark.parametrize(
    "url",
    [
        "memory://?partitions=0",
        "memory://?partitions=x",
        "memory://?visibility_timeout=-1",
        "memory://?dedup_window=nan",
        "memory://?prefix=has.dot",
        "memory://?max_in_flight=0",
        "memory://somehost/x.db",
    ],
)
def test_bad_options_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_bus(url)


def test_unknown_scheme_and_option_get_a_hint() -> None:
    with pytest.raises(ConfigurationError, match=r"did you mean redis://\?"):
        open_bus("reddis://localhost")
    with pytest.raises(ConfigurationError, match="did you mean 'partitions'"):
        open_bus("memory://", partition=4)
    assert set(SCHEMES) == {"memory", "redis", "rediss", "nats", "tls"}


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "goalkeeper.bus.redis_streams", raising=False)
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigurationError, match=re.escape('pip install "goalkeeper[redis]"')):
        open_bus("redis://localhost")


def test_importing_goalkeeper_imports_no_driver() -> None:
    code = (
        "import sys, goalkeeper, goalkeeper.bus, goalkeeper.bus.eventbus;"
        "print(sorted({'redis', 'nats'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_backends_satisfy_the_protocols() -> None:
    bus = open_bus("memory://")
    assert isinstance(bus, Transport)
    batch = Batch((Delivery(0, "1", "g", "e", {}),))
    assert len(batch) == 1
    assert batch[0].event_id == "e"
    assert batch.event_ids == ["e"]
    assert Consumer.__name__ == "Consumer"


def test_docs_example_runs() -> None:
    """The FeedbackEventBus and transport examples of docs/transport.md run as written."""
    text = DOCS.read_text()
    blocks = re.findall(r"<!-- example -->\n```python\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), {"__name__": "docs_example"})
