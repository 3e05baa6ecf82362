"""The ``auth:`` section of plant.yaml (only pydantic here: the plant schema imports it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="Off: every request acts as an anonymous admin (the demo).")
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="Lifetime of a dashboard login.")
    bootstrap_admin: str | None = Field(
        default=None,
        description="Create this admin at start when no user exists; password from env SHOPFLOOR_ADMIN_PASSWORD.",
    )
    secure_cookie: bool = Field(default=False, description="Mark the session cookie Secure (behind HTTPS).")
