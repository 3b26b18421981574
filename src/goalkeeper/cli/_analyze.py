"""``goalkeeper analyze FILE...``: offline analysis of agent trajectories.

Each trajectory (any importer format, sniffed unless ``--format`` is given) is fed through a fresh
:class:`~goalkeeper.core.session.GoalSession`; the command prints a summary table (one row per
trajectory), optionally the per-step rows (``--steps``), and writes a chart (``--chart``).
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import InvalidInputError
from ..importers import Trajectory, get_importer
from . import EXIT_FAILURE, EXIT_USAGE
from ._analysis import Profile, TrajectoryReport, analyze_trajectory
from ._chart import ChartError, chart_kind, write_chart
from ._common import (
    FilesArgument,
    FormatOption,
    err_console,
    fail,
    out_console,
    print_json,
    read_inputs,
    reporting,
)

__all__ = ["PROGRESS_MIN_EVENTS", "analyze"]

#: Inputs with at least this many events get a progress bar (on a terminal).
PROGRESS_MIN_EVENTS = 2000


class ProfileName(StrEnum):
    """The tracker profiles ``--profile`` accepts."""

    GOALKEEPER = "goalkeeper"
    REFERENCE = "reference"


_PROFILES: dict[ProfileName, Profile] = {
    ProfileName.GOALKEEPER: "goalkeeper",
    ProfileName.REFERENCE: "reference",
}


def analyze(
    files: FilesArgument,
    fmt: FormatOption = None,
    steps: Annotated[
        bool, typer.Option("--steps", help="Also print every step of every trajectory.")
    ] = False,
    chart: Annotated[
        Path | None,
        typer.Option(
            "--chart",
            help="Write a chart of progress, drift and loop risk over steps: out.html (self-contained) "
            "or out.png (needs matplotlib).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON (for scripts).")] = False,
    profile: Annotated[
        ProfileName, typer.Option("--profile", help="Tracker profile: goalkeeper (default) or reference.")
    ] = ProfileName.GOALKEEPER,
    show_progress: Annotated[
        bool,
        typer.Option("--progress/--no-progress", help="Show a progress bar on long inputs (terminal only)."),
    ] = True,
) -> None:
    """Analyze agent trajectories offline: per-step progress, drift, loop risk and decisions."""
    if chart is not None:
        try:
            chart_kind(chart)
        except ChartError as exc:
            fail(str(exc), EXIT_FAILURE if exc.missing_package else EXIT_USAGE)
    started = time.perf_counter()
    with reporting():
        if fmt is not None:
            get_importer(fmt)
        loaded = read_inputs(files, fmt)
    if not loaded:
        fail("no trajectories found in " + ", ".join(str(f) for f in files), EXIT_USAGE)
    reports = _run(loaded, _PROFILES[profile], show_progress and not as_json)
    elapsed = time.perf_counter() - started
    if as_json:
        print_json(
            {"trajectories": [r.to_dict(steps=steps) for r in reports], "totals": _totals(reports, elapsed)}
        )
    else:
        _print(reports, steps, elapsed)
    if chart is not None:
        with reporting():
            write_chart(reports, chart)
        err_console().print(f"chart written to {chart}", markup=False)


def _run(
    loaded: list[tuple[str, Trajectory]], profile: Profile, show_progress: bool
) -> list[TrajectoryReport]:
    err = err_console()
    total_events = sum(len(t.events) for _, t in loaded)
    use_bar = show_progress and err.is_terminal and total_events >= PROGRESS_MIN_EVENTS
    reports: list[TrajectoryReport] = []
    with Progress(
        TextColumn("analyzing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not use_bar,
    ) as bar:
        task = bar.add_task("analyze", total=len(loaded))
        for file, trajectory in loaded:
            try:
                reports.append(analyze_trajectory(trajectory, file=file, profile=profile))
            except InvalidInputError as exc:
                fail(f"{file}: trajectory {trajectory.id!r}: {exc}", EXIT_USAGE)
            bar.advance(task)
    return reports


def _totals(reports: list[TrajectoryReport], elapsed: float) -> dict[str, object]:
    rewarded = [r for r in reports if r.reward is not None]
    flagged = [r for r in reports if r.first("replan") is not None or r.first("abort") is not None]
    out: dict[str, object] = {
        "trajectories": len(reports),
        "steps": sum(r.steps for r in reports),
        "events": sum(r.events for r in reports),
        "flagged": len(flagged),
        "seconds": round(elapsed, 3),
    }
    if rewarded:
        failed = [r for r in rewarded if r.reward is not None and r.reward < 1.0]
        out["mean_reward"] = sum(r.reward or 0.0 for r in rewarded) / len(rewarded)
        out["flagged_failed"] = sum(r in flagged for r in failed)
        out["failed"] = len(failed)
        out["flagged_succeeded"] = sum(r in flagged for r in rewarded if r not in failed)
        out["succeeded"] = len(rewarded) - len(failed)
    return out


_ACTION_STYLE = {"continue": "green", "adjust": "yellow", "replan": "magenta", "abort": "bold red"}


def _num(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _print(reports: list[TrajectoryReport], steps: bool, elapsed: float) -> None:
    out = out_console()
    if steps:
        for r in reports:
            table = Table(title=f"{r.id}  ({r.source}, {r.file})", title_justify="left", expand=False)
            for name in ("step", "tool", "progress", "drift", "loop risk", "action", "rule", "flags"):
                table.add_column(
                    name, justify="right" if name in ("step", "progress", "drift", "loop risk") else "left"
                )
            for row in r.rows:
                flags = ["loop"] if row.loop else []
                flags += list(row.suggestions)
                style = _ACTION_STYLE.get(row.action, "")
                table.add_row(
                    str(row.step),
                    row.tool,
                    _num(row.progress),
                    _num(row.drift),
                    _num(row.loop_risk),
                    f"[{style}]{row.action}[/]" if style else row.action,
                    row.rule,
                    ", ".join(flags),
                )
            out.print(table)
    has_reward = any(r.reward is not None for r in reports)
    table = Table(title="goalkeeper analyze", title_justify="left")
    table.add_column("trajectory", overflow="fold")
    table.add_column("format")
    for name in ("steps", "final progress", "max drift", "max loop risk", "first replan", "first abort"):
        table.add_column(name, justify="right")
    table.add_column("final action")
    if has_reward:
        table.add_column("reward", justify="right")
    for r in reports:
        style = _ACTION_STYLE.get(r.final_action, "")
        cells = [
            r.id,
            r.source,
            str(r.steps),
            _num(r.final_progress),
            _num(r.max_drift),
            _num(r.max_loop_risk),
            _num(r.first("replan")),
            _num(r.first("abort")),
            f"[{style}]{r.final_action}[/]" if style else r.final_action,
        ]
        if has_reward:
            cells.append(_num(r.reward, 1))
        table.add_row(*cells)
    out.print(table)
    totals = _totals(reports, elapsed)
    line = (
        f"{totals['trajectories']} trajectories, {totals['steps']} steps; replan or abort recommended in "
        f"{totals['flagged']}; {elapsed:.2f} s"
    )
    if "mean_reward" in totals:
        line += (
            f"\nreward: mean {totals['mean_reward']:.2f}; flagged {totals['flagged_failed']} of "
            f"{totals['failed']} failed runs and {totals['flagged_succeeded']} of {totals['succeeded']} "
            "successful runs"
        )
    out.print(line, markup=False)
