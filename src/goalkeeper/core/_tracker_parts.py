"""Pure helpers of :mod:`goalkeeper.core.tracker`: alignment, the LLM prompt and reply, state hash."""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import SnapshotError
from .steps import Step
from .text import KeywordMemo, keywords

#: A function returning the keywords of a text: :func:`~.text.keywords` or a memo of it.
KeywordsFn = Callable[[str], frozenset[str]]

__all__ = [
    "ALIGNMENT_FULL_MATCHES",
    "CONTEXT_WORDS",
    "KeywordMemory",
    "keyword_alignment",
    "llm_prompt",
    "parse_llm_score",
    "reference_state_hash",
]

#: A step whose keywords match the goal this many times (or all of them, if it has fewer) is
#: fully aligned. One match in three keywords gives 1/3.
ALIGNMENT_FULL_MATCHES = 3
#: How many on-topic words learned from the conversation are remembered (most recent kept).
CONTEXT_WORDS = 500


class KeywordMemory:
    """The on-topic vocabulary: keywords of the goal, the plan and what the user said (bounded)."""

    def __init__(self, goal: str) -> None:
        self.goal = keywords(goal)
        self.plan: frozenset[str] = frozenset()
        self._context: deque[str] = deque()
        self._context_set: dict[str, int] = {}

    def set_plan(self, plan: Sequence[str]) -> None:
        """Replace the plan's keywords."""
        self.plan = keywords(" ".join(plan))

    def add_context(self, text: str, keywords_of: KeywordsFn = keywords) -> None:
        """Remember the keywords of ``text`` as on-topic (oldest forgotten past CONTEXT_WORDS)."""
        words = keywords_of(text)
        known = self._context_set
        # Usually every word is already known; then there is nothing to sort or insert. (Otherwise
        # the loop below runs as always: a word can be evicted and re-added within one call.)
        if words <= known.keys():
            return
        for word in sorted(words):
            if word in self._context_set:
                continue
            self._context.append(word)
            self._context_set[word] = 1
            if len(self._context) > CONTEXT_WORDS:
                del self._context_set[self._context.popleft()]

    def __contains__(self, word: object) -> bool:
        return word in self.goal or word in self.plan or word in self._context_set

    def count_known(self, words: frozenset[str]) -> int:
        """How many of ``words`` are on-topic (``sum(w in self for w in words)`` in one pass)."""
        goal, plan, context = self.goal, self.plan, self._context_set
        return len([w for w in words if w in goal or w in plan or w in context])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (goal and plan keywords are kept as computed, context in order)."""
        return {"goal": sorted(self.goal), "plan": sorted(self.plan), "context": list(self._context)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeywordMemory:
        """Inverse of :meth:`to_dict`."""
        try:
            mem = cls("")
            mem.goal = frozenset(str(w) for w in data["goal"])
            mem.plan = frozenset(str(w) for w in data["plan"])
            for w in data["context"]:
                mem._context.append(str(w))
                mem._context_set[str(w)] = 1
        except (KeyError, TypeError) as exc:
            raise SnapshotError(f"malformed keyword memory in GoalTracker snapshot: {exc!r}") from exc
        return mem


def keyword_alignment(
    step: Step,
    vocab: KeywordMemory,
    memo: KeywordMemo | None = None,
    step_keywords: frozenset[str] | None = None,
) -> float:
    """Heuristic alignment of ``step`` with the goal, in [0, 1].

    The step's keywords (from its description and argument values, identifiers split and lightly
    stemmed) are matched against the on-topic vocabulary; ``min(1, matches / min(n, 3))``.
    The tool's name counts when it matches and is not held against the step when it does not (a
    tool is *how*, not *what*). A step with no keywords beyond its tool carries no evidence: 0.5.
    ``memo`` (optional) gives the same keywords faster when words repeat from step to step;
    ``step_keywords``, when given, is ``keywords(step.text)`` computed by the caller.
    """
    if memo is None:
        tool_words, rest = keywords(step.tool), keywords(step.text)
    else:
        tool_words = memo.of_name(step.tool)
        rest = memo.of_identifiers(step.words) if step_keywords is None else step_keywords
    rest -= tool_words
    matches = vocab.count_known(rest) + vocab.count_known(tool_words)
    if not rest:
        return 1.0 if matches else 0.5
    return min(1.0, matches / min(len(rest), ALIGNMENT_FULL_MATCHES))


def llm_prompt(goal: str, plan: Sequence[str], step: Step) -> str:
    """The prompt given to ``llm_verify_fn``: the goal, the plan, the step; asks for a number."""
    plan_text = "".join(f"\n  {i + 1}. {s}" for i, s in enumerate(plan)) or " (none)"
    args = ", ".join(f"{k}={v!r}" for k, v in step.args.items())
    action = f"{step.tool}({args})" if step.tool else step.description
    return (
        "You check whether an AI agent's step serves its goal.\n"
        f"Goal: {goal}\nPlan:{plan_text}\n"
        f"Step: {action}\n"
        + (f"Description: {step.description}\n" if step.tool and step.description else "")
        + f"Result: {step.output[:500]}\n"
        + (f"Error: {step.error}\n" if step.error else "")
        + "How well does this step serve the goal? Answer with one number from 0 (not at all) "
        "to 1 (directly)."
    )


_NUMBER_RE = re.compile(r"(-?\d+(?:\.\d+)?)\s*(%|/\s*10\b|/\s*100\b|out of 10\b|out of 100\b)?", re.I)


def parse_llm_score(reply: object) -> float | None:
    """Turn an LLM reply into a score in [0, 1], or ``None`` if it holds none.

    Accepted: a number (``0.8``), a percentage (``80%``), a fraction of 10 or 100 (``8/10``,
    ``8 out of 10``). The first number in a text reply is used. A bare number in (1, 10] is read as
    out of 10 and in (10, 100] as out of 100; anything else (negative, larger) is no score.
    """
    if isinstance(reply, bool):
        return None
    if isinstance(reply, (int, float)):
        value, unit = float(reply), ""
    elif isinstance(reply, str):
        m = _NUMBER_RE.search(reply)
        if m is None:
            return None
        value, unit = float(m.group(1)), (m.group(2) or "").lower().replace(" ", "")
    else:
        return None
    if value != value or value < 0:  # NaN or negative
        return None
    if unit == "%" or unit in ("/100", "outof100"):
        value /= 100.0
    elif unit in ("/10", "outof10"):
        value /= 10.0
    elif value > 10:
        value /= 100.0
    elif value > 1:
        value /= 10.0
    return value if 0.0 <= value <= 1.0 else None


def reference_state_hash(description: str, output: str) -> str:
    """The reference tracker's coarse state hash (its research doc's recipe).

    ``lower(strip(description)) + "|" + lower(output)[:200]``, split on whitespace, unique tokens
    sorted, the first 20, MD5, 12 hex characters. Near-identical steps collide on purpose.
    """
    # Only the head of the output counts; ASCII text can be cut before lower-casing (cheap for long
    # outputs), while other text may change length or case by context when lower-cased.
    head = output[:200].lower() if output.isascii() else output.lower()[:200]
    text = description.strip().lower() + "|" + head
    toks = sorted(set(text.split()))[:20]
    return hashlib.md5(" ".join(toks).encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()[
        :12
    ]
