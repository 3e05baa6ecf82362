"""The asset tree and the tag catalogue."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from shopfloor.api.deps import PlatformDep
from shopfloor.api.responses import FastJSONResponse
from shopfloor.api.schemas import AssetOut, TagOut
from shopfloor.auth.deps import require_role
from shopfloor.auth.store import Role
from shopfloor.core.errors import UnknownTag
from shopfloor.core.model import AssetNode, Tag

router = APIRouter(prefix="/api", tags=["assets"], dependencies=[Depends(require_role(Role.VIEWER))])


def asset_json(node: AssetNode, depth: int | None = None) -> dict[str, Any]:
    children = [] if depth == 0 else [asset_json(c, None if depth is None else depth - 1) for c in node.children]
    return {
        "path": node.path, "name": node.name, "level": node.level, "type": node.type,
        "description": node.description, "tags": list(node.tags), "children": children,
    }


def tag_json(tag: Tag) -> dict[str, Any]:
    return {
        "path": tag.path, "name": tag.name, "equipment": tag.equipment, "unit": tag.unit, "type": tag.data_type,
        "description": tag.description, "range": tag.range, "states": tag.states,
        "source": tag.source.model_dump(), "address": tag.address,
    }


@router.get("/assets", response_model=AssetOut, response_class=FastJSONResponse)
def asset_tree(platform: PlatformDep, depth: Annotated[int | None, Query(ge=0)] = None) -> Any:
    """The ISA-95 tree: site, areas, lines, cells, equipment (with their tag paths)."""
    return FastJSONResponse(asset_json(platform.model.root, depth))


@router.get("/assets/{path:path}", response_model=AssetOut, response_class=FastJSONResponse)
def asset(platform: PlatformDep, path: str, depth: Annotated[int | None, Query(ge=0)] = None) -> Any:
    """One node of the tree by its path, e.g. virtual-factory/machining/line1."""
    try:
        return FastJSONResponse(asset_json(platform.model.node(path), depth))
    except UnknownTag as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/tags", response_model=list[TagOut], response_class=FastJSONResponse)
def tags(
    platform: PlatformDep,
    q: Annotated[str | None, Query(description="Substring of the path or description.")] = None,
    asset: Annotated[str | None, Query(description="Only tags under this asset path.")] = None,
    unit: str | None = None,
) -> Any:
    """The tag catalogue, filtered."""
    out = []
    for tag in platform.model.tags:
        if asset and not (tag.path.startswith(asset.rstrip("/") + "/")):
            continue
        if unit is not None and tag.unit != unit:
            continue
        if q and q.lower() not in tag.path.lower() and q.lower() not in tag.description.lower():
            continue
        out.append(tag_json(tag))
    return FastJSONResponse(out)


@router.get("/tags/{path:path}", response_model=TagOut, response_class=FastJSONResponse)
def tag(platform: PlatformDep, path: str) -> Any:
    """One tag's definition."""
    try:
        return FastJSONResponse(tag_json(platform.model.tag(path)))
    except UnknownTag as exc:
        raise HTTPException(404, str(exc)) from None
