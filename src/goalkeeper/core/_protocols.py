"""Protocols that user code implements, in a module of their own that a mypyc build leaves
uncompiled.

mypyc turns a class in a compiled module into a native class, which ``typing.runtime_checkable``
rejects, so a runtime-checkable protocol cannot live in a compiled module (see "mypyc" in
docs/performance.md). :mod:`~goalkeeper.core.text` re-exports :class:`Embedder`.
"""

from __future__ import annotations

from typing import Protocol, TypeVar, runtime_checkable

__all__ = ["Embedder"]

V = TypeVar("V")


@runtime_checkable
class Embedder(Protocol[V]):
    """Turns text into a representation and scores two representations.

    Implement this to plug an embedding model into drift detection: ``embed`` is called once for the
    goal and once per step, ``similarity`` compares them and must return a value in [0, 1] (1 means
    "about the same thing"). The default, :class:`~goalkeeper.core.text.LexicalEmbedder`, needs no model.
    """

    def embed(self, text: str) -> V:
        """Return the representation of ``text``."""
        ...

    def similarity(self, a: V, b: V) -> float:
        """Return how similar two representations are, in [0, 1]."""
        ...
