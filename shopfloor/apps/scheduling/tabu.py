"""Tabu search on the critical path: the N5 neighbourhood of Nowicki and Smutnicki, plus machine moves.

N5 swaps the first two and the last two operations of each critical block (a run of critical operations on one
machine); other swaps of a block cannot shorten the path. In a flexible job shop a critical operation may also
move to another eligible machine, inserted where its current start falls. For weighted tardiness the path
followed is the one into the job that costs the most. Each move is evaluated by decoding the whole schedule.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from shopfloor.apps.scheduling.model import Indexed
from shopfloor.apps.scheduling.sequence import Constraints, Decoded, Solution, decode


@dataclass
class TabuResult:
    solution: Solution
    decoded: Decoded
    value: float
    iterations: int
    improvements: int


def evaluate(ix: Indexed, decoded: Decoded, objective: str) -> float:
    ends = [decoded.end[ops[-1]] for ops in ix.job_ops]
    makespan = max(ends)
    if objective == "makespan":
        return float(makespan)
    tardiness = sum(ix.weight[j] * max(0, ends[j] - d) for j, d in enumerate(ix.due) if d is not None)
    return tardiness + makespan * 1e-6


def _target(ix: Indexed, decoded: Decoded, objective: str, rng: random.Random) -> int:
    """The operation whose critical path the search works on."""
    lasts = [ops[-1] for ops in ix.job_ops]
    if objective != "makespan":
        costs = [(ix.weight[j] * max(0, decoded.end[op] - d), op)
                 for j, (op, d) in enumerate(zip(lasts, ix.due, strict=True)) if d is not None]
        costs = [c for c in costs if c[0] > 0]
        if costs:
            top = sorted(costs, reverse=True)[:3]
            return rng.choice(top)[1]
    best = max(decoded.end[op] for op in lasts)
    return rng.choice([op for op in lasts if decoded.end[op] == best])


def critical_path(decoded: Decoded, target: int) -> list[int]:
    path = [target]
    while decoded.critical_pred[path[-1]] >= 0:
        path.append(decoded.critical_pred[path[-1]])
    path.reverse()
    return path


def _blocks(ix: Indexed, sol: Solution, path: list[int]) -> list[list[int]]:
    blocks: list[list[int]] = []
    for op in path:
        if blocks and sol.assign[op] == sol.assign[blocks[-1][-1]]:
            blocks[-1].append(op)
        else:
            blocks.append([op])
    return blocks


Move = tuple[str, int, int, int]  # ("swap", a, b, machine) or ("move", op, machine, position)


def _moves(ix: Indexed, sol: Solution, decoded: Decoded, path: list[int], fixed: set[int]) -> list[Move]:
    moves: list[Move] = []
    blocks = _blocks(ix, sol, path)
    seen: set[tuple[int, int]] = set()
    for b, block in enumerate(blocks):
        if len(block) < 2:
            continue
        pairs = []
        if b > 0 or len(blocks) == 1:
            pairs.append((block[0], block[1]))
        if b < len(blocks) - 1 or len(blocks) == 1:
            pairs.append((block[-2], block[-1]))
        for u, v in pairs:
            if (u, v) not in seen and u not in fixed and v not in fixed:
                seen.add((u, v))
                moves.append(("swap", u, v, sol.assign[u]))
    for op in path:
        if op in fixed or len(ix.options[op]) < 2:
            continue
        for m, _ in ix.options[op]:
            if m == sol.assign[op]:
                continue
            seq = sol.seqs[m]
            position = 0
            while position < len(seq) and decoded.start[seq[position]] <= decoded.start[op]:
                position += 1
            moves.append(("move", op, m, position))
    return moves


def _apply(sol: Solution, move: Move) -> Solution:
    new = sol.copy()
    kind, a, b, c = move
    if kind == "swap":
        seq = new.seqs[c]
        i = seq.index(a)
        seq[i], seq[i + 1] = seq[i + 1], seq[i]
    else:
        new.seqs[new.assign[a]].remove(a)
        new.seqs[b].insert(c, a)
        new.assign[a] = b
    return new


def tabu_search(
    ix: Indexed,
    start: Solution,
    objective: str = "makespan",
    time_limit: float = 1.0,
    max_stall: int = 2000,
    seed: int = 0,
    constraints: Constraints | None = None,
) -> TabuResult:
    """Improve `start` until time_limit seconds pass or max_stall iterations bring nothing better."""
    deadline = time.perf_counter() + time_limit
    rng = random.Random(seed)
    fixed = set(constraints.fixed) if constraints else set()
    current = start.copy()
    current_decoded = decode(ix, current, constraints)
    if current_decoded is None:
        raise ValueError("the starting solution has a cycle")
    current_value = evaluate(ix, current_decoded, objective)
    best, best_decoded, best_value = current.copy(), current_decoded, current_value
    tenure = 8 + len(ix.job_ops) // max(1, len(ix.machine_ids))
    tabu: dict[tuple[int, int], int] = {}
    iterations = improvements = stall = 0
    while time.perf_counter() < deadline and stall < max_stall:
        iterations += 1
        path = critical_path(current_decoded, _target(ix, current_decoded, objective, rng))
        chosen: tuple[float, Move, Solution, Decoded] | None = None
        for move in _moves(ix, current, current_decoded, path, fixed):
            key = (move[1], move[2]) if move[0] == "swap" else (move[1], -1 - move[2])
            candidate = _apply(current, move)
            decoded = decode(ix, candidate, constraints)
            if decoded is None:
                continue
            value = evaluate(ix, decoded, objective)
            allowed = tabu.get(key, -1) < iterations or value < best_value
            if allowed and (chosen is None or value < chosen[0]):
                chosen = (value, move, candidate, decoded)
        if chosen is None:
            if not tabu:
                break
            tabu.clear()  # every move is tabu: forget, as TSAB does when it is stuck
            stall += 1
            continue
        value, move, candidate, current_decoded = chosen
        if move[0] == "swap":
            tabu[(move[2], move[1])] = iterations + tenure + rng.randint(0, 2)
        else:  # forbid moving the operation back to the machine it left
            tabu[(move[1], -1 - current.assign[move[1]])] = iterations + tenure
        current, current_value = candidate, value
        if current_value < best_value:
            best, best_decoded, best_value = current.copy(), current_decoded, current_value
            improvements += 1
            stall = 0
        else:
            stall += 1
    return TabuResult(best, best_decoded, best_value, iterations, improvements)
