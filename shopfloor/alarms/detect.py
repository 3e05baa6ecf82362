"""Rules compiled to arrays, and their raw conditions found a batch at a time with NumPy.

Limit levels, rate limits, state membership and the state tags of designed
suppression are all "slots": one row of parallel arrays (tag, kind, threshold,
deadband, target). A batch is sorted by (tag, time), each sample is paired with
its tag's slots, and the hysteresis (set above the limit, reset below limit -
deadband, hold in between) is a segmented forward fill: no Python per sample.
Only the edges (raw condition changes) become Python objects. Stuck-value rules
and expressions are few and work per rule, each a handful of array operations.

A target is an alarm (index < n_alarms) or a suppressor (after them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shopfloor.alarms.config import (
    ExpressionRule,
    LimitRule,
    RateRule,
    RuleBase,
    StateRule,
    StuckRule,
    SuppressionConfig,
)
from shopfloor.alarms.expression import Expression, parse_expression
from shopfloor.core.model import AssetModel, TagIndex
from shopfloor.core.samples import Quality, SampleBatch

HIGH, LOW, MEMBER = 0, 1, 2
SRC_VALUE, SRC_RATE, SRC_NEG_RATE, SRC_ABS_RATE = 0, 1, 2, 3
NEVER = np.iinfo(np.int64).min
_CODE_OFFSET = 2**31


@dataclass(frozen=True)
class AlarmDef:
    """One alarm a rule raises (a limit rule raises one per level)."""

    alarm_id: str
    rule: str
    rule_type: str
    level: str | None
    priority: str
    message: str
    tags: tuple[str, ...]
    on_ns: int
    off_ns: int

    def describe(self) -> dict[str, object]:
        return {
            "id": self.alarm_id, "rule": self.rule, "type": self.rule_type, "level": self.level,
            "priority": self.priority, "message": self.message, "tags": list(self.tags),
        }


@dataclass(frozen=True)
class SuppressorDef:
    key: str
    asset: str
    tag: str
    alarms: tuple[int, ...]


@dataclass
class RawEdges:
    """Raw condition changes found in a batch: parallel arrays, in no particular order."""

    ts: npt.NDArray[np.int64]
    target: npt.NDArray[np.int64]
    active: npt.NDArray[np.bool_]
    value: npt.NDArray[np.float64]

    @classmethod
    def empty(cls) -> RawEdges:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.bool_), np.empty(0, np.float64))

    @classmethod
    def concat(cls, parts: list[RawEdges]) -> RawEdges:
        parts = [p for p in parts if len(p.ts)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.ts for p in parts]), np.concatenate([p.target for p in parts]),
            np.concatenate([p.active for p in parts]), np.concatenate([p.value for p in parts]),
        )

    def sorted(self) -> RawEdges:
        o = np.argsort(self.ts, kind="stable")
        return RawEdges(self.ts[o], self.target[o], self.active[o], self.value[o])


@dataclass
class TagMemory:
    """The last good sample of every tag (dense by tag id); kept when the rules change."""

    last_ts: npt.NDArray[np.int64]
    last_value: npt.NDArray[np.float64]

    @classmethod
    def of_size(cls, n: int) -> TagMemory:
        return cls(np.full(n, NEVER, np.int64), np.full(n, np.nan))


@dataclass
class _Stuck:
    target: int
    tag: int
    for_ns: int
    tolerance: float
    last_change_ns: int = NEVER
    last_value: float = float("nan")


@dataclass
class _Expr:
    target: int
    expression: Expression
    names: list[str]
    tags: npt.NDArray[np.int32]
    state: bool = False


def _codes(model: AssetModel, path: str, states: list[int | str]) -> list[int]:
    labels = model.tag(path).states or {}
    by_label = {label: code for code, label in labels.items()}
    return [s if isinstance(s, int) else by_label[s] for s in states]


def alarm_defs(rule: RuleBase) -> list[AlarmDef]:
    """The alarms one rule raises."""
    on, off = int(rule.on_delay_s * 1e9), int(rule.off_delay_s * 1e9)
    tags = tuple(rule.input_tags())
    rtype = getattr(rule, "type", "")
    if isinstance(rule, LimitRule):
        return [
            AlarmDef(f"{rule.name}:{lv}", rule.name, rtype, lv, rule.priorities.get(lv, rule.priority),  # type: ignore[call-overload]
                     rule.message, tags, on, off)
            for lv in rule.levels()
        ]
    if isinstance(rule, StateRule):
        on += int(rule.for_s * 1e9)
    return [AlarmDef(rule.name, rule.name, rtype, None, rule.priority, rule.message, tags, on, off)]


class Detector:
    """The compiled rule set; process() turns a committed batch into raw condition edges."""

    def __init__(self, model: AssetModel, index: TagIndex, memory: TagMemory) -> None:
        self.model, self.index, self.memory = model, index, memory
        self.alarms: list[AlarmDef] = []
        self.suppressors: list[SuppressorDef] = []
        self._stuck: list[_Stuck] = []
        self._exprs: list[_Expr] = []
        size = len(index.paths)
        self.has_rule = np.zeros(size, np.bool_)
        self.slot_state = np.zeros(0, np.bool_)
        self.has_rate = False

    @classmethod
    def build(
        cls,
        rules: list[RuleBase],
        suppressions: list[SuppressionConfig],
        model: AssetModel,
        index: TagIndex,
        memory: TagMemory,
        initial: dict[str, bool],
    ) -> Detector:
        """Compile rules; initial gives each target's present condition (alarm id or suppressor key -> active)."""
        det = cls(model, index, memory)
        size = len(index.paths)
        slots: list[tuple[int, int, int, float, float, int]] = []  # tag, kind, src, threshold, deadband, target
        member_keys: list[int] = []
        for rule in rules:
            for a in alarm_defs(rule):
                target = len(det.alarms)
                det.alarms.append(a)
                if isinstance(rule, LimitRule):
                    assert a.level is not None
                    kind = HIGH if a.level in ("H", "HH") else LOW
                    limit = rule.levels()[a.level]
                    slots.append((index.id_of(rule.tag), kind, SRC_VALUE, limit, rule.deadband, target))
                elif isinstance(rule, RateRule):
                    src = {"rise": SRC_RATE, "fall": SRC_NEG_RATE, "both": SRC_ABS_RATE}[rule.direction]
                    slots.append((index.id_of(rule.tag), HIGH, src, rule.max_rate, rule.deadband, target))
                elif isinstance(rule, StateRule):
                    slots.append((index.id_of(rule.tag), MEMBER, SRC_VALUE, 0.0, 0.0, target))
                    member_keys += [target * 2**32 + c + _CODE_OFFSET for c in _codes(model, rule.tag, rule.states)]
                elif isinstance(rule, StuckRule):
                    det._stuck.append(_Stuck(target, index.id_of(rule.tag), int(rule.for_s * 1e9), rule.tolerance))
                elif isinstance(rule, ExpressionRule):
                    variables = rule.resolved_vars()
                    names = list(variables)
                    tags = np.array([index.id_of(variables[n]) for n in names], np.int32)
                    det._exprs.append(_Expr(target, parse_expression(rule.expression), names, tags))
        for s in suppressions:
            under = tuple(
                i for i, a in enumerate(det.alarms) if a.tags and all(t.startswith(s.asset + "/") for t in a.tags)
            )
            key = f"{s.asset}|{s.tag}"
            target = len(det.alarms) + len(det.suppressors)
            det.suppressors.append(SuppressorDef(key, s.asset, s.tag, under))
            slots.append((index.id_of(s.tag), MEMBER, SRC_VALUE, 0.0, 0.0, target))
            member_keys += [target * 2**32 + c + _CODE_OFFSET for c in _codes(model, s.tag, s.states)]

        # slots sorted by tag, with a CSR index from tag id to its slots
        slots.sort(key=lambda s: s[0])  # membership keys are by target, so sorting keeps them valid
        det._init_slots(slots, member_keys, size)
        det.has_rule[det.slot_tag] = True
        for st in det._stuck:
            det.has_rule[st.tag] = True
        for ex in det._exprs:
            det.has_rule[ex.tags] = True
        keys = det.target_keys()
        det.slot_state = np.array([initial.get(keys[t], False) for t in det.slot_target], np.bool_)
        for ex in det._exprs:
            ex.state = initial.get(keys[ex.target], False)
        return det

    def _init_slots(self, slots: list[tuple[int, int, int, float, float, int]], keys: list[int], size: int) -> None:
        self.slot_tag = np.array([s[0] for s in slots], np.int32)
        self.slot_kind = np.array([s[1] for s in slots], np.int8)
        self.slot_src = np.array([s[2] for s in slots], np.int8)
        self.slot_thr = np.array([s[3] for s in slots], np.float64)
        self.slot_db = np.array([s[4] for s in slots], np.float64)
        self.slot_target = np.array([s[5] for s in slots], np.int64)
        self.member_keys = np.array(sorted(keys), np.int64)
        self.slot_count = np.bincount(self.slot_tag, minlength=size).astype(np.int64)
        self.slot_start = (np.cumsum(self.slot_count) - self.slot_count).astype(np.int64)
        self.has_rate = bool((self.slot_src != SRC_VALUE).any())

    # ------------------------------------------------------------------------------------------------------------

    @property
    def n_targets(self) -> int:
        return len(self.alarms) + len(self.suppressors)

    def target_keys(self) -> list[str]:
        return [a.alarm_id for a in self.alarms] + [s.key for s in self.suppressors]

    def delays(self) -> tuple[list[int], list[int]]:
        return [a.on_ns for a in self.alarms] + [0] * len(self.suppressors), [a.off_ns for a in self.alarms] + [
            0
        ] * len(self.suppressors)

    def process(self, batch: SampleBatch) -> RawEdges:
        """Raw edges of every rule touched by this batch; updates the per-tag memory."""
        mem = self.memory
        tid = batch.tag_id
        if len(tid) == 0:
            return RawEdges.empty()
        inside = tid < len(self.has_rule)
        tid_c = np.where(inside, tid, 0)
        keep = inside & self.has_rule[tid_c] & (batch.quality != Quality.BAD) & ~np.isnan(batch.value)
        keep &= batch.ts > mem.last_ts[tid_c]
        if not keep.any():
            return RawEdges.empty()
        kept_tid, kept_ts = tid[keep], batch.ts[keep]
        order = np.argsort(kept_tid, kind="stable")  # a batch arrives in time order per tag, as a rule
        tid, ts = kept_tid[order], kept_ts[order]
        if ((ts[1:] < ts[:-1]) & (tid[1:] == tid[:-1])).any():  # else sort by time too
            order = np.lexsort((kept_ts, kept_tid))
            tid, ts = kept_tid[order], kept_ts[order]
        val = batch.value[keep][order]
        n = len(tid)
        first = np.empty(n, np.bool_)
        first[0] = True
        first[1:] = tid[1:] != tid[:-1]
        last = np.empty(n, np.bool_)
        last[-1] = True
        last[:-1] = first[1:]
        prev_v = np.empty(n)
        prev_v[1:] = val[:-1]
        prev_v[first] = mem.last_value[tid[first]]
        prev_t = np.empty(n, np.int64)
        prev_t[1:] = ts[:-1]
        prev_t[first] = mem.last_ts[tid[first]]
        rate = val  # only read by rate slots
        if self.has_rate:
            with np.errstate(all="ignore"):
                dt = np.where(prev_t == NEVER, 0, ts - prev_t).astype(np.float64) / 1e9
                rate = np.where(dt > 0, (val - prev_v) / np.where(dt > 0, dt, 1.0), np.nan)

        parts = [self._slots(tid, ts, val, rate)]
        parts += [self._stuck_edges(st, tid, ts, val, prev_v) for st in self._stuck if self._present(tid, st.tag)]
        parts += [self._expr_edges(ex, tid, ts, val) for ex in self._exprs]
        mem.last_value[tid[last]] = val[last]
        mem.last_ts[tid[last]] = ts[last]
        return RawEdges.concat(parts)

    @staticmethod
    def _present(tid: npt.NDArray[np.int32], tag: int) -> bool:
        i = int(np.searchsorted(tid, tag))
        return i < len(tid) and int(tid[i]) == tag

    def _could_change(
        self, tid: npt.NDArray[np.int32], val: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.bool_] | None:
        """Which samples (sorted by tag) belong to a tag where some slot can change state; None: all of them.

        A limit slot that is clear can only be set if the batch reaches its limit, and one that is set can
        only reset if the batch goes past limit - deadband: a tag's min and max in the batch decide it, per
        tag, not per sample. Most samples of a plant are nowhere near a limit, so most of a batch is left
        out of the per-sample pairing below. Rate and state slots are always kept.
        """
        n = len(tid)
        starts = np.flatnonzero(np.concatenate(([True], tid[1:] != tid[:-1])))
        tags = tid[starts]
        cnt = self.slot_count[tags]
        total = int(cnt.sum())
        if total == 0:
            return np.zeros(n, np.bool_)
        group = np.repeat(np.arange(len(tags)), cnt)
        slot = np.repeat(self.slot_start[tags], cnt) + (np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        hi, lo = np.maximum.reduceat(val, starts)[group], np.minimum.reduceat(val, starts)[group]
        kind, thr, db, state = self.slot_kind[slot], self.slot_thr[slot], self.slot_db[slot], self.slot_state[slot]
        may = (self.slot_src[slot] != SRC_VALUE) | (kind == MEMBER)
        may |= (kind == HIGH) & np.where(state, lo < thr - db, hi >= thr)
        may |= (kind == LOW) & np.where(state, hi > thr + db, lo <= thr)
        if may.all():
            return None
        keep_tag = np.zeros(len(tags), np.bool_)
        keep_tag[group[may]] = True
        return np.repeat(keep_tag, np.diff(np.append(starts, n)))

    def _slots(
        self, tid: npt.NDArray[np.int32], ts: npt.NDArray[np.int64], val: npt.NDArray[np.float64],
        rate: npt.NDArray[np.float64],
    ) -> RawEdges:
        keep = self._could_change(tid, val)
        if keep is not None:
            tid, ts, val, rate = tid[keep], ts[keep], val[keep], rate[keep]
            if len(tid) == 0:
                return RawEdges.empty()
        cnt = self.slot_count[tid]
        total = int(cnt.sum())
        if total == 0:
            return RawEdges.empty()
        rows = np.repeat(np.arange(len(tid)), cnt)
        offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        slot = self.slot_start[tid[rows]] + offs
        o = np.argsort(slot, kind="stable")  # (slot, time): rows are already in time order within a tag
        rows, slot = rows[o], slot[o]
        x = val[rows]
        if self.has_rate:
            src = self.slot_src[slot]
            r = rate[rows]
            x = np.select([src == SRC_RATE, src == SRC_NEG_RATE, src == SRC_ABS_RATE], [r, -r, np.abs(r)], x)
        kind = self.slot_kind[slot]
        thr, db = self.slot_thr[slot], self.slot_db[slot]
        if len(self.member_keys):
            integral = np.isfinite(x) & (x == np.round(x)) & (np.abs(x) < _CODE_OFFSET)
            codes = np.where(integral, x, 0).astype(np.int64)
            member = integral & np.isin(self.slot_target[slot] * 2**32 + codes + _CODE_OFFSET, self.member_keys)
        else:
            member = np.zeros(len(x), np.bool_)
        with np.errstate(invalid="ignore"):
            set_ = np.where(kind == HIGH, x >= thr, np.where(kind == LOW, x <= thr, member))
            reset = np.where(kind == HIGH, x < thr - db, np.where(kind == LOW, x > thr + db, ~member & ~np.isnan(x)))
        m = len(slot)
        idx = np.arange(m)
        seg_first = np.empty(m, np.bool_)
        seg_first[0] = True
        seg_first[1:] = slot[1:] != slot[:-1]
        seg_start = np.maximum.accumulate(np.where(seg_first, idx, 0))
        last_event = np.maximum.accumulate(np.where(set_ | reset, idx, -1))
        prior = self.slot_state[slot]
        state = np.where(last_event >= seg_start, set_[np.maximum(last_event, 0)], prior)
        prev = np.empty(m, np.bool_)
        prev[1:] = state[:-1]
        prev[seg_first] = prior[seg_first]
        seg_last = np.empty(m, np.bool_)
        seg_last[-1] = True
        seg_last[:-1] = seg_first[1:]
        self.slot_state[slot[seg_last]] = state[seg_last]
        edge = state != prev
        return RawEdges(ts[rows[edge]], self.slot_target[slot[edge]], state[edge], x[edge])

    def _stuck_edges(
        self, st: _Stuck, tid: npt.NDArray[np.int32], ts: npt.NDArray[np.int64], val: npt.NDArray[np.float64],
        prev_v: npt.NDArray[np.float64],
    ) -> RawEdges:
        lo, hi = int(np.searchsorted(tid, st.tag, "left")), int(np.searchsorted(tid, st.tag, "right"))
        t, v = ts[lo:hi], val[lo:hi]
        with np.errstate(invalid="ignore"):
            changed = ~(np.abs(v - prev_v[lo:hi]) <= st.tolerance)
        if st.last_change_ns == NEVER:
            changed[0] = True
        ref_t = np.concatenate([[st.last_change_ns], t[changed]]) if st.last_change_ns != NEVER else t[changed]
        ref_v = np.concatenate([[st.last_value], v[changed]]) if st.last_change_ns != NEVER else v[changed]
        e_ts: list[int] = []
        e_active: list[bool] = []
        e_value: list[float] = []
        for i in np.nonzero(np.diff(ref_t) >= st.for_ns)[0]:
            e_ts += [int(ref_t[i]) + st.for_ns, int(ref_t[i + 1])]
            e_active += [True, False]
            e_value += [float(ref_v[i]), float(ref_v[i + 1])]
        st.last_change_ns, st.last_value = int(ref_t[-1]), float(ref_v[-1])
        k = len(e_ts)
        return RawEdges(np.array(e_ts, np.int64), np.full(k, st.target, np.int64), np.array(e_active, np.bool_),
                        np.array(e_value, np.float64))

    def _expr_edges(
        self, ex: _Expr, tid: npt.NDArray[np.int32], ts: npt.NDArray[np.int64], val: npt.NDArray[np.float64]
    ) -> RawEdges:
        rows = np.nonzero(np.isin(tid, ex.tags))[0]
        if len(rows) == 0:
            return RawEdges.empty()
        rows = rows[np.argsort(ts[rows], kind="stable")]
        t = ts[rows]
        at_row = np.arange(len(rows))
        env = {}
        for name, tag in zip(ex.names, ex.tags, strict=True):
            latest = np.maximum.accumulate(np.where(tid[rows] == tag, at_row, -1))
            env[name] = np.where(latest >= 0, val[rows][np.maximum(latest, 0)], self.memory.last_value[tag])
        # evaluate once per timestamp, after every input of that instant is in
        final = np.empty(len(rows), np.bool_)
        final[-1] = True
        final[:-1] = t[1:] != t[:-1]
        cond = ex.expression.evaluate({k: v[final] for k, v in env.items()})
        t = t[final]
        prev = np.empty(len(cond), np.bool_)
        prev[0] = ex.state
        prev[1:] = cond[:-1]
        edge = cond != prev
        ex.state = bool(cond[-1])
        first_name = ex.names[0]
        return RawEdges(t[edge], np.full(int(edge.sum()), ex.target, np.int64), cond[edge],
                        env[first_name][final][edge])

    def stuck_due(self, now_ns: int) -> RawEdges:
        """Stuck conditions that time alone has made true (no sample needed)."""
        e_ts, e_target, e_value = [], [], []
        for st in self._stuck:
            if st.last_change_ns != NEVER and now_ns - st.last_change_ns >= st.for_ns:
                e_ts.append(st.last_change_ns + st.for_ns)
                e_target.append(st.target)
                e_value.append(st.last_value)
        k = len(e_ts)
        return RawEdges(np.array(e_ts, np.int64), np.array(e_target, np.int64), np.ones(k, np.bool_),
                        np.array(e_value, np.float64))

    def start_stuck_clocks(self, now_ns: int) -> None:
        """A stuck rule counts from when it starts watching, not from the epoch."""
        for st in self._stuck:
            if st.last_change_ns == NEVER:
                st.last_change_ns = now_ns
                st.last_value = float(self.memory.last_value[st.tag])
