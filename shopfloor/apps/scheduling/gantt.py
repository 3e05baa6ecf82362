"""Gantt charts of a schedule: a PNG (matplotlib, no display needed) and a self-contained interactive HTML (plotly).

One row per machine, one colour per job; calendar gaps and downtime are drawn as grey hatched bars.
"""

from __future__ import annotations

import io

import plotly.graph_objects as go
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from shopfloor.apps.scheduling.model import Availability, Problem, Schedule


def _colours(problem: Problem) -> dict[str, str]:
    cmap = colormaps["tab20"]
    return {job.id: to_hex(cmap(i % 20)) for i, job in enumerate(problem.jobs)}


def _unavailable(problem: Problem, horizon: int) -> dict[str, list[tuple[int, int]]]:
    return {m.id: Availability(m.calendar, m.downtime).unavailable(horizon) for m in problem.machines}


def gantt_png(problem: Problem, schedule: Schedule, title: str | None = None, dpi: int = 110) -> bytes:
    makespan = max((o.end for o in schedule.operations), default=1)
    machines = [m.id for m in problem.machines]
    row = {m: i for i, m in enumerate(machines)}
    colours = _colours(problem)
    fig = Figure(figsize=(12, max(2.5, 0.45 * len(machines) + 1.2)), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for m, spans in _unavailable(problem, makespan).items():
        ax.broken_barh([(s, min(e, makespan) - s) for s, e in spans], (row[m] - 0.4, 0.8),
                       facecolors="#dddddd", hatch="//", edgecolor="#999999", linewidth=0)
    for o in schedule.operations:
        ax.broken_barh([(o.start, o.end - o.start)], (row[o.machine] - 0.4, 0.8), facecolors=colours[o.job],
                       edgecolor="white", linewidth=0.5)
        if (o.end - o.start) > makespan / 60 and len(schedule.operations) <= 400:
            ax.text((o.start + o.end) / 2, row[o.machine], o.job, ha="center", va="center", fontsize=6)
    ax.set_yticks(range(len(machines)), machines)
    ax.invert_yaxis()
    ax.set_xlim(0, makespan)
    ax.set_xlabel("time")
    ax.set_title(title or f"{problem.name}: makespan {makespan}")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def gantt_html(problem: Problem, schedule: Schedule, title: str | None = None) -> str:
    """A standalone page (plotly.js embedded, so it opens without internet on a plant network)."""
    makespan = max((o.end for o in schedule.operations), default=1)
    machines = [m.id for m in problem.machines]
    colours = _colours(problem)
    fig = go.Figure()
    down_y, down_base, down_x = [], [], []
    for m, spans in _unavailable(problem, makespan).items():
        for s, e in spans:
            down_y.append(m)
            down_base.append(s)
            down_x.append(min(e, makespan) - s)
    if down_y:
        fig.add_trace(go.Bar(y=down_y, base=down_base, x=down_x, orientation="h", name="unavailable",
                             marker={"color": "#dddddd", "pattern": {"shape": "/"}}, hoverinfo="skip"))
    by_job: dict[str, list[tuple[str, int, int, int]]] = {}
    for o in schedule.operations:
        by_job.setdefault(o.job, []).append((o.machine, o.start, o.end, o.index))
    for job in problem.jobs:
        ops = by_job.get(job.id, [])
        if not ops:
            continue
        fig.add_trace(go.Bar(
            y=[o[0] for o in ops], base=[o[1] for o in ops], x=[o[2] - o[1] for o in ops], orientation="h",
            name=job.id, marker={"color": colours[job.id]},
            customdata=[[job.id, o[3], o[1], o[2]] for o in ops],
            hovertemplate="job %{customdata[0]} op %{customdata[1]}<br>%{customdata[2]} - %{customdata[3]}"
                          "<extra>%{y}</extra>",
        ))
    fig.update_layout(barmode="overlay", title=title or f"{problem.name}: makespan {makespan}",
                      xaxis_title="time", height=max(300, 40 * len(machines) + 150),
                      yaxis={"categoryorder": "array", "categoryarray": machines[::-1]})
    return str(fig.to_html(include_plotlyjs=True, full_html=True))
