"""FAQ auto-answer settings: config defaults, which managers may change per community."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FaqDefaults(BaseModel):
    """When the bot answers a member's question from the FAQ by itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    threshold: float = Field(0.55, gt=0, le=1)
    cooldown_minutes: int = Field(60, ge=1, le=10_080)
    answer_managers: bool = False
