"""The word features of a step's text in one pass: keywords, tokens and entities.

Alignment needs a step's keywords (:func:`~goalkeeper.core.text.keywords`), drift its tokens
(:func:`~goalkeeper.core.text.tokens`) and entities (:func:`~goalkeeper.core.goal_dna.entities`).
All three are built from the text's identifiers, and all but one rule of ``entities`` depend on the
identifier alone. :class:`StepWordMemo` remembers, per identifier, everything the three features
need, so a step costs one dictionary lookup per identifier instead of three passes of string work:
the identifiers of an agent's steps (tool names, the words of descriptions, field names) repeat far
more than whole texts do. The result equals the three functions exactly (a property test pins it).
"""

from __future__ import annotations

from collections import deque
from itertools import chain

from .goal_dna import ENTITY_MIN_LEN, add_capitalised_entities
from .text import STOP_WORDS, _ident_keywords

__all__ = ["StepWordMemo", "WordFeatures"]

#: ``(keywords, tokens, entities)`` of one text.
WordFeatures = tuple[frozenset[str], frozenset[str], frozenset[str]]

#: What one identifier contributes: its keywords, its token (or None), its entity (or None), and
#: whether it is a short capitalised word whose entity-ness depends on where it stands in the text.
_Entry = tuple[tuple[str, ...], str | None, str | None, bool]

#: Identifiers longer than this are computed but not remembered (they rarely repeat).
_MAX_IDENT = 64


def _entry(ident: str) -> _Entry:
    low = ident.lower()  # identifiers are ASCII: lower-casing one equals lower-casing the text
    n = len(ident)
    token = low if n > 2 and low not in STOP_WORDS else None
    alpha = ident.isalpha()
    entity = low if n > 2 and (n >= ENTITY_MIN_LEN or not alpha) and low not in STOP_WORDS else None
    capitalised = 2 < n < ENTITY_MIN_LEN and alpha and ident[0].isupper()
    return _ident_keywords(ident), token, entity, capitalised


class StepWordMemo:
    """Keywords, tokens and entities of a text from its identifiers, with a bounded memo per
    identifier, owned by one instance (first in, first out; not part of any snapshot: the entries
    are pure functions of their keys).

    ``memo.of(text, identifiers(text)) == (keywords(text), tokens(text), entities(text))``.

    Args:
        size: identifiers remembered; the default keeps a tracker's memo under about 150 KB.
    """

    __slots__ = ("_data", "_order", "_size")

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._data: dict[str, _Entry] = {}
        self._order: deque[str] = deque()

    def __len__(self) -> int:
        return len(self._data)

    def _miss(self, ident: str) -> _Entry:
        entry = _entry(ident)
        if len(ident) <= _MAX_IDENT:
            data = self._data
            if len(data) >= self._size:
                del data[self._order.popleft()]
            data[ident] = entry
            self._order.append(ident)
        return entry

    def of(self, text: str, idents: list[str] | tuple[str, ...]) -> WordFeatures:
        """Return ``(keywords, tokens, entities)`` of ``text`` given its identifiers."""
        get, miss = self._data.get, self._miss
        entries = [get(ident) or miss(ident) for ident in idents]
        keywords = frozenset(chain.from_iterable([e[0] for e in entries]))
        tokens = frozenset([e[1] for e in entries if e[1] is not None])
        found = {e[2] for e in entries if e[2] is not None}
        capitalised = {ident for ident, e in zip(idents, entries, strict=True) if e[3]}
        if capitalised:
            add_capitalised_entities(text, capitalised, found)
        return keywords, tokens, frozenset(found)
