"""``goalkeeper worker``: run a :class:`~goalkeeper.worker.GoalFeedbackWorker` in the foreground.

The worker consumes the bus (``--bus``), applies events to each goal's state in the store
(``--store``), and delivers suggestions to the configured sinks (``--webhook``). Several worker
processes with the same ``--group`` share the bus partitions through leases; SIGTERM or SIGINT
finishes the batch in flight, releases the partitions and exits 0.

Exit codes: 0 after a graceful shutdown, 1 on a runtime failure (a backend went away for good),
2 for a bad URL or option (the message says which).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

__all__ = ["register", "worker"]


def worker(
    store: Annotated[
        str | None,
        typer.Option("--store", envvar="GOALKEEPER_STORE", help="State store URL.", show_default=False),
    ] = None,
    bus: Annotated[
        str | None,
        typer.Option("--bus", envvar="GOALKEEPER_BUS", help="Event bus URL.", show_default=False),
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Consumer group shared by cooperating workers.")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="This worker's name in the group (default: host-pid-random).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Most events fetched per batch.")
    ] = None,
    lease_url: Annotated[
        str | None,
        typer.Option("--lease-url", help="Where partition leases live (default: derived from --store)."),
    ] = None,
    lease_ttl: Annotated[
        float | None, typer.Option("--lease-ttl", min=0.1, help="Seconds a partition lease lasts unrenewed.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", min=0, max=65535, help="Serve Prometheus metrics on this port."),
    ] = None,
    webhook: Annotated[
        list[str] | None,
        typer.Option("--webhook", help="POST each suggestion to this URL (repeatable).", show_default=False),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    json_logs: Annotated[bool, typer.Option("--json-logs", help="One JSON object per log line.")] = False,
) -> None:
    """Run the background worker: bus -> goal sessions -> store -> suggestion sinks."""
    # Imported here so `goalkeeper --help` stays fast and needs no worker dependencies.
    import asyncio

    from goalkeeper._gc import freeze_startup_heap
    from goalkeeper.errors import ConfigurationError, GoalkeeperError
    from goalkeeper.worker import GoalFeedbackWorker, WebhookSink, WorkerConfig
    from goalkeeper.worker.logs import configure_logging

    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        typer.echo(f"error: --log-level: unknown level {log_level!r}", err=True)
        raise typer.Exit(2)
    configure_logging(level, json_lines=json_logs)
    try:
        overrides: dict[str, Any] = {
            "group": group,
            "name": name,
            "batch_size": batch_size,
            "lease_url": lease_url,
            "lease_ttl": lease_ttl,
            "metrics_port": metrics_port,
        }
        config = WorkerConfig.from_env(**{k: v for k, v in overrides.items() if v is not None})
        if store is None or bus is None:
            missing = "--store" if store is None else "--bus"
            raise ConfigurationError(f"{missing} is required (or set GOALKEEPER_{missing[2:].upper()})")
        sinks = [WebhookSink(url) for url in webhook or ()]
        runner = GoalFeedbackWorker(store, bus, config=config, sinks=sinks)
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    freeze_startup_heap()
    try:
        asyncio.run(runner.run())
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except GoalkeeperError as exc:
        typer.echo(f"error: worker stopped: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:  # a second Ctrl-C while draining: leave at once, nothing is lost
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    """Add the ``worker`` command to the goalkeeper CLI app."""
    app.command("worker")(worker)
