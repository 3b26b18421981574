"""The console script itself: ``goalkeeper version`` in a real subprocess, the install hint when the
``cli`` extra is missing, and the commands the app registers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import goalkeeper
from goalkeeper.cli._app import build_app

SCRIPT = Path(sys.executable).parent / "goalkeeper"


def test_version_in_a_real_subprocess() -> None:
    result = subprocess.run([str(SCRIPT), "version"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"goalkeeper {goalkeeper.__version__} (Python ")
    result = subprocess.run(
        [sys.executable, "-m", "goalkeeper.cli", "version", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["goalkeeper"] == goalkeeper.__version__


def test_missing_typer_prints_the_install_hint_and_exits_1() -> None:
    code = "import sys; sys.modules['typer'] = None\nfrom goalkeeper.cli import main\nmain(['version'])\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert 'pip install "goalkeeper[cli]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_importing_the_cli_package_imports_no_typer() -> None:
    code = (
        "import sys, goalkeeper.cli\n"
        "print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_every_command_is_registered() -> None:
    result = CliRunner().invoke(build_app(), ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for name in ("analyze", "import", "goals", "version", "serve", "worker"):
        assert f" {name} " in result.stdout
    result = CliRunner().invoke(build_app(), ["goals", "--help"], env={"COLUMNS": "120"})
    for name in ("list", "show", "close"):
        assert f" {name} " in result.stdout


def test_unknown_command_and_missing_argument_exit_2() -> None:
    assert CliRunner().invoke(build_app(), ["frobnicate"]).exit_code == 2
    assert CliRunner().invoke(build_app(), ["analyze"]).exit_code == 2


def test_main_accepts_argv() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from goalkeeper.cli import main; main(['version'])"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stdout.startswith("goalkeeper ")
