"""The ``alarms:`` section of plant.yaml, and the same rule models for the API.

Only pydantic here (the plant schema imports it). Rules name tags by path; the
plant schema tells these validators which tags exist through ``known_tags``
while it validates a file, so a rule on an unknown tag is an error at the
rule's own line. The API validates against the running model the same way.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shopfloor.alarms.expression import ExpressionError, parse_expression

Priority = Literal["low", "medium", "high", "critical"]
PRIORITY_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}
Level = Literal["HH", "H", "L", "LL"]
RULE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
RuleName = Annotated[str, Field(pattern=RULE_NAME_PATTERN, max_length=64)]


@dataclass
class KnownTags:
    """What the validators may check rules against: tag path -> state labels (code by label) or None."""

    states: dict[str, dict[str, int] | None] = field(default_factory=dict)
    complete: bool = True  # False while the site is unknown (invalid): then nothing is checked

    def equipment(self) -> set[str]:
        return {p.rsplit("/", 1)[0] for p in self.states}


known_tags: ContextVar[KnownTags | None] = ContextVar("shopfloor_known_tags", default=None)


@contextlib.contextmanager
def validating_against(tags: KnownTags) -> Iterator[None]:
    """Validate rules against these tags inside the block (the API uses it with the running model)."""
    token = known_tags.set(tags)
    try:
        yield
    finally:
        known_tags.reset(token)


def _known() -> KnownTags | None:
    tags = known_tags.get()
    return tags if tags is not None and tags.complete else None


def _check_tag(path: str) -> str:
    tags = _known()
    if tags is not None and path not in tags.states:
        raise ValueError(f"unknown tag {path!r}")
    return path


def _state_codes(path: str, states: list[int | str]) -> None:
    tags = _known()
    if tags is None or path not in tags.states:
        return
    labels = tags.states[path]
    for s in states:
        if isinstance(s, str) and (labels is None or s not in labels):
            known = ", ".join(sorted(labels)) if labels else "none: use numeric codes"
            raise ValueError(f"tag {path!r} has no state {s!r} (its states: {known})")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleBase(Strict):
    name: RuleName
    priority: Priority = "medium"
    message: str = Field(default="", max_length=500, description="Text shown with the alarm.")
    on_delay_s: float = Field(default=0.0, ge=0, description="The condition must hold this long to raise the alarm.")
    off_delay_s: float = Field(default=0.0, ge=0, description="It must be gone this long to clear it.")

    def input_tags(self) -> list[str]:
        raise NotImplementedError


class SingleTagRule(RuleBase):
    tag: str

    @field_validator("tag")
    @classmethod
    def _known(cls, v: str) -> str:
        return _check_tag(v)

    def input_tags(self) -> list[str]:
        return [self.tag]


class LimitRule(SingleTagRule):
    """HH/H/L/LL limits, each its own alarm (``<name>:HH`` ...), with a deadband to clear."""

    type: Literal["limit"]
    hh: float | None = None
    h: float | None = None
    l: float | None = None  # noqa: E741 (ISA's own name for the low limit)
    ll: float | None = None
    deadband: float = Field(default=0.0, ge=0, description="A high alarm clears below limit - deadband.")
    priorities: dict[Level, Priority] = Field(default_factory=dict, description="Per level; default: priority.")

    @model_validator(mode="after")
    def _order(self) -> LimitRule:
        levels = self.levels()
        if not levels:
            raise ValueError("a limit rule needs at least one of hh, h, l, ll")
        order = [(lv, v) for lv, v in (("LL", self.ll), ("L", self.l), ("H", self.h), ("HH", self.hh)) if v is not None]
        for (a, va), (b, vb) in itertools.pairwise(order):
            if not va < vb:
                raise ValueError(f"limits must rise LL < L < H < HH: {a}={va} is not below {b}={vb}")
        return self

    def levels(self) -> dict[str, float]:
        out = {"HH": self.hh, "H": self.h, "L": self.l, "LL": self.ll}
        return {k: v for k, v in out.items() if v is not None}


class RateRule(SingleTagRule):
    """Rate of change between consecutive samples, in units per second."""

    type: Literal["rate"]
    max_rate: float = Field(gt=0, description="Units per second.")
    direction: Literal["rise", "fall", "both"] = "both"
    deadband: float = Field(default=0.0, ge=0, description="Clears below max_rate - deadband.")


class StuckRule(SingleTagRule):
    """No change larger than tolerance for for_s seconds (a frozen sensor)."""

    type: Literal["stuck"]
    for_s: float = Field(gt=0)
    tolerance: float = Field(default=0.0, ge=0)


class StateRule(SingleTagRule):
    """A state tag in one of these states for longer than for_s (e.g. down for over 10 minutes)."""

    type: Literal["state"]
    states: list[int | str] = Field(min_length=1, description="Labels of an enum tag, or numeric codes.")
    for_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _states_exist(self) -> StateRule:
        _state_codes(self.tag, self.states)
        return self


class ExpressionRule(RuleBase):
    """A boolean expression over several tags, e.g. ``guard_closed == 0 and speed > 10``."""

    type: Literal["expression"]
    expression: str = Field(max_length=2000)
    equipment: str | None = Field(default=None, description="Names in the expression are this equipment's tags.")
    vars: dict[str, str] = Field(default_factory=dict, description="Name -> tag path; overrides equipment.")

    @model_validator(mode="after")
    def _names_resolve(self) -> ExpressionRule:
        try:
            names = parse_expression(self.expression).names
        except ExpressionError as exc:
            raise ValueError(str(exc)) from None
        tags = _known()
        if tags is not None and self.equipment is not None and self.equipment not in tags.equipment():
            raise ValueError(f"unknown equipment {self.equipment!r}")
        for name in sorted(names):
            if name not in self.vars and self.equipment is None:
                raise ValueError(f"name {name!r} is not in 'vars' and no 'equipment' is given to look it up")
        for path in self.resolved_vars().values():
            _check_tag(path)
        return self

    def resolved_vars(self) -> dict[str, str]:
        names = parse_expression(self.expression).names
        return {n: self.vars.get(n, f"{self.equipment}/{n}") for n in sorted(names)}

    def input_tags(self) -> list[str]:
        return sorted(set(self.resolved_vars().values()))


RULE_TYPES = frozenset({"limit", "rate", "stuck", "state", "expression"})
Rule = Annotated[LimitRule | RateRule | StuckRule | StateRule | ExpressionRule, Field(discriminator="type")]


class SuppressionConfig(Strict):
    """Designed suppression: the rules on an asset's tags are suppressed while a state tag is in these states."""

    asset: str = Field(description="Equipment (or any asset) path; rules whose tags all lie under it are suppressed.")
    tag: str = Field(description="The state tag that decides, e.g. the equipment's mode.")
    states: list[int | str] = Field(min_length=1)

    @model_validator(mode="after")
    def _known(self) -> SuppressionConfig:
        _check_tag(self.tag)
        _state_codes(self.tag, self.states)
        tags = _known()
        if tags is not None and not any(p.startswith(self.asset + "/") for p in tags.states):
            raise ValueError(f"no tag lies under asset {self.asset!r}")
        return self


