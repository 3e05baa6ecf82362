"""MAPF benchmark: the MovingAI warehouse map and its scenario files, 50 to 500 agents.

For every scenario and agent count the instance is the first N agents (the MAPF benchmark convention).
`solve` runs LaCAM until the first solution, then large neighbourhood search until the time budget
(`--time-limit`, default 9.5 s in all per instance) or `--stall` steps without a gain. Reported per count:
success (a solution within the limit), time to the first solution, total time, and the sum of costs
against the lower bound (sum of shortest-path lengths) for the first solution and the final one. Every
solution is checked (valid moves, no vertex or swap conflicts, goals reached and kept) before it counts.
Replanning is timed too: at the largest count, the plan runs 20 steps, 5 vehicles stop, and everyone else
is planned again from where they are (`--no-replan` leaves it out). The machine may be shared: each
instance records the CPU seconds it got per wall second.

Run: python benchmarks/mapf.py [--agents 50,100,200,300,400,500] [--map M.map --scen S.scen ...]
                               [--time-limit 9.5] [--json] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopfloor.apps.warehouse.mapf import (
    check_solution,
    positions_at,
    read_map,
    read_scenario,
    replan,
    scenario_vertices,
    solve,
)
from shopfloor.core.errors import ShopfloorError

console = Console(stderr=True, width=140)
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MAP = "warehouse-10-20-10-2-1"
TARGET_S, TARGET_RATIO = 10.0, 1.5


@dataclass
class Run:
    scenario: str
    agents: int
    solved: bool
    valid: bool
    first_solution_s: float
    total_s: float
    lower_bound: int
    initial_soc: int
    soc: int
    makespan: int
    lns_iterations: int
    cpu_share: float
    to_target_s: float | None = None  # when the sum of costs first fell within TARGET_RATIO x the bound
    error: str = ""

    @property
    def ratio(self) -> float:
        return self.soc / self.lower_bound if self.lower_bound else 1.0

    @property
    def initial_ratio(self) -> float:
        return self.initial_soc / self.lower_bound if self.lower_bound else 1.0


def data_dir() -> Path:
    env = os.environ.get("SHOPFLOOR_DATA")
    return (Path(env) if env else ROOT.parent / "shared" / "data") / "mapf"


def warm_up() -> float:
    """Compile the numba kernels (cached on disk after the first run) on small instances; seconds taken."""
    from shopfloor.apps.warehouse.mapf import GridGraph

    t0 = time.perf_counter()
    graph = GridGraph(np.ones((12, 12), dtype=bool))
    rng = np.random.default_rng(0)
    for _ in range(3):  # dense enough that agents get delayed and every refinement rule runs
        starts = rng.choice(graph.num_vertices, 60, replace=False)
        goals = rng.choice(graph.num_vertices, 60, replace=False)
        solve(graph, starts, goals, refine_s=0.2)
    return time.perf_counter() - t0


def run_one(map_path: Path, scen_path: Path, n: int, time_limit: float, stall: int, seed: int) -> Run:
    graph = read_map(map_path)
    scenario = read_scenario(scen_path)
    starts, goals = scenario_vertices(graph, scenario, n)
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        result = solve(graph, starts, goals, time_limit_s=time_limit, refine_s=time_limit, stall_iterations=stall,
                       seed=seed)
    except ShopfloorError as exc:  # no solution, timeout
        wall = time.perf_counter() - t0
        return Run(scen_path.stem, n, False, False, wall, wall, 0, 0, 0, 0, 0,
                   (time.process_time() - cpu0) / max(wall, 1e-9), error=str(exc))
    wall = time.perf_counter() - t0
    report = check_solution(graph, starts, goals, result.paths)  # independent of the solver's own check
    return Run(scen_path.stem, n, True, report.valid and report.soc == result.soc, result.first_solution_s,
               result.total_s, result.lower_bound, result.initial_soc, report.soc, report.makespan,
               result.lns_iterations, (time.process_time() - cpu0) / max(wall, 1e-9),
               result.seconds_to(TARGET_RATIO))


@dataclass
class Replan:
    scenario: str
    agents: int
    stopped: int
    replan_s: float  # the whole call: reduced grid, distance tables, LaCAM, checks (no refinement)
    valid: bool
    holding: int
    soc_ratio: float


def replan_one(map_path: Path, scen_path: Path, n: int, at_step: int, n_stopped: int, seed: int) -> Replan:
    """Solve, run the plan to ``at_step``, stop ``n_stopped`` vehicles there and time the replan."""
    graph = read_map(map_path)
    starts, goals = scenario_vertices(graph, read_scenario(scen_path), n)
    plan = solve(graph, starts, goals, refine_s=1.0, seed=seed)
    now = positions_at(plan.paths, at_step)
    stopped = np.random.default_rng(seed).choice(n, n_stopped, replace=False).tolist()
    t0 = time.perf_counter()
    result = replan(graph, now, goals, stopped=stopped, refine_s=0.0, seed=seed)
    elapsed = time.perf_counter() - t0
    valid = check_solution(graph, now, result.goals, result.paths).valid
    return Replan(scen_path.stem, n, n_stopped, elapsed, valid, len(result.holding), result.solve.soc_ratio)


def summarise(runs: list[Run], counts: list[int]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n in counts:
        rs = [r for r in runs if r.agents == n]
        ok = [r for r in rs if r.solved and r.valid]
        rows.append({
            "agents": n,
            "instances": len(rs),
            "solved": len(ok),
            "first_solution_s_median": round(statistics.median(r.first_solution_s for r in ok), 3) if ok else None,
            "first_solution_s_max": round(max(r.first_solution_s for r in ok), 3) if ok else None,
            "total_s_max": round(max(r.total_s for r in ok), 2) if ok else None,
            "to_target_s_max": (round(max(r.to_target_s for r in ok if r.to_target_s is not None), 3)
                                if ok and all(r.to_target_s is not None for r in ok) else None),
            "initial_ratio_mean": round(statistics.fmean(r.initial_ratio for r in ok), 3) if ok else None,
            "ratio_mean": round(statistics.fmean(r.ratio for r in ok), 3) if ok else None,
            "ratio_max": round(max(r.ratio for r in ok), 3) if ok else None,
            "lns_iterations_median": int(statistics.median(r.lns_iterations for r in ok)) if ok else None,
            "cpu_share_median": round(statistics.median(r.cpu_share for r in rs), 2) if rs else None,
        })
    return rows


def plot(rows: list[dict[str, object]], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    xs = [r["agents"] for r in rows if r["solved"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(xs, [r["first_solution_s_max"] for r in rows if r["solved"]], "o-", label="first solution (max)")
    ax1.plot(xs, [r["to_target_s_max"] for r in rows if r["solved"]], "^-",
             label=f"to SoC <= {TARGET_RATIO:g}x bound (max)")
    ax1.plot(xs, [r["total_s_max"] for r in rows if r["solved"]], "s-", label="with refinement (max)")
    ax1.axhline(TARGET_S, color="grey", ls="--", label=f"target {TARGET_S:g} s")
    ax1.set_yscale("log")
    ax1.set_xlabel("agents")
    ax1.set_ylabel("seconds")
    ax1.legend()
    ax2.plot(xs, [r["initial_ratio_mean"] for r in rows if r["solved"]], "o-", label="first solution (mean)")
    ax2.plot(xs, [r["ratio_mean"] for r in rows if r["solved"]], "s-", label="after refinement (mean)")
    ax2.plot(xs, [r["ratio_max"] for r in rows if r["solved"]], "^--", label="after refinement (max)")
    ax2.axhline(TARGET_RATIO, color="grey", ls="--", label=f"target {TARGET_RATIO:g}x")
    ax2.set_xlabel("agents")
    ax2.set_ylabel("sum of costs / lower bound")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = out / "mapf.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--map", type=Path, help=f"a MovingAI .map file (default: {DEFAULT_MAP} in SHOPFLOOR_DATA/mapf)")
    ap.add_argument("--scen", type=Path, nargs="+", help="MovingAI .scen files (default: every one for the map)")
    ap.add_argument("--agents", default="50,100,200,300,400,500", help="agent counts (first N of each scenario)")
    ap.add_argument("--time-limit", type=float, default=9.5, help="seconds per instance, refinement included")
    ap.add_argument("--stall", type=int, default=2000, help="stop refining after this many steps without a gain")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-replan", action="store_true", help="leave out the replanning timing")
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "mapf", help="the plot goes here")
    args = ap.parse_args()

    map_path = args.map or data_dir() / f"{DEFAULT_MAP}.map"
    if not map_path.exists():
        console.print(f"[yellow]skip: {map_path} is missing (set SHOPFLOOR_DATA; see ../shared/data/mapf)")
        return 0
    scens = args.scen or sorted(map_path.parent.glob(f"{map_path.stem}*.scen"))
    if not scens:
        console.print(f"[yellow]skip: no .scen files for {map_path.name} beside it")
        return 0
    counts = [int(x) for x in args.agents.split(",")]
    try:
        graph = read_map(map_path)
    except ShopfloorError as exc:
        console.print(f"[red]{exc}")
        return 2
    compile_s = warm_up()
    console.print(f"{map_path.name}: {graph.width}x{graph.height}, {graph.num_vertices} free cells; "
                  f"{len(scens)} scenarios; numba warm-up {compile_s:.1f} s (not counted)")
    runs: list[Run] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("solving", total=len(counts) * len(scens))
        for n in counts:
            for scen in scens:
                progress.update(task, description=f"{scen.stem} x {n}")
                try:
                    run = run_one(map_path, scen, n, args.time_limit, args.stall, args.seed)
                except (ShopfloorError, ValueError) as exc:  # a bad scenario file, or one with fewer agents
                    run = Run(scen.stem, n, False, False, 0.0, 0.0, 0, 0, 0, 0, 0, 0.0, error=str(exc))
                runs.append(run)
                if run.error:
                    console.print(f"[red]{scen.stem} x {n}: {run.error}")
                progress.advance(task)
    rows = summarise(runs, counts)

    table = Table(title=f"MAPF on {map_path.stem} ({len(scens)} scenarios, {args.time_limit:g} s per instance)")
    for col in ("agents", "solved", "first solution s (median / max)", f"s to SoC <= {TARGET_RATIO:g}x (max)",
                "total s (max)", "SoC/LB first",
                "SoC/LB final (mean / max)", "LNS steps", "CPU share"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["agents"]), f"{r['solved']}/{r['instances']}",
                      f"{r['first_solution_s_median']} / {r['first_solution_s_max']}", str(r["to_target_s_max"]),
                      str(r["total_s_max"]),
                      str(r["initial_ratio_mean"]), f"{r['ratio_mean']} / {r['ratio_max']}",
                      str(r["lns_iterations_median"]), str(r["cpu_share_median"]))
    console.print(table)
    all_ok = all(r.solved and r.valid for r in runs)
    worst_total = max((r.total_s for r in runs if r.solved), default=float("nan"))
    worst_ratio = max((r.ratio for r in runs if r.solved), default=float("nan"))
    time_held = "held" if all_ok and worst_total < TARGET_S else "NOT held"
    ratio_held = "held" if all_ok and worst_ratio <= TARGET_RATIO else "NOT held"
    console.print(f"target: every instance solved within {TARGET_S:g} s: {time_held} (slowest {worst_total:.2f} s); "
                  f"SoC within {TARGET_RATIO:g}x the lower bound: {ratio_held} (worst {worst_ratio:.3f})")
    replans: list[Replan] = []
    if not args.no_replan:
        n = max(counts)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            for scen in progress.track(scens, description=f"replanning, {n} agents"):
                try:
                    replans.append(replan_one(map_path, scen, n, at_step=20, n_stopped=5, seed=args.seed))
                except (ShopfloorError, ValueError) as exc:
                    console.print(f"[red]replan {scen.stem} x {n}: {exc}")
        if replans:
            times = [r.replan_s for r in replans]
            console.print(f"replanning after 5 of {n} vehicles stop at step 20: "
                          f"{statistics.median(times):.3f} s median, {max(times):.3f} s max; "
                          f"{sum(r.valid for r in replans)}/{len(replans)} valid; "
                          f"vehicles left holding: {[r.holding for r in replans]}")
    path = plot(rows, args.out, f"{map_path.stem}: LaCAM + LNS, {args.time_limit:g} s per instance")
    console.print(f"plot: {path}")
    if args.json:
        print(json.dumps({"benchmark": "mapf", "map": map_path.stem, "scenarios": [s.stem for s in scens],
                          "time_limit_s": args.time_limit, "compile_s": round(compile_s, 2),
                          "machine": f"{platform.machine()} {os.cpu_count()} cpu", "summary": rows,
                          "runs": [asdict(r) for r in runs], "replans": [asdict(r) for r in replans]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
