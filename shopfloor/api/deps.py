"""Shared dependencies of the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from shopfloor.core.errors import UnknownTag
from shopfloor.platform import Platform


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    if platform.started_ns is None:
        raise HTTPException(503, "the platform is starting or stopping")
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def tag_id_or_404(platform: Platform, path: str) -> int:
    try:
        platform.model.tag(path)
        return platform.tag_index.id_of(path)
    except UnknownTag as exc:
        raise HTTPException(404, str(exc)) from None
