"""The HTTP API (FastAPI): asset tree, tags, latest values, history, dead letters, health, live WebSocket."""

from shopfloor.api.app import create_app

__all__ = ["create_app"]
