"""The web dashboard: static HTML, JavaScript modules and CSS served by the platform itself.

No build step and nothing fetched from the internet (plants are often offline): the
pages are plain ES modules, and Plotly.js comes from the installed plotly wheel.
"""

from __future__ import annotations

import gzip
from functools import cache
from importlib import resources
from pathlib import Path

import plotly
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

import shopfloor

STATIC = Path(__file__).parent / "static"
PLOTLY_URL = f"/static/vendor/plotly-{plotly.__version__}.min.js"


def plotly_js() -> Path:
    """plotly.min.js as shipped inside the plotly Python package."""
    path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall the plotly package")
    return path


@cache
def plotly_gzip() -> bytes:
    """plotly.min.js compressed once (4.8 MB -> about 1.4 MB): tablets on plant Wi-Fi load it in a third of the time."""
    return gzip.compress(plotly_js().read_bytes(), compresslevel=6)


def index_html() -> str:
    """The single page, with the versioned URLs filled in (a new release is never served from a stale cache)."""
    text = (STATIC / "index.html").read_text(encoding="utf-8")
    return text.replace("{{plotly}}", PLOTLY_URL).replace("{{version}}", shopfloor.__version__)


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at / and its files under /static."""
    plotly_path = plotly_js()

    @app.get("/", include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(index_html(), headers={"Cache-Control": "no-cache"})

    @app.get(PLOTLY_URL, include_in_schema=False)
    def plotly_bundle(request: Request) -> Response:
        headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(plotly_gzip(), media_type="text/javascript", headers=headers | {"Content-Encoding": "gzip"})
        return FileResponse(plotly_path, media_type="text/javascript", headers=headers)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
