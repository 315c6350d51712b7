"""A community's segments on a day and a week before it, with who moved where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.segments.rules import SEGMENTS, reference, week_before
from storage import segments as store
from storage.activity import zone
from storage.models import Community

# Moves shown in a report: the biggest flows between segments, not all 30 possible ones.
SHOWN_MOVES = 6


@dataclass(frozen=True, slots=True)
class Move:
    """`count` members were in segment `source` a week before and are in `target` now."""

    source: str
    target: str
    count: int


@dataclass(frozen=True, slots=True)
class SegmentReport:
    """Segment counts on `day` and a week earlier, and the flows between them."""

    day: date
    counts: dict[str, int]
    before: dict[str, int]
    moves: tuple[Move, ...]
    joined: int  # in no segment a week before (not yet seen), in one now
    left: int  # in a segment a week before, gone now

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def total_before(self) -> int:
        return sum(self.before.values())

    def change(self, segment: str) -> int:
        return self.counts[segment] - self.before[segment]

    @property
    def moved(self) -> int:
        """Members who changed segment (between two segments) in the week."""
        return sum(m.count for m in self.moves)


def build(day: date, flows: dict[tuple[str | None, str | None], int]) -> SegmentReport:
    """A report from the (segment before, segment now) -> members counts."""
    counts = dict.fromkeys(SEGMENTS, 0)
    before = dict.fromkeys(SEGMENTS, 0)
    moves: list[Move] = []
    joined = left = 0
    for (source, target), count in flows.items():
        if target is not None:
            counts[target] += count
        if source is not None:
            before[source] += count
        if source is None:
            joined += count
        elif target is None:
            left += count
        elif source != target:
            moves.append(Move(source, target, count))
    order = {name: i for i, name in enumerate(SEGMENTS)}
    moves.sort(key=lambda m: (-m.count, order[m.source], order[m.target]))
    return SegmentReport(day, counts, before, tuple(moves), joined, left)


async def segment_report(session: AsyncSession, community: Community, day: date) -> SegmentReport:
    """The community's segments on local day `day` against the same day a week before."""
    tz = zone(community.timezone)
    now = reference(day, tz)
    flows = await store.movement(session, community.id, now, week_before(now, tz))
    return build(day, flows)
