"""Load plant.yaml; every error names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from shopfloor.config.schema import PlantConfig
from shopfloor.core.errors import ShopfloorError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


class ConfigError(ShopfloorError):
    """A configuration file that cannot be used, with where and why."""

    def __init__(self, file: str, problems: list[tuple[int | None, str, str]]) -> None:
        self.file = file
        self.problems = problems  # (line, field, message)
        lines = []
        for line, field, message in problems:
            where = f"{file}:{line}" if line else file
            lines.append(f"{where}: {field}: {message}" if field else f"{where}: {message}")
        super().__init__("\n".join(lines))


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    """Turn a composed YAML node into plain data, remembering each location's line (1-based)."""
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, (*loc, key), lines)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*loc, i), lines) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def _field_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def parse_yaml_model(text: str, model: type[M], file: str = "<string>", *, top_level: str = "a mapping") -> M:
    """Validate YAML text against a pydantic model; raise ConfigError naming file, line and field.

    ``top_level`` says what the top level must be, for the error when it is not a mapping.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(file, [(line, "", f"invalid YAML: {exc.problem or exc}")]) from None
    if node is None:
        raise ConfigError(file, [(None, "", "the file is empty")])
    lines: dict[Loc, int] = {}
    data = _construct(node, (), lines)
    if not isinstance(data, dict):
        raise ConfigError(file, [(lines.get(()), "", f"the top level must be {top_level}")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            (_line_of(loc, lines), _field_path(loc), err["msg"])
            for err in exc.errors()
            for loc in [_file_loc(data, err["loc"])]
        ]
        raise ConfigError(file, problems) from None


def load_yaml_model(path: str | Path, model: type[M], *, top_level: str = "a mapping") -> M:
    """Read a YAML file and validate it (see parse_yaml_model)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [(None, "", f"cannot read: {exc.strerror or exc}")]) from None
    return parse_yaml_model(text, model, str(p), top_level=top_level)


def _file_loc(data: Any, loc: Loc) -> Loc:
    """The part of a pydantic error location that exists in the file.

    Pydantic adds the tag of a discriminated union's branch (e.g. 'modbus' for a source with
    ``protocol: modbus``) that is not a key in the YAML; it is skipped. Keys that the file lacks
    (a missing field) are kept.
    """
    out: list[str | int] = []
    cur: Any = data
    for part in loc:
        in_map = isinstance(cur, dict) and part in cur
        in_list = isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        if in_map or in_list:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and isinstance(part, str) and part in cur.values():
            continue
        else:
            out.append(part)
            cur = None
    return tuple(out)


_PLANT_TOP = "a mapping with a 'site' key"


def parse_plant_config(text: str, file: str = "<string>") -> PlantConfig:
    """Validate plant.yaml text; raise ConfigError naming file, line and field."""
    return parse_yaml_model(text, PlantConfig, file, top_level=_PLANT_TOP)


def load_plant_config(path: str | Path) -> PlantConfig:
    """Read and validate a plant.yaml file."""
    return load_yaml_model(path, PlantConfig, top_level=_PLANT_TOP)
