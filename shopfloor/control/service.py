"""The command service: checks, sends and audits remote commands to equipment.

A command passes, in this order: the command exists; the caller's role (``role`` of the command
type; operator at least); the value (type and range); every interlock, on the latest values of
its tags (a value that is missing, NaN, of bad quality or older than ``max_age_s`` counts as
unknown and refuses: an interlock never passes on a guess); for ``confirm: true`` commands a
confirmation token bound to the user, the command and the value, used once before it expires.
Interlocks are checked again at the confirming request: the plant may have changed in between.
The first rule that fails refuses, and the refusal names it. Then the command is sent (senders.py)
and the device's answer awaited: for Sparkplug the device's own report of the expected value on
the bus within ``answer_timeout_s``, for OPC UA the status code, for Modbus the response.

Every attempt is one row of the append-only audit log (audit.py), written before the caller
hears the outcome. ``authorize`` runs the same checks without sending, for services that open a
session of commands (the remotely driven vehicle) and must pass the same rules first.

Threading: the senders and the answer waits run on one asyncio loop on the service's own thread;
callers (API worker threads) block on a future. Tokens and counters are guarded by a lock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from asyncua import ua

from shopfloor.alarms.expression import parse_expression
from shopfloor.auth.store import Principal, Role
from shopfloor.config.schema import ModbusSource, OpcUaSource, SparkplugSource
from shopfloor.connectors.mqtt.sparkplug import DataType
from shopfloor.control.audit import AuditEntry, AuditLog
from shopfloor.control.config import CommandType, ControlConfig, ModbusSend, OpcUaSend, SparkplugSend, ValueSpec
from shopfloor.control.senders import (
    DeviceAnswer,
    ModbusSender,
    OpcUaSender,
    SparkplugSender,
    command_topic,
    encode_command,
)
from shopfloor.core.bus import Subscription
from shopfloor.core.samples import Quality
from shopfloor.services import service_client

if TYPE_CHECKING:
    from shopfloor.platform import Platform

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PENDING = 1000  # confirmation tokens kept (open and recently used)
#: HTTP status of each refusing rule (the API answers with it).
RULE_STATUS = {"unknown_command": 404, "role": 403, "value": 422, "range": 422, "interlock": 409, "confirm": 409}


@dataclass(frozen=True, slots=True)
class InterlockState:
    """One interlock now: ``state`` ok, blocked (false) or unknown (an input missing or stale)."""

    name: str
    expression: str
    state: str
    detail: str
    inputs: dict[str, float | None]


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a command may go out. A refusal names its ``rule`` and says why in ``reason``."""

    allowed: bool
    command: str
    value: float | None
    rule: str | None
    reason: str
    interlocks: tuple[InterlockState, ...] = ()

    @property
    def status(self) -> int:
        """HTTP status for the API: 200 when allowed, else 403/404/409/422 by rule."""
        if self.allowed or self.rule is None:
            return 200
        return RULE_STATUS.get(self.rule.split(":", 1)[0], 409)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one request. ``decision``: executed, failed, timeout, refused or confirm_required."""

    decision: str
    command: str
    value: float | None
    value_text: str
    rule: str | None = None
    reason: str = ""
    answer: str | None = None
    round_trip_ms: float | None = None
    token: str | None = None
    expires_in_s: float | None = None
    summary: str = ""
    audit_id: int = 0

    @property
    def status(self) -> int:
        if self.decision == "executed":
            return 200
        if self.decision == "confirm_required":
            return 202
        if self.decision == "failed":
            return 502
        if self.decision == "timeout":
            return 504
        assert self.rule is not None
        return RULE_STATUS.get(self.rule.split(":", 1)[0], 409)

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision, "command": self.command, "value": self.value, "value_text": self.value_text,
            "rule": self.rule, "reason": self.reason, "answer": self.answer, "round_trip_ms": self.round_trip_ms,
            "token": self.token, "expires_in_s": self.expires_in_s, "summary": self.summary,
            "audit_id": self.audit_id,
        }


@dataclass(slots=True)
class _Pending:
    user: str
    command: str
    value: float
    expires_ns: int
    used: bool = False


@dataclass(frozen=True, slots=True)
class _Lock:
    name: str
    expression: str
    evaluate: Callable[[dict[str, np.ndarray[Any, Any]]], np.ndarray[Any, Any]]
    vars: dict[str, int]  # name -> tag id
    paths: dict[str, str]
    max_age_ns: int


@dataclass(slots=True)
class _Resolved:
    """A command type bound to the running platform: tag ids, source and sender."""

    spec: CommandType
    protocol: str
    locks: list[_Lock]
    target: str  # what is written: topic + metric, node id, or table/address
    answer_tag: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class CommandRefused(Exception):
    """Raised by ``check`` internally; carries the refusal."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


