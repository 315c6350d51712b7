"""End-to-end Discord test harness on SimCord (see ``harness.py``)."""

import pytest

# The harness is also loaded as a pytest plugin (``pytest_plugins``); rewrite it on import.
pytest.register_assert_rewrite("tests.discord_sim.harness")

from tests.discord_sim.harness import (  # noqa: E402
    ANNOUNCEMENTS,
    GENERAL,
    GUILD_NAME,
    MANAGER,
    MEMBERS,
    DiscordSim,
    button_ids,
    shown,
)

__all__ = [
    "ANNOUNCEMENTS",
    "GENERAL",
    "GUILD_NAME",
    "MANAGER",
    "MEMBERS",
    "DiscordSim",
    "button_ids",
    "shown",
]
