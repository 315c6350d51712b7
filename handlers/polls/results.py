"""Counting a poll: votes per option, shares, the leader(s); the same for every platform.

A poll's numbers come from the members' recorded choices, except for an anonymous native
poll, where the platform only ever reports totals (kept in `polls.native_totals` as
`[count per option…, voters]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from storage import polls as store
from storage.models import Poll

BAR_WIDTH = 10


@dataclass(frozen=True, slots=True)
class OptionResult:
    """One option's line in a result."""

    position: int  # 1-based, as shown
    text: str
    count: int
    share: float | None  # of all votes cast; None when nobody voted
    leading: bool

    @property
    def bar(self) -> str:
        """A text bar for places without images (the console)."""
        filled = round((self.share or 0) * BAR_WIDTH)
        return "█" * filled + "░" * (BAR_WIDTH - filled)


@dataclass(frozen=True, slots=True)
class Tally:
    options: tuple[str, ...]
    counts: tuple[int, ...]
    voters: int

    @property
    def votes(self) -> int:
        """Votes cast (more than the voters in a multiple-choice poll)."""
        return sum(self.counts)

    @property
    def leaders(self) -> tuple[int, ...]:
        """0-based positions of the option(s) with the most votes; none without votes."""
        top = max(self.counts, default=0)
        return tuple(i for i, c in enumerate(self.counts) if c == top) if top else ()

    @property
    def rows(self) -> list[OptionResult]:
        votes, leaders = self.votes, set(self.leaders)
        return [
            OptionResult(i + 1, text, count, count / votes if votes else None, i in leaders)
            for i, (text, count) in enumerate(zip(self.options, self.counts, strict=True))
        ]

    @property
    def leader_texts(self) -> list[str]:
        return [self.options[i] for i in self.leaders]


def tally_choices(options: Sequence[str], choices: Sequence[Sequence[int]]) -> Tally:
    """Count members' choices (option positions); positions out of range are ignored."""
    counts = [0] * len(options)
    voters = 0
    for choice in choices:
        valid = {i for i in choice if 0 <= i < len(options)}
        if valid:
            voters += 1
        for i in valid:
            counts[i] += 1
    return Tally(tuple(options), tuple(counts), voters)


def tally_totals(options: Sequence[str], native_totals: Sequence[int] | None) -> Tally:
    """The platform's own totals `[count per option…, voters]` (zeros before any arrived)."""
    totals = list(native_totals or [])
    counts = [int(c) for c in totals[: len(options)]]
    counts += [0] * (len(options) - len(counts))
    voters = int(totals[len(options)]) if len(totals) > len(options) else sum(counts)
    return Tally(tuple(options), tuple(counts), voters)


def platform_counts_only(poll: Poll) -> bool:
    """Whether only the platform knows the votes (an anonymous native poll)."""
    return bool(poll.native and poll.anonymous)


async def tally_of(session: AsyncSession, poll: Poll) -> Tally:
    """The poll's numbers as they stand."""
    if platform_counts_only(poll):
        return tally_totals(poll.options, poll.native_totals)
    return tally_choices(poll.options, await store.choices(session, poll.id))
