"""LaCAM (Okumura, AAAI 2023) with PIBT as its configuration generator, compiled with numba.

LaCAM searches over configurations (one vertex per agent). Each high-level node keeps a queue of
low-level constraint chains ("agent i goes to v", one more agent per level, in the node's priority
order); every time the node is visited it pops one chain and asks PIBT for a successor configuration
that obeys it. Because the chains eventually enumerate every successor, the search is complete: it
finds a solution when one exists, or reports none after exhausting the reachable configurations.

PIBT carries the swap rule of lacam3 (Okumura, AAMAS 2024): two agents that face each other in a
corridor where pushing cannot let them pass go back to the nearest branch together and swap there.
Without it PIBT livelocks in the warehouse's 1-wide aisles; with it, PIBT usually reaches the goals in one
straight run, which is why hundreds of agents solve in well under a second.

The search state lives in NumPy arrays owned by ``LacamSearch``; ``_run`` advances it for a bounded
number of iterations and returns, so Python keeps the clock (numba has none) and grows arrays on demand.
"""

from __future__ import annotations

import time
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from shopfloor.apps.warehouse.mapf.grid import GridGraph

# _run status codes
FOUND, CONTINUE, EXHAUSTED, GROW_HIGH, GROW_LOW, GROW_OPEN, GROW_HASH = range(7)
# meta slots
M_NHIGH, M_NLOW, M_OPEN, M_HASHCOUNT, M_RNG, M_ITERS, M_RESULT = range(7)
_NONE = np.int32(-1)


@numba.njit(cache=True, nogil=True)
def _rand(meta: NDArray[np.int64]) -> int:
    """xorshift64*, state in meta[M_RNG]; returns a non-negative 62-bit integer."""
    x = meta[M_RNG]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    meta[M_RNG] = x
    return int((x * np.int64(2685821657736338717)) >> 2 & np.int64(0x0FFFFFFFFFFFFFFF))


@numba.njit(cache=True, nogil=True)
def _hash(config: NDArray[np.int32]) -> np.uint64:
    h = np.uint64(14695981039346656037)
    prime = np.uint64(1099511628211)
    for k in range(config.shape[0]):
        h ^= np.uint64(config[k])
        h *= prime
        h ^= h >> np.uint64(29)
    return h


@numba.njit(cache=True, nogil=True)
def _hash_find(keys: NDArray[np.uint64], vals: NDArray[np.int32], configs: NDArray[np.int32],
               config: NDArray[np.int32], h: np.uint64) -> int:
    mask = np.int64(keys.shape[0] - 1)
    slot = np.int64(h & np.uint64(mask))
    while vals[slot] != -1:
        if keys[slot] == h:
            node = vals[slot]
            same = True
            for k in range(config.shape[0]):
                if configs[node, k] != config[k]:
                    same = False
                    break
            if same:
                return int(node)
        slot = (slot + 1) & mask
    return -1


@numba.njit(cache=True, nogil=True)
def _hash_insert(keys: NDArray[np.uint64], vals: NDArray[np.int32], h: np.uint64, node: int) -> None:
    mask = np.int64(keys.shape[0] - 1)
    slot = np.int64(h & np.uint64(mask))
    while vals[slot] != -1:
        slot = (slot + 1) & mask
    keys[slot] = h
    vals[slot] = node


@numba.njit(cache=True, nogil=True)
def _rehash(keys: NDArray[np.uint64], vals: NDArray[np.int32], new_keys: NDArray[np.uint64],
            new_vals: NDArray[np.int32]) -> None:
    for s in range(keys.shape[0]):
        if vals[s] != -1:
            _hash_insert(new_keys, new_vals, keys[s], vals[s])


@numba.njit(cache=True, nogil=True)
def _free_exits(v: int, came_from: int, occ_now: NDArray[np.int32], neighbors: NDArray[np.int32],
                degree: NDArray[np.int32], goals: NDArray[np.int32]) -> tuple[int, int]:
    """Neighbours of ``v`` other than ``came_from`` and dead ends held by an agent at its goal: (count, one)."""
    count, other = 0, -1
    for k in range(degree[v]):
        u = neighbors[v, k]
        a = occ_now[u]
        if u == came_from or (degree[u] == 1 and a != -1 and goals[a] == u):
            continue
        count += 1
        other = u
    return count, other


