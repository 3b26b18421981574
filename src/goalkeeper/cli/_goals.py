"""``goalkeeper goals list|show|close``: the goals in a state store.

The store is the one ``goalkeeper serve`` and ``goalkeeper worker`` write (``--store URL``, default
``GOALKEEPER_STORE`` or ``sqlite:///goalkeeper.db``). Goal ids are the stored ids: a server with
bearer tokens stores a tenant's goal ``g1`` as ``<tenant>/g1`` (``--prefix <tenant>/`` lists one
tenant's goals).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from ..core.session import GoalSession
from ..errors import GoalNotFound, InvalidInputError
from ..ports.store import StateStore
from ..stores import open_store
from ._common import StoreOption, out_console, print_json, reporting, store_url

__all__ = ["build_goals_app"]

T = TypeVar("T")

#: Goals fetched per store call while listing.
_PAGE = 500
#: Metric points / suggestions fetched per call by ``show``.
_HISTORY_PAGE = 1000


class StatusName(StrEnum):
    """The goal statuses ``--status`` accepts."""

    ACTIVE = "active"
    CLOSED = "closed"
    ARCHIVED = "archived"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _run(url: str | None, work: Callable[[StateStore], Awaitable[T]]) -> T:
    """Open the store at ``url``, run ``work`` on it, close it; errors become exit codes."""

    async def go() -> T:
        store = open_store(store_url(url))
        _check_exists(store)
        async with store:
            return await work(store)

    with reporting():
        return asyncio.run(go())
    raise AssertionError("unreachable")  # reporting() exits on every error


def _check_exists(store: object) -> None:
    # Opening a SQLite URL creates the file; listing a mistyped path must not leave an empty database.
    from ..stores.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore) and store.path != ":memory:" and not Path(store.path).exists():
        raise InvalidInputError(
            f"no goalkeeper database at {store.path} "
            "(start one with 'goalkeeper serve', or pass --store URL)",
            field="store",
        )


def list_goals(
    store: StoreOption = None,
    status: Annotated[
        StatusName | None, typer.Option("--status", help="Only goals with this status.")
    ] = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Only goal ids starting with this.")] = "",
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many goals.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
) -> None:
    """List the goals in the store, ordered by id."""

    async def work(s: StateStore) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after: str | None = None
        while len(out) < limit:
            want = min(_PAGE, limit - len(out))
            page = await s.list_goals(prefix=prefix, after=after, limit=want, status=status)
            out.extend(
                {
                    "goal_id": g.goal_id,
                    "status": str(g.status),
                    "version": g.version,
                    "updated_at": g.updated_at,
                }
                for g in page
            )
            if len(page) < want:
                break
            after = page[-1].goal_id
        return out

    goals = _run(store, work)
    if as_json:
        print_json({"goals": goals})
        return
    table = Table(title=f"goals ({len(goals)})", title_justify="left")
    for name in ("goal", "status", "version", "updated"):
        table.add_column(name, justify="right" if name == "version" else "left", overflow="fold")
    for g in goals:
        table.add_row(g["goal_id"], g["status"], str(g["version"]), _when(g["updated_at"]))
    out_console().print(table)


def show_goal(
    goal_id: Annotated[
        str, typer.Argument(help="The goal's stored id.", show_default=False, metavar="GOAL_ID")
    ],
    store: StoreOption = None,
    history: Annotated[int, typer.Option("--history", min=0, help="Recent metric points to show.")] = 15,
    suggestions: Annotated[
        int, typer.Option("--suggestions", min=0, help="Recent suggestions to show.")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
) -> None:
    """Show one goal: its state, recent metrics and suggestions."""

    async def work(s: StateStore) -> dict[str, Any]:
        record = await s.load(goal_id)
        if record is None:
            raise GoalNotFound(goal_id)
        points: deque[dict[str, Any]] = deque(maxlen=history or 1)
        after = 0
        while history:
            page = await s.metrics_history(goal_id, after_seq=after, limit=_HISTORY_PAGE)
            points.extend({"seq": p.seq, **p.point} for p in page)
            if len(page) < _HISTORY_PAGE:
                break
            after = page[-1].seq
        stored = await s.suggestions(goal_id, limit=_HISTORY_PAGE)
        session = GoalSession.restore(record.snapshot)
        return {
            "goal_id": record.goal_id,
            "status": str(record.status),
            "version": record.version,
            "updated_at": record.updated_at,
            "goal": session.goal,
            "recommended_action": session.recommended_action,
            "routing": session.routing.value,
            "metrics": session.metrics.to_dict(),
            "history": list(points) if history else [],
            "suggestions": [x.suggestion | {"delivered": x.delivered} for x in stored[-suggestions:]]
            if suggestions
            else [],
        }

    data = _run(store, work)
    if as_json:
        print_json(data)
        return
    _print_goal(data)


def _print_goal(data: dict[str, Any]) -> None:
    out = out_console()
    m = data["metrics"]
    out.print(
        f"[bold]{escape(data['goal_id'])}[/]  ({data['status']}, version {data['version']}, "
        f"{_when(data['updated_at'])})"
    )
    out.print(f"goal: {data['goal'] or '(no goal text yet)'}", markup=False)
    out.print(
        f"recommended action: [bold]{data['recommended_action']}[/]   routing: {data['routing']}   "
        f"progress {m['current_progress']:.2f} ({m['progress_source']})   drift {m['drift_score']:.2f}   "
        f"loop risk {m['loop_risk']:.2f}   steps {m['steps']}   stall {m['stall_turns']}"
    )
    if data["history"]:
        table = Table(title="recent metrics", title_justify="left")
        for name in ("seq", "event", "progress", "drift", "loop risk", "action", "flags"):
            table.add_column(
                name, justify="right" if name in ("seq", "progress", "drift", "loop risk") else "left"
            )
        for p in data["history"]:
            table.add_row(
                str(p.get("seq")),
                str(p.get("event_type", "")),
                _num(p.get("progress")),
                _num(p.get("drift_score")),
                _num(p.get("loop_risk")),
                str(p.get("action", "")),
                ", ".join(str(f) for f in p.get("flags") or []),
            )
        out.print(table)
    if data["suggestions"]:
        table = Table(title="recent suggestions", title_justify="left")
        for name in ("version", "kind", "message", "delivered"):
            table.add_column(name, overflow="fold")
        for sug in data["suggestions"]:
            table.add_row(str(sug.get("version", "")), str(sug.get("kind", "")), str(sug.get("message", "")),
                          "yes" if sug.get("delivered") else "no")  # fmt: skip
        out.print(table)


def _num(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def close_goal(
    goal_id: Annotated[
        str, typer.Argument(help="The goal's stored id.", show_default=False, metavar="GOAL_ID")
    ],
    store: StoreOption = None,
    archive: Annotated[bool, typer.Option("--archive", help="Archive it (closed and filed away).")] = False,
) -> None:
    """Close a goal (it stops accepting events) or, with --archive, archive it."""
    status = StatusName.ARCHIVED if archive else StatusName.CLOSED

    async def work(s: StateStore) -> None:
        if not await s.set_goal_status(goal_id, status):
            raise GoalNotFound(goal_id)

    _run(store, work)
    out_console().print(f"goal {goal_id} {status.value}", markup=False)


def build_goals_app() -> typer.Typer:
    """The ``goals`` sub-command group."""
    app = typer.Typer(help="List, show and close the goals in a state store.", no_args_is_help=True)
    app.command("list")(list_goals)
    app.command("show")(show_goal)
    app.command("close")(close_goal)
    return app
