"""Importing a framework an integration needs, with an install hint when it is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ConfigurationError

__all__ = ["require"]


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise a :class:`ConfigurationError` naming the extra that installs it.

    Args:
        module: the import name (``agents``, ``langchain_core``, ``opentelemetry.trace``).
        extra: the goalkeeper extra (``openai-agents``, ``langchain``, ``otel``).
        what: the integration, for the message.

    Raises:
        ConfigurationError: the package is not installed; the message gives the ``pip install`` line.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is None or exc.name.split(".")[0] != top:
            raise  # the package is there but broken: its own error says more than ours would
        raise ConfigurationError(
            f'{what} needs the {top!r} package, which is not installed: pip install "goalkeeper[{extra}]"'
        ) from exc
