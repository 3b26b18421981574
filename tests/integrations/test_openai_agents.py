"""The OpenAI Agents integration on a real Runner with a looping fake model (no network)."""

from __future__ import annotations

import pytest

pytest.importorskip("agents")

from agents import Agent, MaxTurnsExceeded, RunConfig, Runner, function_tool
from agents_fakes import ANSWER, NUDGE_MARK, LoopingModel

from goalkeeper.client import AsyncLocalClient, LocalClient
from goalkeeper.errors import ConfigurationError
from goalkeeper.integrations import GoalAborted, GoalMonitor, Policy
from goalkeeper.integrations.openai_agents import GoalkeeperHooks, NudgeInputFilter, run_config, run_options

GOAL = "Find the population of Paris and report it"


def make_agent(model: LoopingModel, calls: list[str]) -> Agent:
    @function_tool
    def search(q: str) -> str:
        """Search the web."""
        calls.append(q)
        return "no results"

    return Agent(name="researcher", instructions="Answer the question.", model=model, tools=[search])


def no_tracing(base: RunConfig | None = None) -> RunConfig:
    return base if base is not None else RunConfig(tracing_disabled=True)


@pytest.fixture
def client() -> AsyncLocalClient:
    return AsyncLocalClient()


async def test_a_nudge_is_injected_and_the_looping_agent_changes_course(client: AsyncLocalClient) -> None:
    await client.create_goal(GOAL, goal_id="paris")
    decisions = []
    monitor = GoalMonitor(client, "paris", on_decision=decisions.append)
    model, calls = LoopingModel(listens=True, tokens=120), []
    result = await Runner.run(
        make_agent(model, calls),
        "How many people live in Paris?",
        max_turns=20,
        **run_options(monitor, no_tracing()),
    )
    # Three identical searches: goalkeeper says "adjust" with a nudge; the next model call reads it.
    assert calls == ["paris population"] * 3
    assert result.final_output == ANSWER
    assert [LoopingModel.saw_nudge(i) for i in model.inputs] == [False, False, False, True]
    injected = model.inputs[-1][-1]
    assert injected["role"] == "system"
    assert injected["content"].startswith(NUDGE_MARK)
    assert "`search` with the same arguments 3 times" in injected["content"]
    # Every tool call reached goalkeeper as a step with its arguments and result.
    goal = await client.get_goal("paris")
    assert goal.metrics["steps"] == 3
    assert goal.metrics["tokens"] == 360  # each step carries the model turn that asked for it
    assert [d.action for d in decisions] == ["continue", "continue", "adjust"]
    assert monitor.decision is decisions[-1]


async def test_a_stubborn_loop_is_stopped_with_the_reason(client: AsyncLocalClient) -> None:
    await client.create_goal(GOAL, goal_id="paris")
    monitor = GoalMonitor(client, "paris")
    model, calls = LoopingModel(listens=False), []
    with pytest.raises(GoalAborted) as caught:
        await Runner.run(
            make_agent(model, calls),
            "How many people live in Paris?",
            max_turns=50,
            **run_options(monitor, no_tracing()),
        )
    # Nudged at 3, told to replan at 4, stopped at 6: the model is never called a 7th time.
    assert len(calls) == 6
    assert len(model.inputs) == 6
    assert caught.value.goal_id == "paris"
    assert "`search`" in caught.value.reason
    assert "stopping" in caught.value.reason
    assert caught.value.decision.action == "abort"
    # The replan nudge was shown and acknowledged (a feedback event reached the goal).
    kinds = [s.kind.value for s in await client.suggestions("paris")]
    assert kinds == ["adjust", "replan", "replan", "abort"]
    assert sum(NUDGE_MARK in str(i[-1]) for i in model.inputs) == 3


async def test_a_sync_in_process_client_works_too() -> None:
    client = LocalClient()
    client.create_goal(GOAL, goal_id="paris")
    monitor = GoalMonitor(client, "paris")
    model, calls = LoopingModel(listens=True), []
    result = await Runner.run(
        make_agent(model, calls), "Paris?", max_turns=20, **run_options(monitor, no_tracing())
    )
    assert result.final_output == ANSWER
    assert len(calls) == 3


async def test_policy_without_injection_lets_the_loop_run_into_abort(client: AsyncLocalClient) -> None:
    await client.create_goal(GOAL, goal_id="paris")
    monitor = GoalMonitor(client, "paris", policy=Policy(inject_on=frozenset()))
    model, calls = LoopingModel(listens=True), []
    with pytest.raises(GoalAborted):
        await Runner.run(
            make_agent(model, calls), "Paris?", max_turns=50, **run_options(monitor, no_tracing())
        )
    assert not any(LoopingModel.saw_nudge(i) for i in model.inputs)


async def test_the_users_own_input_filter_still_runs(client: AsyncLocalClient) -> None:
    await client.create_goal(GOAL, goal_id="paris")
    monitor = GoalMonitor(client, "paris")
    seen: list[int] = []

    def mine(data):  # a sync user filter
        seen.append(len(data.model_data.input))
        return data.model_data

    config = run_config(monitor, RunConfig(tracing_disabled=True, call_model_input_filter=mine))
    assert isinstance(config.call_model_input_filter, NudgeInputFilter)
    model, calls = LoopingModel(listens=True), []
    await Runner.run(
        make_agent(model, calls), "Paris?", max_turns=20, hooks=GoalkeeperHooks(monitor), run_config=config
    )
    assert seen == [1, 3, 5, 7]
    assert LoopingModel.saw_nudge(model.inputs[-1])


def test_a_bad_role_is_refused() -> None:
    monitor = GoalMonitor(LocalClient(), "g")
    with pytest.raises(ConfigurationError, match="role"):
        NudgeInputFilter(monitor, role="tool")


async def test_hooks_reused_for_a_second_run_count_tokens_afresh(client: AsyncLocalClient) -> None:
    await client.create_goal(GOAL, goal_id="paris")
    monitor = GoalMonitor(client, "paris", policy=Policy(inject_on=frozenset(), stop_on=frozenset()))
    options = run_options(monitor, no_tracing())
    for _ in range(2):
        model = LoopingModel(listens=False, tokens=50)
        with pytest.raises(MaxTurnsExceeded):
            await Runner.run(make_agent(model, []), "Paris?", max_turns=2, **options)
    assert (await client.get_goal("paris")).metrics["tokens"] == 200  # 2 runs x 2 steps x 50


async def test_streamed_runs_are_watched_too(client: AsyncLocalClient) -> None:
    from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

    def stuck(call) -> list:
        if NUDGE_MARK in str(call.input):
            return [assistant_message(ANSWER)]
        return [function_call("search", {"q": "paris population"}, call_id=f"c{len(call.input)}")]

    await client.create_goal(GOAL, goal_id="paris")
    monitor = GoalMonitor(client, "paris")
    model, calls = ScriptedModel([ModelStep.respond(stuck)] * 10), []
    agent = make_agent(model, calls)  # type: ignore[arg-type]
    result = Runner.run_streamed(agent, "Paris?", max_turns=20, **run_options(monitor, no_tracing()))
    async for _ in result.stream_events():
        pass
    assert result.final_output == ANSWER
    assert len(calls) == 3
    assert all(c.streamed for c in model.calls)
