"""The CP-SAT model: interval variables per operation, optional intervals for alternative machines, NoOverlap per
machine (downtime and calendar gaps as fixed intervals), circuits for sequence-dependent setups, and a hint.

The hint (a dispatching or tabu schedule) gives CP-SAT a good incumbent at once, so a short time limit still ends
with a schedule at least as good as the heuristic one. For rescheduling, pinned operations become constants and a
disruption term (start shifts and machine changes against the previous plan) joins the objective.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import pairwise

from ortools.sat.python import cp_model

from shopfloor.apps.scheduling.model import Indexed
from shopfloor.apps.scheduling.sequence import Constraints

TARDINESS_SCALE = 100  # job weights are floats; CP-SAT wants integer coefficients


@dataclass
class Disruption:
    """Penalties against a reference plan: per time unit of start shift, per operation moved to another machine."""

    reference_machine: list[int]
    reference_start: list[int]
    shift_weight: int
    change_weight: int


@dataclass
class CpSatResult:
    status: str  # optimal, feasible, infeasible, unknown
    assign: list[int] | None
    start: list[int] | None
    objective: float | None
    bound: float | None
    wall_s: float
    first_solution_s: float | None
    trace: list[tuple[float, float]] = field(default_factory=list)  # (seconds since the call, objective)


class _Recorder(cp_model.CpSolverSolutionCallback):
    def __init__(self, t0: float) -> None:
        super().__init__()
        self.t0 = t0
        self.trace: list[tuple[float, float]] = []

    def on_solution_callback(self) -> None:
        self.trace.append((time.perf_counter() - self.t0, self.objective_value))


def horizon_for(ix: Indexed, hint_end: int | None, constraints: Constraints | None) -> int:
    """A bound on every end: the hint's makespan is a valid one for makespan; add the total work for slack."""
    work = sum(max(d for _, d in opts) for opts in ix.options)
    setup = sum(max(max(row) for row in matrix) for matrix in ix.setup.values()) * ix.n_ops if ix.setup else 0
    base = max([*ix.release, constraints.not_before if constraints else 0, *(constraints.fixed.values()
                                                                          if constraints else [])])
    return max(hint_end or 0, base) + work + setup + 1


