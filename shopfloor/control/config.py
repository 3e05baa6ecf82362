"""The ``control:`` section of plant.yaml: the command types operators may send to equipment.

Only pydantic here (the plant schema imports this module). Each command type says what it does
(``kind``), to which equipment, how it travels (``send``: a Sparkplug B NCMD/DCMD metric, an OPC UA
node write or method call, a Modbus register or coil write), what values it takes, who may send it
(``role``), which conditions must hold (``interlocks``, safe expressions over live tags) and whether
it needs a second, confirming request (``confirm``). Addresses and endpoints come from the
equipment's own source in the site tree, so a command never repeats (and never contradicts) where
the device is. ``check_control`` checks the section against the site once the site is known; the
plant schema calls it, so a wrong command is an error of the file, not of the running platform.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopfloor.alarms.expression import ExpressionError, parse_expression
from shopfloor.auth.store import Role

if TYPE_CHECKING:
    from shopfloor.config.schema import EquipmentConfig, SiteConfig, TagConfig

CommandName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
Kind = Literal["setpoint", "start_stop", "mode", "drive", "jog"]
ValueType = Literal["float", "int", "bool", "enum"]
SparkplugType = Literal["Double", "Float", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "Boolean"]
OpcUaType = Literal["Double", "Float", "SByte", "Int16", "Int32", "Int64", "Byte", "UInt16", "UInt32", "Boolean"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueSpec(Strict):
    """What a command's value may be. ``bool`` takes 0/1 (false/true); ``enum`` one of ``states``' codes."""

    type: ValueType = "float"
    min: float | None = Field(default=None, description="Lowest allowed value (float, int).")
    max: float | None = Field(default=None, description="Highest allowed value (float, int).")
    unit: str = ""
    states: dict[int, str] | None = Field(default=None, description="enum: the allowed codes and their labels.")

    @model_validator(mode="after")
    def _consistent(self) -> ValueSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"value range min ({self.min:g}) is above max ({self.max:g})")
        if self.type == "enum" and not self.states:
            raise ValueError("an enum value needs 'states' (code: label)")
        if self.type != "enum" and self.states:
            raise ValueError("'states' is only for enum values")
        if self.type in ("bool", "enum") and (self.min is not None or self.max is not None):
            raise ValueError(f"a {self.type} value takes no min/max")
        if self.type in ("float", "int") and (self.min is None or self.max is None):
            raise ValueError(f"a {self.type} value needs both 'min' and 'max': a command without a range is unsafe")
        return self

    def describe(self, value: float) -> str:
        """The value as an operator reads it: a state's label, true/false, or the number with its unit."""
        if self.type == "enum" and self.states is not None and value in self.states:
            return f"{self.states[int(value)]} ({int(value)})"
        if self.type == "bool":
            return "true" if value else "false"
        return f"{value:g} {self.unit}".rstrip()


class Interlock(Strict):
    """A condition over live tag values that must be true for the command to go out."""

    name: CommandName
    expression: str = Field(max_length=2000, description="e.g. 'state != 2 and guard_closed == 1'")
    vars: dict[str, str] = Field(
        default_factory=dict, description="Name -> tag path; other names are tags of the command's equipment."
    )
    max_age_s: float | None = Field(
        default=None, gt=0, description="Inputs older than this count as unknown; default control.max_age_s."
    )

    @model_validator(mode="after")
    def _parses(self) -> Interlock:
        try:
            parse_expression(self.expression)
        except ExpressionError as exc:
            raise ValueError(f"interlock {self.name!r}: {exc}") from None
        return self

    def resolved_vars(self, equipment: str) -> dict[str, str]:
        """Name -> tag path of every name in the expression."""
        names = parse_expression(self.expression).names
        return {n: self.vars.get(n, f"{equipment}/{n}") for n in sorted(names)}


class SparkplugSend(Strict):
    """A Sparkplug B command: DCMD to the equipment's device (NCMD when its source names no device)."""

    protocol: Literal["sparkplug"]
    metric: str = Field(min_length=1, max_length=200, description="Metric name in the command payload.")
    datatype: SparkplugType | None = Field(default=None, description="Default: from the value type.")


