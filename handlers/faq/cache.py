"""Each community's FAQ index, kept in memory so most chat messages never touch the database.

Keyed by what every event carries, (platform, community id on that platform), so the
dispatcher's pre-filter can look a community up without a unit of work. A state is
rebuilt when its community's FAQ changed in this process (`storage.faq.generation`), and
after `TTL` in any case, because other processes may share the database. While a reload
is pending, only one message per `LOAD_GRACE` is let through to do it; the others go on
with what is known (or, for a community never seen, wait).

The state also remembers, briefly, who was answered from which entry and who is a
manager, so a member repeating a question or a manager explaining the FAQ to others is
filtered out before any I/O as well. The database stays the authority for both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.faq.defaults import FaqDefaults
from handlers.faq.matcher import FaqIndex
from storage import faq as store

Key = tuple[str, str]

# How long a process trusts its copy of a community's FAQ (others may have changed it).
TTL = 30.0
# How long one message's reload may take before another message may try again.
LOAD_GRACE = 10.0
# A manager seen once is not asked about again for this long (platforms cache ranks too).
MANAGER_MEMO = 300.0
# Memos are dropped wholesale beyond these sizes: they only save work, never decide.
MAX_ANSWERED_MEMO = 20_000
MAX_MANAGER_MEMO = 2_000
# Larger FAQs are indexed on a worker thread (~0.1 ms an entry), so chats keep flowing.
THREAD_BUILD_FROM = 200


@dataclass
class CommunityFaq:
    """What this process knows of one community's FAQ."""

    community_id: int
    index: FaqIndex
    settings: FaqDefaults
    generation: int
    loaded_at: float
    # (faq id, user id) -> when that member was last answered from that entry
    answered: dict[tuple[int, str], datetime] = field(default_factory=dict)
    # user id -> until when (monotonic) they are known to be a manager
    managers: dict[str, float] = field(default_factory=dict)

    @property
    def answers_nothing(self) -> bool:
        """Auto-answers are off, or there is no entry to answer from."""
        return not self.settings.enabled or self.index.empty

    def stale(self, now: float) -> bool:
        return now - self.loaded_at >= TTL or store.generation(self.community_id) != self.generation

    def answered_recently(self, faq_id: int, user_id: str, at: datetime) -> bool:
        last = self.answered.get((faq_id, user_id))
        return last is not None and at - last < self.settings.cooldown

    def remember_answer(self, faq_id: int, user_id: str, at: datetime) -> None:
        if len(self.answered) >= MAX_ANSWERED_MEMO:
            self.answered.clear()
        self.answered[faq_id, user_id] = at

    def known_manager(self, user_id: str, now: float) -> bool:
        until = self.managers.get(user_id)
        return until is not None and now < until

    def remember_manager(self, user_id: str, now: float) -> None:
        if len(self.managers) >= MAX_MANAGER_MEMO:
            self.managers.clear()
        self.managers[user_id] = now + MANAGER_MEMO


@dataclass
class FaqCache:
    """Per-process states by community; `clock` is monotonic seconds (tests replace it)."""

    clock: Callable[[], float] = time.monotonic
    states: dict[Key, CommunityFaq] = field(default_factory=dict)
    loading: dict[Key, float] = field(default_factory=dict)

    def get(self, key: Key) -> CommunityFaq | None:
        return self.states.get(key)

    def usable(self, key: Key) -> CommunityFaq | None:
        """The state, if it is fresh and no reload was asked for."""
        state = self.states.get(key)
        if state is None or key in self.loading or state.stale(self.clock()):
            return None
        return state

    def claim_load(self, key: Key) -> bool:
        """True for the one caller that should (re)load this community now."""
        now = self.clock()
        started = self.loading.get(key)
        if started is not None and now - started < LOAD_GRACE:
            return False
        self.loading[key] = now
        return True

    def put(self, key: Key, state: CommunityFaq) -> None:
        """A freshly loaded state. Memos of the previous one carry over when it was the same
        community: who is a manager always, who was answered only if no entry changed (a
        removed entry's id may come back on SQLite)."""
        previous = self.states.get(key)
        if previous is not None and previous.community_id == state.community_id:
            state.managers = previous.managers
            if previous.generation == state.generation:
                state.answered = previous.answered
        self.states[key] = state
        self.loading.pop(key, None)

    async def load(
        self, session: AsyncSession, key: Key, community_id: int, settings: FaqDefaults
    ) -> CommunityFaq:
        """The community's state, from the database unless a fresh one is at hand; the
        settings always come from the caller, who has just read the community row."""
        state = self.usable(key)
        if state is None or state.community_id != community_id:
            # Read the generation first: a change committed while we query makes it stale.
            generation = store.generation(community_id)
            questions = await store.questions(session, community_id)
            if len(questions) >= THREAD_BUILD_FROM:
                index = await asyncio.to_thread(FaqIndex.build, questions)
            else:
                index = FaqIndex.build(questions)
            state = CommunityFaq(
                community_id=community_id,
                index=index,
                settings=settings,
                generation=generation,
                loaded_at=self.clock(),
            )
            self.put(key, state)
        state.settings = settings
        return state

    def forget(self, key: Key) -> None:
        """Drop a community's state: the next message reloads it."""
        self.states.pop(key, None)
        self.loading.pop(key, None)

    def clear(self) -> None:
        self.states.clear()
        self.loading.clear()


# One per process: the dispatcher's pre-filter sees only the event, so it can't be handed
# a cache; tests call `CACHE.clear()`.
CACHE = FaqCache()
