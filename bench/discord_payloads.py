"""Deterministic Discord gateway `MESSAGE_CREATE` payloads for the ingest benchmark.

One line per gateway frame (`{"op":0,"t":"MESSAGE_CREATE","s":n,"d":{...}}`), as Discord sends
a guild text message with the message-content intent: author, partial `member`, content of
varied length (some unicode), snowflake ids whose timestamps spread the messages over `days`,
and about 15 % replies (type 19 with `message_reference` and the full `referenced_message`).
Members are Zipf-like; each posts in a home channel 85 % of the time. The guilds (with their
channels and @everyone role) come as `GUILD_CREATE`-shaped dicts for discord.py's cache.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
T0 = datetime(2026, 11, 16, tzinfo=UTC)
FIRST_GUILD = 1_200_000_000_000_000_000
BOT_ID = 1_100_000_000_000_000_001
_SENTENCES = (
    "ship it when ci is green the docs need love anyone up for a game tonight gg wp "
    "привет как дела これはテスト 👍 🎉 🔥 lgtm nice +1"
)
_WORDS = tuple(_SENTENCES.split())


@dataclass(frozen=True)
class DiscordLoad:
    """N messages from M members in `guilds` servers of `channels` text channels each."""

    messages: int
    members: int
    guilds: int = 4
    channels: int = 5
    seed: int = 20261124
    days: int = 7
    reply_share: float = 0.15

    @property
    def file_name(self) -> str:
        shape = f"{self.guilds}x{self.channels}"
        return f"discord-{self.messages}-{self.members}-{shape}-{self.seed}.jsonl"


def _snowflake(at: datetime, n: int) -> int:
    """An id whose timestamp is `at` (discord.py derives `created_at` from it)."""
    ms = int(at.timestamp() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (n & 0x3FFFFF)


def _channel_id(load: DiscordLoad, c: int) -> int:
    return FIRST_GUILD + 1_000 + c


def _guild_of(load: DiscordLoad, c: int) -> int:
    return FIRST_GUILD + c // load.channels


def guilds(load: DiscordLoad) -> list[dict[str, Any]]:
    """The servers as discord.py's `Guild(data=...)` expects them (GUILD_CREATE, no members)."""
    out = []
    for g in range(load.guilds):
        guild_id = FIRST_GUILD + g
        channels = [
            {
                "id": str(_channel_id(load, c)),
                "type": 0,
                "guild_id": str(guild_id),
                "name": f"general-{c}",
                "position": c,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
                "topic": None,
                "rate_limit_per_user": 0,
                "last_message_id": None,
            }
            for c in range(g * load.channels, (g + 1) * load.channels)
        ]
        everyone = {
            "id": str(guild_id),
            "name": "@everyone",
            "permissions": "1071698660929",
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        out.append(
            {
                "id": str(guild_id),
                "name": f"Server {g}",
                "owner_id": str(FIRST_GUILD + 999),
                "channels": channels,
                "threads": [],
                "roles": [everyone],
                "members": [],
                "member_count": load.members,
                "emojis": [],
                "stickers": [],
                "features": [],
                "unavailable": False,
                "large": True,
            }
        )
    return out


def bot_user() -> dict[str, Any]:
    """The bot's own user (`ClientUser`), so `translate_message` can skip its messages."""
    return {
        "id": str(BOT_ID),
        "username": "commops",
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "bot": True,
        "verified": True,
        "mfa_enabled": False,
        "flags": 0,
    }


def _author(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": str(900_000_000_000_000_000 + i),
        "username": f"member_{i}",
        "global_name": f"Member {i}" if rng.random() < 0.7 else None,
        "avatar": None,
        "discriminator": "0",
        "public_flags": 0,
    }


def generate(load: DiscordLoad, path: Path) -> dict[str, int]:
    """Write the frames to `path`, one per line; returns the expected counts."""
    rng = random.Random(load.seed)
    channels = load.guilds * load.channels
    authors = [_author(i, rng) for i in range(load.members)]
    cumulative = list(accumulate(1.0 / (rank + 1) ** 0.9 for rank in range(load.members)))
    recent: list[list[dict[str, Any]]] = [[] for _ in range(channels)]
    step = timedelta(days=load.days) / load.messages
    members: set[int] = set()
    memberships: set[tuple[int, int]] = set()
    member_days: set[tuple[int, int, int]] = set()
    used: set[int] = set()
    replies = characters = 0
    tmp = path.with_suffix(".partial")
    with tmp.open("wb") as out:
        picks = rng.choices(range(load.members), cum_weights=cumulative, k=load.messages)
        for n, who in enumerate(picks):
            home = (who * 7919) % channels
            c = home if rng.random() < 0.85 else rng.randrange(channels)
            at = T0 + step * n
            guild = _guild_of(load, c)
            content = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 40)))
            d: dict[str, Any] = {
                "id": str(_snowflake(at, n)),
                "channel_id": str(_channel_id(load, c)),
                "guild_id": str(guild),
                "author": authors[who],
                "member": {
                    "roles": [],
                    "joined_at": "2025-01-01T00:00:00.000000+00:00",
                    "nick": None,
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                    "pending": False,
                    "premium_since": None,
                },
                "content": content,
                "timestamp": at.isoformat(timespec="microseconds"),
                "edited_timestamp": None,
                "tts": False,
                "mention_everyone": False,
                "mentions": [],
                "mention_roles": [],
                "attachments": [],
                "embeds": [],
                "pinned": False,
                "type": 0,
                "flags": 0,
                "components": [],
                "nonce": str(_snowflake(at, n + 1)),
            }
            earlier = recent[c]
            reply = bool(earlier) and rng.random() < load.reply_share
            if reply:
                replied = rng.choice(earlier)
                d["type"] = 19
                d["message_reference"] = {
                    "type": 0,
                    "message_id": replied["id"],
                    "channel_id": replied["channel_id"],
                    "guild_id": replied["guild_id"],
                }
                d["referenced_message"] = {k: v for k, v in replied.items() if k != "member"}
            else:
                earlier.append(d)
                if len(earlier) > 40:
                    del earlier[:20]
            frame = {"op": 0, "t": "MESSAGE_CREATE", "s": n + 1, "d": d}
            out.write(json.dumps(frame, ensure_ascii=False).encode() + b"\n")
            day = (at - T0).days
            members.add(who)
            used.add(c)
            memberships.add((guild, who))
            member_days.add((guild, day, who))
            replies += reply
            characters += len(content)
    tmp.replace(path)
    communities = {_guild_of(load, c) for c in used}
    return {
        "events": load.messages,
        "messages": load.messages,
        "replies": replies,
        "reactions": 0,
        "communities": len(communities),
        "chats": len(used),
        "members": len(members),
        "memberships": len(memberships),
        "member_days": len(member_days),
        "active_members": len(member_days),
        "characters": characters,
    }


def ensure(load: DiscordLoad, workdir: Path) -> tuple[Path, dict[str, int]]:
    """The frame file for `load` in `workdir` and its expected counts, generated if missing."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / load.file_name
    counts_path = path.with_name(path.name + ".counts.json")
    if path.exists() and counts_path.exists():
        saved = json.loads(counts_path.read_text())
        if saved.get("load") == asdict(load):
            return path, saved["counts"]
    counts = generate(load, path)
    counts_path.write_text(json.dumps({"load": asdict(load), "counts": counts}))
    return path, counts
