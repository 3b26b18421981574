"""docs/stores.md: its examples run, and the numbers it states match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from goalkeeper.stores import DEFAULT_STORE_URL, SCHEMES
from goalkeeper.stores._base import DEFAULT_INBOX_KEEP, DEFAULT_METRICS_RETENTION, SCHEMA_VERSION

DOC = (Path(__file__).resolve().parents[3] / "docs" / "stores.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)


def test_tracker_example_runs(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(PYTHON_BLOCKS) == 2
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON_BLOCKS[0], "docs/stores.md", "exec"), {"__name__": "__docs__"})
    out = capsys.readouterr().out.splitlines()
    assert out == ["async 2 {'progress': 1, 'note': 'retry-safe'}", "sync 1"]


def test_history_and_status_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(PYTHON_BLOCKS[1], "docs/stores.md", "exec"), {"__name__": "__docs__"})
    out = capsys.readouterr().out.splitlines()
    assert out == ["(1, 2, 3) [(2, 0.2), (3, 0.3)]", "checkout 1", "['checkout'] closed"]


def test_documented_defaults_match_the_code() -> None:
    assert "default 10,000" in DOC
    assert DEFAULT_INBOX_KEEP == 10_000
    assert "`metrics_retention` points per goal are kept (default 10,000;" in DOC
    assert DEFAULT_METRICS_RETENTION == 10_000
    assert f"The current schema version is {SCHEMA_VERSION}." in DOC
    assert DEFAULT_STORE_URL in DOC
    for scheme in SCHEMES:
        assert f"{scheme}://" in DOC
