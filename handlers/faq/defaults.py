"""FAQ auto-answer settings: config defaults, which managers may change per community."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Where a community's own values live: `community.settings["faq"]`.
SETTINGS_KEY = "faq"


class FaqDefaults(BaseModel):
    """When the bot answers a member's question from the FAQ by itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    threshold: float = Field(0.55, gt=0, le=1)
    cooldown_minutes: int = Field(60, ge=1, le=10_080)
    answer_managers: bool = False

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)

    def with_overrides(self, overrides: Any) -> FaqDefaults:
        """These settings with a community's own values; an unknown key or a value that
        doesn't validate (a hand-edited database) is ignored, one key at a time."""
        if not isinstance(overrides, dict):
            return self
        result = self
        for key, value in overrides.items():
            if key not in type(self).model_fields:
                continue
            try:
                result = self.model_validate({**result.model_dump(), key: value})
            except ValidationError:
                continue
        return result


def faq_settings(features: dict[str, Any], settings: dict[str, Any] | None) -> FaqDefaults:
    """The settings for one community: the config's `[faq]` with the community's overrides."""
    base = features.get(SETTINGS_KEY) or FaqDefaults()
    return base.with_overrides((settings or {}).get(SETTINGS_KEY))
