"""GoalMonitor, its Policy, and the framework-free decorator / context manager."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from goalkeeper.client import AsyncLocalClient, Decision, LocalClient
from goalkeeper.errors import ConfigurationError, GoalError
from goalkeeper.integrations import GoalAborted, GoalMonitor, Policy, ToolCall, tracked, watch
from goalkeeper.integrations._monitor import MAX_TEXT, json_args, text_of

GOAL = "Find the population of Paris and report it"


@pytest.fixture
def gk() -> LocalClient:
    client = LocalClient()
    client.create_goal(GOAL, goal_id="paris")
    return client


def test_the_decorator_appends_the_nudge_and_then_stops_the_loop(gk: LocalClient) -> None:
    monitor = GoalMonitor(gk, "paris")
    ran: list[str] = []

    @watch(monitor)
    def search(q: str, *, limit: int = 5) -> str:
        """Search the web."""
        ran.append(q)
        return "no results"

    assert search.__name__ == "search"
    assert search.__doc__ == "Search the web."
    outputs = [search("paris population") for _ in range(5)]
    assert outputs[:2] == ["no results", "no results"]
    assert outputs[2].startswith(
        "no results\n\n[goalkeeper] You called `search` with the same arguments 3 times"
    )
    assert "stop and make a new plan" in outputs[3]
    with pytest.raises(GoalAborted) as caught:
        search("paris population")
    assert "stopping" in caught.value.reason
    # A stopped run calls no more tools: the function does not even run.
    with pytest.raises(GoalAborted):
        search("something else")
    assert len(ran) == 6
    steps = gk.metrics_history("paris")
    assert [p["event_type"] for p in steps].count("step") == 6
    assert gk.task("paris")["tools"]["search"]["calls"] == 6


def test_the_decorator_records_exceptions_and_arguments(gk: LocalClient) -> None:
    decisions: list[Decision] = []
    monitor = GoalMonitor(gk, "paris", on_decision=decisions.append)

    class Fetcher:
        @watch(monitor, tool="fetch_page", inject=False)
        def fetch(self, url: str) -> dict:
            raise TimeoutError(f"timed out: {url}")

    with pytest.raises(TimeoutError):
        Fetcher().fetch("http://example.com")
    task = gk.task("paris")
    assert task["tools"]["fetch_page"]["successes"] == 0
    assert "TimeoutError: timed out: http://example.com" in str(task["errors"])
    assert len(decisions) == 1


def test_the_decorator_returns_non_text_results_unchanged(gk: LocalClient) -> None:
    monitor = GoalMonitor(gk, "paris")

    @watch(monitor)
    def lookup(city: str) -> dict:
        return {"city": city, "population": None}

    results = [lookup("Paris") for _ in range(3)]
    assert results[-1] == {"city": "Paris", "population": None}
    assert monitor.action == "adjust"
    assert monitor.has_nudges()  # waiting for the caller's own loop
    (text,) = monitor.take_nudges()
    assert text.startswith("[goalkeeper] You called `lookup`")
    assert monitor.take_nudges() == []  # each nudge is handed out once


async def test_the_decorator_on_async_functions_with_an_async_client() -> None:
    gk = AsyncLocalClient()
    await gk.create_goal(GOAL, goal_id="paris")
    monitor = GoalMonitor(gk, "paris")

    @watch(monitor)
    async def search(q: str) -> str:
        return "no results"

    outputs = [await search("q") for _ in range(3)]
    assert "[goalkeeper]" in outputs[-1]
    for _ in range(2):
        await search("q")
    with pytest.raises(GoalAborted):
        await search("q")

    @watch(monitor)
    async def broken() -> str:
        raise ValueError("bad")

    with pytest.raises(GoalAborted):  # the run is stopped: nothing runs any more
        await broken()


async def test_async_errors_are_recorded() -> None:
    gk = AsyncLocalClient()
    monitor = GoalMonitor(gk, "g")

    @watch(monitor)
    async def broken(x: int) -> str:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        await broken(1)
    assert "ValueError: bad input" in str((await gk.task("g"))["errors"])


def test_a_sync_function_needs_a_sync_client() -> None:
    monitor = GoalMonitor(AsyncLocalClient(), "g")

    @watch(monitor)
    def tool() -> str:
        return "x"

    with pytest.raises(ConfigurationError, match="arecord"):
        tool()


def test_tracked_blocks(gk: LocalClient) -> None:
    monitor = GoalMonitor(gk, "paris")
    calls: list[ToolCall] = []
    for _ in range(3):
        with tracked(monitor, "search", {"q": "paris population"}) as call:
            call.output = "no results"
        calls.append(call)
    assert [c.decision.action for c in calls if c.decision] == ["continue", "continue", "adjust"]
    assert calls[-1].nudges
    assert calls[-1].nudges[0].startswith("[goalkeeper]")
    with pytest.raises(KeyError), tracked(monitor, "lookup", {"k": 1}) as failing:
        raise KeyError("k")
    assert failing.decision is not None
    assert failing.decision.version == 5


def test_policy_controls_what_is_injected_and_when_to_stop(gk: LocalClient) -> None:
    quiet = GoalMonitor(
        gk,
        "paris",
        policy=Policy(inject_on=frozenset({"replan"}), stop_on=frozenset(), acknowledge=False, prefix=">> "),
    )

    @watch(quiet)
    def search(q: str) -> str:
        return "none"

    outputs = [search("q") for _ in range(8)]
    assert "[goalkeeper]" not in "".join(outputs)
    assert outputs[2] == "none"  # adjust is not injected under this policy
    assert outputs[3].startswith("none\n\n>> ")  # replan is
    assert quiet.action == "abort"
    assert not quiet.should_stop
    quiet.check()
    assert [s.kind.value for s in gk.suggestions("paris")] == ["adjust", "replan", "abort"]  # no ack feedback


def test_acknowledging_a_replan_sends_feedback(gk: LocalClient) -> None:
    monitor = GoalMonitor(gk, "paris")
    for _ in range(4):
        monitor.record(monitor.step_event("search", {"q": "x"}, output="none"))
    before = gk.get_goal("paris").version
    texts = monitor.take_nudges()
    assert len(texts) == 2  # the adjust and the replan
    points = gk.metrics_history("paris", after_seq=before)
    assert [p["event_type"] for p in points] == ["feedback"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"client": object()}, "client"),
        ({"goal_id": ""}, "goal_id"),
        ({"policy": "strict"}, "policy"),
        ({"on_decision": 3}, "on_decision"),
    ],
)
def test_monitor_configuration_errors(kwargs: dict, match: str) -> None:
    args = {"client": LocalClient(), "goal_id": "g", **kwargs}
    with pytest.raises(ConfigurationError, match=match):
        GoalMonitor(**args)


def test_policy_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="inject_on"):
        Policy(inject_on=frozenset({"panic"}))
    with pytest.raises(ConfigurationError, match="stop_on"):
        Policy(stop_on="abort")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="prefix"):
        Policy(prefix=None)  # type: ignore[arg-type]
    assert Policy(inject_on={"replan"}).inject_on == frozenset({"replan"})  # type: ignore[arg-type]


def test_goal_aborted_is_a_goal_error_with_the_decision() -> None:
    decision = Decision("g", "e", 3, "abort", {"current_progress": 0.1, "drift_score": 0.2, "loop_risk": 1.0})
    exc = GoalAborted(decision)
    assert isinstance(exc, GoalError)
    assert exc.decision is decision
    assert exc.reason.startswith("goalkeeper recommends abort (progress 0.10, drift 0.20, loop risk 1.00)")
    assert str(exc).startswith("goalkeeper stopped goal 'g': ")


def test_tool_arguments_and_results_become_json() -> None:
    assert json_args('{"q": "x", "n": 2}') == {"q": "x", "n": 2}
    assert json_args("plain text") == {"input": "plain text"}
    assert json_args("[1, 2]") == {"input": [1, 2]}
    assert json_args(None) == {}
    assert json_args(7) == {"input": 7}
    assert json_args({"when": object.__new__(object), "x": math.nan, 3: (1, 2)})["x"] == "nan"
    assert json_args({3: (1, 2)}) == {"3": [1, 2]}
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["d"] = {}
        node = node["d"]
    assert isinstance(json_args(deep), dict)  # bounded depth, no recursion error
    assert text_of(None) == ""
    assert text_of({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'
    long = text_of("x" * (MAX_TEXT + 10))
    assert long.endswith("... [10 more characters]")
    assert len(long) < MAX_TEXT + 40


def test_importing_the_integrations_imports_no_framework() -> None:
    code = (
        "import sys, goalkeeper.integrations, goalkeeper.client\n"
        "frameworks = {'agents', 'openai', 'langchain_core', 'langgraph', 'opentelemetry', 'httpx'}\n"
        "print(','.join(sorted(m for m in frameworks if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("goalkeeper.integrations.openai_agents", "agents", "openai-agents"),
        ("goalkeeper.integrations.langchain", "langchain_core", "langchain"),
        ("goalkeeper.integrations.otel", "opentelemetry", "otel"),
        ("goalkeeper.client._http", "httpx", "client"),
    ],
)
def test_a_missing_framework_gives_an_install_hint(module: str, missing: str, extra: str) -> None:
    # Block the framework's import in a fresh interpreter and import the integration.
    code = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None\n"
        "from goalkeeper.errors import ConfigurationError\n"
        "try:\n"
        f"    import {module}\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    if module.endswith("_http"):
        code = code.replace(f"    import {module}\n", "    from goalkeeper.client import GoalkeeperClient\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f'pip install "goalkeeper[{extra}]"' in out


def dead_server_client():
    from goalkeeper.client import GoalkeeperClient, RetryPolicy
    from goalkeeper.client.testing import free_port

    return GoalkeeperClient(f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=0))


def test_an_unreachable_goalkeeper_fails_the_tool_call_by_default() -> None:
    from goalkeeper.client import ServiceUnavailable

    with dead_server_client() as gk:
        monitor = GoalMonitor(gk, "paris")

        @watch(monitor)
        def search(q: str) -> str:
            return "found it"

        with pytest.raises(ServiceUnavailable):
            search("paris")


def test_failing_open_lets_the_agent_go_on(caplog: pytest.LogCaptureFixture) -> None:
    with dead_server_client() as gk:
        monitor = GoalMonitor(gk, "paris", policy=Policy(fail_open=True))

        @watch(monitor)
        def search(q: str) -> str:
            return "found it"

        with caplog.at_level("WARNING", logger="goalkeeper.integrations"):
            assert search("paris") == "found it"
        assert monitor.decision is None
        assert monitor.record(monitor.step_event("search", {"q": "x"})) is None
        assert "goes on unmonitored" in caplog.text


async def test_failing_open_with_an_async_client(caplog: pytest.LogCaptureFixture) -> None:
    from goalkeeper.client import AsyncGoalkeeperClient, RetryPolicy
    from goalkeeper.client.testing import free_port

    async with AsyncGoalkeeperClient(f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=0)) as gk:
        monitor = GoalMonitor(gk, "paris", policy=Policy(fail_open=True))
        assert await monitor.arecord(monitor.step_event("search")) is None


def test_an_async_callback_needs_arecord(gk: LocalClient) -> None:
    async def callback(decision: Decision) -> None:
        pass

    monitor = GoalMonitor(gk, "paris", on_decision=callback)
    with pytest.raises(ConfigurationError, match="on_decision is async"):
        monitor.record(monitor.step_event("search"))


async def test_an_async_callback_is_awaited(gk: LocalClient) -> None:
    seen: list[str] = []

    async def callback(decision: Decision) -> None:
        seen.append(decision.action)

    monitor = GoalMonitor(gk, "paris", on_decision=callback)
    await monitor.arecord(monitor.step_event("search"))
    assert seen == ["continue"]


def test_the_stop_reason_survives_later_decisions(gk: LocalClient) -> None:
    monitor = GoalMonitor(gk, "paris", policy=Policy(stop_on=frozenset()))
    for _ in range(8):  # abort at the 6th call; the 7th and 8th repeat it without a new suggestion
        monitor.record(monitor.step_event("search", {"q": "x"}, output="none"))
    assert monitor.decision is not None
    assert monitor.decision.suggestions == ()
    stopping = GoalMonitor(gk, "paris")
    stopping._observe(monitor.decision)  # a monitor that only saw the standing abort
    with pytest.raises(GoalAborted, match="goalkeeper recommends abort"):
        stopping.check()
    monitor.policy = Policy()  # the first monitor saw the abort suggestion: its text is the reason
    with pytest.raises(GoalAborted) as caught:
        monitor.check()
    assert "stopping" in caught.value.reason
