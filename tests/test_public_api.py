"""The public surface: what `import goalkeeper` offers is deliberate, and it is all pure."""

from __future__ import annotations

import subprocess
import sys

import goalkeeper

# Pinned: adding or removing a public name is an API change and must update this list.
EXPECTED = {
    "AdaptiveBudget", "AdaptiveGoalFeedbackStrategy", "BackendError", "Budget", "BudgetDecision",
    "BusError", "ConfigurationError", "ConflictError", "ContextCompressed", "ContextCompressedEvent",
    "DenseEmbedder", "Direction", "DriftAction", "DriftAssessment", "DriftEngine", "DriftSeverity",
    "DualProcessRouter", "Embedder", "Escalation", "EscalationContext", "Event", "EventType",
    "FeedbackEvent", "FeedbackOutcome", "GoalDNA", "GoalDrivenFeedbackLoop", "GoalError", "GoalEvent",
    "GoalFeedbackStrategy", "GoalMetric", "GoalNode", "GoalNotFound", "GoalReminderInjector",
    "GoalSpec", "GoalState", "GoalTarget", "GoalTracker", "GoalTree", "GoalkeeperError",
    "InvalidInputError", "LearningRates", "LexicalEmbedder", "LoopEvent", "LoopPolicy", "LoopSignal",
    "LoopType", "Message", "MessageEvent", "MetricsEvent", "MultiResolutionLoopDetector",
    "NodeStatus", "PersonalityGoalFeedbackStrategy", "ProcessType", "ProgressEstimate",
    "ProgressEstimator", "ProgressStatus", "ReminderMode", "SimpleGoalFeedbackStrategy",
    "SnapshotError", "Step", "StepEvent", "StepVerification", "StoreError", "SubGoalStatus",
    "SubgoalEvent", "Suggestion", "SuggestionKind", "TaskProfiles", "TaskState", "Trend",
    "ValidationError", "WeightCategory", "WeightChange", "WeightEngine", "WeightUpdate",
    "__version__", "GoalBook", "GoalInfo", "GoalStatus", "GoalSession", "Outcome", "ProgressSource",
    "SessionMetrics", "GoalStateTracker", "SyncGoalStateTracker", "open_store", "open_bus",
    "FeedbackEventBus", "GoalFeedbackWorker", "WorkerConfig", "MetricPoint", "connect", "connect_async",
}  # fmt: skip

# The names users of the reference systems look for (DESIGN.md).
REFERENCE_NAMES = {
    "GoalTracker", "GoalState", "StepVerification", "WeightEngine", "WeightCategory", "WeightUpdate",
    "DualProcessRouter", "EscalationContext", "ProcessType", "TaskState", "GoalDrivenFeedbackLoop",
    "SimpleGoalFeedbackStrategy", "PersonalityGoalFeedbackStrategy", "GoalStateTracker",
    "FeedbackEventBus", "GoalFeedbackWorker",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(goalkeeper.__all__) == EXPECTED
    assert sorted(goalkeeper.__all__) == list(goalkeeper.__all__), "keep __all__ sorted"


def test_every_public_name_resolves_and_is_documented() -> None:
    for name in goalkeeper.__all__:
        obj = getattr(goalkeeper, name)
        if name != "__version__" and not isinstance(obj, type(goalkeeper.Event)):
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_reference_names_are_importable() -> None:
    assert set(goalkeeper.__all__) >= REFERENCE_NAMES


def test_importing_goalkeeper_imports_no_third_party_package() -> None:
    code = (
        "import sys, goalkeeper\n"
        "std = set(sys.stdlib_module_names) | {'goalkeeper'}\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} - std - set(sys.builtin_module_names))\n"
        "print(','.join(b for b in bad if not b.startswith('_')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "", f"third-party modules imported: {out.strip()}"


def test_core_modules_import_only_stdlib_and_goalkeeper() -> None:
    import ast
    from pathlib import Path

    core = Path(goalkeeper.__file__).parent / "core"
    std = set(sys.stdlib_module_names)
    for path in core.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in std, f"{path.name} imports {name}"


def test_core_does_no_io_and_reads_no_clock() -> None:
    import ast
    from pathlib import Path

    # Modules whose presence in core/ would mean I/O, concurrency, randomness or a clock.
    forbidden = {
        "os", "sys", "io", "socket", "asyncio", "threading", "subprocess", "pathlib", "shutil",
        "time", "random", "secrets", "uuid", "sqlite3", "logging", "urllib", "http", "tempfile",
    }  # fmt: skip
    core = Path(goalkeeper.__file__).parent / "core"
    for path in core.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"
        for node in ast.walk(tree):
            # datetime.now()/utcnow()/today() would read the clock.
            if isinstance(node, ast.Attribute) and node.attr in {"now", "utcnow", "today"}:
                assert not (isinstance(node.value, ast.Name) and node.value.id in {"datetime", "date"}), (
                    f"{path.name} reads the clock"
                )
