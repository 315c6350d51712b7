"""What this process knows about each watched community, in memory, for the message path.

Every chat message of a watched community is looked at by `handlers.alerts.watch`'s
pre-filter, which may not touch the database. So this module keeps, per community (keyed by
what every event carries: platform and the community's id there):

- its watch words and managers' chat, from the community settings: loaded for all watched
  communities at start-up and every `TTL` (other processes may change them), and at once
  when `/watch` changes them here. A community is watched when it has watch words or a
  managers' chat; others are not in the registry, and their messages cost one dict lookup.
- a sliding window of its message counts (all and negative), per minute (`MessageWindow`);
- hits waiting to be written (`Pending`): the pre-filter lets one message through to the
  database per subject and `FLUSH_EVERY` at most; hits in between are added up here and go
  with the next one, or with the periodic flush. A storm of thousands of messages costs a
  handful of units of work.

Times are the messages' own (`event.at`), so tests and replays behave like live chat.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from handlers.core.events import MessageEvent
from handlers.settings import special_chat
from storage.models import Community

Key = tuple[str, str]
Subject = tuple[str, str]  # (kind, subject) as stored on the alert row

# Alert kinds (`alerts.kind`) and the subjects of the kinds that have one subject.
WORD = "word"
NEGATIVE = "negative"
SURGE = "surge"
DROP = "drop"
NEGATIVE_SUBJECT = "messages"
ACTIVITY_SUBJECT = "activity"

# Where the words live in the community settings (a list of normalized words).
WATCH_KEY = "watch"

# How long this process trusts its copy of a community's settings.
TTL = 60.0
# At most one message per subject per this long opens a unit of work to write hits.
FLUSH_EVERY = timedelta(seconds=15)
# The sliding window of message counts, in whole minutes.
WINDOW_MINUTES = 10
# A spike: at least this many negative messages, and this share of all, in the window.
SPIKE_MIN_NEGATIVE = 5
SPIKE_MIN_SHARE = 0.3
# Who and where an alert names: the first few are enough to act on.
MAX_NAMED = 5
# Word hits remembered per word for "times in the window" (a storm needs no more).
MAX_HITS = 1000


def watch_words(settings: dict[str, Any] | None) -> tuple[str, ...]:
    """The community's watch words as stored (normalized), ignoring anything garbled."""
    words = (settings or {}).get(WATCH_KEY)
    if not isinstance(words, list):
        return ()
    return tuple(w for w in words if isinstance(w, str) and w)


@dataclass(slots=True)
class _ChatNegatives:
    title: str | None
    count: int
    minute: int  # of the latest one