class WebhookTarget(Strict):
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=5.0, gt=0)


class EmailTarget(Strict):
    to: list[str] = Field(min_length=1)
    subject_prefix: str = "[shopfloor]"


class NotifyTarget(Strict):
    name: RuleName
    webhook: WebhookTarget | None = None
    email: EmailTarget | None = None
    min_priority: Priority = Field(default="low", description="Alarms below this priority are not sent here.")
    min_interval_s: float = Field(
        default=10.0, ge=0, description="Rate limit: at most one message per interval; events in between are batched."
    )
    escalation_only: bool = Field(default=False, description="Only escalations go here (e.g. the shift lead).")

    @model_validator(mode="after")
    def _one_kind(self) -> NotifyTarget:
        if (self.webhook is None) == (self.email is None):
            raise ValueError("a target is either 'webhook' or 'email'")
        return self


class SmtpConfig(Strict):
    host: str
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = "shopfloor@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False
    timeout_s: float = Field(default=10.0, gt=0)


class EscalationStep(Strict):
    after_min: float = Field(gt=0, description="Minutes an alarm has been unacknowledged.")
    targets: list[str] = Field(min_length=1)
    min_priority: Priority = "low"


class NotifyConfig(Strict):
    targets: list[NotifyTarget] = Field(default_factory=list)
    smtp: SmtpConfig | None = None
    escalation: list[EscalationStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> NotifyConfig:
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("target names must be unique")
        for before, after in itertools.pairwise(self.escalation):
            if not before.after_min < after.after_min:
                raise ValueError("escalation steps must come in rising after_min")
        for i, step in enumerate(self.escalation):
            for t in step.targets:
                if t not in names:
                    raise ValueError(f"escalation[{i}] names unknown target {t!r}")
        if self.smtp is None and any(t.email is not None for t in self.targets):
            raise ValueError("an email target needs 'smtp' settings")
        return self


class AlarmsConfig(Strict):
    rules: list[Rule] = Field(default_factory=list)
    suppression: list[SuppressionConfig] = Field(default_factory=list)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    max_shelve_min: float = Field(default=480.0, gt=0, description="Longest shelving an operator may ask for.")
    tick_s: float = Field(default=0.5, gt=0, le=60, description="Seconds between checks of delays and expiries.")

    @field_validator("rules", mode="wrap")
    @classmethod
    def _rule_locations(cls, value: object, handler: ValidatorFunctionWrapHandler) -> object:
        """Drop the rule type pydantic puts in error locations, so they name fields of the file."""
        try:
            return handler(value)
        except ValidationError as exc:
            raise _without_branch(exc, RULE_TYPES) from None

    @model_validator(mode="after")
    def _unique(self) -> AlarmsConfig:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        return self


def _without_branch(exc: ValidationError, branches: frozenset[str]) -> ValidationError:
    errors = []
    for err in exc.errors():
        loc = err["loc"]
        if len(loc) >= 2 and isinstance(loc[0], int) and loc[1] in branches:
            loc = (loc[0], *loc[2:])
        message = err["msg"].removeprefix("Value error, ").replace("{", "(").replace("}", ")")
        errors.append({"type": PydanticCustomError("alarm_rule", message), "loc": loc, "input": err.get("input")})
    return ValidationError.from_exception_data(exc.title, errors)  # type: ignore[arg-type]
