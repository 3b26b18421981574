"""Charts of ``goalkeeper analyze``: progress, drift and loop risk over steps, one panel per trajectory.

* HTML: one self-contained file (inline CSS and SVG; no script, no CDN, no network), which opens
  anywhere and can be attached to a bug report. Every trajectory gets a panel.
* PNG: drawn with matplotlib when it is installed (it is not a goalkeeper dependency); the first
  :data:`PNG_PANELS` trajectories get a panel, since a raster grid of hundreds is unreadable.
"""

from __future__ import annotations

import html
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ._analysis import TrajectoryReport

__all__ = ["PNG_PANELS", "SERIES", "ChartError", "chart_kind", "write_chart", "write_html", "write_png"]

#: The three series drawn, with their colours (colour-blind-safe Okabe-Ito hues).
SERIES: tuple[tuple[str, str, str], ...] = (
    ("progress", "current_progress", "#0072B2"),
    ("drift", "drift_score", "#E69F00"),
    ("loop_risk", "loop_risk", "#D55E00"),
)
#: Panels in a PNG chart (the rest are listed as omitted in its title).
PNG_PANELS = 24

_W, _H = 560, 170  # SVG panel size
_L, _R, _T, _B = 36, 10, 10, 24  # margins: room for the axis labels


class ChartError(Exception):
    """The chart cannot be written: unsupported suffix or a missing optional package."""

    def __init__(self, message: str, *, missing_package: bool = False) -> None:
        super().__init__(message)
        self.missing_package = missing_package


def chart_kind(path: Path) -> str:
    """``"html"`` or ``"png"`` from the suffix of ``path``; checked before any work is done.

    Raises:
        ChartError: another suffix, or ``.png`` without matplotlib installed (``missing_package``).
    """
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        return "html"
    if suffix == ".png":
        if importlib.util.find_spec("matplotlib") is None:
            raise ChartError(
                f"{path}: a PNG chart needs matplotlib, which is not installed: pip install matplotlib "
                "(or write an HTML chart: --chart chart.html)",
                missing_package=True,
            )
        return "png"
    raise ChartError(f"{path}: unsupported chart type {suffix or '(no suffix)'!r}; use .html or .png")


def write_chart(reports: Sequence[TrajectoryReport], path: Path) -> None:
    """Write the chart of ``reports`` to ``path`` (HTML or PNG by its suffix).

    Raises:
        ChartError: see :func:`chart_kind`.
        OSError: the file cannot be written.
    """
    if chart_kind(path) == "png":
        write_png(reports, path)
    else:
        write_html(reports, path)


def _points(report: TrajectoryReport, attr: str) -> str:
    n = max(report.steps, 2)
    width, height = _W - _L - _R, _H - _T - _B
    out = []
    for row in report.rows:
        x = _L + width * (row.step - 1) / (n - 1)
        y = _T + height * (1.0 - getattr(row, attr))
        out.append(f"{x:.1f},{y:.1f}")
    return " ".join(out)


def _svg(report: TrajectoryReport) -> str:
    width, height = _W - _L - _R, _H - _T - _B
    n = max(report.steps, 2)
    parts = [f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img">']
    for v in (0.0, 0.5, 1.0):
        y = _T + height * (1.0 - v)
        parts.append(f'<line x1="{_L}" x2="{_W - _R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{_L - 6}" y="{y + 4:.1f}" class="ax" text-anchor="end">{v:g}</text>')
    for label, action in (("replan", "replan"), ("abort", "abort")):
        step = report.first(action)
        if step is not None:
            x = _L + width * (step - 1) / (n - 1)
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_T}" y2="{_T + height}" class="mark {label}"/>'
            )
            parts.append(f'<text x="{x + 3:.1f}" y="{_T + 10}" class="ax {label}">{label} @{step}</text>')
    for row in report.rows:
        if row.loop:
            x = _L + width * (row.step - 1) / (n - 1)
            parts.append(f'<circle cx="{x:.1f}" cy="{_T + height + 5}" r="2.5" class="loop"/>')
    for attr, _, colour in SERIES:
        if report.rows:
            parts.append(f'<polyline points="{_points(report, attr)}" stroke="{colour}" class="s"/>')
    if report.rows:
        parts.append(f'<text x="{_L}" y="{_H - 4}" class="ax">step 1</text>')
        end = f'<text x="{_W - _R}" y="{_H - 4}" class="ax" text-anchor="end">step {report.steps}</text>'
        parts.append(end)
    else:
        middle = f'x="{_L + width / 2:.1f}" y="{_T + height / 2:.1f}"'
        parts.append(f'<text {middle} class="ax" text-anchor="middle">no steps</text>')
    parts.append("</svg>")
    return "".join(parts)


