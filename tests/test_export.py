"""`shopfloor export`: a tag's raw history to CSV or Parquet, through the API or from the data directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from shopfloor.api import create_app
from shopfloor.config import parse_plant_config
from shopfloor.core.samples import SampleBatch
from shopfloor.export import ExportError, export_history
from shopfloor.platform import Platform
from shopfloor.testing.mosquitto import Mosquitto
from shopfloor.testing.server import ApiServer

PLANT = """\
site:
  name: s
  areas:
    - name: a
      lines:
        - name: l
          equipment:
            - name: meter
              source: {protocol: json, device: meter}
              tags:
                - {name: power, unit: kW}
"""
TAG = "s/a/l/meter/power"
T0 = 1_763_800_000_000_000_000
N = 5_000  # samples, one per second: spans several one-hour export chunks


def _fill(platform: Platform) -> None:
    tag_id = platform.tag_index.id_of(TAG)
    ts = T0 + np.arange(N, dtype=np.int64) * 1_000_000_000
    quality = np.where(np.arange(N) % 100 == 0, 64, 192)
    platform.writer.submit(SampleBatch.of(np.full(N, tag_id), ts, np.arange(N) * 0.5, quality))
    assert platform.writer.flush(20)


def _check(table_ts: np.ndarray, values: np.ndarray, quality: np.ndarray) -> None:
    assert len(values) == N
    assert table_ts[0] == T0 and table_ts[-1] == T0 + (N - 1) * 1_000_000_000
    assert np.array_equal(values, np.arange(N) * 0.5)
    assert quality[0] == 64 and quality[1] == 192


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_through_the_api_and_from_the_data_dir(mosquitto: Mosquitto, tmp_path: Path, suffix: str) -> None:
    platform = Platform(parse_plant_config(PLANT), data_dir=tmp_path / "data", broker_url=mosquitto.url)
    start, end = str(T0 // 1_000_000), str(T0 // 1_000_000 + N * 1000)
    with ApiServer(create_app(platform)) as server:
        _fill(platform)
        out = tmp_path / f"via-api{suffix}"
        rows = export_history(TAG, out, start, end, api=server.url)
        assert rows == N
    offline = tmp_path / f"offline{suffix}"
    result = subprocess.run(
        [sys.executable, "-m", "shopfloor", "export", TAG, "--out", str(offline), "--start", start, "--end", end,
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert f"wrote {N:,} samples" in result.stderr.decode()
    for path in (out, offline):
        table = pq.read_table(path) if suffix == ".parquet" else pacsv.read_csv(path)
        ts = table.column("ts").cast("int64").to_numpy()
        _check(ts, table.column("value").to_numpy(), table.column("quality").to_numpy())


def test_export_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"\.csv or \.parquet"):
        export_history(TAG, tmp_path / "x.xlsx", "-1h", "now", data_dir=tmp_path)
    with pytest.raises(ExportError, match="holds no historian"):
        export_history(TAG, tmp_path / "x.csv", "-1h", "now", data_dir=tmp_path)
    with pytest.raises(ExportError, match="end must be after start"):
        export_history(TAG, tmp_path / "x.csv", "now", "-1h", data_dir=tmp_path)
    with pytest.raises(ExportError, match="cannot reach"):
        export_history(TAG, tmp_path / "x.csv", "-1h", "now", api="http://127.0.0.1:9")