class OpcUaSend(Strict):
    """An OPC UA node write (``node`` or ``tag``) or method call (``method`` on ``object``)."""

    protocol: Literal["opcua"]
    node: str | None = Field(default=None, description="Node id to write, e.g. ns=2;s=robot1.mode.")
    tag: str | None = Field(default=None, description="A tag of the equipment: write its node (its address).")
    method: str | None = Field(default=None, description="Method node id to call with the value as argument.")
    object: str | None = Field(default=None, description="The object the method is called on.")
    variant: OpcUaType | None = Field(default=None, description="Variant type sent; default: from the value type.")

    @model_validator(mode="after")
    def _one_target(self) -> OpcUaSend:
        targets = [x for x in (self.node, self.tag, self.method) if x is not None]
        if len(targets) != 1:
            raise ValueError("an opcua command names exactly one of 'node', 'tag' (write) or 'method' (call)")
        if (self.method is None) != (self.object is None):
            raise ValueError("an opcua method call needs both 'method' and 'object'")
        return self


class ModbusSend(Strict):
    """A Modbus write to the point of one of the equipment's tags (holding register(s) or coil)."""

    protocol: Literal["modbus"]
    tag: str = Field(description="Tag of the equipment whose Modbus point (table, address, type, scale) is written.")


Send = Annotated[SparkplugSend | OpcUaSend | ModbusSend, Field(discriminator="protocol")]


class Answer(Strict):
    """How the device's answer is recognised: a tag it reports reaching the expected value."""

    tag: str = Field(description="Tag of the equipment (or a full tag path) that reports the result.")
    expect: dict[float, float] | None = Field(
        default=None, description="Commanded value -> reported value (e.g. start 1 -> state 0); default: the same."
    )
    tolerance: float = Field(default=1e-6, ge=0, description="Absolute tolerance of the comparison.")


class CommandType(Strict):
    """One command operators may send (see the module docstring)."""

    name: CommandName
    description: str = Field(default="", max_length=500)
    equipment: str = Field(description="Path of the equipment, e.g. site/area/line/cell/cnc1.")
    kind: Kind
    send: Send
    value: ValueSpec = Field(default_factory=lambda: ValueSpec(type="bool"))
    role: Role = Field(default=Role.OPERATOR, description="Least role that may send it (operator at least).")
    interlocks: list[Interlock] = Field(default_factory=list)
    confirm: bool = Field(default=False, description="Dangerous: a second request with the token must confirm it.")
    answer: Answer | None = Field(
        default=None, description="Sparkplug: the reported tag that answers (default: the tag named like the metric)."
    )
    answer_timeout_s: float | None = Field(default=None, gt=0, le=120, description="Default control.answer_timeout_s.")

    @model_validator(mode="after")
    def _check(self) -> CommandType:
        if self.role == Role.VIEWER:
            raise ValueError(f"command {self.name!r}: role viewer cannot send commands; use operator or above")
        names = [i.name for i in self.interlocks]
        if len(set(names)) != len(names):
            raise ValueError(f"command {self.name!r}: duplicate interlock names")
        return self

    def answer_tag(self) -> str | None:
        """Full path of the tag whose report answers a Sparkplug command (None for OPC UA and Modbus)."""
        if not isinstance(self.send, SparkplugSend):
            return None
        name = self.answer.tag if self.answer is not None else self.send.metric
        return name if "/" in name else f"{self.equipment}/{name}"


