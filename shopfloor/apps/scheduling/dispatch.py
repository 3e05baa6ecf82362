"""Dispatching rules for instant schedules: SPT, MWKR, EDD and ATC in a Giffler-Thompson style generator.

At each step the candidates are the next operation of every unfinished job, each on the machine where it would
end first. Only candidates that can start before the earliest of those ends compete (the conflict set of
Giffler and Thompson, which yields active schedules); the rule picks among them.
"""

from __future__ import annotations

import math
from typing import Literal

from shopfloor.apps.scheduling.model import Indexed

Rule = Literal["spt", "mwkr", "edd", "atc"]
RULES: tuple[Rule, ...] = ("spt", "mwkr", "edd", "atc")
ATC_K = 2.0  # look-ahead of ATC: slack is discounted over ATC_K average processing times


def dispatch(ix: Indexed, rule: Rule) -> tuple[list[int], list[int]]:
    """Machine and start per operation for one rule."""
    n_jobs = len(ix.job_ops)
    next_pos = [0] * n_jobs
    job_ready = list(ix.release)
    machine_free = [0] * len(ix.machine_ids)
    machine_last = [-1] * len(ix.machine_ids)
    remaining = [sum(ix.min_duration[i] for i in ops) for ops in ix.job_ops]
    p_avg = max(1.0, sum(ix.min_duration) / max(1, ix.n_ops))
    assign = [-1] * ix.n_ops
    start = [0] * ix.n_ops
    has_setups = bool(ix.setup)
    left = ix.n_ops
    while left:
        candidates: list[tuple[int, int, int, int, int]] = []  # (end, start, job, op, machine)
        for j in range(n_jobs):
            if next_pos[j] >= len(ix.job_ops[j]):
                continue
            op = ix.job_ops[j][next_pos[j]]
            best: tuple[int, int, int, int, int] | None = None
            for m, d in ix.options[op]:
                s = max(job_ready[j], machine_free[m])
                if has_setups and machine_last[m] >= 0:
                    s = max(s, machine_free[m] + ix.setup_time(m, machine_last[m], op))
                s = ix.availability[m].earliest(s, d)
                if best is None or (s + d, s) < (best[0], best[1]):
                    best = (s + d, s, j, op, m)
            assert best is not None
            candidates.append(best)
        horizon = min(c[0] for c in candidates)
        conflict = [c for c in candidates if c[1] < horizon] or [min(candidates)]
        now = min(c[1] for c in conflict)

        def priority(c: tuple[int, int, int, int, int], now: int = now) -> tuple[float, int]:
            end, s, j = c[0], c[1], c[2]
            p = end - s
            if rule == "spt":
                return (p, j)
            if rule == "mwkr":
                return (-remaining[j], j)
            due = ix.due[j]
            if rule == "edd":
                return (due if due is not None else math.inf, j)
            # ATC: weight per processing time, discounted by the slack left
            if due is None:
                return (0.0, j)
            slack = max(0.0, due - now - remaining[j])
            return (-(ix.weight[j] / max(p, 1)) * math.exp(-slack / (ATC_K * p_avg)), j)

        end, s, j, op, m = min(conflict, key=priority)
        assign[op] = m
        start[op] = s
        job_ready[j] = end
        machine_free[m] = end
        machine_last[m] = op
        remaining[j] -= ix.min_duration[op]
        next_pos[j] += 1
        left -= 1
    return assign, start


def objective_value(ix: Indexed, assign: list[int], start: list[int], objective: str) -> float:
    """Makespan, or weighted tardiness with makespan as a small tie-break."""
    ends = [start[ops[-1]] + ix.duration(ops[-1], assign[ops[-1]]) for ops in ix.job_ops]
    makespan = max(ends)
    if objective == "makespan":
        return float(makespan)
    tardiness = sum(ix.weight[j] * max(0, ends[j] - d) for j, d in enumerate(ix.due) if d is not None)
    return tardiness + makespan * 1e-6


def best_dispatch(ix: Indexed, objective: str, rules: tuple[Rule, ...] = RULES) -> tuple[Rule, list[int], list[int]]:
    """Run each rule and keep the best schedule for the objective."""
    best: tuple[float, Rule, list[int], list[int]] | None = None
    for rule in rules:
        assign, start = dispatch(ix, rule)
        value = objective_value(ix, assign, start, objective)
        if best is None or value < best[0]:
            best = (value, rule, assign, start)
    assert best is not None
    return best[1], best[2], best[3]
