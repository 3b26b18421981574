"""The README's examples run, and its commands are the ones CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_has_python_examples() -> None:
    assert PYTHON_BLOCKS, "README.md should show a runnable example"


@pytest.mark.parametrize("code", PYTHON_BLOCKS, ids=lambda c: c.splitlines()[0][:40])
def test_readme_python_example_runs(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    # The comments in the example promise these lines; keep them true.
    assert "continue 0.33" in out
    assert "nudge adjust" in out
    assert "stop abort" in out


def test_readme_opens_with_pitch_and_two_commands() -> None:
    lines = README.splitlines()
    assert lines[0] == "# goalkeeper"
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert commands[:2] == [
        'pip install ".[server]" && goalkeeper serve',
        'pip install ".[dev]" && pytest',
    ]
    # .ci/run extracts the test command from the block after this marker.
    assert '<!-- test-command -->\n```bash\npip install ".[dev]" && pytest\n```' in README


def test_quickstart_runs_and_stops_the_loop() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "abort" in proc.stdout
    assert "same arguments" in proc.stdout
    # Graded: a nudge ("adjust") and a replan come before the stop.
    first_adjust = proc.stdout.index("adjust")
    first_replan = proc.stdout.index("replan")
    first_abort = proc.stdout.index("abort")
    assert first_adjust < first_replan < first_abort
