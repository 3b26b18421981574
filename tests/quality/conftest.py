"""Make the OpenHands peer detector available to the quality tests.

The peer comparison runs OpenHands' own ``StuckDetector`` (``openhands-ai==0.9.8``), which cannot be
a dependency of ours: its own dependencies are hundreds of megabytes and pin versions ours conflict
with. It installs without them (``--no-deps``), plus ``termcolor``. Locally the test that needs it
is skipped with that command as the reason; under ``CI=true`` a skip is not acceptable, so the two
packages are installed into a cache directory outside the environment (not into it) and put on
``sys.path``; if that fails, the session stops with the error instead of skipping.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PEER_PACKAGES = ["openhands-ai==0.9.8", "termcolor"]
TARGET = Path(tempfile.gettempdir()) / "goalkeeper-test-peers" / "openhands-ai-0.9.8"


def _install_peers() -> None:
    if importlib.util.find_spec("openhands") is not None and importlib.util.find_spec("termcolor"):
        return
    if not TARGET.joinpath("openhands", "controller", "stuck.py").exists():
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(TARGET)]
        done = subprocess.run([*cmd, *PEER_PACKAGES], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            reason = f"CI: cannot install the OpenHands peer detector: {done.stderr.strip()}"
            pytest.exit(reason, returncode=1)
    sys.path.append(str(TARGET))
    importlib.invalidate_caches()


if os.environ.get("CI", "").lower() == "true":
    _install_peers()
