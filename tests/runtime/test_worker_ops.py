"""Operations: Prometheus metrics, structured logs, the ``goalkeeper worker`` command, SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import typer
from runtime_support import goal_events
from typer.testing import CliRunner

from goalkeeper.bus import open_bus
from goalkeeper.cli.worker import register
from goalkeeper.stores import open_store
from goalkeeper.worker import GoalFeedbackWorker, WorkerConfig
from goalkeeper.worker.logs import JsonFormatter
from services import free_port

SRC = Path(__file__).resolve().parents[2] / "src"


async def test_metrics_are_per_worker_and_served_over_http() -> None:
    port = free_port()
    config = WorkerConfig(fetch_timeout=0.05, metrics_port=port)
    async with open_store("memory://") as store, open_bus("memory://?partitions=2") as bus:
        await bus.publish_many([*goal_events("g1", 4), {"type": "nope", "goal_id": "g1", "event_id": "bad"}])
        other = GoalFeedbackWorker(store, bus, config=WorkerConfig())
        async with GoalFeedbackWorker(store, bus, config=config) as worker:
            await worker.run_until_idle(20)
            text = worker.metrics_text().decode()
            async with httpx.AsyncClient() as client:
                served = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'goalkeeper_worker_events_total{result="applied"} 5.0' in text
        assert 'goalkeeper_worker_events_total{result="dead_letter"} 1.0' in text
        assert "goalkeeper_worker_dead_letters_total 1.0" in text
        assert "goalkeeper_worker_batch_seconds_count" in text
        assert "goalkeeper_worker_lag_seconds" in text
        assert 'goalkeeper_worker_suggestions_total{stage="committed"}' in text
        assert "goalkeeper_worker_partitions 2.0" in text
        assert 'goalkeeper_worker_events_total{result="applied"} 5.0' in served
        # Each worker has its own registry: the idle one counted nothing.
        assert other.registry is not worker.registry
        assert 'result="applied"' not in other.metrics_text().decode()


def test_json_log_lines_carry_the_extra_fields() -> None:
    record = logging.LogRecord(
        "goalkeeper.worker", logging.WARNING, __file__, 1, "event dead-lettered", (), None
    )
    record.goal_id = "g1"
    record.reason = "bad"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "event dead-lettered"
    assert line["goal_id"] == "g1"
    assert line["reason"] == "bad"
    assert line["level"] == "WARNING"


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer from flattening the app
        """Nothing."""

    return app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "nope://x", "--bus", "memory://"], "scheme"),
        (["--store", "memory://", "--bus", "kafka://x"], "bus scheme"),
        (["--store", "memory://"], "--bus is required"),
        (["--store", "memory://", "--bus", "memory://", "--log-level", "LOUD"], "--log-level"),
        (["--store", "memory://", "--bus", "memory://", "--webhook", "ftp://x"], "http"),
    ],
)
def test_cli_bad_arguments_exit_2(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOALKEEPER_STORE", raising=False)
    monkeypatch.delenv("GOALKEEPER_BUS", raising=False)
    result = CliRunner().invoke(_app(), ["worker", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_worker_runs_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "gk.db"
    script = textwrap.dedent(
        """
        import typer, sys
        from goalkeeper.cli.worker import register
        app = typer.Typer()
        register(app)
        app.command("noop")(lambda: None)
        app(sys.argv[1:])
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    argv = [sys.executable, "-c", script, "worker", "--store", f"sqlite:///{db}", "--bus", f"memory://{db}",
            "--lease-ttl", "1", "--json-logs"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        lines: list[str] = []
        assert proc.stderr is not None
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "partitions acquired" in line:
                break
        else:
            pytest.fail("worker did not start: " + "".join(lines))
        proc.send_signal(signal.SIGTERM)
        out = proc.stderr.read()
        assert proc.wait(timeout=30) == 0, out
        messages = [json.loads(x)["message"] for x in out.splitlines() if x.startswith("{")]
        assert "signal received; stopping gracefully" in messages
        assert "worker stopped" in messages
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_importing_the_worker_imports_no_third_party_package() -> None:
    """Drivers, httpx and prometheus-client load only when something needs them."""
    code = (
        "import sys, goalkeeper.worker, goalkeeper.cli.worker as _\n"
        "bad = [m for m in ('httpx', 'prometheus_client', 'psycopg', 'redis', 'nats') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