def solve_cpsat(
    ix: Indexed,
    objective: str = "makespan",
    time_limit: float = 10.0,
    hint: tuple[list[int], list[int]] | None = None,
    workers: int = 2,
    constraints: Constraints | None = None,
    disruption: Disruption | None = None,
    seed: int = 0,
) -> CpSatResult:
    t0 = time.perf_counter()
    fixed = constraints.fixed if constraints else {}
    not_before = constraints.not_before if constraints else 0
    if fixed and hint is None:
        raise ValueError("pinned operations need a hint that gives their machines")
    hint_end = None
    if hint is not None:
        hint_end = max(hint[1][i] + ix.duration(i, hint[0][i]) for i in range(ix.n_ops))
    horizon = horizon_for(ix, hint_end, constraints)
    if objective == "makespan" and disruption is None and hint_end is not None:
        horizon = hint_end  # no better schedule ends later than the hint: a tight horizon prunes from the start
    model = cp_model.CpModel()
    starts: list[cp_model.IntVar] = []
    ends: list[cp_model.IntVar] = []
    presence: list[dict[int, cp_model.IntVar | None]] = []  # None: the only machine, always present
    on_machine: list[list[tuple[int, cp_model.IntervalVar]]] = [[] for _ in ix.machine_ids]
    for i in range(ix.n_ops):
        if i in fixed:
            assert hint is not None
            m = hint[0][i]
            d = ix.duration(i, m)
            s = model.new_constant(fixed[i])
            e = model.new_constant(fixed[i] + d)
            starts.append(s)
            ends.append(e)
            presence.append({m: None})
            on_machine[m].append((i, model.new_fixed_size_interval_var(fixed[i], d, f"pinned{i}")))
            continue
        lb = max(not_before, ix.release[ix.op_job[i]] if ix.op_pos[i] == 0 else 0)
        s = model.new_int_var(lb, horizon, f"s{i}")
        e = model.new_int_var(lb, horizon, f"e{i}")
        starts.append(s)
        ends.append(e)
        opts = ix.options[i]
        if len(opts) == 1:
            m, d = opts[0]
            on_machine[m].append((i, model.new_interval_var(s, d, e, f"i{i}")))
            presence.append({m: None})
            continue
        lits: dict[int, cp_model.IntVar | None] = {}
        for m, d in opts:
            lit = model.new_bool_var(f"p{i}_{m}")
            lits[m] = lit
            on_machine[m].append((i, model.new_optional_interval_var(s, d, e, lit, f"i{i}_{m}")))
        model.add_exactly_one([lit for lit in lits.values() if lit is not None])
        presence.append(lits)
    for ops in ix.job_ops:
        for a, b in pairwise(ops):
            if a in fixed and b in fixed:
                continue
            model.add(starts[b] >= ends[a])
    for m, items in enumerate(on_machine):
        down = [model.new_fixed_size_interval_var(s, e - s, f"down{m}_{s}")
                for s, e in ix.availability[m].unavailable(horizon)]
        model.add_no_overlap([iv for _, iv in items] + down)
        if m in ix.setup and len(items) > 1:
            _add_setup_circuit(model, ix, m, items, starts, ends, presence)
    hinted: list[tuple[cp_model.IntVar, int]] = []  # derived variables: a complete hint is loaded at once
    hint_ends = [hint[1][i] + ix.duration(i, hint[0][i]) for i in range(ix.n_ops)] if hint is not None else []
    makespan = model.new_int_var(0, horizon, "makespan")
    if hint is not None:
        hinted.append((makespan, max(hint_ends)))
    for ops in ix.job_ops:
        model.add(makespan >= ends[ops[-1]])
    if objective == "makespan":
        primary: cp_model.LinearExpr = makespan
    else:
        terms = []
        for j, ops in enumerate(ix.job_ops):
            due = ix.due[j]
            weight = round(ix.weight[j] * TARDINESS_SCALE)
            if due is None or weight == 0:
                continue
            late = model.new_int_var(0, horizon, f"late{j}")
            model.add(late >= ends[ops[-1]] - due)
            if hint is not None:
                hinted.append((late, max(0, hint_ends[ops[-1]] - due)))
            terms.append(weight * late)
        primary = cp_model.LinearExpr.sum(terms) if terms else makespan
    if disruption is None:
        model.minimize(primary)
    else:
        free = [i for i in range(ix.n_ops) if i not in fixed]
        penalty = []
        for i in free:
            ref = disruption.reference_start[i]
            if ref < 0:
                continue  # a new operation (rush order) has no previous start
            shift = model.new_int_var(0, horizon, f"shift{i}")
            model.add(shift >= starts[i] - ref)
            model.add(shift >= ref - starts[i])
            if hint is not None:
                hinted.append((shift, abs(hint[1][i] - ref)))
            penalty.append(disruption.shift_weight * shift)
            ref_m = disruption.reference_machine[i]
            kept = presence[i].get(ref_m)
            if len(presence[i]) > 1 and kept is not None:
                penalty.append(disruption.change_weight * (1 - kept))
        model.minimize(max(1, len(free)) * primary + cp_model.LinearExpr.sum(penalty))
    for var, value in hinted:
        model.add_hint(var, value)
    if hint is not None:
        for i in range(ix.n_ops):
            if i in fixed:
                continue
            model.add_hint(starts[i], hint[1][i])
            model.add_hint(ends[i], hint[1][i] + ix.duration(i, hint[0][i]))
            for m, present in presence[i].items():
                if present is not None:
                    model.add_hint(present, m == hint[0][i])
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.01, time_limit - (time.perf_counter() - t0))
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    # CP-SAT would take over Ctrl-C while it searches (and not give it back): the process that hosts it
    # (the platform, with the plant's planner) must keep its own SIGINT handling
    solver.parameters.catch_sigint_signal = False
    recorder = _Recorder(t0)
    status = solver.solve(model, recorder)
    wall = time.perf_counter() - t0
    name = {cp_model.OPTIMAL: "optimal", cp_model.FEASIBLE: "feasible", cp_model.INFEASIBLE: "infeasible",
            cp_model.MODEL_INVALID: "invalid"}.get(status, "unknown")
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return CpSatResult(name, None, None, None, None, wall, None, recorder.trace)
    assign = []
    for i in range(ix.n_ops):
        chosen = [m for m, lit in presence[i].items() if lit is None or solver.boolean_value(lit)]
        assign.append(chosen[0])
    start = [solver.value(s) for s in starts]
    scale = TARDINESS_SCALE if objective != "makespan" and disruption is None else 1
    return CpSatResult(
        status=name, assign=assign, start=start, objective=solver.objective_value / scale,
        bound=solver.best_objective_bound / scale, wall_s=wall,
        first_solution_s=recorder.trace[0][0] if recorder.trace else None,
        trace=[(t, v / scale) for t, v in recorder.trace],
    )


def _add_setup_circuit(
    model: cp_model.CpModel,
    ix: Indexed,
    m: int,
    items: list[tuple[int, cp_model.IntervalVar]],
    starts: list[cp_model.IntVar],
    ends: list[cp_model.IntVar],
    presence: list[dict[int, cp_model.IntVar | None]],
) -> None:
    """Order the operations of machine m as a circuit through a dummy node; an arc a -> b forces the setup."""
    arcs: list[tuple[int, int, cp_model.LiteralT]] = []
    ops = [i for i, _ in items]
    all_mandatory = True
    for k, a in enumerate(ops, start=1):
        lit_a = presence[a][m]
        if lit_a is not None:
            arcs.append((k, k, lit_a.Not()))
            all_mandatory = False
        arcs.append((0, k, model.new_bool_var(f"first{m}_{a}")))
        arcs.append((k, 0, model.new_bool_var(f"last{m}_{a}")))
        for q, b in enumerate(ops, start=1):
            if a == b or (ix.op_job[a] == ix.op_job[b] and ix.op_pos[a] > ix.op_pos[b]):
                continue
            lit = model.new_bool_var(f"arc{m}_{a}_{b}")
            arcs.append((k, q, lit))
            model.add(starts[b] >= ends[a] + ix.setup_time(m, a, b)).only_enforce_if(lit)
    if not all_mandatory:
        arcs.append((0, 0, model.new_bool_var(f"empty{m}")))
    model.add_circuit(arcs)