def _fmt(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2733;
background:#f6f8fa}
h1{font-size:20px;margin:0 0 4px}h1.t{margin-top:24px;font-size:16px}p.sub{color:#57606a;margin:0 0 16px}
table{border-collapse:collapse;background:#fff;margin-bottom:24px;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #e3e7eb;text-align:right}th{background:#eef1f4}
td.l,th.l{text-align:left}.grid{stroke:#e3e7eb}.ax{font-size:10px;fill:#57606a}
.s{fill:none;stroke-width:1.8}.mark{stroke-dasharray:4 3;stroke-width:1.2}.replan{stroke:#CC79A7;fill:#CC79A7}
.abort{stroke:#7a0000;fill:#7a0000}.loop{fill:#D55E00}
.cards{display:flex;flex-wrap:wrap;gap:14px}.card{background:#fff;border:1px solid #e3e7eb;border-radius:6px;
padding:8px 10px}.card h2{font-size:13px;margin:0 0 2px;word-break:break-all}.card p{margin:0;color:#57606a;
font-size:12px}.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:18px;
height:3px;vertical-align:middle;margin-right:5px}
"""


def write_html(reports: Sequence[TrajectoryReport], path: Path) -> None:
    """Write a self-contained HTML page: the summary table and one inline-SVG panel per trajectory."""
    e = html.escape
    legend = "".join(f'<span><i style="background:{c}"></i>{e(name)}</span>' for _, name, c in SERIES)
    legend += (
        '<span><i style="background:#D55E00;height:6px;width:6px;border-radius:3px"></i>loop flagged</span>'
    )
    rows = []
    for r in reports:
        rows.append(
            f'<tr><td class="l">{e(r.id)}</td><td class="l">{e(r.source)}</td><td>{r.steps}</td>'
            f"<td>{_fmt(r.final_progress)}</td><td>{_fmt(r.max_drift)}</td><td>{_fmt(r.max_loop_risk)}</td>"
            f"<td>{_fmt(r.first('replan'))}</td><td>{_fmt(r.first('abort'))}</td>"
            f'<td class="l">{e(r.final_action)}</td><td>{_fmt(r.reward, 1)}</td></tr>'
        )
    cards = []
    for r in reports:
        reward = "" if r.reward is None else f" · reward {r.reward:g}"
        cards.append(
            f'<div class="card"><h2>{e(r.id)}</h2><p>{e(r.source)} · {r.steps} steps · final action '
            f"{e(r.final_action)}{reward}</p>{_svg(r)}</div>"
        )
    files = sorted({r.file for r in reports})
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>goalkeeper analyze</title><style>{_CSS}</style></head><body>"
        f'<h1>goalkeeper analyze</h1><p class="sub">{len(reports)} trajectories from '
        f"{e(', '.join(files))} · goalkeeper {e(__version__)}</p>"
        f'<p class="legend">{legend}</p><div class="cards">'
        + "".join(cards)
        + '</div><h1 class="t">summary</h1><table><thead><tr><th class="l">trajectory</th>'
        '<th class="l">format</th><th>steps</th><th>final progress</th><th>max drift</th>'
        "<th>max loop risk</th><th>first replan</th>"
        '<th>first abort</th><th class="l">final action</th><th>reward</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
        + "</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")


def write_png(reports: Sequence[TrajectoryReport], path: Path) -> None:
    """Draw the first :data:`PNG_PANELS` trajectories with matplotlib (Agg backend) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = list(reports[:PNG_PANELS])
    cols = min(3, max(1, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    for ax, r in zip(axes.flat, shown, strict=False):
        steps = [row.step for row in r.rows]
        for attr, name, colour in SERIES:
            ax.plot(steps, [getattr(row, attr) for row in r.rows], color=colour, label=name, linewidth=1.6)
        for action, colour in (("replan", "#CC79A7"), ("abort", "#7a0000")):
            step = r.first(action)
            if step is not None:
                ax.axvline(step, color=colour, linestyle="--", linewidth=1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{r.id} ({r.final_action})", fontsize=9)
        ax.tick_params(labelsize=8)
    axes.flat[0].legend(fontsize=7, loc="upper left")
    title = "goalkeeper analyze"
    if len(reports) > len(shown):
        title += f" (first {len(shown)} of {len(reports)} trajectories)"
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
