"""`shopfloor edge` options that do not run the gateway: a bad config, --print-plant, --health."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from shopfloor.cli import app
from shopfloor.config import parse_plant_config

CONFIG = """\
gateway: {{group: g, node: gw}}
buffer: {{data_dir: "{data}"}}
devices:
  - name: press
    source: {{protocol: modbus, host: 127.0.0.1, port: {port}}}
    tags:
      - {{name: force, modbus: {{address: 0, type: float32}}}}
"""


def write(tmp_path: Path, port: int = 502) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(CONFIG.format(data=tmp_path / "data", port=port))
    return path


def test_a_bad_config_exits_2_naming_the_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["edge", "--config", str(write(tmp_path, port=0))])
    assert result.exit_code == 2
    assert "edge.yaml:5: devices[0].source.port:" in result.output


def test_print_plant_prints_a_mapping_the_platform_loads(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["edge", "--config", str(write(tmp_path)), "--print-plant"])
    assert result.exit_code == 0, result.output
    equipment = result.output.replace("\n", "\n      ")
    plant = parse_plant_config("site:\n  name: s\n  areas:\n  - name: a\n    lines:\n    - name: l\n      " + equipment)
    names = [e.name for e in plant.site.areas[0].lines[0].equipment]
    assert names == ["gw", "press"]


def test_health_without_a_running_gateway_says_so(tmp_path: Path) -> None:
    config = write(tmp_path)
    result = CliRunner().invoke(app, ["edge", "--config", str(config), "--health"])
    assert result.exit_code == 1 and "no health summary" in result.output

    (tmp_path / "data").mkdir()
    summary = {
        "status": "ok", "gateway": {"group": "g", "node": "gw"}, "written_ns": time.time_ns(),
        "uplink": {"up": True, "broker": "mqtt://b:1883", "rtt_ms_recent_median": 1.5, "outages": 2,
                   "outage_s": 0.0, "samples_acknowledged": 10},
        "buffer": {"samples": 0, "bytes": 0, "max_bytes": 100, "dropped_total": 3, "when_full": "drop_oldest"},
        "samples": {"read": 10},
        "devices": [{"name": "press", "state": "up", "last_error": None}],
    }
    (tmp_path / "data" / "health.json").write_text(json.dumps(summary))
    result = CliRunner().invoke(app, ["edge", "--config", str(config), "--health"])
    assert result.exit_code == 0, result.output
    assert "up to mqtt://b:1883" in result.output and "drop_oldest" in result.output

    summary["written_ns"] = time.time_ns() - 60 * 10**9  # a gateway that stopped writing a minute ago
    (tmp_path / "data" / "health.json").write_text(json.dumps(summary))
    result = CliRunner().invoke(app, ["edge", "--config", str(config), "--health"])
    assert result.exit_code == 1 and "not running?" in result.output


def test_an_unusable_data_directory_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    config = write(tmp_path)
    (tmp_path / "data").write_text("a file where the directory should be")
    result = CliRunner().invoke(app, ["edge", "--config", str(config)])
    assert result.exit_code == 1 and "cannot open the buffer" in result.output
    assert "Traceback" not in result.output
