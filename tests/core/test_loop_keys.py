"""The keys loop detection compares (goalkeeper.core.loop_keys): volatile details do not change them,
business objects do, and the reference keying follows its recipe."""

from __future__ import annotations

import hashlib

import pytest

from goalkeeper.core.loop_keys import reference_facts, step_facts
from goalkeeper.core.steps import Step

# -- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (  # a UUID and a request id in the arguments
            Step.of("search", {"q": "x", "id": "0b5e7f52-2d1c-4a7e-9a51-3f1e6c2d9b11"}, output="none"),
            Step.of("search", {"q": "x", "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "request_id": "r9"}),
        ),
        (  # a timestamp and a duration in the output
            Step.of("status", {"job": "j1"}, output="running at 2024-05-20T11:03:22Z (took 0.53s)"),
            Step.of("status", {"job": "j1"}, output="running at 2024-05-21T09:00:01Z (took 1.2s)"),
        ),
        (  # whitespace and key order
            Step.of("edit", {"path": "a.py", "text": "x  =   1"}, output="ok"),
            Step.of("edit", {"text": "x = 1", "path": "a.py"}, output="ok "),
        ),
        (  # the agent's thought text
            Step.of("run", {"cmd": "make", "thought": "first try"}, output="fail", thought="hmm"),
            Step.of("run", {"cmd": "make", "thought": "let me retry"}, output="fail", thought="again"),
        ),
        (  # hex request ids in the output
            Step.of("get", {"k": "v"}, output="request 3f2a9c1e77ab failed"),
            Step.of("get", {"k": "v"}, output="request 9bd01c44e2f0 failed"),
        ),
    ],
)
def test_step_facts_ignore_volatile_details(a, b):
    if a.output == "none":  # same output for the UUID case
        a = Step.of(a.tool, a.args, output="")
    assert step_facts(a).pair == step_facts(b).pair
    assert step_facts(a).action == step_facts(b).action


def test_step_facts_keep_business_objects_apart():
    one = step_facts(Step.of("get_reservation_details", {"reservation_id": "ABC123"}, output="{}"))
    two = step_facts(Step.of("get_reservation_details", {"reservation_id": "XYZ789"}, output="{}"))
    assert one.action != two.action
    assert one.pair != two.pair
    assert one.family != two.family  # identifiers are part of the family: batch work is not near-duplicate


def test_step_facts_thought_only_tools_are_keyed_on_the_thought():
    a = step_facts(Step.of("think", {"thought": "check the payment"}))
    b = step_facts(Step.of("think", {"thought": "check the baggage"}))
    c = step_facts(Step.of("think", {"thought": "check  the payment"}))
    assert a.action != b.action
    assert a.pair == c.pair


def test_step_facts_free_text_family_tokens_and_echo():
    a = Step.of(
        "search",
        {"query": "python asyncio tutorial", "limit": 10},
        output="No results for 'python asyncio tutorial'",
    )
    b = Step.of(
        "search",
        {"limit": 10, "query": "asyncio tutorial python"},
        output="No results for 'asyncio tutorial python'",
    )
    fa, fb = step_facts(a), step_facts(b)
    assert fa.action != fb.action
    assert fa.family == fb.family == 'search:{"limit":10,"query":"\\u0000text"}'
    assert fa.tokens == fb.tokens == frozenset({"\x00search", "python", "asyncio", "tutorial"})
    assert fa.observation != fb.observation  # the output quotes the query...
    assert fa.echo == fb.echo  # ...which the echo-insensitive observation blanks out
    other = step_facts(Step.of("search", {"query": "python asyncio tutorial", "limit": 20}))
    assert other.family != fa.family
    # Short ids and numbers in free text are kept: "order A1" and "order B2" are different objects.
    assert step_facts(Step.of("s", {"q": "look up order A1 page 2"})).tokens == frozenset(
        {"\x00s", "look", "order", "page", "a1", "2"}
    )


def test_step_facts_description_only_steps_and_errors():
    f = step_facts(Step.of(description="Open the settings page", error="E: Timeout after 30s at 11:03:22"))
    assert f.family == "desc:"
    assert f.tokens == frozenset({"\x00", "open", "settings", "page"})
    assert f.error == "e: timeout after <dur> at <time>"
    assert f.failed
    assert step_facts(Step.of("x", error="y" * 100)).error == "y" * 60


def test_reference_facts_pin_the_reference_recipe():
    f = reference_facts("search", "  Search  FOO ", "No\nresults", "Boom " + "x" * 100)
    expected = hashlib.sha256(b"search foo|no results").hexdigest()[:16]
    assert f.pair == expected
    assert len(f.pair) == 16
    assert f.action == f.cycle == "search"
    assert f.tokens == frozenset({"search", "foo", "results"})
    assert f.family == f.echo == ""
    assert f.error == ("boom " + "x" * 100)[:60]
    assert reference_facts("a", "d", "o", None).error is None
