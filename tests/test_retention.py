"""Retention: raw events past `retention_days` go, rollups stay; removed communities go after
their grace period with everything they owned; the daily job runs once a day."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import build_dispatcher
from handlers.core.context import Services
from handlers.core.events import BotMembershipChanged, ChatRef, Platform, Role
from handlers.core.render import Renderer
from handlers.core.router import Dispatcher
from handlers.privacy import retention
from handlers.privacy.retention import PrivacySettings, due_slot, purge
from scheduler.service import SchedulerService
from storage import metrics
from storage import retention as store
from storage.activity import ActivityWriter, CommunityDefaults
from storage.db import Database
from storage.models import (
    ActivityEvent,
    Base,
    Community,
    CommunityDay,
    Member,
    MemberDay,
    Membership,
    Occurrence,
)
from storage.occurrences import ClaimOutcome
from tests.fakes import CHAT, FakeClock, RecordingGateway, command, message, press, user

NOW = datetime(2030, 6, 15, 12, 0, tzinfo=UTC)
BOSS, ANN, BEN, CAT = user("boss"), user("ann"), user("ben"), user("cat")
OTHER = ChatRef(Platform.CONSOLE, "chat-9", "community-9", "Other group")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def svc(any_db: Database, clock: FakeClock) -> AsyncIterator[Services]:
    """Services on each backend (the purge's SQL runs on SQLite and PostgreSQL)."""
    writer = ActivityWriter(any_db, batch_size=200, flush_interval=0.05)
    await writer.start()
    yield Services(
        db=any_db,
        activity=writer,
        renderer=Renderer(),
        clock=clock,
        defaults=CommunityDefaults("UTC", "en"),
        features={"privacy": PrivacySettings()},
    )
    await writer.stop()


@pytest.fixture
def gateway() -> RecordingGateway:
    return RecordingGateway(roles={BOSS.user_id: Role.MANAGER})


@pytest.fixture
def app(svc: Services, gateway: RecordingGateway) -> Dispatcher:
    svc.gateways.register(gateway)
    return build_dispatcher(svc)


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as session:
        query = select(func.count()).select_from(model).where(*where)
        return int((await session.execute(query)).scalar())


async def community_id(db: Database, chat: ChatRef = CHAT) -> int:
    async with db.session() as session:
        query = select(Community.id).where(Community.external_id == chat.community_id)
        return int((await session.execute(query)).scalar_one())


async def chat_days(
    app: Dispatcher, svc: Services, days_ago: list[int], chat: ChatRef = CHAT, who=(ANN, BEN)
) -> None:
    """Messages by `who`, and a reply by CAT, on each of those days before NOW."""
    quiet = RecordingGateway()
    for ago in days_ago:
        at = NOW - timedelta(days=ago, hours=1)
        for person in who:
            await app.handle(message(person, at, chat=chat), quiet)
        await app.handle(message(CAT, at, chat=chat, reply_to=ANN), quiet)
    await svc.activity.flush()


# --- the bot added and removed ----------------------------------------------------------------


def membership(present: bool, at: datetime, *, chat: ChatRef = CHAT, bot: bool = False):
    actor = user("commops", bot=True) if bot else BOSS
    key = f"bot:{'in' if present else 'out'}:{at.timestamp()}"
    return BotMembershipChanged(chat, actor, at, key, present=present)


async def test_removal_starts_the_grace_period_and_a_return_ends_it(app, svc, clock):
    await app.handle(command(ANN, "/help"), RecordingGateway())
    cid = await community_id(svc.db)
    removed = NOW - timedelta(minutes=3)
    # Discord says nothing about who removed the bot: the bot itself is the actor.
    assert await app.handle(membership(False, removed, bot=True), RecordingGateway()) == []
    async with svc.db.session() as session:
        assert (await session.get(Community, cid)).removed_at == removed
    # Told twice (another instance, a replay): the first time counts.
    clock.advance(hours=1)
    await app.handle(membership(False, clock.now()), RecordingGateway())
    async with svc.db.session() as session:
        assert (await session.get(Community, cid)).removed_at == removed
    await app.handle(membership(True, clock.now()), RecordingGateway())
    async with svc.db.session() as session:
        assert (await session.get(Community, cid)).removed_at is None


async def test_a_removal_dated_in_the_future_counts_from_now(app, svc, clock):
    await app.handle(membership(False, NOW + timedelta(days=400)), RecordingGateway())
    async with svc.db.session() as session:
        [community] = (await session.execute(select(Community))).scalars()
    assert community.removed_at == NOW


# --- raw events past retention ---------------------------------------------------------------


async def test_old_raw_events_go_in_batches_and_summaries_do_not_change(
    app, svc, clock, monkeypatch
):
    ago = [200, 120, 91, 89, 30, 1, 0]
    await chat_days(app, svc, ago)
    cid = await community_id(svc.db)
    days = [(NOW - timedelta(days=a, hours=1)).date() for a in ago]
    async with svc.db.session() as session:
        rollups = await metrics.stored_days(session, cid)
        summaries = await metrics.day_counts(session, cid, days)
        member_days = await session.execute(select(MemberDay).order_by(MemberDay.day))
        per_member = [(r.day, r.member_id, r.messages, r.replies) for r in member_days.scalars()]
    assert await count(svc.db, ActivityEvent) == 7 * 3

    batches: list[int] = []
    real = store.delete_events_before

    async def recording(*args: Any, **kwargs: Any) -> int:
        batches.append(await real(*args, **kwargs))
        return batches[-1]

    monkeypatch.setattr(store, "delete_events_before", recording)
    report = await purge(svc, batch_size=4)
    assert report.events == 9  # the days 200, 120 and 91 ago, three events each
    assert max(batches) <= 4 and len(batches) >= 3  # never more than a batch per transaction
    cutoff = NOW - timedelta(days=90)
    assert await count(svc.db, ActivityEvent, ActivityEvent.occurred_at < cutoff) == 0
    assert await count(svc.db, ActivityEvent) == 4 * 3

    # What summaries read is the same for days outside the window and inside it.
    async with svc.db.session() as session:
        assert await metrics.stored_days(session, cid) == rollups
        assert await metrics.day_counts(session, cid, days) == summaries
        after = await session.execute(select(MemberDay).order_by(MemberDay.day))
        assert [(r.day, r.member_id, r.messages, r.replies) for r in after.scalars()] == per_member
    old = summaries[days[1]]
    assert (old.messages, old.active_members, old.replies) == (3, 3, 1)


async def test_retention_zero_keeps_raw_events_for_ever(app, svc):
    await chat_days(app, svc, [400, 1])
    svc.features["privacy"] = PrivacySettings(retention_days=0)
    assert (await purge(svc)).events == 0
    assert await count(svc.db, ActivityEvent) == 6


def test_retention_shorter_than_besttimes_four_weeks_is_refused():
    with pytest.raises(ValueError, match="at least 30 days"):
        PrivacySettings(retention_days=7)
    assert PrivacySettings(retention_days=30).retention_days == 30


# --- removed communities ----------------------------------------------------------------------


async def fill_community(app: Dispatcher, gateway: RecordingGateway) -> None:
    """A community with something in every feature: giveaway, post, poll, quiz, FAQ, AMA, points."""
    manager_commands = [
        "/giveaway start 2d 1 A book",
        "/post add tomorrow 09:00 Good morning",
        "/template save hello Hi there",
        "/poll Lunch? | Pizza | Soup",
        "/quiz Capital of France? | Paris | Lyon",
        "/faq add How do I join? | Press Enter.",
        "/qa open Roadmap",
        "/points add @ann 5 for helping",
        "/settings timezone Europe/Berlin",
    ]
    for text in manager_commands:
        await app.handle(command(BOSS, text), gateway)
    await app.handle(press(ANN, "giveaway:enter:1"), gateway)
    await app.handle(press(ANN, "poll:vote:1:0"), gateway)
    await app.handle(command(ANN, "/ask Will there be stickers?"), gateway)


async def test_a_community_removed_past_its_grace_goes_with_everything_it_owned(
    app, svc, gateway, clock
):
    await chat_days(app, svc, [45, 40, 35], who=(ANN, BEN))
    await fill_community(app, gateway)
    await chat_days(app, svc, [3], chat=OTHER, who=(BEN,))  # BEN is also in another community
    await svc.activity.flush()
    gone, kept = await community_id(svc.db), await community_id(svc.db, OTHER)
    owned = {
        table.name: await count(svc.db, table, table.c.community_id == gone)
        for table in Base.metadata.sorted_tables
        if "community_id" in table.c
    }
    filled = {name for name, rows in owned.items() if rows}
    # The scenario reaches every feature's tables (so the purge is tested on all of them).
    assert {"giveaways", "posts", "post_templates", "polls", "quizzes", "faq_entries"} <= filled
    assert {"qa_sessions", "qa_questions", "points_ledger", "memberships", "chats"} <= filled
    children = ("giveaway_entries", "poll_votes")
    assert all([await count(svc.db, Base.metadata.tables[name]) for name in children])
    other_before = {
        table.name: await count(svc.db, table, table.c.community_id == kept)
        for table in Base.metadata.sorted_tables
        if "community_id" in table.c
    }

    await app.handle(membership(False, NOW - timedelta(days=31)), gateway)
    report = await purge(svc, batch_size=3)

    assert report.communities == 1 and report.kept == 0
    for table in Base.metadata.sorted_tables:
        if "community_id" in table.c:
            assert await count(svc.db, table, table.c.community_id == gone) == 0, table.name
            assert await count(svc.db, table, table.c.community_id == kept) == other_before.get(
                table.name, 0
            ), table.name
    for name in children:
        assert await count(svc.db, Base.metadata.tables[name]) == 0, name
    # ANN and BOSS were only there; BEN and CAT are still in the other community.
    async with svc.db.session() as session:
        left = set((await session.execute(select(Member.external_id))).scalars())
    assert left == {"ben", "cat"}
    assert report.members == 2


async def test_a_community_within_its_grace_period_stays(app, svc, gateway):
    await chat_days(app, svc, [45, 40])
    await app.handle(membership(False, NOW - timedelta(days=29)), gateway)
    report = await purge(svc)
    assert report.communities == 0
    assert await count(svc.db, Community) == 1
    assert await count(svc.db, CommunityDay) == 2


async def test_a_community_active_after_its_removal_is_unmarked_not_purged(app, svc, gateway):
    await app.handle(membership(False, NOW - timedelta(days=40)), gateway)
    await chat_days(app, svc, [20])  # e.g. the removal was the group becoming a supergroup
    report = await purge(svc)
    assert report.communities == 0 and report.kept == 1
    async with svc.db.session() as session:
        [community] = (await session.execute(select(Community))).scalars()
    assert community.removed_at is None
    assert await count(svc.db, Membership) == 3


async def test_a_bot_added_back_during_the_purge_keeps_its_community(
    app, svc, gateway, monkeypatch
):
    await chat_days(app, svc, [50])
    await app.handle(membership(False, NOW - timedelta(days=31)), gateway)
    real = store.delete_community_events

    async def meanwhile(session: Any, community_id: int, *, limit: int) -> int:
        await store.set_removed(session, community_id, None)  # the bot was added back
        return await real(session, community_id, limit=limit)

    monkeypatch.setattr(store, "delete_community_events", meanwhile)
    report = await purge(svc)
    assert report.communities == 0 and report.members == 0
    assert await count(svc.db, Community) == 1 and await count(svc.db, Member) == 3


async def test_members_of_a_purged_community_can_come_back_elsewhere(app, svc, gateway):
    """The activity writer caches member and chat ids; after a purge it must not use them."""
    await chat_days(app, svc, [50], who=(ANN,))
    await app.handle(membership(False, NOW - timedelta(days=31)), gateway)
    await purge(svc)
    assert await count(svc.db, Member) == 0
    await chat_days(app, svc, [0], chat=OTHER, who=(ANN,))
    assert svc.activity.stats.dropped == 0
    assert await count(svc.db, ActivityEvent) == 2
    # And the same group adding the bot again starts afresh.
    await chat_days(app, svc, [0], who=(ANN,))
    assert svc.activity.stats.dropped == 0
    assert await count(svc.db, Community) == 2


# --- the daily job ----------------------------------------------------------------------------


def test_the_due_slot_is_the_latest_purge_time():
    assert due_slot(datetime(2030, 6, 15, 12, 0, tzinfo=UTC)) == datetime(
        2030, 6, 15, 3, 17, tzinfo=UTC
    )
    assert due_slot(datetime(2030, 6, 15, 3, 16, tzinfo=UTC)) == datetime(
        2030, 6, 14, 3, 17, tzinfo=UTC
    )
    assert due_slot(datetime(2030, 6, 15, 3, 17, tzinfo=UTC)).day == 15


async def purges(db: Database) -> list[tuple[datetime, str]]:
    async with db.session() as session:
        rows = await session.execute(
            select(Occurrence).where(Occurrence.what == retention.WHAT).order_by(Occurrence.due_at)
        )
        return [(r.due_at, r.status) for r in rows.scalars()]


async def test_the_daily_job_purges_once_a_day_across_restarts(app, svc, clock):
    await chat_days(app, svc, [100, 95, 1])
    scheduler = SchedulerService()
    retention.install(svc, scheduler)
    await scheduler.start()
    try:
        assert {"privacy:retention:sweep", "privacy:retention:sweep:start"} <= set(scheduler.keys())
        ran = await scheduler.run_due(clock.advance(minutes=1))
        assert "privacy:retention:sweep:start" in ran
        assert await count(svc.db, ActivityEvent) == 3
        # The hourly checks later that day find the day's purge done.
        clock.advance(hours=3)
        assert await retention.daily(svc) is ClaimOutcome.TAKEN
    finally:
        await scheduler.stop()
    # A restart (or a second instance) the same day purges nothing more.
    await chat_days(app, svc, [97])
    restarted = SchedulerService()
    retention.install(svc, restarted)
    await restarted.start()
    try:
        await restarted.run_due(clock.advance(minutes=1))
        assert await count(svc.db, ActivityEvent) == 6
        # The next day's slot (03:17) is claimed by the first hourly check after it.
        clock.set(datetime(2030, 6, 16, 3, 0, tzinfo=UTC))
        await restarted.run_due(clock.now())
        assert await count(svc.db, ActivityEvent) == 6
        clock.set(datetime(2030, 6, 16, 4, 30, tzinfo=UTC))
        await restarted.run_due(clock.now())
        assert await count(svc.db, ActivityEvent) == 3
    finally:
        await restarted.stop()
    assert await purges(svc.db) == [
        (datetime(2030, 6, 15, 3, 17, tzinfo=UTC), "done"),
        (datetime(2030, 6, 16, 3, 17, tzinfo=UTC), "done"),
    ]


async def test_a_failing_purge_is_recorded_and_the_next_day_catches_up(
    app, svc, clock, monkeypatch
):
    await chat_days(app, svc, [100])

    async def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("database away")

    monkeypatch.setattr(store, "delete_events_before", broken)
    assert await retention.daily(svc) is ClaimOutcome.CLAIMED
    assert await purges(svc.db) == [(datetime(2030, 6, 15, 3, 17, tzinfo=UTC), "failed")]
    monkeypatch.undo()
    clock.advance(days=1)
    await retention.daily(svc)
    assert await count(svc.db, ActivityEvent) == 0


async def test_two_instances_at_once_purge_once(app, svc, clock):
    import asyncio

    await chat_days(app, svc, [100])
    outcomes = await asyncio.gather(retention.daily(svc), retention.daily(svc))
    assert sorted(outcomes) == sorted([ClaimOutcome.CLAIMED, ClaimOutcome.TAKEN])
    assert len(await purges(svc.db)) == 1


async def test_storage_steps_are_bounded(svc, app):
    await chat_days(app, svc, [10, 9, 8, 7, 6])
    cid = await community_id(svc.db)
    async with svc.db.session() as session:
        assert await store.delete_member_days(session, cid, days=2) == 2 * 3
        assert await store.delete_community_events(session, cid, limit=4) == 4
        assert await store.delete_events_before(session, cid, NOW, limit=100) == 11
        assert await store.delete_orphan_members(session, []) == 0
    assert await count(svc.db, MemberDay) == 3 * 3
