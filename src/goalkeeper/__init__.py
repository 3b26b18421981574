"""goalkeeper: keeps AI agents on their goals.

Feed it an agent's steps; it answers how far along the goal is (``current_progress``), how far the
agent has strayed (``drift_score``), how likely it is stuck in a loop (``loop_risk``), and what to do
next (``continue``, ``adjust``, ``replan``, ``abort``)::

    from goalkeeper import GoalTracker, Step

    tracker = GoalTracker("Book a flight from New York to Seattle")
    verdict = tracker.verify(Step(tool="search_flights", args={"to": "SEA"}, output="3 flights"))
    verdict.recommended_action  # 'continue'

Everything importable here is the pure core: no I/O, no third-party dependency.
"""

from .core.steps import ContextCompressed, Message, Step
from .core.tracker import GoalState, GoalTracker, StepVerification

__version__ = "0.1.0"

__all__ = [
    "ContextCompressed",
    "GoalState",
    "GoalTracker",
    "Message",
    "Step",
    "StepVerification",
    "__version__",
]