@numba.njit(cache=True, nogil=True)
def _swap_required(pusher: int, puller: int, v_pusher: int, v_puller: int, occ_now: NDArray[np.int32],
                   neighbors: NDArray[np.int32], degree: NDArray[np.int32], dist: NDArray[np.int32],
                   goals: NDArray[np.int32]) -> bool:
    """Whether ``pusher`` and ``puller`` face each other in a corridor where pushing alone cannot pass."""
    steps = 0
    while dist[pusher, v_puller] < dist[pusher, v_pusher] and steps < neighbors.shape[0]:
        steps += 1
        count, other = _free_exits(v_puller, v_pusher, occ_now, neighbors, degree, goals)
        if count >= 2:
            return False  # a branch: the two can pass each other there
        if count <= 0:
            break
        v_pusher, v_puller = v_puller, other
    return bool(dist[puller, v_pusher] < dist[puller, v_puller] and (
        dist[pusher, v_pusher] == 0 or dist[pusher, v_puller] < dist[pusher, v_pusher]))


@numba.njit(cache=True, nogil=True)
def _swap_possible(v_pusher0: int, v_puller0: int, occ_now: NDArray[np.int32], neighbors: NDArray[np.int32],
                   degree: NDArray[np.int32], goals: NDArray[np.int32]) -> bool:
    """Whether pulling backwards reaches a branch where the two agents can swap."""
    v_pusher, v_puller = v_pusher0, v_puller0
    steps = 0
    while v_puller != v_pusher0 and steps < neighbors.shape[0]:
        steps += 1
        count, other = _free_exits(v_puller, v_pusher, occ_now, neighbors, degree, goals)
        if count >= 2:
            return True
        if count <= 0:
            return False
        v_pusher, v_puller = v_puller, other
    return False


@numba.njit(cache=True, nogil=True)
def _swap_partner(i: int, q_from: NDArray[np.int32], q_to: NDArray[np.int32], occ_now: NDArray[np.int32],
                  neighbors: NDArray[np.int32], degree: NDArray[np.int32], dist: NDArray[np.int32],
                  goals: NDArray[np.int32], best: int) -> int:
    """The agent ``i`` should swap places with (Okumura's PIBT swap, after push and swap), or -1."""
    j = occ_now[best]
    if (j != -1 and j != i and q_to[j] == -1
            and _swap_required(i, j, q_from[i], q_from[j], occ_now, neighbors, degree, dist, goals)
            and _swap_possible(q_from[j], q_from[i], occ_now, neighbors, degree, goals)):
        return int(j)
    if best != q_from[i]:  # clear the way for an agent behind i
        v = q_from[i]
        for k in range(degree[v]):
            a = occ_now[neighbors[v, k]]
            if (a != -1 and best != q_from[a]
                    and _swap_required(a, i, v, best, occ_now, neighbors, degree, dist, goals)
                    and _swap_possible(best, v, occ_now, neighbors, degree, goals)):
                return int(a)
    return -1


