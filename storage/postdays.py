"""Recent posting days per membership as a bit mask, kept at write time.

`memberships.recent_posts` has bit k set when the member posted (sent at least one message)
on local day `recent_posts_day - k`, for k in 0..`BITS - 1`; `recent_posts_day` is the
latest posting day as a day number (days since 1970-01-01), NULL before the first post.
With it, "did this member post in the 7 (or 30) days up to day D, and on how many of them"
is integer arithmetic on one row, so the summary's WAU/MAU and the member segments read
`memberships` once instead of grouping weeks of `member_days` rows (4 million of them in a
200,000-member community). Day numbers rather than dates keep that arithmetic the same, and
cheap, on SQLite and PostgreSQL.

The writer merges a batch's mask into the stored one (`merged`); readers shift the mask so
bit 0 is their reference day (`aligned`). A reference day too far before a member's latest
post for the mask to reach is reported as not covered, and callers then fall back to
`member_days`: the mask is a shortcut, never the only record.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import BigInteger, Integer, case, literal

# 62 bits: every value stays a positive signed 64-bit integer on SQLite and PostgreSQL.
BITS = 62
FULL = (1 << BITS) - 1
_EPOCH = date(1970, 1, 1).toordinal()


def day_number(day: date) -> int:
    """Days since 1970-01-01."""
    return day.toordinal() - _EPOCH


def mask_of(days: Iterable[date]) -> tuple[int, int] | None:
    """(day number of the latest day, mask of the days relative to it), or None."""
    numbers = {day_number(d) for d in days}
    if not numbers:
        return None
    last = max(numbers)
    mask = 0
    for n in numbers:
        if last - n < BITS:
            mask |= 1 << (last - n)
    return last, mask


def merge(old: tuple[int, int] | None, new: tuple[int, int] | None) -> tuple[int, int] | None:
    """Python twin of `merged`."""
    if old is None or new is None:
        return new if old is None else old
    (a_last, a), (b_last, b) = sorted((old, new))
    gap = b_last - a_last
    return b_last, (b | ((a << gap) & FULL if gap < BITS else 0))


def _big(value: int) -> Any:
    return literal(value, BigInteger())


def _shift_left(mask: Any, by: Any) -> Any:
    """`mask << by` kept to BITS bits; 0 when `by` reaches past the mask."""
    return case((by >= BITS, _big(0)), else_=(mask.op("<<")(by)).op("&")(_big(FULL)))


def merged(new_day: Any, new_mask: Any, old_day: Any, old_mask: Any) -> Any:
    """SQL for the stored mask after merging a batch's (`new_day`, `new_mask`) into the
    row's (`old_day`, `old_mask`); either day may be NULL (no posts)."""
    return case(
        (new_day.is_(None), old_mask),
        (old_day.is_(None), new_mask),
        (new_day >= old_day, new_mask.op("|")(_shift_left(old_mask, new_day - old_day))),
        else_=old_mask.op("|")(_shift_left(new_mask, old_day - new_day)),
    )


def aligned(last: Any, mask: Any, day: date) -> Any:
    """SQL for the mask shifted so that bit j means "posted on `day - j`" (0 if never);
    meaningful where `covered`."""
    ref = day_number(day)
    return case(
        (last.is_(None), _big(0)),
        (last >= ref, mask.op(">>")(last - literal(ref, Integer()))),
        else_=_shift_left(mask, literal(ref, Integer()) - last),
    )


def covered(last: Any, day: date, span: int) -> Any:
    """SQL: the mask reaches all of the `span` days up to `day` for this row."""
    return last.is_(None) | (last <= day_number(day) + BITS - span)


def any_in(bits: Any, span: int) -> Any:
    """SQL: a post on any of the `span` days up to the reference day (`bits` aligned)."""
    return bits.op("&")(_big((1 << span) - 1)) != _big(0)


def at_least(bits: Any, span: int, days: int) -> Any:
    """SQL: posts on at least `days` of the `span` days up to the reference day.

    One IN over the qualifying bit patterns (64 of 128 for 4 of 7): cheaper per row than
    adding up the bits, and the same on both databases.
    """
    patterns = [p for p in range(1 << span) if p.bit_count() >= days]
    return bits.op("&")(_big((1 << span) - 1)).in_(patterns)
