"""Import OpenHands 0.9.8's event classes from an unpacked wheel without its heavy runtime.

``pip download openhands-ai==0.9.8 --no-deps`` and unzip it; set ``OPENHANDS_DIR`` to that directory.
The runtime, storage and memory packages pull in cloud SDKs at import time; the generators need only
the event dataclasses, their serialization, ``EventStream`` and ``LocalFileStore``, so those packages
are replaced by empty namespace modules pointing at the real files.
"""

from __future__ import annotations

import os
import sys
import types

ROOT = os.environ.get("OPENHANDS_DIR", "openhands_ai-0.9.8-py3-none-any")
sys.path.insert(0, ROOT)


def _package(name: str, path: list[str]) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = path
    sys.modules[name] = module
    return module


for _name in ("openhands.runtime", "openhands.runtime.utils", "openhands.runtime.utils.shutdown_listener"):
    _package(_name, [])
sys.modules["openhands.runtime.utils.shutdown_listener"].should_continue = lambda: True  # type: ignore[attr-defined]
_storage = _package("openhands.storage", [os.path.join(ROOT, "openhands", "storage")])
_package("openhands.memory", [os.path.join(ROOT, "openhands", "memory")])

from openhands.storage.files import FileStore  # noqa: E402
from openhands.storage.local import LocalFileStore  # noqa: E402

_storage.FileStore = FileStore  # type: ignore[attr-defined]
_storage.LocalFileStore = LocalFileStore  # type: ignore[attr-defined]
