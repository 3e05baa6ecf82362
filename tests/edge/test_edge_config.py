"""edge.yaml: the documented example loads, mistakes name file, line and field, and the platform mapping loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from edge_helpers import plant_yaml

from shopfloor.config import ConfigError, parse_plant_config
from shopfloor.core.model import AssetModel
from shopfloor.edge.config import LINK_METRICS, EdgeConfig, load_edge_config, parse_edge_config
from shopfloor.edge.gateway import LINK_TYPES, wanted_metrics

DOCS = Path(__file__).resolve().parents[2] / "docs" / "edge.md"


def documented_example() -> str:
    """The first ```yaml block of docs/edge.md: the example edge.yaml."""
    match = re.search(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    assert match, "docs/edge.md has no yaml example"
    return match.group(1)


def test_the_documented_example_loads() -> None:
    config = parse_edge_config(documented_example(), "edge.yaml")
    assert config.gateway.node and config.devices
    assert {d.source.protocol for d in config.devices} == {"modbus", "opcua"}
    assert config.buffer.when_full in ("drop_oldest", "drop_newest")


def test_every_link_metric_has_a_type_and_a_description() -> None:
    assert list(LINK_TYPES) == list(LINK_METRICS)


def test_defaults_and_client_id() -> None:
    config = parse_edge_config(MINIMAL)
    assert config.client_id == "shopfloor-edge-g-n"
    assert config.buffer.when_full == "drop_oldest" and config.mqtt.max_inflight == 20
    names = [(d, n) for d, n, _ in wanted_metrics(config)]
    assert names[0] == ("", "link_up") and names[-1] == ("press", "force")


MINIMAL = """\
gateway: {group: g, node: n}
devices:
  - name: press
    source: {protocol: modbus, host: 10.0.0.5}
    tags:
      - {name: force, modbus: {address: 0, type: float32}}
"""


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_edge_config(text, "edge.yaml")
    return info.value


def test_a_wrong_value_names_line_and_field() -> None:
    err = _error(MINIMAL.replace("host: 10.0.0.5", "host: 10.0.0.5, port: 70000"))
    assert "edge.yaml:4: devices[0].source.port:" in str(err)
    err = _error(MINIMAL + "buffer: {when_full: drop_random}\n")
    assert "edge.yaml:7: buffer.when_full:" in str(err) and "drop_oldest" in str(err)


def test_missing_and_inconsistent_parts_are_explained() -> None:
    err = _error(MINIMAL.replace("{name: force, modbus: {address: 0, type: float32}}", "{name: force}"))
    assert "edge.yaml:3: devices[0]:" in str(err) and "needs 'modbus'" in str(err)
    err = _error("gateway: {group: g, node: n}\ndevices: []\n")
    assert "edge.yaml:2: devices:" in str(err)
    err = _error(MINIMAL.replace("gateway: {group: g, node: n}", "gateway: {group: g/x, node: n}"))
    assert "edge.yaml:1: gateway.group:" in str(err)
    err = _error(MINIMAL + "mqtt: {broker: 'http://x'}\n")
    assert "mqtt.broker" in str(err)
    err = _error(MINIMAL + MINIMAL.split("devices:\n")[1])
    assert "duplicate device name" in str(err)
    assert "invalid YAML" in str(_error("gateway: [\n"))
    assert "empty" in str(_error(""))


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_edge_config(tmp_path / "nope.yaml")


def test_print_plant_output_is_a_valid_plant_mapping() -> None:
    config: EdgeConfig = parse_edge_config(documented_example())
    model = AssetModel.from_config(parse_plant_config(plant_yaml(config)))
    paths = [t.path for t in model.tags]
    assert f"s/a/l/{config.gateway.node}/backlog_samples" in paths
    assert model.tag(f"s/a/l/{config.gateway.node}/link_up").data_type == "bool"
    first = config.devices[0]
    assert f"s/a/l/{first.name}/{first.tags[0].name}" in paths
