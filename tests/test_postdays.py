"""The posting-day mask on memberships: merging, and the SQL that reads it, against brute force."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from storage import postdays
from storage.activity import ActivityKind, ActivityRecord, ActivityWriter
from storage.analytics import distinct_active
from storage.db import Database
from storage.models import Member, Membership

D0 = date(2026, 6, 1)
offsets = st.sets(st.integers(min_value=0, max_value=150), max_size=30)


@given(offsets, offsets)
def test_merging_two_masks_is_the_mask_of_all_their_days(a: set[int], b: set[int]) -> None:
    left = postdays.mask_of(D0 + timedelta(days=d) for d in a)
    right = postdays.mask_of(D0 + timedelta(days=d) for d in b)
    everything = postdays.mask_of(D0 + timedelta(days=d) for d in a | b)
    assert postdays.merge(left, right) == postdays.merge(right, left) == everything


def test_a_mask_keeps_62_days_and_stays_a_positive_bigint() -> None:
    days = [D0 + timedelta(days=d) for d in range(200)]
    last, mask = postdays.mask_of(days) or (None, 0)
    assert last == postdays.day_number(days[-1]) and mask == postdays.FULL and 0 < mask < 2**63


async def write_people(db: Database, seed: int) -> dict[str, list[int]]:
    """40 members posting on random days (offsets from D0), each at least once late on."""
    rng = random.Random(seed)
    people = {
        f"m{i}": sorted({*rng.sample(range(120), rng.randint(0, 12)), rng.randrange(100, 120)})
        for i in range(40)
    }
    records = [
        ActivityRecord(
            kind=ActivityKind.MESSAGE,
            platform="console",
            community_key="g1",
            chat_key="c1",
            member_key=name,
            member_name=name,
            at=datetime.combine(D0 + timedelta(days=d), time(12), tzinfo=UTC),
            event_key=f"{name}:{d}",
        )
        for name, ds in people.items()
        for d in ds
    ]
    writer = ActivityWriter(db)
    await writer.record_many(records)
    await writer.stop()
    return people


async def test_sql_reads_the_mask_as_brute_force_does(any_db: Database) -> None:
    people = await write_people(any_db, 7)
    ms = Membership
    for ref_offset in (0, 50, 90, 110, 119, 125):
        ref = D0 + timedelta(days=ref_offset)
        bits = postdays.aligned(ms.recent_posts_day, ms.recent_posts, ref)
        query = select(
            Member.external_id,
            postdays.covered(ms.recent_posts_day, ref, 15),
            postdays.any_in(bits, 7),
            postdays.at_least(bits, 7, 4),
            postdays.any_in(bits, 30),
        ).join(Member, Member.id == ms.member_id)
        async with any_db.session() as s:
            rows = (await s.execute(query)).all()
        assert len(rows) == len(people)
        for name, covered, week, core, month in rows:
            posted = {D0 + timedelta(days=d) for d in people[name]}
            last = max(posted)
            assert covered == ((last - ref).days + 15 <= postdays.BITS), (name, ref)
            if not covered:
                continue
            window = [ref - timedelta(days=j) for j in range(30)]
            assert week == any(d in posted for d in window[:7]), (name, ref)
            assert core == (sum(d in posted for d in window[:7]) >= 4), (name, ref)
            assert month == any(d in posted for d in window), (name, ref)


@pytest.mark.parametrize("gap", [0, 1, 61, 62, 200])
def test_python_merge_drops_only_days_beyond_reach(gap: int) -> None:
    old = postdays.mask_of([D0, D0 - timedelta(days=1)])
    new = postdays.mask_of([D0 + timedelta(days=gap)])
    merged = postdays.merge(old, new)
    assert merged is not None and merged[0] == postdays.day_number(D0) + gap
    expected = {g for g in (gap, gap + 1) if g < postdays.BITS} | {0}
    assert {k for k in range(postdays.BITS) if merged[1] >> k & 1} == expected


async def test_distinct_active_from_masks_or_member_days_equals_brute_force(
    any_db: Database,
) -> None:
    people = await write_people(any_db, 8)
    async with any_db.session() as s:
        cid = (await s.execute(select(Membership.community_id).limit(1))).scalar_one()
        # Recent windows (masks), windows the masks cannot reach (member_days), long ones.
        for first_offset, last_offset in ((113, 119), (90, 119), (100, 100), (10, 16), (0, 119)):
            first, last = D0 + timedelta(days=first_offset), D0 + timedelta(days=last_offset)
            want = sum(
                any(first_offset <= d <= last_offset for d in days) for days in people.values()
            )
            assert await distinct_active(s, cid, first, last) == want, (first, last)
