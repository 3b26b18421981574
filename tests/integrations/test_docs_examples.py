"""Every ``python`` block of docs/integrations.md and docs/client.md runs, in a fresh namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ("integrations.md", "client.md")
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks() -> list[object]:
    out = []
    for page in PAGES:
        text = (DOCS / page).read_text(encoding="utf-8")
        for n, match in enumerate(BLOCK.finditer(text), 1):
            line = text.count("\n", 0, match.start()) + 1
            out.append(pytest.param(match.group(1), id=f"{page}:{line}#{n}"))
    return out


def test_the_pages_have_examples() -> None:
    assert len(blocks()) >= 8


@pytest.mark.parametrize("code", blocks())
def test_example_runs(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.delenv("GOALKEEPER_URL", raising=False)
    monkeypatch.delenv("GOALKEEPER_TOKEN", raising=False)
    exec(compile(code, "<docs example>", "exec"), {"__name__": "__docs__"})
    capsys.readouterr()