_SPARKPLUG_DEFAULT = {"float": "Double", "int": "Int64", "bool": "Boolean", "enum": "Int32"}
_OPCUA_DEFAULT = {"float": "Double", "int": "Int32", "bool": "Boolean", "enum": "Int32"}


class CommandService:
    """The ``control`` platform service (see the module docstring)."""

    name = "control"

    def __init__(self, config: ControlConfig, *, clock: Callable[[], int] = time.monotonic_ns) -> None:
        """``clock``: monotonic nanoseconds for confirmation expiry (tests inject one)."""
        self.config = config
        self._clock = clock
        self._platform: Platform | None = None
        self._audit: AuditLog | None = None
        self._commands: dict[str, _Resolved] = {}
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._mqtt: SparkplugSender | None = None
        self._reports: Subscription | None = None
        self._reported: dict[int, tuple[float, int]] = {}
        self._opcua: dict[OpcUaSource, OpcUaSender] = {}
        self._modbus: dict[ModbusSource, ModbusSender] = {}
        self.counts: Counter[str] = Counter()
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def audit(self) -> AuditLog:
        assert self._audit is not None, "control service not started"
        return self._audit

    def start(self, platform: Platform) -> None:
        self._platform = platform
        self._commands = {c.name: self._resolve(platform, c) for c in self.config.commands}
        self._audit = AuditLog(platform.data_dir / "control-audit.sqlite")
        answer_tags = {r.answer_tag for r in self._commands.values() if r.answer_tag is not None}
        if answer_tags:  # what the devices last reported as the platform received it (see _last_reported)
            self._reports = platform.intake.subscribe(answer_tags, maxlen=64)
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="shopfloor-control", daemon=True)
        self._thread.start()
        if any(r.protocol == "sparkplug" for r in self._commands.values()):
            client, host, port = service_client(platform, f"{platform.config.mqtt.client_id}-control")
            self._mqtt = SparkplugSender(client, host, port)
            self._mqtt.start(timeout=15.0)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            if loop.is_running():
                fut = asyncio.run_coroutine_threadsafe(self._close_clients(), loop)
                try:
                    fut.result(10.0)
                except Exception:
                    log.exception("control: closing the device clients failed")
                loop.call_soon_threadsafe(loop.stop)
            thread.join(10.0)
            loop.close()
        self._loop = self._thread = None
        if self._reports is not None:
            self._reports.close()
            self._reports = None
        if self._mqtt is not None:
            self._mqtt.stop()
            self._mqtt = None
        if self._audit is not None:
            self._audit.close()
            self._audit = None

    async def _close_clients(self) -> None:
        for s in self._opcua.values():
            await s.close()
        for m in self._modbus.values():
            await m.close()

    def health(self) -> dict[str, object]:
        return {
            "commands": len(self._commands),
            "outcomes": dict(self.counts),
            "mqtt_connected": None if self._mqtt is None else self._mqtt.connected,
            "pending_confirmations": sum(1 for p in self._pending.values() if not p.used),
            "last_error": self.last_error,
        }

    def _resolve(self, platform: Platform, c: CommandType) -> _Resolved:
        index, model = platform.tag_index, platform.model
        locks = []
        for lock in c.interlocks:
            paths = lock.resolved_vars(c.equipment)
            max_age = lock.max_age_s if lock.max_age_s is not None else self.config.max_age_s
            locks.append(_Lock(
                lock.name, lock.expression, parse_expression(lock.expression).evaluate,
                {n: index.id_of(p) for n, p in paths.items()}, paths, int(max_age * 1e9),
            ))
        send = c.send
        if isinstance(send, SparkplugSend):
            eq_source = _equipment_source(platform, c.equipment, SparkplugSource)
            topic = command_topic(eq_source)
            answer = c.answer_tag()
            assert answer is not None
            return _Resolved(c, "sparkplug", locks, f"{topic} {send.metric}", index.id_of(answer),
                             {"topic": topic, "datatype": DataType[send.datatype or _SPARKPLUG_DEFAULT[c.value.type]]})
        if isinstance(send, ModbusSend):
            tag = model.tag(f"{c.equipment}/{send.tag}")
            assert isinstance(tag.source, ModbusSource) and tag.modbus is not None
            s = tag.source
            target = f"modbus {s.host}:{s.port}/{s.unit} {tag.modbus.table} {tag.modbus.address}"
            return _Resolved(c, "modbus", locks, target, None, {"source": s, "point": tag.modbus})
        assert isinstance(send, OpcUaSend)
        variant = getattr(ua.VariantType, send.variant or _OPCUA_DEFAULT[c.value.type])
        if send.tag is not None:
            tag = model.tag(f"{c.equipment}/{send.tag}")
            assert isinstance(tag.source, OpcUaSource)
            src, node_id = tag.source, tag.address
        else:
            src = _equipment_source(platform, c.equipment, OpcUaSource)
            node_id = send.node or ""
        if send.method is not None:
            target = f"{src.endpoint} call {send.method} on {send.object}"
        else:
            target = f"{src.endpoint} write {node_id}"
        return _Resolved(c, "opcua", locks, target, None,
                         {"source": src, "node": node_id, "variant": variant, "method": send.method,
                          "object": send.object})

    # ------------------------------------------------------------------ reading

    def command_types(self) -> list[CommandType]:
        return [r.spec for r in self._commands.values()]

    def describe(self) -> list[dict[str, Any]]:
        """Every command type with what it does and its interlocks' state now (for the API and dashboard)."""
        out = []
        for r in self._commands.values():
            c = r.spec
            states = self._interlocks(r)
            out.append({
                "name": c.name, "description": c.description, "equipment": c.equipment, "kind": c.kind,
                "protocol": r.protocol, "target": r.target, "role": c.role.value, "confirm": c.confirm,
                "value": c.value.model_dump(), "interlocks": [_state_dict(s) for s in states],
                "ready": all(s.state == "ok" for s in states),
            })
        return out

    def _interlocks(self, r: _Resolved) -> list[InterlockState]:
        if not r.locks:
            return []
        platform = self._platform
        assert platform is not None
        ids = sorted({i for lock in r.locks for i in lock.vars.values()})
        latest = platform.historian.latest(ids)
        rows = {int(t): k for k, t in enumerate(latest.tag_id.tolist())}
        now = time.time_ns()
        out = []
        for lock in r.locks:
            env: dict[str, np.ndarray[Any, Any]] = {}
            inputs: dict[str, float | None] = {}
            unknown: list[str] = []
            for name, tag_id in lock.vars.items():
                k = rows.get(tag_id)
                value = float(latest.value[k]) if k is not None else math.nan
                why = None
                if k is None:
                    why = "no value yet"
                elif int(latest.quality[k]) != Quality.GOOD:
                    why = f"quality {Quality(int(latest.quality[k])).name.lower()}"
                elif math.isnan(value):
                    why = "null"
                elif now - int(latest.ts[k]) > lock.max_age_ns:
                    why = f"stale ({(now - int(latest.ts[k])) / 1e9:.0f} s old, at most {lock.max_age_ns / 1e9:g} s)"
                inputs[name] = None if why else value
                if why:
                    unknown.append(f"{lock.paths[name]} {why}")
                env[name] = np.array([value], dtype=np.float64)
            if unknown:
                state, detail = "unknown", "value unknown or stale: " + "; ".join(unknown)
            elif bool(lock.evaluate(env)[0]):
                state, detail = "ok", "true"
            else:
                shown = ", ".join(f"{n}={v:g}" for n, v in inputs.items() if v is not None)
                state, detail = "blocked", f"was false ({shown})"
            out.append(InterlockState(lock.name, lock.expression, state, detail, inputs))
        return out

    # ------------------------------------------------------------------ checks

    def _check(self, user: Principal, name: str, raw: object) -> tuple[_Resolved, float, list[InterlockState]]:
        r = self._commands.get(name)
        if r is None:
            raise CommandRefused("unknown_command", f"no command type {name!r}")
        c = r.spec
        needed = max(c.role, Role.OPERATOR, key=lambda x: x.rank)
        if not user.has(needed):
            raise CommandRefused("role", f"role: {c.name} needs role {needed.value}; {user.name} is {user.role.value}")
        value = coerce_value(c.value, raw)
        states = self._interlocks(r)
        for s in states:
            if s.state != "ok":
                raise CommandRefused(f"interlock:{s.name}", f"interlock {s.name}: {s.expression} {s.detail}")
        return r, value, states

    def authorize(self, user: Principal, command: str, value: object, *, audit: bool = True) -> Decision:
        """Role, value and interlocks of one command, without sending it; audited as step 'authorize'.

        For services that act on a command type themselves (e.g. a drive session of a remotely
        driven vehicle): they call this before they start, and honour a refusal. Confirmation is
        not part of it (that is a property of the request/confirm exchange).
        """
        try:
            r, v, states = self._check(user, command, value)
        except CommandRefused as exc:
            decision = Decision(False, command, _as_float(value), exc.rule, exc.reason)
            if audit:
                self._record(user, command, decision.value, "authorize", "refused", exc.rule, exc.reason)
            return decision
        reason = f"{r.spec.name} = {r.spec.value.describe(v)} allowed"
        if audit:
            self._record(user, command, v, "authorize", "authorized", None, reason)
        return Decision(True, command, v, None, reason, tuple(states))

    # ------------------------------------------------------------------ requests

    def request(self, user: Principal, command: str, value: object) -> Outcome:
        """The first (or only) request: refused, sent, or, for a confirm command, a token to confirm with."""
        try:
            r, v, _ = self._check(user, command, value)
        except CommandRefused as exc:
            return self._refused(user, command, value, "request", exc)
        if r.spec.confirm:
            token = secrets.token_urlsafe(18)
            ttl = self.config.confirm_ttl_s
            with self._lock:
                self._expire()
                while len(self._pending) >= MAX_PENDING:  # bounded: the oldest request loses its token
                    del self._pending[next(iter(self._pending))]
                self._pending[token] = _Pending(user.name, command, v, self._clock() + int(ttl * 1e9))
            summary = f"{_summary(r, v)}; confirm within {ttl:g} s"
            reason = f"confirm: {command} needs a confirming request with the token"
            audit_id = self._record(user, command, v, "request", "confirm_required", "confirm", summary)
            return Outcome("confirm_required", command, v, r.spec.value.describe(v), "confirm", reason,
                           token=token, expires_in_s=ttl, summary=summary, audit_id=audit_id)
        return self._execute(user, r, v, "request")

    def confirm(self, user: Principal, command: str, value: object, token: str) -> Outcome:
        """The second request of a confirm command: the token must be this user's, for this command and value."""
        try:
            r, v, _ = self._check(user, command, value)
        except CommandRefused as exc:
            return self._refused(user, command, value, "confirm", exc)
        with self._lock:
            pending = self._pending.get(token)
            problem = None
            if pending is None:
                problem = "confirm: unknown confirmation token (request the command first)"
            elif pending.used:
                problem = "confirm: this confirmation token was already used"
            elif self._clock() > pending.expires_ns:
                problem = f"confirm: the confirmation expired (valid {self.config.confirm_ttl_s:g} s)"
            elif (pending.user, pending.command, pending.value) != (user.name, command, v):
                problem = (f"confirm: the token was issued to {pending.user} for {pending.command} = "
                           f"{pending.value:g}, not {user.name} for {command} = {v:g}")
            if pending is not None and problem is None:
                pending.used = True
        if problem is not None:
            return self._refused(user, command, v, "confirm", CommandRefused("confirm", problem))
        return self._execute(user, r, v, "confirm")

    def _expire(self) -> None:
        now = self._clock()
        grace = int(self.config.confirm_ttl_s * 1e9)  # used/expired tokens stay a while, to say so when reused
        for t in [t for t, p in self._pending.items() if now > p.expires_ns + grace]:
            del self._pending[t]

    def _refused(self, user: Principal, command: str, value: object, step: str, exc: CommandRefused) -> Outcome:
        v = _as_float(value)
        audit_id = self._record(user, command, v, step, "refused", exc.rule, exc.reason, text=_text(value))
        return Outcome("refused", command, v, _text(value), exc.rule, exc.reason, audit_id=audit_id)

    def _execute(self, user: Principal, r: _Resolved, value: float, step: str) -> Outcome:
        timeout = r.spec.answer_timeout_s or self.config.answer_timeout_s
        try:
            answer = self._run(self._send(r, value, timeout), timeout + 15.0)
        except Exception as exc:  # a sender bug must not lose the audit row
            log.exception("control: sending %s failed", r.spec.name)
            answer = DeviceAnswer(False, f"not sent: {exc}", 0.0)
        decision = "executed" if answer.ok else ("timeout" if answer.timeout else "failed")
        if not answer.ok:
            self.last_error = f"{r.spec.name}: {answer.answer}"
        reason = _summary(r, value)
        audit_id = self._record(user, r.spec.name, value, step, decision, None, reason, answer.answer,
                                answer.round_trip_ms)
        return Outcome(decision, r.spec.name, value, r.spec.value.describe(value), None, reason, answer.answer,
                       round(answer.round_trip_ms, 3), summary=reason, audit_id=audit_id)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("control service not started")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    async def _send(self, r: _Resolved, value: float, timeout: float) -> DeviceAnswer:
        x = r.extra
        if r.protocol == "modbus":
            source: ModbusSource = x["source"]
            sender = self._modbus.get(source)
            if sender is None:
                sender = self._modbus[source] = ModbusSender(source)
            return await sender.write(x["point"], value)
        if r.protocol == "opcua":
            src: OpcUaSource = x["source"]
            ua_sender = self._opcua.get(src)
            if ua_sender is None:
                ua_sender = self._opcua[src] = OpcUaSender(src, timeout)
            if x["method"] is not None:
                return await ua_sender.call(x["object"], x["method"], value, x["variant"])
            return await ua_sender.write(x["node"], value, x["variant"])
        return await self._send_sparkplug(r, value, timeout)

    def _last_reported(self, tag: int) -> tuple[float, int] | None:
        """The device's last report of ``tag`` (value, quality) as the platform received it: the writer's intake,
        not the historian, whose latest value lags a commit behind (a stop right after a start would otherwise
        see the state from before the start and answer "no change")."""
        if self._reports is not None:
            newest = self._reports.drain().last_per_tag()
            for t, v, q in zip(newest.tag_id.tolist(), newest.value.tolist(), newest.quality.tolist(), strict=True):
                self._reported[t] = (v, q)
        if tag in self._reported:
            return self._reported[tag]
        platform = self._platform
        assert platform is not None
        before = platform.historian.latest([tag])  # nothing received since the start: the stored value
        return (float(before.value[0]), int(before.quality[0])) if len(before) == 1 else None

    async def _send_sparkplug(self, r: _Resolved, value: float, timeout: float) -> DeviceAnswer:
        platform, mqtt = self._platform, self._mqtt
        assert platform is not None and mqtt is not None and r.answer_tag is not None
        c = r.spec
        assert isinstance(c.send, SparkplugSend)
        expected = value
        tolerance = 1e-6
        if c.answer is not None:
            tolerance = c.answer.tolerance
            if c.answer.expect is not None:
                expected = c.answer.expect.get(value, value)
        # A device that reports by exception sends nothing when the value does not change (a stop of a stopped
        # machine): then the value it last reported, while its session is alive (good quality), is the answer.
        reported = self._last_reported(r.answer_tag)
        unchanged = (reported is not None and reported[1] == Quality.GOOD
                     and abs(reported[0] - expected) <= tolerance)
        # the report as the platform receives it (the writer's intake), not after its commit a batch later
        sub = platform.intake.subscribe({r.answer_tag}, maxlen=256, loop=asyncio.get_running_loop())
        t0 = time.perf_counter()
        last: float | None = None
        try:
            payload = encode_command(time.time_ns() // 1_000_000, c.send.metric, r.extra["datatype"], value)
            try:
                mqtt.publish(r.extra["topic"], payload)
            except Exception as exc:
                return DeviceAnswer(False, f"not sent: {exc}", (time.perf_counter() - t0) * 1000)
            if unchanged:
                ms = (time.perf_counter() - t0) * 1000
                return DeviceAnswer(True, f"{_short(r)} was already reported {expected:g}: sent, no change to report",
                                    ms)
            deadline = t0 + timeout
            while (left := deadline - time.perf_counter()) > 0:
                batch = await sub.next(left)
                for v, q in zip(batch.value.tolist(), batch.quality.tolist(), strict=True):
                    if q != Quality.GOOD:
                        continue
                    last = v
                    if abs(v - expected) <= tolerance:
                        ms = (time.perf_counter() - t0) * 1000
                        return DeviceAnswer(True, f"reported {_short(r)} = {v:g} after {ms:.0f} ms", ms)
        finally:
            sub.close()
        seen = "nothing" if last is None else f"{last:g}"
        return DeviceAnswer(False, f"no report of {_short(r)} = {expected:g} within {timeout:g} s (last reported "
                            f"{seen})", (time.perf_counter() - t0) * 1000, timeout=True)

    def _record(
        self, user: Principal, command: str, value: float | None, step: str, decision: str, rule: str | None,
        reason: str, answer: str | None = None, round_trip_ms: float | None = None, *, text: str | None = None,
    ) -> int:
        r = self._commands.get(command)
        spec = r.spec if r is not None else None
        if text is None:
            text = spec.value.describe(value) if spec is not None and value is not None else _text(value)
        self.counts[decision] += 1
        return self.audit.append(AuditEntry(
            ts_ns=time.time_ns(), user=user.name, role=user.role.value, command=command,
            kind=spec.kind if spec else "", equipment=spec.equipment if spec else "",
            protocol=r.protocol if r else "", target=r.target if r else "", value=value, value_text=text,
            step=step, decision=decision, rule=rule, reason=reason, answer=answer, round_trip_ms=round_trip_ms,
        ))


def coerce_value(spec: ValueSpec, raw: object) -> float:
    """The command's value as a float, or CommandRefused('value'/'range') saying what is wrong."""
    if spec.type == "enum" and isinstance(raw, str) and spec.states is not None:
        codes = {label: code for code, label in spec.states.items()}
        if raw in codes:
            return float(codes[raw])
    if isinstance(raw, int | float):  # bool included
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            raise CommandRefused("value", f"value: {raw!r} is not a number") from None
    else:
        raise CommandRefused("value", f"value: {raw!r} is not a number")
    if not math.isfinite(value):
        raise CommandRefused("value", f"value: {value} is not a finite number")
    if spec.type == "bool":
        if value not in (0.0, 1.0):
            raise CommandRefused("value", f"value: {value:g} is not a bool (0/1, false/true)")
    elif spec.type == "enum":
        assert spec.states is not None
        if value not in spec.states:
            allowed = ", ".join(f"{k} ({v})" for k, v in sorted(spec.states.items()))
            raise CommandRefused("range", f"range: {value:g} is not one of {allowed}")
    else:
        if spec.type == "int" and value != round(value):
            raise CommandRefused("value", f"value: {value:g} is not an integer")
        assert spec.min is not None and spec.max is not None
        if not spec.min <= value <= spec.max:
            unit = f" {spec.unit}" if spec.unit else ""
            raise CommandRefused("range", f"range: {value:g}{unit} is outside [{spec.min:g}, {spec.max:g}]{unit}")
    return value


def _equipment_source(platform: Platform, equipment: str, kind: type[T]) -> T:
    for area in platform.config.site.areas:
        for line in area.lines:
            base = f"{platform.config.site.name}/{area.name}/{line.name}"
            for cell in line.cells:
                for e in cell.equipment:
                    if f"{base}/{cell.name}/{e.name}" == equipment and isinstance(e.source, kind):
                        return e.source
            for e in line.equipment:
                if f"{base}/{e.name}" == equipment and isinstance(e.source, kind):
                    return e.source
    raise ValueError(f"equipment {equipment!r} has no {kind.__name__}")  # the config check prevents it


def _as_float(value: object) -> float | None:
    if isinstance(value, bool | int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _text(value: object) -> str:
    return str(value)[:100]


def _short(r: _Resolved) -> str:
    assert r.answer_tag is not None and isinstance(r.spec.send, SparkplugSend)
    path = r.spec.answer_tag() or ""
    return path.rsplit("/", 1)[-1]


def _summary(r: _Resolved, value: float) -> str:
    c = r.spec
    return f"{c.kind} {c.equipment.rsplit('/', 1)[-1]}: {c.name} = {c.value.describe(value)} via {r.target}"


def _state_dict(s: InterlockState) -> dict[str, Any]:
    return {"name": s.name, "expression": s.expression, "state": s.state, "detail": s.detail, "inputs": s.inputs}


__all__ = ["CommandRefused", "CommandService", "Decision", "InterlockState", "Outcome", "coerce_value"]
