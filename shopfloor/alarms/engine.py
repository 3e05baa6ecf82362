"""The alarm engine: rules evaluated on the committed sample stream, ISA-18.2 lifecycle, journal, notifications.

It subscribes to the writer's intake bus (batches as the historian writer
accepts them, before their commit: the commit's latency is not the alarm's), finds raw
condition edges with NumPy (detect.py), debounces them (delays.py), drives each
alarm's state machine (lifecycle.py) and writes every transition to the journal
(store.py) before telling WebSocket listeners and notification targets.

Time is the samples' time: the engine clock is the newest sample timestamp seen,
running on with the wall clock between batches, so a fast-forward simulation
raises delayed alarms at simulated, not real, time. A tick (``tick_s``) fires
delays, stuck-value timers, shelving expiry and escalation when no sample comes.

One thread with its own asyncio loop does the evaluation; API calls (ack,
shelve, rule changes) take the same lock, so the state machine never sees two
writers. The banner counts (summary()) are kept up to date per transition, not
recounted over every alarm for each one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from shopfloor.alarms.config import PRIORITY_RANK, AlarmsConfig, KnownTags, Rule, RuleBase, validating_against
from shopfloor.alarms.delays import Change, DelayBank
from shopfloor.alarms.detect import AlarmDef, Detector, RawEdges, TagMemory
from shopfloor.alarms.lifecycle import AlarmState, AlarmStatus, NotAllowed, Transition
from shopfloor.alarms.notify import Notifier
from shopfloor.alarms.store import AlarmStore
from shopfloor.core.bus import SampleBus, Subscription
from shopfloor.core.errors import ShopfloorError
from shopfloor.core.model import AssetModel, TagIndex
from shopfloor.core.samples import SampleBatch

log = logging.getLogger(__name__)

RULE_ADAPTER: TypeAdapter[RuleBase] = TypeAdapter(Rule)


class UnknownAlarm(ShopfloorError):
    """No alarm (or rule) by that id."""


class RuleConflict(ShopfloorError):
    """A rule defined in plant.yaml cannot be changed through the API, or a new rule's name is taken."""


def iso(ts_ns: int | None) -> str | None:
    if ts_ns is None:
        return None
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


def known_tags_of(model: AssetModel) -> KnownTags:
    """What rules may name: every tag, with its state labels."""
    return KnownTags({
        t.path: ({label: code for code, label in t.states.items()} if t.states else None) for t in model.tags
    })