@numba.njit(cache=True, nogil=True)
def _pibt(i: int, q_from: NDArray[np.int32], q_to: NDArray[np.int32], occ_now: NDArray[np.int32],
          occ_next: NDArray[np.int32], neighbors: NDArray[np.int32], degree: NDArray[np.int32],
          dist: NDArray[np.int32], goals: NDArray[np.int32], cand: NDArray[np.int32], keys: NDArray[np.float64],
          meta: NDArray[np.int64]) -> bool:
    """PIBT for agent ``i``: move greedily towards the goal, lending priority to the agent in the way."""
    v = q_from[i]
    k_n = degree[v] + 1
    for k in range(degree[v]):
        cand[i, k] = neighbors[v, k]
        u = neighbors[v, k]
        keys[k] = dist[i, u] + (_rand(meta) & 0xFFFF) / 65536.0 * 0.25
        j = occ_now[u]
        if j != -1:  # among equals, avoid pushing agents, above all those resting at their goals
            keys[k] += 0.5 if goals[j] == u else 0.25
    cand[i, k_n - 1] = v
    keys[k_n - 1] = dist[i, v] + 0.9  # staying loses ties with moving
    for a in range(1, k_n):  # insertion sort of at most 5 candidates
        c, kk = cand[i, a], keys[a]
        b = a - 1
        while b >= 0 and keys[b] > kk:
            cand[i, b + 1] = cand[i, b]
            keys[b + 1] = keys[b]
            b -= 1
        cand[i, b + 1] = c
        keys[b + 1] = kk
    partner = _swap_partner(i, q_from, q_to, occ_now, neighbors, degree, dist, goals, cand[i, 0])
    if partner != -1:  # go the other way first and pull the partner along
        for a in range(k_n // 2):
            cand[i, a], cand[i, k_n - 1 - a] = cand[i, k_n - 1 - a], cand[i, a]
    for k in range(k_n):
        u = cand[i, k]
        if occ_next[u] != -1:
            continue
        j = occ_now[u]
        if j != -1 and q_to[j] == v:  # would swap with j
            continue
        occ_next[u] = i
        q_to[i] = u
        if j != -1 and u != v and q_to[j] == -1 and not _pibt(j, q_from, q_to, occ_now, occ_next, neighbors,
                                                              degree, dist, goals, cand, keys, meta):
            continue
        if k == 0 and partner != -1 and q_to[partner] == -1 and occ_next[v] == -1:
            occ_next[v] = partner
            q_to[partner] = v
        return True
    occ_next[v] = i
    q_to[i] = v
    return False


@numba.njit(cache=True, nogil=True)
def _generate(h: int, low: int, goals: NDArray[np.int32], configs: NDArray[np.int32], order: NDArray[np.int32],
              q_to: NDArray[np.int32],
              occ_now: NDArray[np.int32], occ_next: NDArray[np.int32], l_parent: NDArray[np.int32],
              l_who: NDArray[np.int32], l_where: NDArray[np.int32], l_depth: NDArray[np.int32],
              neighbors: NDArray[np.int32], degree: NDArray[np.int32], dist: NDArray[np.int32],
              cand: NDArray[np.int32], keys: NDArray[np.float64], meta: NDArray[np.int64]) -> bool:
    """Successor of high-level node ``h`` obeying low-level chain ``low`` into ``q_to``; False if none."""
    n = q_to.shape[0]
    q_from = configs[h]
    for i in range(n):
        q_to[i] = -1
        occ_now[q_from[i]] = i
    ok = True
    node = low
    while node != -1 and l_depth[node] > 0:
        i, v = l_who[node], l_where[node]
        if occ_next[v] != -1:
            ok = False
            break
        j = occ_now[v]
        if j != -1 and q_to[j] == q_from[i]:
            ok = False
            break
        q_to[i] = v
        occ_next[v] = i
        node = l_parent[node]
    if ok:
        for k in range(n):
            i = order[h, k]
            if q_to[i] == -1 and not _pibt(i, q_from, q_to, occ_now, occ_next, neighbors, degree, dist, goals,
                                           cand, keys, meta):
                ok = False
                break
    for i in range(n):
        occ_now[q_from[i]] = -1
        if q_to[i] != -1:
            occ_next[q_to[i]] = -1
    return ok


@numba.njit(cache=True, nogil=True)
def _new_low(parent: int, who: int, where: int, depth: int, owner: int, l_parent: NDArray[np.int32],
             l_who: NDArray[np.int32], l_where: NDArray[np.int32], l_depth: NDArray[np.int32],
             l_next: NDArray[np.int32], q_head: NDArray[np.int32], q_tail: NDArray[np.int32],
             meta: NDArray[np.int64]) -> None:
    """Append a low-level node to the queue of high-level node ``owner``."""
    node = meta[M_NLOW]
    meta[M_NLOW] += 1
    l_parent[node], l_who[node], l_where[node], l_depth[node], l_next[node] = parent, who, where, depth, -1
    if q_tail[owner] == -1:
        q_head[owner] = node
    else:
        l_next[q_tail[owner]] = node
    q_tail[owner] = node


@numba.njit(cache=True, nogil=True)
def _set_priorities(h: int, parent: int, configs: NDArray[np.int32], prio: NDArray[np.float64],
                    order: NDArray[np.int32], dist: NDArray[np.int32]) -> None:
    """PIBT-style priorities: +1 per step away from the goal, back to the fraction at the goal."""
    n = configs.shape[1]
    for i in range(n):
        d = dist[i, configs[h, i]]
        if parent == -1:
            prio[h, i] = d / n
        elif d != 0:
            prio[h, i] = prio[parent, i] + 1.0
        else:
            prio[h, i] = prio[parent, i] - np.floor(prio[parent, i])
    order[h] = np.argsort(-prio[h], kind="mergesort").astype(np.int32)


@numba.njit(cache=True, nogil=True)
def _run(max_iters: int, goals: NDArray[np.int32], neighbors: NDArray[np.int32], degree: NDArray[np.int32],
         dist: NDArray[np.int32], configs: NDArray[np.int32], prio: NDArray[np.float64], order: NDArray[np.int32],
         h_parent: NDArray[np.int32], q_head: NDArray[np.int32], q_tail: NDArray[np.int32],
         l_parent: NDArray[np.int32], l_who: NDArray[np.int32], l_where: NDArray[np.int32],
         l_depth: NDArray[np.int32], l_next: NDArray[np.int32], open_stack: NDArray[np.int32],
         hash_keys: NDArray[np.uint64], hash_vals: NDArray[np.int32], q_to: NDArray[np.int32],
         occ_now: NDArray[np.int32], occ_next: NDArray[np.int32], cand: NDArray[np.int32],
         keys: NDArray[np.float64], shuffle: NDArray[np.int32], meta: NDArray[np.int64]) -> int:
    """Advance the LaCAM search by up to ``max_iters`` iterations; returns a status code."""
    n = goals.shape[0]
    for _ in range(max_iters):
        # room for one more high-level node and its low-level nodes, checked before touching anything
        if meta[M_NHIGH] + 1 > configs.shape[0]:
            return GROW_HIGH
        if meta[M_NLOW] + 7 > l_parent.shape[0]:
            return GROW_LOW
        if meta[M_OPEN] + 1 > open_stack.shape[0]:
            return GROW_OPEN
        if 2 * (meta[M_HASHCOUNT] + 1) > hash_keys.shape[0]:
            return GROW_HASH
        if meta[M_OPEN] == 0:
            return EXHAUSTED
        meta[M_ITERS] += 1
        h = open_stack[meta[M_OPEN] - 1]
        at_goal = True
        for i in range(n):
            if configs[h, i] != goals[i]:
                at_goal = False
                break
        if at_goal:
            meta[M_RESULT] = h
            return FOUND
        low = q_head[h]
        if low == -1:
            meta[M_OPEN] -= 1
            continue
        q_head[h] = l_next[low]
        if q_head[h] == -1:
            q_tail[h] = -1
        depth = l_depth[low]
        if depth < n:
            i = order[h, depth]
            v = configs[h, i]
            k_n = degree[v] + 1
            for k in range(degree[v]):
                shuffle[k] = neighbors[v, k]
            shuffle[k_n - 1] = v
            for k in range(k_n - 1, 0, -1):
                r = _rand(meta) % (k + 1)
                shuffle[k], shuffle[r] = shuffle[r], shuffle[k]
            for k in range(k_n):
                _new_low(low, i, shuffle[k], depth + 1, h, l_parent, l_who, l_where, l_depth, l_next, q_head,
                         q_tail, meta)
        if not _generate(h, low, goals, configs, order, q_to, occ_now, occ_next, l_parent, l_who, l_where, l_depth,
                         neighbors, degree, dist, cand, keys, meta):
            continue
        hv = _hash(q_to)
        known = _hash_find(hash_keys, hash_vals, configs, q_to, hv)
        if known != -1:
            open_stack[meta[M_OPEN]] = known  # LaCAM: revisit the known node
            meta[M_OPEN] += 1
            continue
        new = meta[M_NHIGH]
        meta[M_NHIGH] += 1
        configs[new] = q_to
        h_parent[new] = h
        q_head[new] = -1
        q_tail[new] = -1
        _set_priorities(new, h, configs, prio, order, dist)
        _new_low(-1, -1, -1, 0, new, l_parent, l_who, l_where, l_depth, l_next, q_head, q_tail, meta)
        _hash_insert(hash_keys, hash_vals, hv, new)
        meta[M_HASHCOUNT] += 1
        open_stack[meta[M_OPEN]] = new
        meta[M_OPEN] += 1
    return CONTINUE


def _grown(a: NDArray[Any], fill: int | None = None) -> NDArray[Any]:
    out = np.empty((a.shape[0] * 2, *a.shape[1:]), dtype=a.dtype)
    out[:a.shape[0]] = a
    if fill is not None:
        out[a.shape[0]:] = fill
    return out


class LacamSearch:
    """One LaCAM search from ``starts`` to ``goals`` on ``graph``; ``run`` returns the configurations."""

    CHUNK = 2000  # iterations between clock checks

    def __init__(self, graph: GridGraph, starts: NDArray[np.int32], goals: NDArray[np.int32],
                 dist: NDArray[np.int32], seed: int = 0) -> None:
        n, nv = len(starts), graph.num_vertices
        self.goals = np.ascontiguousarray(goals, dtype=np.int32)
        self.neighbors, self.degree, self.dist = graph.neighbors, graph.degree, dist
        cap_h, cap_l = 256, 4096
        self.configs = np.empty((cap_h, n), dtype=np.int32)
        self.prio = np.empty((cap_h, n), dtype=np.float64)
        self.order = np.empty((cap_h, n), dtype=np.int32)
        self.h_parent = np.empty(cap_h, dtype=np.int32)
        self.q_head = np.empty(cap_h, dtype=np.int32)
        self.q_tail = np.empty(cap_h, dtype=np.int32)
        self.l_parent = np.empty(cap_l, dtype=np.int32)
        self.l_who = np.empty(cap_l, dtype=np.int32)
        self.l_where = np.empty(cap_l, dtype=np.int32)
        self.l_depth = np.empty(cap_l, dtype=np.int32)
        self.l_next = np.empty(cap_l, dtype=np.int32)
        self.open_stack = np.empty(1024, dtype=np.int32)
        self.hash_keys = np.zeros(1024, dtype=np.uint64)
        self.hash_vals = np.full(1024, -1, dtype=np.int32)
        self.q_to = np.empty(n, dtype=np.int32)
        self.occ_now = np.full(nv, -1, dtype=np.int32)
        self.occ_next = np.full(nv, -1, dtype=np.int32)
        self.cand = np.empty((n, 5), dtype=np.int32)
        self.keys = np.empty(5, dtype=np.float64)
        self.shuffle = np.empty(5, dtype=np.int32)
        self.meta = np.zeros(8, dtype=np.int64)
        self.meta[M_RNG] = (seed * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) & 0x7FFFFFFFFFFFFFFF or 1
        # the root node
        self.configs[0] = starts
        self.h_parent[0] = -1
        self.q_head[0] = self.q_tail[0] = -1
        _set_priorities(0, -1, self.configs, self.prio, self.order, self.dist)
        _new_low(-1, -1, -1, 0, 0, self.l_parent, self.l_who, self.l_where, self.l_depth, self.l_next,
                 self.q_head, self.q_tail, self.meta)
        _hash_insert(self.hash_keys, self.hash_vals, np.uint64(_hash(self.configs[0])), 0)
        self.meta[M_NHIGH] = 1
        self.meta[M_HASHCOUNT] = 1
        self.open_stack[0] = 0
        self.meta[M_OPEN] = 1

    @property
    def high_nodes(self) -> int:
        return int(self.meta[M_NHIGH])

    @property
    def iterations(self) -> int:
        return int(self.meta[M_ITERS])

    def run(self, deadline: float) -> NDArray[np.int32] | bool | None:
        """Search until ``deadline`` (time.perf_counter()); the (T+1, N) configurations, None if there is no
        solution, or False if the deadline came first."""
        while True:
            status = _run(self.CHUNK, self.goals, self.neighbors, self.degree, self.dist, self.configs, self.prio,
                          self.order, self.h_parent, self.q_head, self.q_tail, self.l_parent, self.l_who,
                          self.l_where, self.l_depth, self.l_next, self.open_stack, self.hash_keys, self.hash_vals,
                          self.q_to, self.occ_now, self.occ_next, self.cand, self.keys, self.shuffle, self.meta)
            if status == FOUND:
                return self._backtrack(int(self.meta[M_RESULT]))
            if status == EXHAUSTED:
                return None
            if status == GROW_HIGH:
                for name in ("configs", "prio", "order", "h_parent", "q_head", "q_tail"):
                    setattr(self, name, _grown(getattr(self, name)))
            elif status == GROW_LOW:
                for name in ("l_parent", "l_who", "l_where", "l_depth", "l_next"):
                    setattr(self, name, _grown(getattr(self, name)))
            elif status == GROW_OPEN:
                self.open_stack = _grown(self.open_stack)
            elif status == GROW_HASH:
                keys = np.zeros(self.hash_keys.shape[0] * 2, dtype=np.uint64)
                vals = np.full(self.hash_keys.shape[0] * 2, -1, dtype=np.int32)
                _rehash(self.hash_keys, self.hash_vals, keys, vals)
                self.hash_keys, self.hash_vals = keys, vals
            if time.perf_counter() > deadline:
                return False

    def _backtrack(self, node: int) -> NDArray[np.int32]:
        chain = []
        while node != -1:
            chain.append(node)
            node = int(self.h_parent[node])
        return np.ascontiguousarray(self.configs[np.array(chain[::-1], dtype=np.int64)])