@dataclass
class MessageWindow:
    """Messages and negative messages per minute over the last `WINDOW_MINUTES` minutes, and
    the chats the negative ones were posted in. A message older than the newest minute
    (platforms deliver a backlog late) counts in the newest one."""

    minutes: deque[tuple[int, int, int]] = field(default_factory=deque)  # minute, all, negative
    chats: dict[str, _ChatNegatives] = field(default_factory=dict)

    def add(self, at: datetime, negative: bool, chat_id: str, title: str | None) -> None:
        minute = int(at.timestamp() // 60)
        self._prune(minute)
        if self.minutes and self.minutes[-1][0] >= minute:
            last, total, negatives = self.minutes[-1]
            self.minutes[-1] = (last, total + 1, negatives + int(negative))
        else:
            self.minutes.append((minute, 1, int(negative)))
        if negative:
            seen = self.chats.get(chat_id)
            if seen is None:
                self.chats[chat_id] = _ChatNegatives(title, 1, minute)
            else:
                seen.title, seen.count, seen.minute = title or seen.title, seen.count + 1, minute

    def _prune(self, minute: int) -> None:
        oldest = minute - WINDOW_MINUTES + 1
        while self.minutes and self.minutes[0][0] < oldest:
            self.minutes.popleft()
        for chat_id in [c for c, seen in self.chats.items() if seen.minute < oldest]:
            del self.chats[chat_id]

    @property
    def total(self) -> int:
        return sum(m[1] for m in self.minutes)

    @property
    def negative(self) -> int:
        return sum(m[2] for m in self.minutes)

    def spiking(self) -> bool:
        negative = self.negative
        return negative >= SPIKE_MIN_NEGATIVE and negative >= SPIKE_MIN_SHARE * self.total

    def busiest_chat(self) -> tuple[str, str | None] | None:
        """The chat with the most negative messages in the window: (id, title)."""
        if not self.chats:
            return None
        chat_id, seen = max(self.chats.items(), key=lambda item: item[1].count)
        return chat_id, seen.title


@dataclass
class Pending:
    """Hits of one subject not written yet."""

    kind: str
    subject: str
    count: int
    first_at: datetime
    last_at: datetime
    members: dict[str, str] = field(default_factory=dict)  # user id -> display name
    chats: dict[str, str | None] = field(default_factory=dict)  # chat id -> title
    numbers: dict[str, Any] = field(default_factory=dict)  # the latest window figures

    def add(self, other: Pending) -> None:
        if other.last_at >= self.last_at:
            self.numbers = {**self.numbers, **other.numbers}
        self.count += other.count
        self.first_at = min(self.first_at, other.first_at)
        self.last_at = max(self.last_at, other.last_at)
        for user_id, name in other.members.items():
            if len(self.members) < MAX_NAMED:
                self.members.setdefault(user_id, name)
        for chat_id, title in other.chats.items():
            if len(self.chats) < MAX_NAMED:
                self.chats.setdefault(chat_id, title)


@dataclass
class CommunityWatch:
    """One watched community: settings, message window, word hits and pending hits."""

    community_id: int
    words: tuple[str, ...]
    managers_chat: str | None
    loaded_at: float
    window: MessageWindow = field(default_factory=MessageWindow)
    word_hits: dict[str, deque[datetime]] = field(default_factory=dict)
    pending: dict[Subject, Pending] = field(default_factory=dict)
    let_through: dict[Subject, datetime] = field(default_factory=dict)
    in_spike: bool = False

    def hit(self, kind: str, subject: str, event: MessageEvent, count: int, **numbers: Any) -> None:
        one = Pending(kind, subject, count, event.at, event.at, numbers=numbers)
        one.members[event.actor.user_id] = event.actor.display_name
        one.chats[event.chat.chat_id] = event.chat.title
        waiting = self.pending.get((kind, subject))
        if waiting is None:
            self.pending[kind, subject] = one
        else:
            waiting.add(one)

    def word_count(self, word: str, at: datetime) -> int:
        """Record a hit of `word` at `at`; how many hits it had in the window."""
        hits = self.word_hits.setdefault(word, deque(maxlen=MAX_HITS))
        hits.append(at)
        oldest = at - timedelta(minutes=WINDOW_MINUTES)
        while hits and hits[0] < oldest:
            hits.popleft()
        return len(hits)

    def due(self, at: datetime) -> bool:
        """Whether a pending subject should be written now; marks them as let through."""
        ready = [
            subject
            for subject in self.pending
            if (last := self.let_through.get(subject)) is None or at - last >= FLUSH_EVERY
        ]
        for subject in ready:
            self.let_through[subject] = at
        return bool(ready)

    def take(self) -> list[Pending]:
        """Everything pending, removed (to be written by the caller)."""
        taken = list(self.pending.values())
        self.pending.clear()
        return taken

    def give_back(self, batch: Iterable[Pending]) -> None:
        """Hits whose writing failed: pending again, for the next try."""
        for item in batch:
            waiting = self.pending.get((item.kind, item.subject))
            if waiting is None:
                self.pending[item.kind, item.subject] = item
            else:
                waiting.add(item)


@dataclass
class WatchRegistry:
    """The watched communities of this process; `clock` is monotonic seconds (for `TTL`)."""

    clock: Callable[[], float] = time.monotonic
    communities: dict[Key, CommunityWatch] = field(default_factory=dict)

    def get(self, key: Key) -> CommunityWatch | None:
        return self.communities.get(key)

    def update(self, community: Community) -> CommunityWatch | None:
        """Take a community's current settings; None (and forgotten) when it is not watched.
        Counts and pending hits carry over when it is the same community."""
        key = (community.platform, community.external_id)
        settings = community.settings or {}
        words = watch_words(settings)
        managers = special_chat(settings, "managers")
        managers_chat = str(managers.get("id")) if managers and managers.get("id") else None
        previous = self.communities.get(key)
        if (not words and managers_chat is None) or community.removed_at is not None:
            self.communities.pop(key, None)
            return None
        if previous is not None and previous.community_id == community.id:
            previous.words, previous.managers_chat = words, managers_chat
            previous.loaded_at = self.clock()
            return previous
        state = CommunityWatch(community.id, words, managers_chat, self.clock())
        self.communities[key] = state
        return state

    def replace_all(self, communities: Iterable[Community]) -> None:
        """The registry as the database has it now (the periodic reload)."""
        seen: set[Key] = set()
        for community in communities:
            if self.update(community) is not None:
                seen.add((community.platform, community.external_id))
        for key in [k for k in self.communities if k not in seen]:
            # Unwatched since; pending hits go with it (nobody is to be told any more).
            del self.communities[key]

    def clear(self) -> None:
        self.communities.clear()


# One per process: the dispatcher's pre-filter sees only the event, so it can't be handed a
# registry; tests call `REGISTRY.clear()`.
REGISTRY = WatchRegistry()
