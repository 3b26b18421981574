"""The keys of a step that the loop detectors compare: :class:`StepFacts`.

Detectors never see raw steps: they see :class:`StepFacts`, computed once per step by
:func:`step_facts` (goalkeeper keying: volatile-insensitive action and observation keys, see
:attr:`~goalkeeper.core.steps.Step.action_key` and :attr:`~goalkeeper.core.steps.Step.observation_key`)
or :func:`reference_facts` (the reference keying: a hash of ``description|output``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, NamedTuple

from .steps import Step
from .text import collapse_ws, mask_volatile, stable_hash, tokens

__all__ = ["ERROR_HEAD_CHARS", "REFERENCE_TOKEN_CHARS", "StepFacts", "reference_facts", "step_facts"]


class StepFacts(NamedTuple):
    """The keys of one step that the detectors compare, computed once per step.

    Attributes:
        label: tool name (or action type) shown in messages.
        action: identity of the action alone (goalkeeper: ``Step.action_key``; reference: action type).
        pair: identity of action *and* result (goalkeeper: hash of action and observation keys;
            reference: SHA-256 of the normalised ``description|output``, 16 hex chars).
        cycle: what the oscillation detector sequences (goalkeeper: ``pair``; reference: action type).
        family: near-duplicate family: steps are compared by Jaccard only within one family
            (goalkeeper: tool plus arguments with free-text values blanked; reference: ``""``).
        tokens: token set compared by Jaccard.
        echo: what near-duplicates must share as result (goalkeeper: observation with the step's
            own free text blanked out; reference: ``""``, i.e. no requirement).
        error: normalised head of the error text, or ``None`` when the step has no error text.
        failed: the step failed (error or non-zero exit code).
        observation: identity of the result alone (``Step.observation_key``; reference: ``""``).
        approach: short text recorded in ``tried_approaches``.
    """

    label: str
    action: str
    pair: str
    cycle: str
    family: str
    tokens: frozenset[str]
    echo: str
    error: str | None
    failed: bool
    observation: str
    approach: str


#: Error heads compared by the dead-end detector are this long (the reference's 60 characters).
ERROR_HEAD_CHARS = 60
#: How much of a step's output the reference keying tokenises (bounds the per-step cost).
REFERENCE_TOKEN_CHARS = 1000
#: How much of the output the echo-insensitive observation looks at (the observation key's span).
_ECHO_CHARS = 2500
_APPROACH_CHARS = 120
_TEXT_SLOT = "\x00text"
_NUMBERED = re.compile(r"[a-z_]*[0-9][a-z0-9_]*")


def _error_head(error: str) -> str:
    return collapse_ws(mask_volatile(error).lower())[:ERROR_HEAD_CHARS]


def _blank_free_text(value: Any, texts: list[str]) -> Any:
    """Replace every string containing whitespace (free text) by a placeholder, collecting them."""
    if isinstance(value, dict):
        return {k: _blank_free_text(v, texts) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank_free_text(v, texts) for v in value]
    if isinstance(value, str) and " " in value:
        texts.append(value)
        return _TEXT_SLOT
    return value


def _echo_key(step: Step, texts: list[str], observation: str) -> str:
    """The observation with the step's own free text blanked out, so that a reworded query whose
    error message quotes the query still counts as the same result. Falls back to ``observation``
    when no free text is echoed (the common case, which then costs one substring scan)."""
    raw = f"{step.output[:_ECHO_CHARS]}\x1f{step.error or ''}"
    low = raw.lower()
    echoed = [t.lower() for t in texts if t.lower() in low]
    if not echoed:
        return observation
    text = mask_volatile(raw).lower()
    for t in sorted(echoed, key=len, reverse=True):
        text = text.replace(t, "<echo>")
    return stable_hash(f"{text}\x1f{step.exit_code}")


def step_facts(step: Step) -> StepFacts:
    """The goalkeeper keying of ``step``: built on ``Step.action_key`` / ``Step.observation_key``.

    Volatile details (ids, timestamps, whitespace, key order, thought text) do not change the keys;
    different business objects (another reservation id, another file) do.
    """
    action = step.action_key
    tool = step.tool
    observation = step.observation_key
    pair = stable_hash(f"{action}\x1f{observation}")
    texts: list[str] = []
    if not tool and not step.args:
        family = "desc:"
        texts.append(action[5:])
    else:
        canonical = action[len(tool) + 1 :]
        family = action
        # Canonical JSON has no whitespace outside string values, so a space means free text.
        if " " in canonical:
            try:
                skeleton = _blank_free_text(json.loads(canonical), texts)
                family = f"{tool}:{json.dumps(skeleton, sort_keys=True, separators=(',', ':'))}"
            except ValueError:  # not JSON (a reasoning-only action, masked after encoding): free text
                family, texts = f"{tool}:", [canonical]
    toks = frozenset({f"\x00{tool}"})
    if texts:
        joined = " ".join(texts)
        # tokens() drops short words and numbers, but "order A1" and "order B2", "page 2" and
        # "page 3" are different objects, not rewordings: words with a digit are kept as well.
        toks = toks | tokens(joined) | frozenset(_NUMBERED.findall(joined.lower()))
    echo = _echo_key(step, texts, observation) if texts else observation
    error = _error_head(step.error) if step.error else None
    return StepFacts(
        tool or "step", action, pair, pair, family, toks, echo, error, step.failed, observation,
        action[:_APPROACH_CHARS],
    )  # fmt: skip


def reference_facts(action_type: str, description: str, output: str, error: str | None) -> StepFacts:
    """The reference keying: SHA-256 of ``"description|output"`` (lower-cased, whitespace collapsed)
    truncated to 16 hex chars, token set of description and output, oscillation on ``action_type``."""
    text = f"{collapse_ws(description.lower())}|{collapse_ws(output.lower())}"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    toks = tokens(f"{description} {output[:REFERENCE_TOKEN_CHARS]}")
    err = collapse_ws(error.lower())[:ERROR_HEAD_CHARS] if error else None
    approach = (description or action_type)[:_APPROACH_CHARS]
    return StepFacts(
        action_type or "step", action_type, digest, action_type, "", toks, "", err, bool(error), "", approach
    )