class ControlConfig(Strict):
    """The ``control:`` section (docs/control.md)."""

    commands: list[CommandType] = Field(default_factory=list)
    confirm_ttl_s: float = Field(default=30.0, gt=0, le=600, description="Lifetime of a confirmation token.")
    answer_timeout_s: float = Field(default=5.0, gt=0, le=120, description="Wait this long for the device's answer.")
    max_age_s: float = Field(
        default=120.0, gt=0, description="Interlock inputs older than this count as unknown (stale)."
    )
    audit_rows_max: int = Field(default=1000, ge=1, le=100_000, description="Most audit rows one API read returns.")

    @model_validator(mode="after")
    def _unique(self) -> ControlConfig:
        seen: set[str] = set()
        for c in self.commands:
            if c.name in seen:
                raise ValueError(f"duplicate command name {c.name!r}")
            seen.add(c.name)
        return self


def _site_index(site: SiteConfig) -> dict[str, EquipmentConfig]:
    out: dict[str, EquipmentConfig] = {}
    for area in site.areas:
        for line in area.lines:
            base = f"{site.name}/{area.name}/{line.name}"
            for cell in line.cells:
                out.update({f"{base}/{cell.name}/{e.name}": e for e in cell.equipment})
            out.update({f"{base}/{e.name}": e for e in line.equipment})
    return out


def check_control(control: ControlConfig, site: SiteConfig) -> None:
    """Check every command against the site: equipment, tags, and a ``send`` that fits the source.

    Raises ValueError naming the command and what is wrong (the plant schema reports it as a
    validation error of the file).
    """
    from shopfloor.config.schema import ModbusSource, OpcUaSource, SparkplugSource

    equipment = _site_index(site)
    tags: dict[str, TagConfig] = {f"{p}/{t.name}": t for p, e in equipment.items() for t in e.tags}
    for i, c in enumerate(control.commands):
        where = f"control.commands[{i}] ({c.name})"
        eq = equipment.get(c.equipment)
        if eq is None:
            raise ValueError(f"{where}: unknown equipment {c.equipment!r}")
        for lock in c.interlocks:
            for name, path in lock.resolved_vars(c.equipment).items():
                if path not in tags:
                    raise ValueError(f"{where}: interlock {lock.name!r} names {name!r}: unknown tag {path!r}")
        send = c.send
        if isinstance(send, SparkplugSend):
            if not isinstance(eq.source, SparkplugSource):
                raise ValueError(f"{where}: a sparkplug command needs equipment whose source is sparkplug")
            answer = c.answer_tag()
            assert answer is not None
            if answer not in tags:
                raise ValueError(
                    f"{where}: the answer tag {answer!r} is unknown (set 'answer.tag' to the tag the device reports)"
                )
        elif isinstance(send, ModbusSend):
            path = f"{c.equipment}/{send.tag}"
            tag = tags.get(path)
            if tag is None:
                raise ValueError(f"{where}: unknown tag {path!r}")
            source = tag.source or eq.source
            if not isinstance(source, ModbusSource) or tag.modbus is None:
                raise ValueError(f"{where}: tag {path!r} is not read from a Modbus device")
            if tag.modbus.table not in ("holding", "coil"):
                raise ValueError(f"{where}: tag {path!r} is a {tag.modbus.table} point: Modbus cannot write it")
            if (tag.modbus.table == "coil") != (c.value.type == "bool"):
                raise ValueError(f"{where}: a coil takes a bool value and a register a number")
        else:
            if send.tag is not None:
                path = f"{c.equipment}/{send.tag}"
                tag = tags.get(path)
                if tag is None:
                    raise ValueError(f"{where}: unknown tag {path!r}")
                if not isinstance(tag.source or eq.source, OpcUaSource):
                    raise ValueError(f"{where}: tag {path!r} is not read from an OPC UA server")
            elif not isinstance(eq.source, OpcUaSource):
                raise ValueError(f"{where}: an opcua command needs equipment whose source is opcua")
        if c.answer is not None and not isinstance(send, SparkplugSend):
            raise ValueError(f"{where}: 'answer' is for sparkplug commands (OPC UA and Modbus answer the write)")


__all__ = [
    "Answer",
    "CommandType",
    "ControlConfig",
    "Interlock",
    "ModbusSend",
    "OpcUaSend",
    "SparkplugSend",
    "ValueSpec",
    "check_control",
]
