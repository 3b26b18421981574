"""goalkeeper quickstart: watch a (scripted) agent, catch its loop, and tell it what to do.

Run it with ``python examples/quickstart.py``. No server, no configuration: the tracker is the
embedded core. The agent below books a flight, then gets stuck retrying the same search with only
a fresh request id and timestamp each time, the kind of near-duplicate loop that an
"N identical calls" rule misses. goalkeeper nudges first, then asks for a replan, and only then
says stop.
"""

from __future__ import annotations

import uuid

from goalkeeper import GoalTracker, Step

GOAL = "Book the cheapest direct flight from New York to Seattle on May 20 for Mia Li"
PLAN = ["look up the user", "search direct flights JFK to SEA", "book the cheapest flight", "confirm"]


def scripted_agent() -> list[Step]:
    """The agent's steps: some real work, then a near-duplicate retry loop."""
    steps = [
        Step(
            tool="get_user_details",
            args={"user_id": "mia_li_3668"},
            output='{"name": "Mia Li", "membership": "gold", "payment": ["credit_card_4421486"]}',
        ),
        Step(
            tool="search_direct_flight",
            args={"origin": "JFK", "destination": "SEA", "date": "2024-05-20"},
            output='[{"flight": "HAT136", "price": 155}, {"flight": "HAT039", "price": 189}]',
        ),
    ]
    for minute in range(6):  # the booking call keeps failing; the agent retries it verbatim
        steps.append(
            Step(
                tool="book_reservation",
                args={"flight": "HAT136", "user_id": "mia_li_3668", "request_id": str(uuid.uuid4())},
                error=f"gateway timeout at 2024-05-20T11:0{minute}:00Z (trace {uuid.uuid4().hex[:12]})",
            )
        )
    return steps


def main() -> None:
    tracker = GoalTracker(GOAL, plan=PLAN)
    print(f"goal: {GOAL}\n")
    print(f"{'step':>4}  {'tool':<22} {'progress':>8} {'drift':>6} {'loop':>5}  action")
    for i, step in enumerate(scripted_agent(), start=1):
        v = tracker.verify(step, now=float(i))
        print(
            f"{i:>4}  {step.tool:<22} {v.progress:>8.2f} {v.drift_score:>6.2f} {v.loop_risk:>5.2f}  "
            f"{v.recommended_action}"
        )
        if v.nudge:
            print(f"      -> {v.nudge}")
        if v.recommended_action == "abort":
            break
    print("\nsummary:", tracker.get_summary())


if __name__ == "__main__":
    main()
