"""The privacy settings a community has: the join notice switch and how long raw data stays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Raw activity events are kept this many days unless `[privacy]` in the config says otherwise
# (the retention job deletes older ones; the per-day rollups stay).
DEFAULT_RETENTION_DAYS = 90
SETTINGS_KEY = "privacy"


def retention_days(features: Mapping[str, Any]) -> int:
    """Days raw activity is kept: the configured `[privacy]` section's value, else 90;
    0 means for ever.

    The section may be a validated object or a plain table, and name the value
    `retention_days` or `retention`; anything that is not a whole number >= 0 is ignored.
    """
    section = features.get("privacy")
    if section is None:
        return DEFAULT_RETENTION_DAYS
    for name in ("retention_days", "retention"):
        value = section.get(name) if isinstance(section, Mapping) else getattr(section, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return DEFAULT_RETENTION_DAYS


def notice_enabled(settings: Mapping[str, Any] | None) -> bool:
    """Whether members who join get the privacy notice (`/privacy notice on`)."""
    stored = (settings or {}).get(SETTINGS_KEY)
    return isinstance(stored, Mapping) and stored.get("notice") is True


def with_notice(settings: Mapping[str, Any] | None, on: bool) -> dict[str, Any]:
    """A new settings dict with the join notice switched (a new dict, so the JSON column is
    saved); the `privacy` key goes away when nothing is left in it."""
    result = dict(settings or {})
    stored = result.get(SETTINGS_KEY)
    section = dict(stored) if isinstance(stored, Mapping) else {}
    if on:
        section["notice"] = True
    else:
        section.pop("notice", None)
    if section:
        result[SETTINGS_KEY] = section
    else:
        result.pop(SETTINGS_KEY, None)
    return result
