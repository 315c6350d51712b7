"""How many points each kind of taking part earns: config defaults, per-community overrides."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class PointsRules(BaseModel):
    """Points per action. Messages earn little, with a daily cap and a minimum gap, so flooding
    a chat earns nothing; taking part in activities earns more."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message: int = Field(1, ge=0, le=1000)
    message_daily_cap: int = Field(20, ge=0, le=100_000)
    message_min_gap_seconds: int = Field(60, ge=0, le=86_400)
    poll_vote: int = Field(2, ge=0, le=1000)
    quiz_correct: int = Field(10, ge=0, le=100_000)
    giveaway_entry: int = Field(1, ge=0, le=1000)
    qa_answered: int = Field(5, ge=0, le=1000)

    def with_overrides(self, overrides: dict[str, Any] | None) -> PointsRules:
        """These rules with a community's own values.

        Unknown keys are ignored, and so is a stored value that is no longer valid (a range
        narrowed in a later release, a hand-edited database): one bad override must not stop
        every feature that awards points from working in that community.
        """
        if not isinstance(overrides, dict):
            return self
        values = self.model_dump()
        changed = False
        for key, value in overrides.items():
            if key not in type(self).model_fields:
                continue
            try:
                self.model_validate({**values, key: value})
            except ValidationError:
                continue
            values[key] = value
            changed = True
        return self.model_validate(values) if changed else self


RULE_NAMES: tuple[str, ...] = tuple(PointsRules.model_fields)


def bounds(name: str) -> tuple[int, int]:
    """The smallest and largest value a rule accepts (from the field's constraints)."""
    low, high = 0, 2**31 - 1
    for constraint in PointsRules.model_fields[name].metadata:
        low = getattr(constraint, "ge", low)
        high = getattr(constraint, "le", high)
    return low, high


def points_rules(features: dict[str, Any], settings: dict[str, Any] | None) -> PointsRules:
    """The rules for one community: the config's `[points]` with the community's overrides
    (`community.settings["points"]`)."""
    base = features.get("points") or PointsRules()
    return base.with_overrides((settings or {}).get("points"))
