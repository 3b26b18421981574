"""goalkeeper: keeps AI agents on their goals.

Feed it an agent's steps; it answers how far along the goal is (``current_progress``), how far the
agent has strayed (``drift_score``), how likely it is stuck in a loop (``loop_risk``), and what to do
next (``continue``, ``adjust``, ``replan``, ``abort``)::

    from goalkeeper import GoalTracker, Step

    tracker = GoalTracker("Book a flight from New York to Seattle")
    verdict = tracker.verify(Step(tool="search_flights", args={"to": "SEA"}, output="3 flights"))
    verdict.recommended_action  # 'continue'

Importing this package loads only the pure core (plus its exceptions): no I/O and no third-party
dependency. The runtime entry points (``open_store``, ``GoalStateTracker``, ...) are listed here
too but imported on first use, so ``import goalkeeper`` stays light. The names users of the
reference systems look for are kept (``GoalTracker``, ``WeightEngine``, ``DualProcessRouter``,
``GoalDrivenFeedbackLoop``, ``GoalStateTracker``, ...).
"""

from .core.budget import AdaptiveBudget, BudgetDecision, TaskProfiles
from .core.context import GoalReminderInjector, ReminderMode, SubGoalStatus, TaskState
from .core.drift import DriftAction, DriftAssessment, DriftEngine, DriftSeverity, GoalDNA
from .core.feedback import (
    AdaptiveGoalFeedbackStrategy,
    Direction,
    FeedbackOutcome,
    GoalDrivenFeedbackLoop,
    GoalFeedbackStrategy,
    GoalMetric,
    GoalSpec,
    GoalTarget,
    PersonalityGoalFeedbackStrategy,
    SimpleGoalFeedbackStrategy,
    Trend,
)
from .core.goal_tree import GoalNode, GoalTree, NodeStatus
from .core.goals import GoalBook, GoalInfo, GoalStatus
from .core.loops import Escalation, LoopEvent, LoopPolicy, LoopSignal, LoopType, MultiResolutionLoopDetector
from .core.model import (
    Budget,
    ContextCompressedEvent,
    Event,
    EventType,
    FeedbackEvent,
    GoalEvent,
    MessageEvent,
    MetricsEvent,
    StepEvent,
    SubgoalEvent,
    Suggestion,
    SuggestionKind,
)
from .core.progress import ProgressEstimate, ProgressEstimator, ProgressStatus
from .core.routing import DualProcessRouter, EscalationContext, ProcessType
from .core.session import GoalSession, Outcome, ProgressSource, SessionMetrics
from .core.steps import ContextCompressed, Message, Step
from .core.text import DenseEmbedder, Embedder, LexicalEmbedder
from .core.tracker import GoalState, GoalTracker, StepVerification
from .core.weights import LearningRates, WeightCategory, WeightChange, WeightEngine, WeightUpdate
from .errors import (
    BackendError,
    BusError,
    ConfigurationError,
    ConflictError,
    GoalError,
    GoalkeeperError,
    GoalNotFound,
    InvalidInputError,
    SnapshotError,
    StoreError,
    ValidationError,
)

__version__ = "0.1.0"

#: Runtime names resolved on first use (module, attribute): they pull in asyncio and I/O modules
#: that embedding the core does not need.
_LAZY: dict[str, tuple[str, str]] = {
    "GoalStateTracker": ("goalkeeper.stores", "GoalStateTracker"),
    "SyncGoalStateTracker": ("goalkeeper.stores", "SyncGoalStateTracker"),
    "open_store": ("goalkeeper.stores", "open_store"),
    "open_bus": ("goalkeeper.bus", "open_bus"),
    "FeedbackEventBus": ("goalkeeper.bus.eventbus", "FeedbackEventBus"),
    "GoalFeedbackWorker": ("goalkeeper.worker", "GoalFeedbackWorker"),
    "WorkerConfig": ("goalkeeper.worker", "WorkerConfig"),
    "MetricPoint": ("goalkeeper.ports.store", "MetricPoint"),
    "connect": ("goalkeeper.client", "connect"),
    "connect_async": ("goalkeeper.client", "connect_async"),
}


def __getattr__(name: str) -> object:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'goalkeeper' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


__all__ = [
    "AdaptiveBudget",
    "AdaptiveGoalFeedbackStrategy",
    "BackendError",
    "Budget",
    "BudgetDecision",
    "BusError",
    "ConfigurationError",
    "ConflictError",
    "ContextCompressed",
    "ContextCompressedEvent",
    "DenseEmbedder",
    "Direction",
    "DriftAction",
    "DriftAssessment",
    "DriftEngine",
    "DriftSeverity",
    "DualProcessRouter",
    "Embedder",
    "Escalation",
    "EscalationContext",
    "Event",
    "EventType",
    "FeedbackEvent",
    "FeedbackEventBus",
    "FeedbackOutcome",
    "GoalBook",
    "GoalDNA",
    "GoalDrivenFeedbackLoop",
    "GoalError",
    "GoalEvent",
    "GoalFeedbackStrategy",
    "GoalFeedbackWorker",
    "GoalInfo",
    "GoalMetric",
    "GoalNode",
    "GoalNotFound",
    "GoalReminderInjector",
    "GoalSession",
    "GoalSpec",
    "GoalState",
    "GoalStateTracker",
    "GoalStatus",
    "GoalTarget",
    "GoalTracker",
    "GoalTree",
    "GoalkeeperError",
    "InvalidInputError",
    "LearningRates",
    "LexicalEmbedder",
    "LoopEvent",
    "LoopPolicy",
    "LoopSignal",
    "LoopType",
    "Message",
    "MessageEvent",
    "MetricPoint",
    "MetricsEvent",
    "MultiResolutionLoopDetector",
    "NodeStatus",
    "Outcome",
    "PersonalityGoalFeedbackStrategy",
    "ProcessType",
    "ProgressEstimate",
    "ProgressEstimator",
    "ProgressSource",
    "ProgressStatus",
    "ReminderMode",
    "SessionMetrics",
    "SimpleGoalFeedbackStrategy",
    "SnapshotError",
    "Step",
    "StepEvent",
    "StepVerification",
    "StoreError",
    "SubGoalStatus",
    "SubgoalEvent",
    "Suggestion",
    "SuggestionKind",
    "SyncGoalStateTracker",
    "TaskProfiles",
    "TaskState",
    "Trend",
    "ValidationError",
    "WeightCategory",
    "WeightChange",
    "WeightEngine",
    "WeightUpdate",
    "WorkerConfig",
    "__version__",
    "connect",
    "connect_async",
    "open_bus",
    "open_store",
]
