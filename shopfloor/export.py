"""Export a tag's raw history to CSV or Parquet, chunk by chunk, with a progress bar.

Reads through a running platform's API (the historian file is locked while the
platform runs) or straight from a data directory when the platform is stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from shopfloor.api.timeparse import parse_duration_ns, parse_time_ns
from shopfloor.core.errors import ShopfloorError
from shopfloor.core.samples import SampleBatch

SCHEMA = pa.schema([("ts", pa.timestamp("ns", tz="UTC")), ("value", pa.float64()), ("quality", pa.uint8())])


class ExportError(ShopfloorError):
    pass


Reader = tuple[Callable[[int, int], SampleBatch], Callable[[], None]]  # read(start, end), close()


def _reader_api(api: str, tag: str) -> Reader:
    from shopfloor.client import ApiError, ShopfloorClient

    client = ShopfloorClient(api)
    try:
        client.tag(tag)
    except ApiError as exc:
        client.close()
        raise ExportError(f"{api}: {exc.detail}") from None
    except Exception as exc:
        client.close()
        raise ExportError(f"cannot reach {api}: {exc}") from None

    def read(start_ns: int, end_ns: int) -> SampleBatch:
        h = client.history(tag, start=str(start_ns // 1_000_000), end=str(end_ns // 1_000_000), bucket="raw",
                           limit=1_000_000)
        ts = h["t"].astype("datetime64[ns]").astype(np.int64)
        return SampleBatch.of(np.zeros(len(ts), np.int32), ts, h["value"], h["quality"])

    return read, client.close


def _reader_dir(data_dir: Path, tag: str) -> Reader:
    from shopfloor.historian import open_historian

    if not (data_dir / "historian.duckdb").exists():
        raise ExportError(f"{data_dir} holds no historian (historian.duckdb)")
    try:
        historian = open_historian("duckdb", data_dir)
    except Exception as exc:
        raise ExportError(f"cannot open the historian in {data_dir} (platform running? use --api): {exc}") from None
    ids = historian.tag_ids()
    if tag not in ids:
        historian.close()
        raise ExportError(f"unknown tag {tag!r} in {data_dir}")
    tag_id = ids[tag]

    def read(start_ns: int, end_ns: int) -> SampleBatch:
        return historian.raw(tag_id, start_ns, end_ns)

    return read, historian.close


def export_history(
    tag: str, out: Path, start: str, end: str, *, api: str | None = None, data_dir: Path | None = None,
    chunk: str = "1h", console: Console | None = None,
) -> int:
    """Write raw samples of one tag in [start, end) to out (.csv or .parquet); returns the row count."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ExportError(f"{out}: the output must end in .csv or .parquet")
    try:
        start_ns, end_ns, step = parse_time_ns(start), parse_time_ns(end), parse_duration_ns(chunk)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    if end_ns <= start_ns:
        raise ExportError("end must be after start")
    read, close = _reader_api(api, tag) if api else _reader_dir(Path(data_dir or "."), tag)
    try:
        return _copy(read, out, suffix, start_ns, end_ns, step, console)
    finally:
        close()


def _copy(
    read: Callable[[int, int], SampleBatch], out: Path, suffix: str, start_ns: int, end_ns: int, step: int,
    console: Console | None,
) -> int:
    rows = 0
    writer: pq.ParquetWriter | pacsv.CSVWriter
    writer = pq.ParquetWriter(out, SCHEMA) if suffix == ".parquet" else pacsv.CSVWriter(out, SCHEMA)
    with writer, Progress(
        TextColumn("[bold]export[/] {task.fields[rows]:,} rows"), BarColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    ) as progress:
        task = progress.add_task("export", total=end_ns - start_ns, rows=0)
        t = start_ns
        while t < end_ns:
            upper = min(t + step, end_ns)
            batch = read(t, upper)
            if len(batch):
                table = pa.table(
                    [pa.array(batch.ts, pa.int64()).cast(pa.timestamp("ns", tz="UTC")), batch.value, batch.quality],
                    schema=SCHEMA,
                )
                writer.write_table(table)
                rows += len(batch)
            progress.update(task, completed=upper - start_ns, rows=rows)
            t = upper
    return rows
