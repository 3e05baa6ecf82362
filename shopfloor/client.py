"""A small Python client of the shopfloor API, for scripts and notebooks.

    with ShopfloorClient("http://127.0.0.1:8080") as sf:
        sf.latest(["virtual-factory/machining/line1/cell1/cnc1/spindle_speed"])
        h = sf.history("virtual-factory/machining/line1/cell1/cnc1/bearing_temp", start="-1h", bucket="1m")
        for msg in sf.live(["virtual-factory/machining/line1/cell1/cnc1/power"]): ...
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
from websockets.sync.client import connect

from shopfloor.core.errors import ShopfloorError


class ApiError(ShopfloorError):
    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}")


class ShopfloorClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8080", timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def _get(self, path: str, **params: Any) -> Any:
        r = self._http.get(path, params={k: v for k, v in params.items() if v is not None})
        if r.status_code >= 400 and not (path == "/health" and r.status_code == 503):
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise ApiError(r.status_code, str(detail))
        return r.json()

    def health(self) -> dict[str, Any]:
        return dict(self._get("/health"))

    def assets(self, path: str | None = None, depth: int | None = None) -> dict[str, Any]:
        return dict(self._get(f"/api/assets/{path}" if path else "/api/assets", depth=depth))

    def tags(self, q: str | None = None, asset: str | None = None, unit: str | None = None) -> list[dict[str, Any]]:
        return list(self._get("/api/tags", q=q, asset=asset, unit=unit))

    def tag(self, path: str) -> dict[str, Any]:
        return dict(self._get(f"/api/tags/{path}"))

    def latest(self, tags: Sequence[str] | None = None, asset: str | None = None) -> list[dict[str, Any]]:
        return list(self._get("/api/latest", tag=list(tags) if tags else None, asset=asset))

    def history(
        self, tag: str, start: str = "-1h", end: str = "now", bucket: str = "auto", limit: int | None = None
    ) -> dict[str, Any]:
        """History as NumPy arrays: 't' (datetime64[ms]) and value/quality (raw) or min/max/mean/... (buckets)."""
        body = self._get("/api/history", tag=tag, start=start, end=end, bucket=bucket, limit=limit)
        out: dict[str, Any] = {k: body[k] for k in ("tag", "start_ms", "end_ms", "bucket_ms")}
        out["t"] = np.array(body["t"], dtype="int64").astype("datetime64[ms]")
        for key in ("value", "min", "max", "mean", "first", "last"):
            if body.get(key) is not None:
                out[key] = np.array([np.nan if v is None else v for v in body[key]], dtype=np.float64)
        for key in ("count", "quality"):
            if body.get(key) is not None:
                out[key] = np.array(body[key], dtype=np.int64)
        return out

    def dead_letters(self, limit: int = 100, source: str | None = None) -> list[dict[str, Any]]:
        return list(self._get("/api/deadletters", limit=limit, source=source))

    def connectors(self) -> list[dict[str, Any]]:
        return list(self._get("/api/connectors"))

    def live(self, tags: Sequence[str] | None = None, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield the live stream's messages ('hello', then 'samples'); stops when the server closes."""
        ws_url = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        query = urlencode([("tag", t) for t in tags or []])
        with connect(f"{ws_url}/api/ws/live" + (f"?{query}" if query else ""), open_timeout=timeout) as ws:
            while True:
                try:
                    raw = ws.recv(timeout=timeout)
                except TimeoutError:
                    return
                yield json.loads(raw)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ShopfloorClient:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
