"""Rate limits for members' commands and button presses: in-memory token buckets.

Each member has a bucket (`member_commands` per `member_window_seconds`), and so has each
chat (`chat_commands` per `chat_window_seconds`). A command or press takes one token from
both; when either is empty the event is refused before any unit of work. The first refusal
in a stretch gets one polite answer ("slow down, try again in N s"); the ones after it, until
that time has passed, get silence, so a flood cannot make the bot flood back.

The check is a dict lookup and some arithmetic: no I/O, no lock, no allocation for a member
already seen. Managers are exempt, but asking the platform who is a manager costs I/O, so it
is only asked when a bucket would refuse (see `Dispatcher`). Buckets live in one process: with
several instances each enforces its own share, which is good enough to stop a flood.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from handlers.core.events import ButtonPressed, Event

# Beyond this many tracked keys, idle (full) buckets are dropped; if a raid of fresh accounts
# still leaves more, everything is dropped: a bucket forgotten only ever errs towards allowing.
MAX_TRACKED = 20_000


class LimitSettings(BaseModel):
    """`[limits]` in the config: how many commands a member, and a chat, may send how often."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    member_commands: int = Field(6, ge=1, le=10_000)
    member_window_seconds: float = Field(30, gt=0, le=86_400)
    chat_commands: int = Field(30, ge=1, le=100_000)
    chat_window_seconds: float = Field(10, gt=0, le=86_400)


class Verdict(Enum):
    """What to do with one command or press."""

    ALLOW = "allow"
    WARN = "warn"  # refused: answer once, politely
    SILENT = "silent"  # refused again within the same stretch: say nothing


class _Bucket:
    """Tokens left at `stamp`; `quiet_until`: refusals before then were answered already."""

    __slots__ = ("quiet_until", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.quiet_until = -math.inf

    def rebase(self, now: float) -> None:
        """The clock went backwards (a wall clock set back): start counting from `now`, with
        the tokens the bucket had, rather than wait for the clock to catch up."""
        if now < self.stamp:
            self.stamp = now
            self.quiet_until = -math.inf


@dataclass(frozen=True, slots=True)
class _Rule:
    capacity: float
    rate: float  # tokens per second

    @classmethod
    def of(cls, count: int, window: float) -> _Rule:
        return cls(float(count), count / window)


def _refill(bucket: _Bucket, rule: _Rule, now: float) -> float:
    """The bucket's tokens at `now` (not stored: a refusal must not change the bucket)."""
    return min(rule.capacity, bucket.tokens + max(0.0, now - bucket.stamp) * rule.rate)


def _wait(tokens: float, rule: _Rule) -> float:
    """Seconds until one whole token is back."""
    return max(0.0, (1.0 - tokens) / rule.rate)


class RateLimiter:
    """Per-member and per-chat token buckets; `clock` gives seconds (monotonic by default)."""

    def __init__(
        self,
        settings: LimitSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self.settings = settings or LimitSettings()
        self.clock = clock
        self.max_tracked = max_tracked
        self._member = _Rule.of(self.settings.member_commands, self.settings.member_window_seconds)
        self._chat = _Rule.of(self.settings.chat_commands, self.settings.chat_window_seconds)
        self._members: dict[tuple[str, str], _Bucket] = {}
        self._chats: dict[tuple[str, str], _Bucket] = {}
        self.refused = 0

    def check(self, event: Event) -> tuple[Verdict, int]:
        """Take a token for `event`'s actor (and chat); returns the verdict and, when refused,
        the whole seconds to wait before trying again.

        Button presses count against the member only: a giveaway's launch rightly brings a
        burst of presses from many members in one chat; one member pressing a button over and
        over is the flood to stop.
        """
        if not self.settings.enabled:
            return Verdict.ALLOW, 0
        now = self.clock()
        platform = event.chat.platform.value
        member = self._bucket(self._members, (platform, event.actor.user_id), self._member, now)
        mine = _refill(member, self._member, now)
        chat: _Bucket | None = None
        theirs = 0.0
        if not isinstance(event, ButtonPressed):
            chat = self._bucket(self._chats, (platform, event.chat.chat_id), self._chat, now)
            theirs = _refill(chat, self._chat, now)
        if mine >= 1.0 and (chat is None or theirs >= 1.0):
            member.tokens, member.stamp = mine - 1.0, now
            if chat is not None:
                chat.tokens, chat.stamp = theirs - 1.0, now
            return Verdict.ALLOW, 0
        self.refused += 1
        wait = _wait(mine, self._member) if mine < 1.0 else 0.0
        if chat is not None and theirs < 1.0:
            wait = max(wait, _wait(theirs, self._chat))
        # The member's own bucket remembers the answer: a chat-wide flood answers each member
        # once, not the chat once (the others would wonder why they were ignored).
        if now < member.quiet_until:
            return Verdict.SILENT, math.ceil(member.quiet_until - now)
        member.quiet_until = now + wait
        return Verdict.WARN, max(1, math.ceil(wait))

    def _bucket(
        self, table: dict[tuple[str, str], _Bucket], key: tuple[str, str], rule: _Rule, now: float
    ) -> _Bucket:
        bucket = table.get(key)
        if bucket is None:
            if len(table) >= self.max_tracked:
                self._prune(table, rule, now)
            bucket = table[key] = _Bucket(rule.capacity, now)
        elif now < bucket.stamp:
            bucket.rebase(now)
        return bucket

    @staticmethod
    def _prune(table: dict[tuple[str, str], _Bucket], rule: _Rule, now: float) -> None:
        """Forget buckets that are full again (idle for a window); all, if that frees too few."""
        before = len(table)
        full = [
            key
            for key, bucket in table.items()
            if _refill(bucket, rule, now) >= rule.capacity and now >= bucket.quiet_until
        ]
        for key in full:
            del table[key]
        if len(table) * 10 > before * 9:  # under a tenth freed: a raid of fresh accounts
            table.clear()

    @property
    def tracked(self) -> int:
        return len(self._members) + len(self._chats)


def limit_settings(features: dict[str, Any]) -> LimitSettings | None:
    """The `[limits]` section the app wired, or None when rate limits are not in use."""
    settings = features.get("limits")
    return settings if isinstance(settings, LimitSettings) else None
