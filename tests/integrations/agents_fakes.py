"""A scripted fake model for the OpenAI Agents SDK: it implements ``agents.models.interface.Model``.

It behaves like an LLM stuck in a loop: every turn it calls ``search`` with the same arguments,
until its input carries a goalkeeper nudge (``[goalkeeper]``). Then a *listening* model changes
course and answers; a *stubborn* one keeps looping. No network is involved.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from agents import ModelResponse, Usage
from agents.models.interface import Model
from agents.testing import assistant_message, function_call

NUDGE_MARK = "[goalkeeper]"
ANSWER = "Paris has about 2.1 million inhabitants (I changed approach after the nudge)."


class LoopingModel(Model):
    """Calls ``search({"q": "paris population"})`` every turn; answers after a nudge if ``listens``."""

    def __init__(self, *, listens: bool, tokens: int = 0) -> None:
        self.listens = listens
        self.tokens = tokens  # reported as each turn's usage
        self.inputs: list[list[Any]] = []

    async def get_response(
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: Any,
        tools: Any,
        output_schema: Any,
        handoffs: Any,
        tracing: Any,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> ModelResponse:
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        self.inputs.append(items)
        if self.listens and self.saw_nudge(items):
            output = [assistant_message(ANSWER)]
        else:
            output = [function_call("search", {"q": "paris population"}, call_id=f"call_{len(self.inputs)}")]
        usage = Usage(requests=1, input_tokens=self.tokens, output_tokens=0, total_tokens=self.tokens)
        return ModelResponse(output=output, usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the tests run the model without streaming")

    @staticmethod
    def saw_nudge(items: list[Any]) -> bool:
        """Whether a goalkeeper nudge is among the input items."""
        return NUDGE_MARK in json.dumps(items, default=str)
