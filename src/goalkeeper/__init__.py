"""goalkeeper: keeps AI agents on their goals.

Feed it an agent's steps; it answers how far along the goal is (``current_progress``), how far the
agent has strayed (``drift_score``), how likely it is stuck in a loop (``loop_risk``), and what to do
next (``continue``, ``adjust``, ``replan``, ``abort``)::

    from goalkeeper import GoalTracker, Step

    tracker = GoalTracker("Book a flight from New York to Seattle")
    verdict = tracker.verify(Step(tool="search_flights", args={"to": "SEA"}, output="3 flights"))
    verdict.recommended_action  # 'continue'

Everything importable here is the pure core (plus its exceptions): no I/O and no third-party
dependency. The names users of the reference systems look for are kept (``GoalTracker``,
``WeightEngine``, ``DualProcessRouter``, ``GoalDrivenFeedbackLoop``, ...).
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
    "FeedbackOutcome",
    "GoalDNA",
    "GoalDrivenFeedbackLoop",
    "GoalError",
    "GoalEvent",
    "GoalFeedbackStrategy",
    "GoalMetric",
    "GoalNode",
    "GoalNotFound",
    "GoalReminderInjector",
    "GoalSpec",
    "GoalState",
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
    "MetricsEvent",
    "MultiResolutionLoopDetector",
    "NodeStatus",
    "PersonalityGoalFeedbackStrategy",
    "ProcessType",
    "ProgressEstimate",
    "ProgressEstimator",
    "ProgressStatus",
    "ReminderMode",
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
    "TaskProfiles",
    "TaskState",
    "Trend",
    "ValidationError",
    "WeightCategory",
    "WeightChange",
    "WeightEngine",
    "WeightUpdate",
    "__version__",
]
