"""The browser test reuses the API tests' live-server helper (tests/api/api_server.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
