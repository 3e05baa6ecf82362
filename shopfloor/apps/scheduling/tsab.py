"""A fast tabu search for the classic job shop (makespan), after Nowicki and Smutnicki's TSAB, compiled with numba.

The pure-Python tabu search (tabu.py) decodes the whole schedule for every candidate move: a few hundred moves a
second on 500 operations. Here a move is judged by an estimate instead (Balas and Vazacopoulos; for a swap it is
Taillard's): only the heads and tails of the operations between the two ends of the move are recomputed, in
their new order, and the estimate is the longest path through them. Only the move applied gets the exact heads
and tails (one topological pass), so the search runs tens of thousands of iterations a second.

Neighbourhood: N7 of Zhang et al. (2007) on one critical path: in each critical block (a run of critical
operations on one machine), an inner operation moves to the block's start or end, and the first or last
operation moves into the block; moves that keep both the block's first and last operation cannot shorten the
path and are left out (N5's rule for the first and the last block). An insertion is made only when Balas and
Vazacopoulos' condition shows it creates no cycle. Tabu list: the machine arcs a move reverses may not come back
for a random tenure; a tabu move is allowed when its estimate beats the best makespan (aspiration); when every
move is tabu, a random one is made. Back jumps: after `max_stall` iterations without a new best, the search
returns to one of the last elite (best-so-far) solutions, kicked by a few random moves, with a fresh tabu list.

The search runs in compiled chunks of iterations between which Python reads the clock, so the time limit holds
to about a chunk (a few milliseconds). The trajectory depends only on the seed (a private xorshift generator):
the same seed and the same number of iterations give the same schedule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numba
import numpy as np
import numpy.typing as npt

from shopfloor.apps.scheduling.model import Indexed
from shopfloor.apps.scheduling.sequence import Decoded, Solution, decode

IntArray = npt.NDArray[np.int64]
ELITE = 8  # back-jump targets: the last improvements of the best makespan
CHUNK_S = 0.01  # seconds of compiled search between two reads of the clock
TENURE = 10  # plus jobs per machine (Zhang et al.), drawn up to half as much again per move against cycling
STALL_PER_OP = 20  # iterations without a new best before a back jump, per operation (at least MIN_STALL)
MIN_STALL = 2000
KICKS = 4  # a back jump makes 1 to KICKS random moves

# indices of the search state vector
_IT, _CUR, _BEST, _STALL, _IMPROVED, _N_ELITE, _ELITE_HEAD, _DONE, _RESTARTS = range(9)
_STATE = 9
# indices of the parameter vector
_TENURE_MIN, _TENURE_SPAN, _MAX_STALL, _KICK, _LOWER = range(5)


def is_classic(ix: Indexed) -> bool:
    """One machine per operation, no setups, machines always available: the problem TSAB is made for.

    Release dates are allowed (they are heads of the first operations); weighted tardiness is not (makespan only).
    """
    return (all(len(opts) == 1 for opts in ix.options) and not ix.setup
            and all(a.always for a in ix.availability))


@dataclass
class TsabResult:
    solution: Solution
    decoded: Decoded
    value: float  # the makespan of `solution`
    iterations: int
    improvements: int
    restarts: int
    optimal: bool  # the makespan met the lower bound (longest job or busiest machine): nothing can be better
    lower_bound: int
    trace: list[tuple[float, float]] = field(default_factory=list)  # (seconds since the call, makespan)


# ---------------------------------------------------------------------------------------------------------- kernels


@numba.njit(cache=True, nogil=True)
def _rand(rng: npt.NDArray[np.uint64], bound: int) -> int:  # pragma: no cover - njit
    """xorshift64*: a uniform integer in [0, bound), from state that lives in the caller's array."""
    x = rng[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    rng[0] = x
    y = x * np.uint64(2685821657736338717)
    return int((y >> np.uint64(33)) % np.uint64(bound))


@numba.njit(cache=True, nogil=True)
def _heads_tails(dur: IntArray, first: IntArray, last: IntArray, rel: IntArray, mpred: IntArray, msucc: IntArray,
                 order: IntArray, indeg: IntArray, stack: IntArray, r: IntArray,
                 q: IntArray) -> int:  # pragma: no cover - njit
    """Exact heads (earliest starts) and tails (longest path after the end) in one topological pass.

    Returns the makespan, or -1 when the machine sequences contradict the routings (a cycle)."""
    n = dur.shape[0]
    top = 0
    for i in range(n):
        indeg[i] = (1 - first[i]) + (1 if mpred[i] >= 0 else 0)
        if indeg[i] == 0:
            stack[top] = i
            top += 1
    count = 0
    while top > 0:
        top -= 1
        i = stack[top]
        order[count] = i
        count += 1
        if last[i] == 0:
            indeg[i + 1] -= 1
            if indeg[i + 1] == 0:
                stack[top] = i + 1
                top += 1
        s = msucc[i]
        if s >= 0:
            indeg[s] -= 1
            if indeg[s] == 0:
                stack[top] = s
                top += 1
    if count < n:
        return -1
    for k in range(n):
        i = order[k]
        h = rel[i] if first[i] == 1 else r[i - 1] + dur[i - 1]
        p = mpred[i]
        if p >= 0 and r[p] + dur[p] > h:
            h = r[p] + dur[p]
        r[i] = h
    cmax = 0
    for k in range(n - 1, -1, -1):
        i = order[k]
        t = 0 if last[i] == 1 else q[i + 1] + dur[i + 1]
        s = msucc[i]
        if s >= 0 and q[s] + dur[s] > t:
            t = q[s] + dur[s]
        q[i] = t
        if r[i] + dur[i] + t > cmax:
            cmax = r[i] + dur[i] + t
    return cmax


@numba.njit(cache=True, nogil=True)
def _critical_path(dur: IntArray, first: IntArray, mpred: IntArray, r: IntArray, q: IntArray, cmax: int,
                   path: IntArray, rng: npt.NDArray[np.uint64]) -> int:  # pragma: no cover - njit
    """One critical path into `path` (source to sink); returns its length in operations.

    It ends at a critical operation picked from a random offset and walks back preferring machine predecessors,
    which makes the blocks, where the moves are, as long as possible."""
    n = dur.shape[0]
    offset = _rand(rng, n)
    v = -1
    for k in range(n):
        i = (offset + k) % n
        if q[i] == 0 and r[i] + dur[i] == cmax:
            v = i
            break
    length = 0
    while v >= 0:
        path[length] = v
        length += 1
        p = mpred[v]
        if p >= 0 and r[p] + dur[p] == r[v]:
            v = p
        elif first[v] == 0 and r[v - 1] + dur[v - 1] == r[v]:
            v = v - 1
        else:
            v = -1
    for k in range(length // 2):
        path[k], path[length - 1 - k] = path[length - 1 - k], path[k]
    return length


@numba.njit(cache=True, nogil=True)
def _job_head(i: int, dur: IntArray, first: IntArray, rel: IntArray, r: IntArray) -> int:  # pragma: no cover
    return int(rel[i] if first[i] == 1 else r[i - 1] + dur[i - 1])


@numba.njit(cache=True, nogil=True)
def _job_tail(i: int, dur: IntArray, last: IntArray, q: IntArray) -> int:  # pragma: no cover - njit
    return int(0 if last[i] == 1 else q[i + 1] + dur[i + 1])


@numba.njit(cache=True, nogil=True)
def _estimate(forward: bool, a: int, b: int, seq: IntArray, dur: IntArray, first: IntArray, last: IntArray,
              rel: IntArray, mpred: IntArray, msucc: IntArray, r: IntArray, q: IntArray,
              buf: IntArray) -> int:  # pragma: no cover - njit
    """Balas-Vazacopoulos estimate of the makespan after moving seq[a] just after seq[b] (forward) or seq[b]
    just before seq[a] (backward): heads and tails of the moved stretch recomputed in its new order."""
    if forward:
        u = seq[a]
        p = mpred[u]
        prev = r[p] + dur[p] if p >= 0 else 0
        for x in range(a + 1, b + 1):
            o = seq[x]
            h = max(_job_head(o, dur, first, rel, r), prev)
            buf[x - a - 1] = h
            prev = h + dur[o]
        hu = max(_job_head(u, dur, first, rel, r), prev)
        s = msucc[seq[b]]
        nxt = q[s] + dur[s] if s >= 0 else 0
        tu = max(_job_tail(u, dur, last, q), nxt)
        est = hu + dur[u] + tu
        nxt = tu + dur[u]
        for x in range(b, a, -1):
            o = seq[x]
            t = max(_job_tail(o, dur, last, q), nxt)
            if buf[x - a - 1] + dur[o] + t > est:
                est = buf[x - a - 1] + dur[o] + t
            nxt = t + dur[o]
        return int(est)
    v = seq[b]
    p = mpred[seq[a]]
    prev = r[p] + dur[p] if p >= 0 else 0
    hv = max(_job_head(v, dur, first, rel, r), prev)
    prev = hv + dur[v]
    for x in range(a, b):
        o = seq[x]
        h = max(_job_head(o, dur, first, rel, r), prev)
        buf[x - a] = h
        prev = h + dur[o]
    s = msucc[v]
    nxt = q[s] + dur[s] if s >= 0 else 0
    est = 0
    for x in range(b - 1, a - 1, -1):
        o = seq[x]
        t = max(_job_tail(o, dur, last, q), nxt)
        if buf[x - a] + dur[o] + t > est:
            est = buf[x - a] + dur[o] + t
        nxt = t + dur[o]
    tv = max(_job_tail(v, dur, last, q), nxt)
    if hv + dur[v] + tv > est:
        est = hv + dur[v] + tv
    return int(est)


@numba.njit(cache=True, nogil=True)
def _feasible(forward: bool, a: int, b: int, seq: IntArray, dur: IntArray, first: IntArray, last: IntArray,
              r: IntArray, q: IntArray) -> bool:  # pragma: no cover - njit
    """Balas and Vazacopoulos' sufficient condition for an insertion between two critical operations to be acyclic:
    u after v needs v's tail at least its job successor's; v before u needs u's end at least its job predecessor's."""
    if forward:
        u = seq[a]
        v = seq[b]
        return bool(last[u] == 1 or dur[v] + q[v] >= dur[u + 1] + q[u + 1])
    u = seq[a]
    v = seq[b]
    return bool(first[v] == 1 or r[u] + dur[u] >= r[v - 1] + dur[v - 1])


@numba.njit(cache=True, nogil=True)
def _is_tabu(forward: bool, a: int, b: int, it: int, seq: IntArray, mach: IntArray, local: IntArray,
             toff: IntArray, tcount: IntArray, tabu: IntArray) -> bool:  # pragma: no cover - njit
    """Whether the move brings back an arc (x before y on a machine) that a recent move reversed."""
    m = mach[seq[a]]
    base = toff[m]
    width = tcount[m]
    if forward:
        u = local[seq[a]]
        for x in range(a + 1, b + 1):  # noqa: SIM110 - a plain loop is what numba compiles best
            if tabu[base + local[seq[x]] * width + u] > it:
                return True
        return False
    v = local[seq[b]]
    for x in range(a, b):  # noqa: SIM110 - a plain loop is what numba compiles best
        if tabu[base + v * width + local[seq[x]]] > it:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _relink(x: int, seq: IntArray, start: int, end: int, mpred: IntArray, msucc: IntArray
            ) -> None:  # pragma: no cover - njit
    """The machine predecessor and successor of the operation at position x of its machine's [start, end)."""
    o = seq[x]
    mpred[o] = seq[x - 1] if x > start else -1
    msucc[o] = seq[x + 1] if x < end - 1 else -1


@numba.njit(cache=True, nogil=True)
def _apply(forward: bool, a: int, b: int, seq: IntArray, pos: IntArray, mach: IntArray, mstart: IntArray,
           mend: IntArray, mpred: IntArray, msucc: IntArray, local: IntArray, toff: IntArray, tcount: IntArray,
           tabu: IntArray, tabu_until: int) -> None:  # pragma: no cover - njit
    """Make the move in the machine sequence; the arcs it reverses become tabu until `tabu_until` (if positive)."""
    m = mach[seq[a]]
    base = toff[m]
    width = tcount[m]
    if forward:
        u = seq[a]
        for x in range(a, b):
            o = seq[x + 1]
            if tabu_until > 0:
                tabu[base + local[u] * width + local[o]] = tabu_until
            seq[x] = o
            pos[o] = x
        seq[b] = u
        pos[u] = b
    else:
        v = seq[b]
        for x in range(b, a, -1):
            o = seq[x - 1]
            if tabu_until > 0:
                tabu[base + local[o] * width + local[v]] = tabu_until
            seq[x] = o
            pos[o] = x
        seq[a] = v
        pos[v] = a
    for x in range(max(a - 1, mstart[m]), min(b + 1, mend[m] - 1) + 1):
        _relink(x, seq, mstart[m], mend[m], mpred, msucc)


@numba.njit(cache=True, nogil=True)
def _choose(dur: IntArray, first: IntArray, last: IntArray, rel: IntArray, mach: IntArray, seq: IntArray,
            pos: IntArray, mpred: IntArray, msucc: IntArray, r: IntArray, q: IntArray, path: IntArray,
            length: int, buf: IntArray, local: IntArray, toff: IntArray, tcount: IntArray, tabu: IntArray,
            it: int, best: int, at_random: bool, rng: npt.NDArray[np.uint64],
            out: IntArray) -> int:  # pragma: no cover - njit
    """Pick a move of N7 on the critical path into out = (forward, a, b).

    Returns 1 for a move that is not tabu (or beats `best`), 2 for a random tabu one when every move is tabu
    (or, with at_random, any random acyclic move), 0 when the path has no block with two operations."""
    best_est = -1
    n_best = 0
    n_any = 0
    n_blocks = 0
    for k in range(1, length + 1):
        if k == length or path[k] != msucc[path[k - 1]]:
            n_blocks += 1
    block = 0
    k0 = 0
    for k in range(1, length + 1):
        if k < length and path[k] == msucc[path[k - 1]]:
            continue
        pa = pos[path[k0]]
        pb = pos[path[k - 1]]
        k0 = k
        is_first = block == 0
        is_last = block == n_blocks - 1
        block += 1
        size = pb - pa
        if size < 1:
            continue
        # the moves: 0..size-2 inner op to the front, then inner op to the end, first op after each other,
        # last op before each other
        n_moves = 2 * (size - 1) + size + size
        for mv in range(n_moves):
            if mv < size - 1:
                forward, a, b = False, pa, pa + 1 + mv
            elif mv < 2 * (size - 1):
                forward, a, b = True, pa + 1 + (mv - (size - 1)), pb
            elif mv < 2 * (size - 1) + size:
                forward, a, b = True, pa, pa + 1 + (mv - 2 * (size - 1))
            else:
                i = mv - 2 * (size - 1) - size
                if size == 1:
                    continue  # the same swap as the first op after the second
                forward, a, b = False, pa + i, pb
            changes_first = a == pa
            changes_last = b == pb
            # every move here changes the block's first or last operation; the first block of several must
            # change its last one, the last block its first one, or the path keeps its length
            if (is_first and not is_last and not changes_last) or (is_last and not is_first and not changes_first):
                continue
            if not _feasible(forward, a, b, seq, dur, first, last, r, q):
                continue
            n_any += 1
            if at_random:
                if _rand(rng, n_any) == 0:
                    out[0] = 1 if forward else 0
                    out[1] = a
                    out[2] = b
                continue
            est = _estimate(forward, a, b, seq, dur, first, last, rel, mpred, msucc, r, q, buf)
            if est >= best and _is_tabu(forward, a, b, it, seq, mach, local, toff, tcount, tabu):
                if n_best == 0 and _rand(rng, n_any) == 0:
                    out[0] = 1 if forward else 0
                    out[1] = a
                    out[2] = b
                continue
            if n_best == 0 or est < best_est:
                best_est = est
                n_best = 1
            elif est == best_est:
                n_best += 1
                if _rand(rng, n_best) != 0:
                    continue
            else:
                continue
            out[0] = 1 if forward else 0
            out[1] = a
            out[2] = b
    if n_any == 0:
        return 0
    if at_random or n_best == 0:
        return 2
    return 1


@numba.njit(cache=True, nogil=True)
def _load(src: IntArray, seq: IntArray, pos: IntArray, mach: IntArray, mstart: IntArray, mend: IntArray,
          mpred: IntArray, msucc: IntArray) -> None:  # pragma: no cover - njit
    n = seq.shape[0]
    for x in range(n):
        seq[x] = src[x]
        pos[src[x]] = x
    for x in range(n):
        m = mach[seq[x]]
        _relink(x, seq, mstart[m], mend[m], mpred, msucc)


@numba.njit(cache=True, nogil=True)
def _search(dur: IntArray, first: IntArray, last: IntArray, rel: IntArray, mach: IntArray, mstart: IntArray,
            mend: IntArray, local: IntArray, toff: IntArray, tcount: IntArray, tabu: IntArray, seq: IntArray,
            pos: IntArray, mpred: IntArray, msucc: IntArray, r: IntArray, q: IntArray, order: IntArray,
            indeg: IntArray, stack: IntArray, path: IntArray, buf: IntArray, best_seq: IntArray, elite: IntArray,
            state: IntArray, params: IntArray, rng: npt.NDArray[np.uint64],
            iterations: int) -> None:  # pragma: no cover - njit
    """Run up to `iterations` iterations of the search; everything it needs to go on later stays in the arrays."""
    out = np.zeros(3, np.int64)
    for _ in range(iterations):
        if state[_DONE] == 1:
            return
        if state[_STALL] >= params[_MAX_STALL] and state[_N_ELITE] > 0:
            # back jump: an elite solution, kicked by a few random moves, with a fresh tabu list
            state[_RESTARTS] += 1
            state[_STALL] = 0
            pick = (state[_ELITE_HEAD] - 1 - _rand(rng, state[_N_ELITE])) % elite.shape[0]
            _load(elite[pick], seq, pos, mach, mstart, mend, mpred, msucc)
            tabu[:] = 0
            cmax = _heads_tails(dur, first, last, rel, mpred, msucc, order, indeg, stack, r, q)
            kicks = 1 + _rand(rng, params[_KICK])
            for _k in range(kicks):
                length = _critical_path(dur, first, mpred, r, q, cmax, path, rng)
                if _choose(dur, first, last, rel, mach, seq, pos, mpred, msucc, r, q, path, length, buf, local,
                           toff, tcount, tabu, 0, 0, True, rng, out) == 0:
                    break
                forward = out[0] == 1
                _apply(forward, out[1], out[2], seq, pos, mach, mstart, mend, mpred, msucc, local, toff, tcount,
                       tabu, 0)
                cmax = _heads_tails(dur, first, last, rel, mpred, msucc, order, indeg, stack, r, q)
                if cmax < 0:  # cannot happen after an acyclic insertion; undo rather than trust it
                    _apply(not forward, out[1], out[2], seq, pos, mach, mstart, mend, mpred, msucc, local, toff,
                           tcount, tabu, 0)
                    cmax = _heads_tails(dur, first, last, rel, mpred, msucc, order, indeg, stack, r, q)
            state[_CUR] = cmax
        state[_IT] += 1
        it = state[_IT]
        cmax = state[_CUR]
        length = _critical_path(dur, first, mpred, r, q, cmax, path, rng)
        kind = _choose(dur, first, last, rel, mach, seq, pos, mpred, msucc, r, q, path, length, buf, local, toff,
                       tcount, tabu, it, state[_BEST], False, rng, out)
        if kind == 0:  # the critical path is one job's routing: this schedule is optimal
            state[_DONE] = 1
            return
        forward = out[0] == 1
        tenure = params[_TENURE_MIN] + _rand(rng, params[_TENURE_SPAN] + 1)
        _apply(forward, out[1], out[2], seq, pos, mach, mstart, mend, mpred, msucc, local, toff, tcount, tabu,
               it + tenure)
        cmax = _heads_tails(dur, first, last, rel, mpred, msucc, order, indeg, stack, r, q)
        if cmax < 0:
            _apply(not forward, out[1], out[2], seq, pos, mach, mstart, mend, mpred, msucc, local, toff, tcount,
                   tabu, 0)
            cmax = _heads_tails(dur, first, last, rel, mpred, msucc, order, indeg, stack, r, q)
        state[_CUR] = cmax
        if cmax < state[_BEST]:
            state[_BEST] = cmax
            state[_IMPROVED] += 1
            state[_STALL] = 0
            best_seq[:] = seq
            elite[state[_ELITE_HEAD]] = seq
            state[_ELITE_HEAD] = (state[_ELITE_HEAD] + 1) % elite.shape[0]
            state[_N_ELITE] = min(state[_N_ELITE] + 1, elite.shape[0])
            if cmax <= params[_LOWER]:
                state[_DONE] = 1
                return
        else:
            state[_STALL] += 1


# ----------------------------------------------------------------------------------------------------------- driver


def lower_bound(ix: Indexed) -> int:
    """The longest job (from its release) and the busiest machine: no schedule ends before either."""
    jobs = max(ix.release[j] + sum(ix.options[i][0][1] for i in ops) for j, ops in enumerate(ix.job_ops))
    load = [0] * len(ix.machine_ids)
    for opts in ix.options:
        load[opts[0][0]] += opts[0][1]
    return max(jobs, max(load))


_compiled = False


def warm_up() -> None:
    """Compile the kernels (or load them from numba's cache), once per process.

    The first compilation takes several seconds and loading the cache most of a second: solve() does it before
    its clock starts, so that a time limit measures the search, not numba."""
    global _compiled
    if _compiled:
        return
    from shopfloor.apps.scheduling.model import Job, Machine, Operation, Option, Problem

    problem = Problem(machines=[Machine(id="a"), Machine(id="b")], jobs=[
        Job(id="j1", operations=[Operation(options=[Option(machine="a", duration=2)]),
                                 Operation(options=[Option(machine="b", duration=1)])]),
        Job(id="j2", operations=[Operation(options=[Option(machine="b", duration=2)]),
                                 Operation(options=[Option(machine="a", duration=1)])])])
    ix = Indexed.of(problem)
    tsab(ix, Solution([0, 1, 1, 0], [[3, 0], [2, 1]]), time_limit=60.0, max_iterations=10)  # 6, not optimal
    _compiled = True


def tsab(
    ix: Indexed,
    start: Solution,
    time_limit: float = 1.0,
    seed: int = 0,
    max_iterations: int | None = None,
    max_stall: int | None = None,
    target: int | None = None,
) -> TsabResult:
    """Shorten the makespan of `start` (a classic job shop's machine sequences) until time_limit seconds pass,
    max_iterations are done, the lower bound (or `target`) is met, or the schedule is provably optimal."""
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    if not is_classic(ix):
        raise ValueError("tsab needs a classic job shop: one machine per operation, no setups, no calendars")
    n = ix.n_ops
    if sorted(op for s in start.seqs for op in s) != list(range(n)):
        raise ValueError("the machine sequences must hold every operation exactly once")
    for m, s in enumerate(start.seqs):
        if any(ix.options[op][0][0] != m for op in s):
            raise ValueError(f"machine {ix.machine_ids[m]}'s sequence holds an operation of another machine")
    decoded = decode(ix, start)
    if decoded is None:
        raise ValueError("the starting solution has a cycle")
    dur = np.array([opts[0][1] for opts in ix.options], np.int64)
    mach = np.array([opts[0][0] for opts in ix.options], np.int64)
    first = np.array([int(p == 0) for p in ix.op_pos], np.int64)
    last = np.zeros(n, np.int64)
    for ops in ix.job_ops:
        last[ops[-1]] = 1
    rel = np.array([ix.release[ix.op_job[i]] if ix.op_pos[i] == 0 else 0 for i in range(n)], np.int64)
    lengths = [len(s) for s in start.seqs]
    mstart = np.cumsum([0, *lengths[:-1]]).astype(np.int64)
    mend = mstart + np.array(lengths, np.int64)
    src = np.array([op for s in start.seqs for op in s], np.int64)
    local = np.zeros(n, np.int64)
    for s in start.seqs:
        for k, op in enumerate(s):
            local[op] = k
    tcount = np.array(lengths, np.int64)
    toff = np.cumsum([0, *[c * c for c in lengths[:-1]]]).astype(np.int64)
    tabu = np.zeros(int(sum(c * c for c in lengths)), np.int64)
    seq = np.zeros(n, np.int64)
    pos = np.zeros(n, np.int64)
    mpred = np.zeros(n, np.int64)
    msucc = np.zeros(n, np.int64)
    r = np.zeros(n, np.int64)
    q = np.zeros(n, np.int64)
    order = np.zeros(n, np.int64)
    indeg = np.zeros(n, np.int64)
    stack = np.zeros(n, np.int64)
    path = np.zeros(n, np.int64)
    buf = np.zeros(max(lengths) + 1, np.int64)
    _load(src, seq, pos, mach, mstart, mend, mpred, msucc)
    cmax = _heads_tails(dur, first, last, rel, mpred, msucc, order, indeg, stack, r, q)
    if cmax < 0:  # decode said otherwise: the arrays were built wrong
        raise AssertionError("tsab's start has a cycle that decode did not see")
    best_seq = seq.copy()
    elite = np.zeros((ELITE, n), np.int64)
    elite[0] = seq  # a back jump before any improvement returns to the start
    lb = lower_bound(ix)
    state = np.zeros(_STATE, np.int64)
    state[_CUR] = state[_BEST] = cmax
    state[_N_ELITE] = state[_ELITE_HEAD] = 1
    n_jobs, n_machines = len(ix.job_ops), len(ix.machine_ids)
    tenure = TENURE + n_jobs // max(1, n_machines)
    stall = max_stall if max_stall is not None else max(MIN_STALL, STALL_PER_OP * n)
    params = np.array([tenure, tenure // 2, stall, KICKS, max(lb, target or 0)], np.int64)
    mixed = (seed * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) % 2**64  # xorshift needs a state other than 0
    rng = np.array([mixed or 1], np.uint64)
    if cmax <= params[_LOWER]:
        state[_DONE] = 1
    trace = [(time.perf_counter() - t0, float(cmax))]
    chunk = 16
    remaining = max_iterations if max_iterations is not None else -1
    while state[_DONE] == 0 and remaining != 0:
        now = time.perf_counter()
        if now >= deadline:
            break
        step = chunk if remaining < 0 else min(chunk, remaining)
        _search(dur, first, last, rel, mach, mstart, mend, local, toff, tcount, tabu, seq, pos, mpred, msucc, r, q,
                order, indeg, stack, path, buf, best_seq, elite, state, params, rng, step)
        if remaining > 0:
            remaining -= step
        spent = time.perf_counter() - now
        if state[_BEST] < trace[-1][1]:
            trace.append((time.perf_counter() - t0, float(state[_BEST])))
        # aim each chunk at CHUNK_S, never past the deadline
        left = deadline - time.perf_counter()
        per_it = max(spent, 1e-6) / step
        chunk = int(max(1, min(4 * chunk, min(CHUNK_S, max(left, 0.0)) / per_it)))
    seqs: list[list[int]] = [[int(op) for op in best_seq[mstart[m]:mend[m]]] for m in range(n_machines)]
    solution = Solution(list(start.assign), seqs)
    best_decoded = decode(ix, solution)
    if best_decoded is None or max(best_decoded.end) != state[_BEST]:
        raise AssertionError("tsab's best sequences do not decode to its makespan")
    value = int(state[_BEST])
    return TsabResult(solution=solution, decoded=best_decoded, value=float(value), iterations=int(state[_IT]),
                      improvements=int(state[_IMPROVED]), restarts=int(state[_RESTARTS]), optimal=value <= lb,
                      lower_bound=lb, trace=trace)