def _clean(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


Listener = Callable[[dict[str, Any]], None]
# What one alarm adds to the banner counts: priority, (unack, active, shelved, suppressed, out of service).
Tally = tuple[str, tuple[int, int, int, int, int]]


class AlarmEngine:
    """All alarms of one platform."""

    def __init__(self, config: AlarmsConfig, model: AssetModel, index: TagIndex, bus: SampleBus,
                 data_dir: str | Path) -> None:
        self.config = config
        self.model = model
        self.index = index
        self.bus = bus
        self.store = AlarmStore(Path(data_dir) / "alarms.sqlite")
        self.notifier = Notifier(config.notify)
        self._lock = threading.RLock()
        self._memory = TagMemory.of_size(len(index.paths))
        self._clock_ts: int | None = None  # the newest sample time seen; wall time until the first sample
        self._clock_mono = time.monotonic_ns()
        self._statuses: dict[str, AlarmStatus] = {}
        self._api_rules: dict[str, RuleBase] = {}
        self._listeners: list[Listener] = []
        self._sub: Subscription | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._next_tick = 0.0
        self.batches = self.samples = self.edges = self.transitions = self.errors = 0
        self.last_error: str | None = None
        self.rejected_rules = 0
        self.eval_s_max = 0.0
        self._detector: Detector
        self._defs: dict[str, AlarmDef] = {}
        self._alarm_index: dict[str, int] = {}
        self._bank: DelayBank
        self._alarm_suppressors: list[list[int]] = []
        self._suppressor_active: list[bool] = []
        self._tallies: dict[str, Tally] = {}
        self._totals: dict[str, list[int]] = {p: [0, 0, 0, 0, 0] for p in PRIORITY_RANK}

    # --- life -----------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Open, subscribe (before any ingest starts) and evaluate the stream on a thread of its own."""
        self.open()
        self._loop = asyncio.new_event_loop()
        self._sub = self.bus.subscribe(None, maxlen=10_000, loop=self._loop)
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),),
                                        name="alarm-engine", daemon=True)
        self._thread.start()

    def open(self) -> None:
        """Load the alarms' states and the API's rules, compile, start notifying; no stream yet (see process())."""
        self._statuses = self.store.load_states()
        for definition in self.store.api_rules():
            try:
                with validating_against(known_tags_of(self.model)):
                    rule = RULE_ADAPTER.validate_python(definition)
            except ValueError as exc:
                self.errors += 1
                self.last_error = f"stored rule {definition.get('name')!r} no longer valid: {exc}"
                log.error("%s", self.last_error)
                continue
            if any(r.name == rule.name for r in self.config.rules):
                log.warning("rule %r from the API is shadowed by plant.yaml's rule of that name", rule.name)
                continue
            self._api_rules[rule.name] = rule
        with self._lock:
            self._rebuild(user=None)
        self.notifier.start()

    def stop(self) -> None:
        """Evaluate what is still queued (call after the writer stopped), then stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self._sub is not None:
            rest = self._sub.drain()
            if len(rest):
                self._safely(lambda: self._on_batch(rest))
            self._sub.close()
            self._sub = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        self.notifier.stop()
        self.store.close()

    async def _main(self) -> None:
        assert self._sub is not None
        while not self._stopping:
            batch = await self._sub.next(timeout=self.config.tick_s)
            if len(batch):
                self._safely(lambda b=batch: self._on_batch(b))  # type: ignore[misc]
            if time.monotonic() >= self._next_tick:
                self._next_tick = time.monotonic() + self.config.tick_s
                self._safely(self._on_tick)

    def _safely(self, work: Callable[[], None]) -> None:
        try:
            with self._lock:
                work()
        except Exception as exc:  # a bad rule or a store error must not end evaluation
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("alarm evaluation failed")

    # --- the clock -------------------------------------------------------------------------------------------------

    def now_ns(self) -> int:
        """Newest sample time seen, advanced by the wall time since it was seen."""
        if self._clock_ts is None:
            return time.time_ns()
        return self._clock_ts + (time.monotonic_ns() - self._clock_mono)

    def _observe(self, ts_ns: int) -> None:
        if self._clock_ts is None or ts_ns > self.now_ns():
            self._clock_ts, self._clock_mono = ts_ns, time.monotonic_ns()

    # --- evaluation -----------------------------------------------------------------------------------------------

    def process(self, batch: SampleBatch) -> None:
        """Evaluate one batch now, on the caller's thread (tests, replays); the stream does this by itself."""
        with self._lock:
            self._on_batch(batch)

    def tick(self) -> None:
        with self._lock:
            self._on_tick()

    def _on_batch(self, batch: SampleBatch) -> None:
        started = time.perf_counter()
        self.batches += 1
        self.samples += len(batch)
        self._observe(int(batch.ts.max()))
        edges = self._detector.process(batch)
        changes = self._feed(RawEdges.concat([edges, self._detector.stuck_due(self.now_ns())]))
        self._bank.due(self.now_ns(), changes)
        self._apply(changes)
        self.eval_s_max = max(self.eval_s_max, time.perf_counter() - started)

    def _feed(self, edges: RawEdges) -> list[Change]:
        changes: list[Change] = []
        if len(edges.ts):
            self.edges += len(edges.ts)
            e = edges.sorted()
            feed = self._bank.feed
            for ts, target, active, value in zip(e.ts.tolist(), e.target.tolist(), e.active.tolist(),
                                                 e.value.tolist(), strict=True):
                feed(target, ts, active, value, changes)
        return changes

    def _on_tick(self) -> None:
        now = self.now_ns()
        changes = self._feed(self._detector.stuck_due(now))
        self._bank.due(now, changes)
        self._apply(changes)
        out: list[Transition] = []
        for st in self._statuses.values():
            if st.shelved_until_ns is not None and st.shelved_until_ns <= now:
                out += self._settle(st.alarm_id, st.shelved_until_ns)
                out.append(st.unshelve(st.shelved_until_ns, None, "shelving time ended", expired=True))
        out += self._escalate(now)
        self._commit(out)

    def _settle(self, alarm_id: str, ts_ns: int) -> list[Transition]:
        """Before a block (suppression, shelving, out of service) lifts: a condition already gone but still
        waiting out its off-delay clears now, while the alarm is blocked and silent, so what is normal in fact
        is not annunciated when the block ends."""
        i = self._alarm_index.get(alarm_id)
        clear = self._bank.settle_clear(i, ts_ns) if i is not None else None
        if clear is None:
            return []
        t = self._statuses[alarm_id].set_condition(False, ts_ns, _clean(clear.value))
        return [t] if t is not None else []

    def _escalate(self, now: int) -> list[Transition]:
        steps = self.config.notify.escalation
        if not steps:
            return []
        out = []
        defs = self._defs
        for st in self._statuses.values():
            if st.state != AlarmState.UNACK or st.unack_since_ns is None or st.alarm_id not in defs:
                continue
            rank = PRIORITY_RANK[defs[st.alarm_id].priority]
            for level, step in enumerate(steps, start=1):
                if level <= st.escalation_level:
                    continue
                if now - st.unack_since_ns < step.after_min * 60e9:
                    break
                t = st.escalate(level, now)
                out.append(t)
                if rank >= PRIORITY_RANK[step.min_priority]:
                    self.notifier.escalated(self._event(t), step.targets)
        return out

    def _apply(self, changes: list[Change]) -> None:
        if not changes:
            return
        n_alarms = len(self._detector.alarms)

        def order(c: Change) -> tuple[int, int]:
            # Within one instant: suppression starts, then conditions change, then suppression ends. A
            # condition that clears as its equipment leaves maintenance clears while still suppressed.
            return c.ts_ns, 1 if c.target < n_alarms else (0 if c.active else 2)

        out: list[Transition] = []
        for c in sorted(changes, key=order):
            value = _clean(c.value)
            if c.target < n_alarms:
                t = self._statuses[self._detector.alarms[c.target].alarm_id].set_condition(c.active, c.ts_ns, value)
                if t is not None:
                    out.append(t)
                continue
            k = c.target - n_alarms
            self._suppressor_active[k] = c.active
            sup = self._detector.suppressors[k]
            self.store.put(f"suppressor:{sup.key}", c.active)
            for i in sup.alarms:
                suppressed = any(self._suppressor_active[j] for j in self._alarm_suppressors[i])
                alarm_id = self._detector.alarms[i].alarm_id
                if not suppressed:
                    out += self._settle(alarm_id, c.ts_ns)
                t = self._statuses[alarm_id].set_suppressed(suppressed, c.ts_ns, value)
                if t is not None:
                    out.append(t)
        self._commit(out)

    def _commit(self, transitions: list[Transition]) -> None:
        """Journal and save first; then listeners and notifications."""
        if not transitions:
            return
        defs = self._defs
        rows = []
        for t in transitions:
            d = defs.get(t.alarm_id)
            rows.append((t, d.rule if d else t.alarm_id, d.priority if d else ""))
        changed = {t.alarm_id for t in transitions if t.alarm_id in self._statuses}
        self.store.record(rows, [self._statuses[a] for a in changed])
        self._recount(changed)
        self.transitions += len(transitions)
        listeners = list(self._listeners)
        summary = self.summary() if listeners else None  # once per batch of transitions, for banners
        for t in transitions:
            event = self._event(t)
            annunciated = t.to_state == AlarmState.UNACK and t.from_state != AlarmState.UNACK
            if annunciated and t.event != "escalated":
                self.notifier.activated(event)
            for listener in listeners:
                listener({**event, "summary": summary})

    def _event(self, t: Transition) -> dict[str, Any]:
        d = self._defs.get(t.alarm_id)
        return {
            "type": "alarm", "alarm_id": t.alarm_id, "event": t.event, "from_state": t.from_state,
            "to_state": t.to_state, "ts_ns": t.ts_ns, "time": iso(t.ts_ns), "value": t.value, "user": t.user,
            "comment": t.comment, "annunciated": t.annunciated,
            "rule": d.rule if d else t.alarm_id, "priority": d.priority if d else "", "message": d.message if d else "",
            "tags": list(d.tags) if d else [],
            "alarm": self._view(d) if d else None,
        }

    # --- rules ----------------------------------------------------------------------------------------------------

    def _rules(self) -> list[RuleBase]:
        return [*self.config.rules, *self._api_rules.values()]

    def _rebuild(self, user: str | None) -> None:
        old_keys = set(self._statuses)
        initial: dict[str, bool] = {a: s.condition for a, s in self._statuses.items()}
        for s in self.config.suppression:
            initial[f"{s.asset}|{s.tag}"] = bool(self.store.get(f"suppressor:{s.asset}|{s.tag}"))
        det = Detector.build(self._rules(), list(self.config.suppression), self.model, self.index, self._memory,
                             initial)
        keys = det.target_keys()
        on, off = det.delays()
        self._bank = DelayBank(on, off, [initial.get(k, False) for k in keys])
        self._detector = det
        self._defs = {a.alarm_id: a for a in det.alarms}
        self._alarm_index = {a.alarm_id: i for i, a in enumerate(det.alarms)}
        det.start_stuck_clocks(self.now_ns())
        self._suppressor_active = [initial.get(s.key, False) for s in det.suppressors]
        self._alarm_suppressors = [[] for _ in det.alarms]
        for j, sup in enumerate(det.suppressors):
            for i in sup.alarms:
                self._alarm_suppressors[i].append(j)
        current = {a.alarm_id for a in det.alarms}
        for a in det.alarms:
            self._statuses.setdefault(a.alarm_id, AlarmStatus(a.alarm_id))
        removed = old_keys - current
        now = self.now_ns()
        gone = [
            (Transition(k, "removed", self._statuses[k].state, AlarmState.NORMAL, now, None, user, "rule removed"),
             k.split(":")[0], "")
            for k in sorted(removed)
        ]
        for k in removed:
            del self._statuses[k]
        self._tallies.clear()
        self._totals = {p: [0, 0, 0, 0, 0] for p in PRIORITY_RANK}
        self._recount(current)
        self.store.record(gone, [self._statuses[a] for a in current - old_keys], removed)
        # designed suppression that holds already applies to newly made alarms
        out = []
        for i, a in enumerate(det.alarms):
            suppressed = any(self._suppressor_active[j] for j in self._alarm_suppressors[i])
            t = self._statuses[a.alarm_id].set_suppressed(suppressed, now, None)
            if t is not None:
                out.append(t)
        self._commit(out)

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            out = [{"source": "config", **r.model_dump(mode="json")} for r in self.config.rules]
            out += [{"source": "api", **r.model_dump(mode="json")} for r in self._api_rules.values()]
        return out

    def rule(self, name: str) -> dict[str, Any]:
        for r in self.rules():
            if r["name"] == name:
                return r
        raise UnknownAlarm(f"no rule {name!r}")

    def validate_rule(self, definition: dict[str, Any]) -> RuleBase:
        """A rule from the API, checked against the running plant (ValueError says what is wrong; counted)."""
        try:
            with validating_against(known_tags_of(self.model)):
                return RULE_ADAPTER.validate_python(definition)
        except ValueError:
            self.rejected_rules += 1
            raise

    def put_rule(self, rule: RuleBase, user: str | None, *, create: bool) -> None:
        with self._lock:
            if any(r.name == rule.name for r in self.config.rules):
                raise RuleConflict(f"rule {rule.name!r} is defined in plant.yaml: change it there")
            exists = rule.name in self._api_rules
            if create and exists:
                raise RuleConflict(f"rule {rule.name!r} exists already")
            if not create and not exists:
                raise UnknownAlarm(f"no rule {rule.name!r}")
            previous = self._api_rules.get(rule.name)
            self._api_rules[rule.name] = rule
            try:
                self._rebuild(user)
            except Exception:
                if previous is None:
                    del self._api_rules[rule.name]
                else:
                    self._api_rules[rule.name] = previous
                self._rebuild(user)
                raise
            self.store.save_rule(rule.name, rule.model_dump(mode="json"), user)
            event = "rule_created" if create else "rule_updated"
            self._journal_rule(rule.name, event, user, rule.model_dump_json())

    def delete_rule(self, name: str, user: str | None) -> None:
        with self._lock:
            if any(r.name == name for r in self.config.rules):
                raise RuleConflict(f"rule {name!r} is defined in plant.yaml: remove it there")
            if name not in self._api_rules:
                raise UnknownAlarm(f"no rule {name!r}")
            del self._api_rules[name]
            self.store.delete_rule(name)
            self._rebuild(user)
            self._journal_rule(name, "rule_deleted", user, "")

    def _journal_rule(self, name: str, event: str, user: str | None, comment: str) -> None:
        t = Transition(name, event, "", "", self.now_ns(), None, user, comment[:2000])
        self.store.record([(t, name, "")], [])

    # --- operator actions -----------------------------------------------------------------------------------------

    def _status(self, alarm_id: str) -> AlarmStatus:
        try:
            return self._statuses[alarm_id]
        except KeyError:
            raise UnknownAlarm(f"no alarm {alarm_id!r}") from None

    def acknowledge(self, alarm_id: str, user: str, comment: str = "") -> dict[str, Any]:
        with self._lock:
            t = self._status(alarm_id).acknowledge(self.now_ns(), user, comment)
            self._commit([t])
            return self.alarm(alarm_id)

    def acknowledge_many(self, alarm_ids: list[str], user: str, comment: str = "") -> dict[str, str]:
        """Acknowledge several alarms in one journal transaction; per id: "acknowledged" or why not."""
        out: dict[str, str] = {}
        transitions = []
        with self._lock:
            now = self.now_ns()
            for alarm_id in dict.fromkeys(alarm_ids):
                try:
                    transitions.append(self._status(alarm_id).acknowledge(now, user, comment))
                    out[alarm_id] = "acknowledged"
                except (UnknownAlarm, NotAllowed) as exc:
                    out[alarm_id] = str(exc)
            self._commit(transitions)
        return out

    def shelve(self, alarm_id: str, minutes: float, user: str, comment: str = "") -> dict[str, Any]:
        if not 0 < minutes <= self.config.max_shelve_min:
            raise NotAllowed(f"shelve for more than 0 and at most {self.config.max_shelve_min:g} minutes")
        with self._lock:
            now = self.now_ns()
            t = self._status(alarm_id).shelve(now + int(minutes * 60e9), now, user, comment)
            self._commit([t])
            return self.alarm(alarm_id)

    def unshelve(self, alarm_id: str, user: str, comment: str = "") -> dict[str, Any]:
        with self._lock:
            now = self.now_ns()
            status = self._status(alarm_id)
            settled = self._settle(alarm_id, now) if status.shelved else []
            self._commit([*settled, status.unshelve(now, user, comment)])
            return self.alarm(alarm_id)

    def set_out_of_service(self, alarm_id: str, oos: bool, user: str, comment: str = "") -> dict[str, Any]:
        with self._lock:
            now = self.now_ns()
            status = self._status(alarm_id)
            settled = self._settle(alarm_id, now) if status.out_of_service and not oos else []
            self._commit([*settled, status.set_out_of_service(oos, now, user, comment)])
            return self.alarm(alarm_id)

    # --- views ----------------------------------------------------------------------------------------------------

    def _view(self, d: AlarmDef) -> dict[str, Any]:
        st = self._statuses.get(d.alarm_id) or AlarmStatus(d.alarm_id)
        return {
            **d.describe(), "state": st.state.value, "condition": st.condition, "value": st.value,
            "shelved_until": iso(st.shelved_until_ns), "suppressed": st.suppressed,
            "out_of_service": st.out_of_service, "changed": iso(st.changed_ns),
            "active_since": iso(st.active_since_ns), "unack_since": iso(st.unack_since_ns),
            "acked_by": st.acked_by, "acked": iso(st.acked_ns), "escalation_level": st.escalation_level,
        }

    def alarms(self, *, include_normal: bool = False) -> list[dict[str, Any]]:
        """Alarms needing attention (or all), most urgent first: priority, then unacknowledged, then newest."""
        with self._lock:
            views = [
                self._view(d) for d in self._detector.alarms
                if include_normal or self._statuses[d.alarm_id].state != AlarmState.NORMAL
                or self._statuses[d.alarm_id].blocked
            ]
        unack = {AlarmState.UNACK.value: 0, AlarmState.RTN_UNACK.value: 1, AlarmState.ACKED.value: 2}
        views.sort(key=lambda v: v["changed"] or "", reverse=True)  # newest first within a group (sorts are stable)
        views.sort(key=lambda v: (-PRIORITY_RANK[v["priority"]], unack.get(v["state"], 3)))
        return views

    def alarm(self, alarm_id: str) -> dict[str, Any]:
        with self._lock:
            if alarm_id in self._defs:
                return self._view(self._defs[alarm_id])
        raise UnknownAlarm(f"no alarm {alarm_id!r}")

    def _tally(self, alarm_id: str) -> Tally | None:
        d, st = self._defs.get(alarm_id), self._statuses.get(alarm_id)
        if d is None or st is None:
            return None
        return d.priority, (int(st.state in (AlarmState.UNACK, AlarmState.RTN_UNACK)),
                            int(st.state in (AlarmState.UNACK, AlarmState.ACKED)), int(st.shelved),
                            int(st.suppressed), int(st.out_of_service))

    def _recount(self, alarm_ids: set[str]) -> None:
        """Replace these alarms' shares of the banner counts (every state change passes through here)."""
        for alarm_id in alarm_ids:
            old, new = self._tallies.pop(alarm_id, None), self._tally(alarm_id)
            for tally, sign in ((old, -1), (new, 1)):
                if tally is not None:
                    totals = self._totals[tally[0]]
                    for k, n in enumerate(tally[1]):
                        totals[k] += sign * n
            if new is not None:
                self._tallies[alarm_id] = new

    def summary(self) -> dict[str, Any]:
        """Counts for an alarm banner."""
        with self._lock:
            totals = {p: list(t) for p, t in self._totals.items()}
        counts = {p: {"unack": t[0], "active": t[1]} for p, t in totals.items()}
        return {"by_priority": counts, "shelved": sum(t[2] for t in totals.values()),
                "suppressed": sum(t[3] for t in totals.values()),
                "out_of_service": sum(t[4] for t in totals.values()),
                "unack": sum(c["unack"] for c in counts.values()),
                "active": sum(c["active"] for c in counts.values())}

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call listener(event) on every transition (on the engine's thread: hand it over, do not block)."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

        def remove() -> None:
            with self._lock:
                self._listeners = [x for x in self._listeners if x is not listener]

        return remove

    def health(self) -> dict[str, Any]:
        with self._lock:
            active = sum(s.state in (AlarmState.UNACK, AlarmState.ACKED) for s in self._statuses.values())
            return {
                "rules": len(self._rules()), "alarms": len(self._detector.alarms), "active": active,
                "batches": self.batches, "samples": self.samples, "edges": self.edges,
                "transitions": self.transitions, "rejected_rules": self.rejected_rules,
                "dropped_batches": self._sub.dropped if self._sub else 0,
                "pending_delays": self._bank.pending, "errors": self.errors, "last_error": self.last_error,
                "eval_ms_max": round(self.eval_s_max * 1e3, 3), "notify": self.notifier.health(),
            }

