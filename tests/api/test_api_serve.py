"""``goalkeeper serve`` as users run it: a real subprocess on a free port, driven with httpx."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_server import free_port

GOALKEEPER = str(Path(sys.executable).with_name("goalkeeper"))


def wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"goalkeeper serve exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("goalkeeper serve did not become healthy")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALKEEPER_")}
    proc = subprocess.Popen(
        [GOALKEEPER, "serve", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, tmp_path, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_serve_zero_config(served: tuple[str, Path, subprocess.Popen[str]]) -> None:
    url, cwd, proc = served
    with httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/").status_code == 200
        assert "goalkeeper" in c.get("/").text
        created = c.post("/v1/goals", json={"goal_id": "demo", "description": "summarise the report"})
        assert created.status_code == 201, created.text
        steps = [{"type": "step", "tool": "read_file", "args": {"path": "r.txt"}, "output": "same"}] * 5
        r = c.post("/v1/goals/demo/events", json={"events": steps})
        assert r.status_code == 202
        assert r.json()["accepted"] == 5
        deadline = time.monotonic() + 15
        while c.get("/v1/goals/demo").json()["metrics"]["steps"] < 5:
            assert time.monotonic() < deadline, "events not applied"
            time.sleep(0.1)
        goal = c.get("/v1/goals/demo").json()
        assert goal["metrics"]["loop_risk"] > 0.5
        assert goal["recommended_action"] != "continue"
        assert c.get("/v1/goals/demo/suggestions").json()["suggestions"]
    # Zero config: state lives in ./goalkeeper.db of the working directory.
    assert (cwd / "goalkeeper.db").exists()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0


def test_serve_state_survives_a_restart(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALKEEPER_")}
    for round_ in range(2):
        proc = subprocess.Popen(
            [GOALKEEPER, "serve", "--port", str(port), "--log-level", "warning"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_healthy(url, proc)
            with httpx.Client(base_url=url, timeout=10) as c:
                if round_ == 0:
                    assert (
                        c.post("/v1/goals", json={"goal_id": "kept", "description": "x"}).status_code == 201
                    )
                else:
                    assert c.get("/v1/goals/kept").json()["description"] == "x"
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(15)
            assert proc.stderr is not None
            proc.stderr.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "refusing to listen on '0.0.0.0' without authentication"),
        (["--token", "short=teamA"], "8-512 printable characters"),
        (["--token", "long-enough-token=bad/tenant"], "tenant 'bad/tenant'"),
        (["--store", "mongodb://x"], "scheme 'mongodb' is not known"),
    ],
)
def test_serve_refuses_bad_configuration(tmp_path: Path, args: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALKEEPER_")}
    result = subprocess.run(
        [GOALKEEPER, "serve", "--port", str(free_port()), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_serve_with_tokens_on_all_interfaces(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALKEEPER_")}
    env["GOALKEEPER_TOKENS"] = "secret-token-1=teamA"
    proc = subprocess.Popen(
        [GOALKEEPER, "serve", "--host", "0.0.0.0", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        assert httpx.get(url + "/v1/goals").status_code == 401
        ok = httpx.get(url + "/v1/goals", headers={"Authorization": "Bearer secret-token-1"})
        assert ok.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        assert proc.stderr is not None
        proc.stderr.close()


def test_serve_port_in_use_exits_1(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOALKEEPER_")}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [GOALKEEPER, "serve", "--port", str(port)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert "could not start" in result.stderr
