"""plant.yaml validation: good files load, bad ones name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopfloor.config import ConfigError, load_plant_config, parse_plant_config
from shopfloor.core.model import AssetModel

GOOD = """\
site:
  name: acme
  areas:
    - name: machining
      lines:
        - name: line1
          cells:
            - name: cell1
              equipment:
                - name: cnc1
                  type: cnc
                  source: {protocol: sparkplug, group: plant, node: line1, device: cnc1}
                  tags:
                    - {name: spindle_speed, unit: rpm, range: [0, 12000]}
                    - {name: state, type: enum, states: {0: running, 1: idle, 2: down, 3: setup}}
          equipment:
            - name: meter1
              type: energy_meter
              source: {protocol: json, device: meter1}
              tags:
                - {name: power, unit: kW, address: active_power}
mqtt:
  broker: mqtt://10.0.0.5:1883
"""


def test_good_config_builds_the_asset_model() -> None:
    cfg = parse_plant_config(GOOD, "plant.yaml")
    model = AssetModel.from_config(cfg)
    assert [t.path for t in model.tags] == [
        "acme/machining/line1/cell1/cnc1/spindle_speed",
        "acme/machining/line1/cell1/cnc1/state",
        "acme/machining/line1/meter1/power",
    ]
    assert model.tag("acme/machining/line1/meter1/power").address == "active_power"
    assert model.tag("acme/machining/line1/cell1/cnc1/state").states == {0: "running", 1: "idle", 2: "down", 3: "setup"}
    assert model.node("acme/machining/line1").level == "line"
    assert cfg.mqtt.broker == "mqtt://10.0.0.5:1883"


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_plant_config(text, "plant.yaml")
    return info.value


def test_wrong_type_names_line_and_field() -> None:
    bad = GOOD.replace("{name: spindle_speed, unit: rpm, range: [0, 12000]}", "{name: spindle_speed, type: float99}")
    err = _error(bad)
    (line, field, message), = err.problems
    assert line == 14
    assert field == "site.areas[0].lines[0].cells[0].equipment[0].tags[0].type"
    assert "float64" in message
    assert str(err).startswith("plant.yaml:14: site.areas[0].lines[0].cells[0].equipment[0].tags[0].type:")


def test_unknown_field_is_rejected_at_its_line() -> None:
    indent = "                  "
    err = _error(GOOD.replace(f"{indent}type: cnc\n", f"{indent}type: cnc\n{indent}colour: red\n"))
    (line, field, message), = err.problems
    assert (line, field) == (12, "site.areas[0].lines[0].cells[0].equipment[0].colour")
    assert "Extra inputs" in message


def test_bad_source_inside_union_points_at_the_field() -> None:
    err = _error(GOOD.replace("group: plant,", "group: 'bad group!',"))
    (line, field, _), = err.problems
    assert line == 12
    assert field == "site.areas[0].lines[0].cells[0].equipment[0].source.group"


def test_a_modbus_source_error_names_the_field_without_the_union_branch() -> None:
    modbus = "source: {protocol: modbus, host: 10.0.0.9, port: 99999}"
    err = _error(GOOD.replace("source: {protocol: json, device: meter1}", modbus))
    (line, field, _), = err.problems
    assert line == 19
    assert field == "site.areas[0].lines[0].equipment[0].source.port"


def test_missing_site_and_bad_broker() -> None:
    err = _error("mqtt:\n  broker: http://x\n")
    fields = {f for _, f, _ in err.problems}
    assert fields == {"site", "mqtt.broker"}
    assert any(line == 2 for line, f, _ in err.problems if f == "mqtt.broker")


def test_range_and_enum_rules() -> None:
    err = _error(GOOD.replace("range: [0, 12000]", "range: [5, 1]"))
    assert "below high" in err.problems[0][2]
    err = _error(GOOD.replace(", states: {0: running, 1: idle, 2: down, 3: setup}", ""))
    assert "needs 'states'" in err.problems[0][2]


def test_duplicate_names_and_missing_source() -> None:
    dup = GOOD.replace("- {name: state, type: enum", "- {name: spindle_speed, type: enum")
    assert "duplicate tag name 'spindle_speed'" in str(_error(dup))
    nosrc = GOOD.replace("              source: {protocol: json, device: meter1}\n", "")
    assert "has no source" in str(_error(nosrc))


def test_yaml_syntax_error_names_the_line() -> None:
    err = _error("site:\n  name: acme\n  areas: [\n")
    assert err.problems[0][0] is not None
    assert "invalid YAML" in err.problems[0][2]


def test_empty_and_non_mapping_files() -> None:
    assert "empty" in str(_error(""))
    assert "mapping" in str(_error("- a\n- b\n"))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_plant_config(tmp_path / "missing.yaml")
    assert "cannot read" in str(info.value)


def test_two_tags_on_one_source_value_are_refused() -> None:
    text = GOOD.replace("{name: spindle_speed, unit: rpm, range: [0, 12000]}", "{name: a, address: x}\n"
                        "                    - {name: b, address: x}")
    with pytest.raises(ValueError, match="read the same source value"):
        AssetModel.from_config(parse_plant_config(text))
