"""commops on SimCord: the adapter as the tests build it, and SimCord's clock for commops."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import discord

from bot.discord_adapter.adapter import DiscordAdapter, DiscordSettings, intents
from handlers.core.router import Dispatcher


class SimulatedDiscordClock:
    """commops reads SimCord's simulated clock, the one it stamps every event with."""

    def __init__(self) -> None:
        self.env: Any = None

    def now(self) -> datetime:
        return self.env.now() if self.env is not None else datetime.now(UTC)


def new_adapter(dispatcher: Dispatcher, **kwargs: Any) -> DiscordAdapter:
    """An adapter attached to `dispatcher`, its client not started (SimCord starts it);
    no sync state file unless asked for, so nothing is written to the working directory."""
    kwargs.setdefault("sync_state_file", None)
    settings = DiscordSettings(token="unused", **kwargs)
    client = discord.Client(
        intents=intents(settings), allowed_mentions=discord.AllowedMentions.none()
    )
    adapter = DiscordAdapter(settings, client=client)
    adapter.attach(dispatcher)
    return adapter
