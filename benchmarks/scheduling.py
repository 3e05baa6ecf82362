"""Scheduling benchmark: gap to the best-known makespan on the OR-Library job-shop and Brandimarte FJSP instances,
and the time to repair a 50 x 10 plan after a breakdown or a rush order.

Each instance is solved once with the largest time limit (dispatching rules, tabu search, then CP-SAT from the
best schedule, `--workers` CP-SAT workers); the gap at each smaller limit is the incumbent at that moment of the
same run (the solver's trace), so `--limits 10,60` costs 60 s per instance, not 70. `--separate-runs` solves
once per limit instead. Time to first feasible is the dispatching rules' time (a complete valid schedule).
Every schedule is checked (precedence, no overlap, eligibility) before its makespan counts. The machine may be
shared: each instance reports the CPU seconds it got per wall second (2.0 is both cores) and the load average.

Run: python benchmarks/scheduling.py [--limits 10,60] [--instances la0*,ft10] [--no-fjsp] [--json] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopfloor.apps.scheduling import Job, Operation, Option, solve
from shopfloor.apps.scheduling.formats import read_instance
from shopfloor.apps.scheduling.generate import random_problem
from shopfloor.apps.scheduling.reschedule import REPAIR_TIME_LIMIT_S, MachineDown, RushOrder, reschedule
from shopfloor.testing.machine import cpu_model

console = Console(stderr=True, width=140)
ROOT = Path(__file__).resolve().parent.parent
SMALL_OPS = 150  # "up to 15 x 10": instances with at most 150 operations
BRANDIMARTE_BEST = {"mk01": 40, "mk02": 26, "mk03": 204, "mk04": 60, "mk05": 172, "mk06": 57, "mk07": 139,
                    "mk08": 523, "mk09": 307, "mk10": 193}  # FJSPLib README (mk10 in [189, 193])


@dataclass
class InstanceResult:
    instance: str
    kind: str  # jobshop or fjsp
    size: str
    operations: int
    best_known: int
    closed: bool
    first_feasible_ms: float
    dispatch_makespan: int
    makespan: dict[str, int] = field(default_factory=dict)  # per limit
    gap_pct: dict[str, float] = field(default_factory=dict)
    proved_optimal: bool = False
    seconds: float = 0.0
    cpu_share: float = 0.0  # CPU seconds this process got per wall second (2.0 = both cores, alone)
    load_average: float = 0.0  # 1-minute load of the machine when the instance started
    valid: bool = True


def data_dir() -> Path:
    env = os.environ.get("SHOPFLOOR_DATA")
    return (Path(env) if env else ROOT.parent / "shared" / "data") / "jobshop"


def instances(folder: Path, patterns: list[str], with_fjsp: bool) -> list[tuple[str, str, Path, int, bool]]:
    """(name, kind, path, best known, closed) of the instances selected."""
    out = []
    with (folder / "best_known.csv").open() as f:
        for row in csv.DictReader(f):
            out.append((row["instance"], "jobshop", folder / "instances" / f"{row['instance']}.txt",
                        int(row["upper_bound"]), row["status"] == "closed"))
    if with_fjsp:
        for name, best in BRANDIMARTE_BEST.items():
            out.append((name, "fjsp", folder / "fjsp" / f"{name}.txt", best, name != "mk10"))
    if patterns:
        out = [o for o in out if any(fnmatch.fnmatch(o[0], p) for p in patterns)]
    return out


def _at(trace: list[tuple[float, float]], seconds: float) -> float:
    """The incumbent at `seconds` into a run."""
    value = trace[0][1]
    for t, v in trace:
        if t <= seconds:
            value = v
    return value


def run_instance(name: str, kind: str, path: Path, best: int, closed: bool, limits: list[float], workers: int,
                 separate: bool) -> InstanceResult:
    problem = read_instance(path, "fjsp" if kind == "fjsp" else "jobshop")
    n_ops = sum(len(j.operations) for j in problem.jobs)
    res = InstanceResult(name, kind, problem.size, n_ops, best, closed, 0.0, 0)
    res.load_average = round(os.getloadavg()[0], 2)
    t0 = time.perf_counter()
    c0 = time.process_time()
    runs = [(limit, solve(problem, time_limit=limit, workers=workers)) for limit in limits] if separate else \
        [(max(limits), solve(problem, time_limit=max(limits), workers=workers))]
    last = runs[-1][1]
    res.first_feasible_ms = round(last.first_feasible_s * 1000, 2)
    res.dispatch_makespan = int(last.trace[0][1])
    res.valid = all(r.check.valid for _, r in runs)
    for limit in limits:
        result = next((r for lim, r in runs if lim == limit), last)
        value = int(result.kpis.makespan if (separate or limit == max(limits)) else _at(result.trace, limit))
        res.makespan[f"{limit:g}"] = value
        res.gap_pct[f"{limit:g}"] = round(100.0 * (value - best) / best, 3)
    res.proved_optimal = last.status == "optimal"
    res.seconds = round(time.perf_counter() - t0, 2)
    res.cpu_share = round((time.process_time() - c0) / max(res.seconds, 1e-9), 2)
    return res


@dataclass
class RepairResult:
    event: str
    runs: int
    median_ms: float
    max_ms: float
    mean_moved: float
    mean_machine_changes: float
    mean_makespan_increase_pct: float
    all_valid: bool


def run_reschedule(repeats: int, plan_seconds: float, workers: int) -> list[RepairResult]:
    """A 50 x 10 flexible plan with due dates; breakdowns and rush orders at several moments, each timed."""
    problem = random_problem(50, 10, seed=42, flexibility=2, due_dates=True)
    plan = solve(problem, time_limit=plan_seconds, workers=workers)
    out = []
    for kind in ("machine_down", "rush_order"):
        times, moved, changes, increase, valid = [], [], [], [], True
        for k in range(repeats):
            now = plan.kpis.makespan * (k + 1) // (repeats + 2)
            if kind == "machine_down":
                event: MachineDown | RushOrder = MachineDown(machine=f"M{k % 10}", start=now, end=now + 60)
            else:
                event = RushOrder(job=Job(id=f"RUSH{k}", due=now + 80, weight=10.0, operations=[
                    Operation(options=[Option(machine=f"M{(k + i) % 10}", duration=12),
                                       Option(machine=f"M{(k + i + 3) % 10}", duration=15)]) for i in range(6)]))
            t0 = time.perf_counter()
            result = reschedule(problem, plan.schedule, now, event, workers=workers)
            times.append((time.perf_counter() - t0) * 1000)
            valid = valid and result.check.valid
            moved.append(result.disruption.moved)
            changes.append(result.disruption.machine_changes)
            increase.append(100 * (result.disruption.makespan_after / result.disruption.makespan_before - 1))
        out.append(RepairResult(kind, repeats, round(statistics.median(times), 1), round(max(times), 1),
                                round(statistics.mean(moved), 1), round(statistics.mean(changes), 1),
                                round(statistics.mean(increase), 2), valid))
    return out


def summary(results: list[InstanceResult], limits: list[float]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for kind in ("jobshop", "fjsp"):
        rows = [r for r in results if r.kind == kind]
        if not rows:
            continue
        per: dict[str, object] = {"instances": len(rows)}
        for limit in limits:
            key = f"{limit:g}"
            per[f"mean_gap_pct_{key}s"] = round(statistics.mean(r.gap_pct[key] for r in rows), 3)
            per[f"at_best_known_{key}s"] = sum(1 for r in rows if r.gap_pct[key] <= 0)
        small = [r for r in rows if r.operations <= SMALL_OPS]
        if small:
            key = f"{max(limits):g}"
            per["small_instances"] = len(small)
            per[f"small_at_optimum_{key}s"] = sum(1 for r in small if r.gap_pct[key] <= 0 and r.closed)
            per["small_not_at_optimum"] = [r.instance for r in small if r.gap_pct[key] > 0]
        per["mean_first_feasible_ms"] = round(statistics.mean(r.first_feasible_ms for r in rows), 2)
        per["mean_dispatch_gap_pct"] = round(statistics.mean(100 * (r.dispatch_makespan - r.best_known) /
                                                             r.best_known for r in rows), 2)
        per["proved_optimal"] = sum(1 for r in rows if r.proved_optimal)
        per["mean_cpu_share"] = round(statistics.mean(r.cpu_share for r in rows), 2)
        per["mean_load_average"] = round(statistics.mean(r.load_average for r in rows), 1)
        out[kind] = per
    return out


def plot(results: list[InstanceResult], limits: list[float], out: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(max(8, 0.18 * len(results)), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / len(limits)
    for k, limit in enumerate(limits):
        ax.bar([i + k * width for i in range(len(results))], [r.gap_pct[f"{limit:g}"] for r in results], width,
               label=f"{limit:g} s")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(results))], [r.instance for r in results], rotation=90,
                  fontsize=6)
    ax.set_ylabel("gap to best known (%)")
    ax.legend()
    fig.tight_layout()
    path = out / "gaps.png"
    fig.savefig(path, dpi=120)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--limits", default="10,60", help="time limits per instance in seconds, comma-separated")
    ap.add_argument("--instances", default="", help="name patterns, comma-separated (e.g. 'la0*,ft*,mk01')")
    ap.add_argument("--no-fjsp", action="store_true", help="leave out the Brandimarte instances")
    ap.add_argument("--no-reschedule", action="store_true", help="leave out the rescheduling timing")
    ap.add_argument("--reschedule-only", action="store_true", help="only the rescheduling timing")
    ap.add_argument("--repeats", type=int, default=5, help="events of each kind in the rescheduling timing")
    ap.add_argument("--workers", type=int, default=2, help="CP-SAT workers")
    ap.add_argument("--separate-runs", action="store_true", help="one solve per limit instead of reading the trace")
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "scheduling", help="plots go here")
    args = ap.parse_args()
    limits = sorted(float(x) for x in args.limits.split(",") if x.strip())
    folder = data_dir()
    chosen: list[tuple[str, str, Path, int, bool]] = []
    if not args.reschedule_only:
        if not (folder / "best_known.csv").exists():
            console.print(f"[yellow]skip:[/] no job-shop data at {folder} (set SHOPFLOOR_DATA)")
            return 0
        chosen = instances(folder, [p for p in args.instances.split(",") if p], not args.no_fjsp)
    results: list[InstanceResult] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("instances", total=len(chosen))
        for name, kind, path, best, closed in chosen:
            progress.update(task, description=f"{name} (<= {max(limits):g} s)")
            r = run_instance(name, kind, path, best, closed, limits, args.workers, args.separate_runs)
            results.append(r)
            progress.advance(task)
            progress.console.print(f"{name:6} {r.size:6} best {best:5}  " + "  ".join(
                f"{k}s: {r.makespan[k]} ({r.gap_pct[k]:+.2f}%)" for k in r.makespan) +
                f"  first {r.first_feasible_ms:.0f} ms  cpu {r.cpu_share:.2f}  load {r.load_average:.1f}"
                f"{'  optimal' if r.proved_optimal else ''}", highlight=False)
    repairs = [] if args.no_reschedule else run_reschedule(args.repeats, 10.0, args.workers)

    table = Table(title=f"Gap to best known ({args.workers} CP-SAT workers, {cpu_model()}, {os.cpu_count()} cores)")
    for col in ("instance", "size", "best known", "first feasible ms", "dispatch", *[f"{lim:g} s" for lim in limits],
                *[f"gap {lim:g} s" for lim in limits], "proved", "cpu/wall"):
        table.add_column(col, justify="left" if col == "instance" else "right")
    for r in results:
        table.add_row(r.instance, r.size, str(r.best_known), f"{r.first_feasible_ms:.1f}", str(r.dispatch_makespan),
                      *[str(r.makespan[f"{lim:g}"]) for lim in limits],
                      *[f"{r.gap_pct[f'{lim:g}']:.2f} %" for lim in limits], "yes" if r.proved_optimal else "",
                      f"{r.cpu_share:.2f}")
    stats = summary(results, limits)
    out_console = Console(width=160, stderr=args.json)  # with --json, stdout carries the JSON line alone
    if results:
        out_console.print(table)
        for kind, per in stats.items():
            out_console.print(f"[bold]{kind}[/]: " + ", ".join(f"{k} {v}" for k, v in per.items()))
        if not all(r.valid for r in results):
            out_console.print("[bold red]some schedules failed the checker[/]")
        console.print(f"plot: {plot(results, limits, args.out)}")
    if repairs:
        rt = Table(title=f"Rescheduling a 50 x 10 flexible plan (time limit {REPAIR_TIME_LIMIT_S} s)")
        for col in ("event", "runs", "median ms", "max ms", "ops moved", "machine changes", "makespan +%", "valid"):
            rt.add_column(col, justify="right")
        for rep in repairs:
            rt.add_row(rep.event, str(rep.runs), f"{rep.median_ms:.0f}", f"{rep.max_ms:.0f}", f"{rep.mean_moved:.0f}",
                       f"{rep.mean_machine_changes:.1f}", f"{rep.mean_makespan_increase_pct:.1f}",
                       "yes" if rep.all_valid else "NO")
        out_console.print(rt)
    if args.json:
        sys.stdout.write(json.dumps({
            "benchmark": "scheduling", "limits_s": limits, "workers": args.workers, "separate_runs": args.separate_runs,
            "cpu": cpu_model(), "cores": os.cpu_count(), "summary": stats,
            "instances": [asdict(r) for r in results], "reschedule": [asdict(r) for r in repairs],
        }) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
