"""The metrics API on a small hand-built history in Shanghai (UTC+8), on SQLite and PostgreSQL.

Every expected number below is counted by hand from the history in `HISTORY` (local times),
including events just after local midnight that fall on the previous UTC date.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from handlers.analytics.metrics import (
    Cohort,
    CommunityMetrics,
    MemberCount,
    Period,
    SeriesPoint,
    community_metrics,
    daily_metrics,
    daily_series,
    weekly_metrics,
)
from storage.activity import ActivityKind, ActivityRecord, CommunityDefaults, write_batch
from storage.analytics import Contributor, Participation, local_bounds, record_member_count
from storage.db import Database
from storage.models import (
    Community,
    Giveaway,
    GiveawayEntry,
    Member,
    Membership,
    Occurrence,
    Poll,
    PollVote,
    QaQuestion,
    QaSession,
    Quiz,
    QuizAnswer,
    ScheduledPost,
)

SH = ZoneInfo("Asia/Shanghai")
D = date(2026, 11, 18)  # the reported day, a Wednesday
DAY = timedelta(days=1)
M, R, J, L = ActivityKind.MESSAGE, ActivityKind.REACTION, ActivityKind.JOIN, ActivityKind.LEAVE

_keys = itertools.count(1)


def at(offset: int, clock: str) -> datetime:
    """Local Shanghai time on day D + offset, as aware UTC."""
    hour, minute = (int(x) for x in clock.split(":"))
    return (
        datetime.combine(D + offset * DAY, datetime.min.time(), SH)
        .replace(hour=hour, minute=minute)
        .astimezone(UTC)
    )


def rec(
    kind: ActivityKind, who: str, when: datetime, *, reply: bool = False, community: str = "g"
) -> ActivityRecord:
    return ActivityRecord(
        kind=kind, platform="console", community_key=community, chat_key="c", member_key=who,
        member_name=who.title(), at=when, event_key=f"e{next(_keys)}",
        content="text" if kind is M else None, length=5 if kind is M else 0, is_reply=reply,
    )  # fmt: skip


# (kind, member, day offset, local time[, reply]) — the whole history.
HISTORY = [
    # Joins: eve a month before, cat and dan a week before (cat 00:10 local is the previous
    # UTC date), ben and gus the day before, ivy on D.
    (J, "eve", -30, "10:00"),
    (J, "cat", -7, "00:10"),
    (J, "dan", -7, "23:30"),
    (J, "gus", -1, "08:00"),
    (J, "ben", -1, "23:50"),
    (J, "ivy", 0, "12:00"),
    # Leaves: hal a minute before midnight on D-1, gus half an hour after it (on D).
    (L, "hal", -1, "23:59"),
    (L, "gus", 0, "00:30"),
    # Earlier days.
    (M, "kim", -31, "12:00"),  # outside MAU
    (M, "jay", -10, "12:00"),  # inside MAU, outside WAU
    (M, "dan", -7, "23:40"),
    (M, "cat", -5, "09:00"),
    (M, "cat", -5, "09:30"),
    *[(M, "ann", -3, f"1{i}:00") for i in range(5)],
    (M, "gus", -1, "08:05"),
    (M, "hal", -1, "20:00"),
    (M, "hal", -1, "20:05"),
    (M, "ann", -1, "23:58"),
    # D itself: ben just after midnight (16:05 UTC the day before), ann with a reply,
    # cat, eve, and fay (who opts out) most of all; dan only reacts.
    (M, "ben", 0, "00:05"),
    (M, "ann", 0, "09:15"),
    (M, "ann", 0, "09:40", True),
    (M, "ann", 0, "21:00"),
    (M, "cat", 0, "13:00"),
    (M, "cat", 0, "13:20"),
    (M, "eve", 0, "21:30"),
    *[(M, "fay", 0, f"10:{i}0") for i in range(4)],
    (R, "dan", 0, "09:41"),
    (R, "dan", 0, "21:05"),
    (R, "ann", 0, "13:21"),
]


@dataclass
class World:
    db: Database
    community: Community


async def _feature_rows(db: Database, cid: int) -> None:
    """Polls, quizzes, a giveaway, an AMA and a scheduled post around day D."""
    common = {"community_id": cid, "chat_id": "c", "chat_kind": "group"}
    async with db.session() as s:
        old_poll = Poll(
            **common,
            question="Old?",
            options=["a", "b"],
            status="closed",
            created_by="boss",
            created_by_name="Boss",
            created_at=at(-3, "10:00"),
        )
        poll = Poll(
            **common,
            question="Lunch?",
            options=["a", "b"],
            status="open",
            created_by="boss",
            created_by_name="Boss",
            created_at=at(0, "10:00"),
        )
        quiz_before = Quiz(
            **common,
            question="Q1",
            options=["x", "y"],
            correct_option=0,
            points=10,
            status="closed",
            closes_at=at(0, "12:00"),
            created_by="boss",
            created_at=at(-1, "22:00"),
        )
        quiz_on_d = Quiz(
            **common,
            question="Q2",
            options=["x", "y"],
            correct_option=1,
            points=10,
            status="closed",
            closes_at=at(0, "13:00"),
            created_by="boss",
            created_at=at(0, "12:00"),
        )
        giveaway = Giveaway(
            **common,
            prize="Mug",
            winners=1,
            ends_at=at(2, "12:00"),
            status="open",
            seed="s",
            commitment="c",
            created_by="boss",
            created_at=at(-2, "12:00"),
        )
        ama = QaSession(
            **common,
            topic="Roadmap",
            host_id="boss",
            host_name="Boss",
            status="open",
            opened_at=at(-1, "12:00"),
        )
        post = ScheduledPost(**common, schedule="every day 09:00", misfire="catch-up",
                             status="active", created_by="boss", created_by_name="Boss",
                             created_at=at(-5, "12:00"), updated_at=at(-5, "12:00"))  # fmt: skip
        s.add_all([old_poll, poll, quiz_before, quiz_on_d, giveaway, ama, post])
        await s.flush()
        s.add_all(
            [
                PollVote(poll_id=old_poll.id, user_id="cat", display_name="Cat",
                         option_ids=[0], voted_at=at(-1, "23:00")),  # D-1
                PollVote(poll_id=poll.id, user_id="ann", display_name="Ann",
                         option_ids=[0], voted_at=at(0, "10:05")),
                PollVote(poll_id=poll.id, user_id="ben", display_name="Ben",
                         option_ids=[1], voted_at=at(0, "10:06")),
                PollVote(poll_id=old_poll.id, user_id="dan", display_name="Dan",
                         option_ids=[1], voted_at=at(0, "23:59")),
                QuizAnswer(quiz_id=quiz_before.id, user_id="ann", display_name="Ann",
                           option=0, correct=True, answered_at=at(0, "00:10")),
                QuizAnswer(quiz_id=quiz_before.id, user_id="eve", display_name="Eve",
                           option=1, correct=False, answered_at=at(0, "08:00")),
                QuizAnswer(quiz_id=quiz_on_d.id, user_id="ann", display_name="Ann",
                           option=1, correct=True, answered_at=at(0, "12:01")),
                GiveawayEntry(giveaway_id=giveaway.id, user_id="ann", entrant_id="e1",
                              display_name="Ann", entered_at=at(0, "11:00")),
                GiveawayEntry(giveaway_id=giveaway.id, user_id="cat", entrant_id="e2",
                              display_name="Cat", entered_at=at(0, "11:30")),
                GiveawayEntry(giveaway_id=giveaway.id, user_id="fay", entrant_id="e3",
                              display_name="Fay", entered_at=at(0, "23:00")),
                GiveawayEntry(giveaway_id=giveaway.id, user_id="gus", entrant_id="e4",
                              display_name="Gus", entered_at=at(-1, "12:00")),  # D-1
                *[
                    QaQuestion(session_id=ama.id, community_id=cid, asker_id=who,
                               asker_name=who.title(), text=f"Question {i}?", status="open",
                               asked_at=at(0, f"1{i}:00"))
                    for i, who in enumerate(("ann", "ann", "ben"))
                ],
                # Runs of the post: done on D (counted), done on D-1, failed on D, and
                # one due on D that finished after midnight (counted on D+1).
                Occurrence(what=f"post:{post.id}", due_at=at(0, "09:00"), status="done",
                           claimed_by="t", claimed_at=at(0, "09:00"),
                           finished_at=at(0, "09:00")),
                Occurrence(what=f"post:{post.id}", due_at=at(-1, "09:00"), status="done",
                           claimed_by="t", claimed_at=at(-1, "09:00"),
                           finished_at=at(-1, "09:00")),
                Occurrence(what=f"post:{post.id}", due_at=at(0, "15:00"), status="failed",
                           claimed_by="t", claimed_at=at(0, "15:00"),
                           finished_at=at(0, "15:00")),
                Occurrence(what=f"post:{post.id}", due_at=at(0, "23:30"), status="done",
                           claimed_by="t", claimed_at=at(0, "23:30"),
                           finished_at=at(1, "00:01")),
                Occurrence(what="summary:1:2026-11-17", due_at=at(0, "09:00"), status="done",
                           claimed_by="t", claimed_at=at(0, "09:00"),
                           finished_at=at(0, "09:00")),  # not a post
            ]
        )  # fmt: skip


async def build_world(db: Database) -> World:
    records = [rec(kind, who, at(offset, clock), reply=bool(rest)) for kind, who, offset, clock,
               *rest in HISTORY]  # fmt: skip
    # Another community on the same day must not leak into any figure.
    records += [rec(M, "ann", at(0, "10:00"), community="other") for _ in range(3)]
    async with db.session() as s:
        await write_batch(s, records, defaults=CommunityDefaults("Asia/Shanghai"))
    async with db.session() as s:
        community = (
            await s.execute(select(Community).where(Community.external_id == "g"))
        ).scalar_one()
        fay = (await s.execute(select(Member.id).where(Member.external_id == "fay"))).scalar_one()
        await s.execute(
            update(Membership)
            .where(Membership.community_id == community.id, Membership.member_id == fay)
            .values(opted_out_at=at(0, "22:00"))
        )
    await _feature_rows(db, community.id)
    return World(db, community)


@pytest.fixture
async def world(any_db: Database) -> World:
    """The history on SQLite and on PostgreSQL."""
    return await build_world(any_db)


@pytest.fixture
async def sqlite_world(db: Database) -> World:
    """The history on SQLite only, for checks that run no backend-specific SQL."""
    return await build_world(db)


def check_daily_figures_and_trends(m: CommunityMetrics) -> None:
    assert m.period == Period(D, D) and not m.partial
    # 11 messages: ben 1 (00:05), ann 3, cat 2, eve 1, fay 4; ann's second is a reply.
    assert (m.messages, m.replies, m.reactions, m.interactions) == (11, 1, 3, 4)
    # Active = wrote a message: ben, ann, cat, eve, fay (dan only reacted).
    assert m.active_members == 5
    # ivy joined; gus left at 00:30 (hal's leave at 23:59 is the day before).
    assert (m.joins, m.leaves, m.net_growth) == (1, 1, 0)
    t = m.trends
    # D-1: 4 messages (gus, hal ×2, ann at 23:58), 3 active, 2 joins, 1 leave.
    assert (t.messages.previous, t.active_members.previous) == (4, 3)
    assert (t.joins.previous, t.leaves.previous, t.net_growth.previous) == (2, 1, 1)
    # D-7..D-1 messages: 1, 0, 2, 0, 5, 0, 4 -> 12/7 a day.
    assert t.messages.average == pytest.approx(12 / 7)
    assert t.messages.delta == 7 and t.messages.change == pytest.approx(7 / 4)
    assert t.messages.against_average == pytest.approx((11 - 12 / 7) / (12 / 7))
    assert t.messages.direction == 1 and t.messages.average_direction == 1
    assert t.active_members.average == pytest.approx(6 / 7)
    assert t.joins.direction == -1 and t.joins.average == pytest.approx(4 / 7)
    assert t.net_growth.value == 0 and t.net_growth.direction == -1
    assert t.interactions.previous == 0 and t.interactions.change is None
    assert m.baseline_periods == 7


def check_dau_wau_mau_and_stickiness(m: CommunityMetrics) -> None:
    # WAU (D-6..D): cat, ann, hal, gus + ben, eve, fay; MAU adds dan (D-7), jay (D-10), not kim.
    assert (m.dau, m.wau, m.mau) == (5, 7, 9)
    assert m.stickiness == pytest.approx(5 / 9)


def check_hour_of_day_in_local_time(m: CommunityMetrics) -> None:
    expected = [0] * 24
    for hour, count in {0: 1, 9: 2, 10: 4, 13: 2, 21: 2}.items():
        expected[hour] = count
    assert list(m.hours) == expected and sum(m.hours) == m.messages
    assert m.peak_hour == 10


def check_retention_cohorts(m: CommunityMetrics, empty: CommunityMetrics) -> None:
    # D1: joiners of D-1 are ben (wrote on D) and gus (left on D) -> 1 of 2.
    # D7: joiners of D-7 are cat (wrote on D) and dan (only reacted) -> 1 of 2.
    # D30: eve joined on D-30 and wrote on D -> 1 of 1.
    assert m.retention.d1 == Cohort(1, 2, 1) and m.retention.d1.rate == 0.5
    assert m.retention.d7 == Cohort(7, 2, 1)
    assert m.retention.d30 == Cohort(30, 1, 1) and m.retention.d30.rate == 1.0
    assert all(c.size == 0 and c.rate is None for c in empty.retention.cohorts)


def check_top_contributors_leave_out_members_who_opted_out(m: CommunityMetrics) -> None:
    # fay wrote the most (4) but opted out; ben and eve tie at 1 and go by name.
    assert m.top_contributors == (
        Contributor("ann", "Ann", 3, 1, 1),
        Contributor("cat", "Cat", 2, 0, 0),
        Contributor("ben", "Ben", 1, 0, 0),
        Contributor("eve", "Eve", 1, 0, 0),
    )
    assert m.active_members == 5  # fay still counts in the totals


def check_participation_in_activities(m: CommunityMetrics) -> None:
    assert m.participation == Participation(
        posts_delivered=1,  # the 09:00 run; the 23:30 one finished after midnight
        polls=1,
        poll_voters=3,  # ann, ben, dan (cat voted the day before)
        quizzes=1,  # one quiz was started the evening before
        quiz_answerers=2,  # ann (twice), eve
        giveaways=0,
        giveaway_entries=3,  # ann, cat, fay (gus entered the day before)
        ama_questions=3,
        ama_askers=2,
        participants=6,  # ann, ben, dan, eve, cat, fay
    )


async def test_one_day_from_the_rollups(world: World) -> None:
    async with world.db.session() as s:
        m = await daily_metrics(s, world.community, D)
        # A day whose cohorts are all empty: nobody joined on D+3-1, D+3-7 or D+3-30.
        empty = await daily_metrics(s, world.community, D + 3 * DAY)
    check_daily_figures_and_trends(m)
    check_dau_wau_mau_and_stickiness(m)
    check_hour_of_day_in_local_time(m)
    check_retention_cohorts(m, empty)
    check_top_contributors_leave_out_members_who_opted_out(m)
    check_participation_in_activities(m)


async def test_member_count_recorded_earlier_live_and_first_kept(world: World) -> None:
    db, community = world.db, world.community
    async with db.session() as s:
        assert (await daily_metrics(s, community, D)).member_count == MemberCount()
        await record_member_count(s, community.id, D - 3 * DAY, 40)
    async with db.session() as s:
        earlier = await daily_metrics(s, community, D)
        live = await daily_metrics(s, community, D, live_member_count=45)
    assert earlier.member_count == MemberCount(40, D - 3 * DAY, "earlier")
    assert earlier.engagement_rate == pytest.approx(5 / 40)
    assert live.member_count == MemberCount(45, D, "live")
    async with db.session() as s:
        await record_member_count(s, community.id, D, 50)
        await record_member_count(s, community.id, D, 60)  # the first count of a day stays
    async with db.session() as s:
        m = await daily_metrics(s, community, D, live_member_count=70)
        # Recording a count for a quiet day creates its row with zero counters.
        await record_member_count(s, community.id, D + 5 * DAY, 55)
    assert m.member_count == MemberCount(50, D, "platform")
    assert m.engagement_rate == pytest.approx(0.1)
    async with db.session() as s:
        quiet = await daily_metrics(s, community, D + 5 * DAY)
    assert quiet.messages == 0 and quiet.member_count == MemberCount(55, D + 5 * DAY, "platform")
    assert quiet.quiet


async def test_weekly_digest(world: World) -> None:
    async with world.db.session() as s:
        w = await weekly_metrics(s, world.community, D)
    assert w.period == Period(D - 6 * DAY, D) and w.period.days == 7
    # D-5: 2, D-3: 5, D-1: 4, D: 11.
    assert w.messages == 22 and w.active_members == w.wau == 7
    assert (w.joins, w.leaves) == (3, 2)  # ben, gus, ivy; hal, gus
    # D1 pooled: cat, dan (D-7 -> D-6: silent), ben, gus (D-1 -> D: ben) -> 1 of 4.
    assert w.retention.d1 == Cohort(1, 4, 1)
    assert w.retention.d7 == Cohort(7, 2, 1) and w.retention.d30 == Cohort(30, 1, 1)
    # The week before: jay and dan, one message each; the 4 weeks before: 2, 0, 0, 1 (kim).
    assert w.trends.messages.previous == 2
    assert w.trends.messages.average == pytest.approx(0.75)
    assert w.baseline_periods == 4
    # ann 9, cat 4, hal 2, then ben, eve and gus with 1 each, by name (fay opted out).
    assert [c.user_id for c in w.top_contributors] == ["ann", "cat", "hal", "ben", "eve"]
    assert sum(w.hours) == 22
    assert w.participation.ama_questions == 3 and w.participation.giveaway_entries == 4


async def test_today_is_partial_and_the_chart_series(sqlite_world: World) -> None:
    world = sqlite_world
    async with world.db.session() as s:
        today = await community_metrics(s, world.community, D, now=at(0, "14:00"))
        done = await community_metrics(s, world.community, D, now=at(1, "00:00"))
        series = await daily_series(s, world.community.id, D)
    assert today.partial and not done.partial
    assert len(series) == 14 and series[0].day == D - 13 * DAY and series[-1].day == D
    by_day = {p.day: p for p in series}
    assert by_day[D] == SeriesPoint(D, 11, 5)
    assert by_day[D - 3 * DAY] == SeriesPoint(D - 3 * DAY, 5, 1)
    assert by_day[D - 2 * DAY] == SeriesPoint(D - 2 * DAY, 0, 0)
    assert sum(p.messages for p in series) == 11 + 4 + 5 + 2 + 1 + 1  # down to D-13


def test_local_bounds_follow_the_zone() -> None:
    start, end = local_bounds(D, D, SH)
    assert start == datetime(2026, 11, 17, 16, tzinfo=UTC)
    assert end == datetime(2026, 11, 18, 16, tzinfo=UTC)
    berlin = ZoneInfo("Europe/Berlin")
    autumn = date(2026, 10, 25)  # 25 hours long
    start, end = local_bounds(autumn, autumn, berlin)
    assert end - start == timedelta(hours=25)
    with pytest.raises(ValueError):
        Period(D, D - DAY)
