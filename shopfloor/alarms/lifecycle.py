"""The ISA-18.2 alarm state machine, pure: no I/O, no clock, so it can be tested exhaustively.

States (ISA-18.2 figure 5): normal (A), unacknowledged active (B), acknowledged
active (C), returned to normal unacknowledged (D). Shelved, suppressed by design
and out of service are orthogonal "blocks": a blocked alarm is not annunciated
and rests in normal; its process condition is still tracked, and when the last
block lifts the alarm returns as unacknowledged active if the condition is
present, else normal.

Every call that changes anything returns one Transition, which the engine
journals; calls that change nothing return None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class AlarmState(StrEnum):
    NORMAL = "normal"
    UNACK = "unack_active"
    ACKED = "acked_active"
    RTN_UNACK = "rtn_unack"


class NotAllowed(Exception):
    """An operator action that does not apply to the alarm's present state (the API answers 409)."""


@dataclass(frozen=True, slots=True)
class Transition:
    alarm_id: str
    event: str
    from_state: str
    to_state: str
    ts_ns: int
    value: float | None = None
    user: str | None = None
    comment: str = ""
    annunciated: bool = True


@dataclass
class AlarmStatus:
    """One alarm's lifecycle state; persisted as it is (see store.py)."""

    alarm_id: str
    state: AlarmState = AlarmState.NORMAL
    condition: bool = False
    shelved_until_ns: int | None = None
    suppressed: bool = False
    out_of_service: bool = False
    value: float | None = None
    changed_ns: int | None = None
    active_since_ns: int | None = None
    unack_since_ns: int | None = None
    acked_by: str | None = None
    acked_ns: int | None = None
    escalation_level: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return self.shelved_until_ns is not None or self.suppressed or self.out_of_service

    @property
    def shelved(self) -> bool:
        return self.shelved_until_ns is not None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlarmStatus:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["state"] = AlarmState(known.get("state", "normal"))
        return cls(**known)

    # --- process condition -------------------------------------------------------------------------------------

    def set_condition(self, active: bool, ts_ns: int, value: float | None) -> Transition | None:
        """The (debounced) process condition changed."""
        if active == self.condition:
            return None
        self.condition = active
        self.value = value
        before = self.state
        if active:
            self.active_since_ns = ts_ns
            if not self.blocked and self.state in (AlarmState.NORMAL, AlarmState.RTN_UNACK):
                self._enter_unack(ts_ns)
        else:
            self.active_since_ns = None
            if self.state == AlarmState.UNACK:
                self.state = AlarmState.RTN_UNACK
            elif self.state == AlarmState.ACKED:
                self.state = AlarmState.NORMAL
        self.changed_ns = ts_ns
        return Transition(
            self.alarm_id, "activated" if active else "cleared", before, self.state, ts_ns, value,
            annunciated=not self.blocked,
        )

    # --- operator actions ----------------------------------------------------------------------------------------

    def acknowledge(self, ts_ns: int, user: str, comment: str = "") -> Transition:
        before = self.state
        if self.state == AlarmState.UNACK:
            self.state = AlarmState.ACKED
        elif self.state == AlarmState.RTN_UNACK:
            self.state = AlarmState.NORMAL
        else:
            raise NotAllowed(f"alarm {self.alarm_id!r} is {self.state.value}: nothing to acknowledge")
        self.acked_by, self.acked_ns, self.unack_since_ns = user, ts_ns, None
        self.escalation_level = 0
        self.changed_ns = ts_ns
        return Transition(self.alarm_id, "acknowledged", before, self.state, ts_ns, self.value, user, comment)

    def shelve(self, until_ns: int, ts_ns: int, user: str, comment: str = "") -> Transition:
        if self.out_of_service:
            raise NotAllowed(f"alarm {self.alarm_id!r} is out of service")
        if until_ns <= ts_ns:
            raise NotAllowed("shelving must end in the future")
        before = self.state
        self.shelved_until_ns = until_ns
        self._rest(ts_ns)
        return Transition(self.alarm_id, "shelved", before, self.state, ts_ns, self.value, user, comment)

    def unshelve(self, ts_ns: int, user: str | None, comment: str = "", *, expired: bool = False) -> Transition:
        if not self.shelved:
            raise NotAllowed(f"alarm {self.alarm_id!r} is not shelved")
        before = self.state
        self.shelved_until_ns = None
        self._unblocked(ts_ns)
        event = "shelve_expired" if expired else "unshelved"
        return Transition(self.alarm_id, event, before, self.state, ts_ns, self.value, user, comment)

    def set_suppressed(self, suppressed: bool, ts_ns: int, value: float | None) -> Transition | None:
        """Designed suppression by equipment state (value: the state tag's value that decided)."""
        if suppressed == self.suppressed:
            return None
        before = self.state
        self.suppressed = suppressed
        if suppressed:
            self._rest(ts_ns)
        else:
            self._unblocked(ts_ns)
        event = "suppressed" if suppressed else "unsuppressed"
        return Transition(self.alarm_id, event, before, self.state, ts_ns, value, None)

    def set_out_of_service(self, oos: bool, ts_ns: int, user: str, comment: str = "") -> Transition:
        if oos == self.out_of_service:
            raise NotAllowed(f"alarm {self.alarm_id!r} is already {'out of' if oos else 'in'} service")
        before = self.state
        self.out_of_service = oos
        if oos:
            self.shelved_until_ns = None  # out of service outranks shelving
            self._rest(ts_ns)
        else:
            self._unblocked(ts_ns)
        event = "removed_from_service" if oos else "returned_to_service"
        return Transition(self.alarm_id, event, before, self.state, ts_ns, self.value, user, comment)

    def escalate(self, level: int, ts_ns: int) -> Transition:
        self.escalation_level = level
        return Transition(self.alarm_id, "escalated", self.state, self.state, ts_ns, self.value, None, f"step {level}")

    # --- helpers -------------------------------------------------------------------------------------------------

    def _enter_unack(self, ts_ns: int) -> None:
        self.state = AlarmState.UNACK
        self.unack_since_ns = ts_ns
        self.acked_by = self.acked_ns = None
        self.escalation_level = 0

    def _rest(self, ts_ns: int) -> None:
        self.state = AlarmState.NORMAL
        self.unack_since_ns = None
        self.changed_ns = ts_ns

    def _unblocked(self, ts_ns: int) -> None:
        if not self.blocked:
            if self.condition:
                self._enter_unack(ts_ns)
            else:
                self.state = AlarmState.NORMAL
        self.changed_ns = ts_ns
