"""Shared dependencies of the routers."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request

from shopfloor.core.errors import UnknownTag
from shopfloor.platform import Platform


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    if platform.started_ns is None:
        raise HTTPException(503, "the platform is starting or stopping")
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]
S = TypeVar("S")


def running_service(platform: Platform, name: str, kind: type[S], section: str) -> S:
    """The platform service ``name`` for an app's router: 404 where the plant config does not switch it on
    (no ``section:``), 503 where it is not (yet, or any longer) the running kind."""
    try:
        service = platform.service(name)
    except KeyError:
        raise HTTPException(404, f"this plant runs no {name} service (no '{section}:' section in plant.yaml)") from None
    if not isinstance(service, kind):
        raise HTTPException(503, f"the {name} service is not running")
    return service


def tag_id_or_404(platform: Platform, path: str) -> int:
    try:
        platform.model.tag(path)
        return platform.tag_index.id_of(path)
    except UnknownTag as exc:
        raise HTTPException(404, str(exc)) from None
