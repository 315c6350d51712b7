"""The scheduled daily summary: exactly once at its local time, across restarts, DST, absences.

The real scheduler runs with a fake clock set in 2030 (so no timer ever fires by itself);
`run_due` moves the timers with the clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from handlers.analytics import delivery, schedule
from handlers.core.context import Services
from handlers.core.events import ChatKind, ChatRef, Platform, Role
from scheduler.service import SchedulerService
from storage.activity import ActivityWriter
from storage.models import Community, CommunityDay, Occurrence
from tests.fakes import RecordingGateway, command, message, user

START = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)  # Monday, 13:00 in Berlin
NINE_TUESDAY = datetime(2030, 1, 8, 8, 0, tzinfo=UTC)  # 09:00 CET
BOSS, ANN = user("boss"), user("ann")
NEW_YORK = ZoneInfo("America/New_York")


async def start_scheduler(services: Services) -> SchedulerService:
    scheduler = SchedulerService()
    services.scheduler = scheduler
    delivery.install(services, scheduler)
    await scheduler.start()
    return scheduler


@pytest.fixture
async def bot(services: Services, gateway: RecordingGateway):
    services.clock.set(START)
    await start_scheduler(services)
    gateway.roles[BOSS.user_id] = Role.MANAGER
    services.gateways.register(gateway)
    yield services
    if services.scheduler is not None:
        await services.scheduler.stop()


async def say(dispatcher, gateway, text: str, who=BOSS, chat=None) -> str:
    before = len(gateway.sent)
    kwargs = {"chat": chat} if chat is not None else {}
    now = dispatcher.services.clock.now()
    await dispatcher.handle(command(who, text, now, **kwargs), gateway)
    return "\n".join(gateway.texts[before:])


async def ann_says(dispatcher, gateway, at: datetime) -> None:
    await dispatcher.handle(message(ANN, at), gateway)
    await dispatcher.services.activity.flush()


async def until(services: Services, when: datetime) -> list[str]:
    """Move the clock to `when` and run every timer due by then."""
    services.clock.set(when)
    assert services.scheduler is not None
    return await services.scheduler.run_due(when)


async def restart(services: Services) -> SchedulerService:
    """Stop the scheduler as a shutdown would, start a fresh one, run the start-up sweep."""
    assert services.scheduler is not None
    await services.scheduler.stop()
    scheduler = await start_scheduler(services)
    await until(services, services.clock.now() + delivery.START_SWEEP_DELAY)
    return scheduler


def summaries(gateway: RecordingGateway) -> list[str]:
    return [s.text for s in gateway.sent if s.text.startswith("📈 Daily summary")]


async def occurrences(services: Services) -> list[tuple[str, str]]:
    async with services.db.session() as s:
        rows = await s.execute(select(Occurrence.what, Occurrence.status).order_by(Occurrence.id))
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def community_id(services: Services) -> int:
    async with services.db.session() as s:
        return (await s.execute(select(Community.id))).scalar_one()


async def test_posts_once_at_nine_local_across_restarts(bot, dispatcher, gateway):
    services = bot
    await say(dispatcher, gateway, "/settings timezone Europe/Berlin")
    cid = await community_id(services)
    assert services.scheduler.next_run(f"summary:{cid}") == NINE_TUESDAY
    await ann_says(dispatcher, gateway, START + timedelta(hours=1))
    # A restart before nine: the timer is rebuilt from the database.
    await restart(services)
    assert services.scheduler.next_run(f"summary:{cid}") == NINE_TUESDAY
    await until(services, NINE_TUESDAY - timedelta(seconds=1))
    assert summaries(gateway) == []
    await until(services, NINE_TUESDAY)
    [posted] = summaries(gateway)
    assert "Monday 2030-01-07 (Europe/Berlin)" in posted and "Posted late" not in posted
    assert "💬 Messages: 2 " in posted  # boss's /settings and Ann's message
    assert gateway.sent[-1].chat.chat_id == "community-1"  # the group itself
    # A restart after it went out: the start-up sweep sees the claim and posts nothing.
    await restart(services)
    await until(services, NINE_TUESDAY + timedelta(hours=1))
    assert len(summaries(gateway)) == 1
    assert services.scheduler.next_run(f"summary:{cid}") == NINE_TUESDAY + timedelta(days=1)
    await until(services, NINE_TUESDAY + timedelta(days=1))
    assert len(summaries(gateway)) == 2 and "Tuesday 2030-01-08" in summaries(gateway)[-1]
    assert await occurrences(services) == [
        (f"summary:{cid}:2030-01-07", "done"),
        (f"summary:{cid}:2030-01-08", "done"),
    ]


async def test_two_instances_post_it_once(bot, dispatcher, gateway, db, clock):
    services = bot
    await say(dispatcher, gateway, "/settings summary 13:30")  # in UTC
    due = START + timedelta(days=1, minutes=90)  # Tuesday's, reporting Monday
    other_gateway = RecordingGateway()
    writer = ActivityWriter(db)
    other = Services(db=db, activity=writer, renderer=services.renderer, clock=clock)
    other.gateways.register(other_gateway)
    clock.set(due)
    cid = await community_id(services)
    outcomes = await asyncio.gather(
        delivery.fire(services, cid, due.isoformat()),
        delivery.fire(other, cid, due.isoformat()),
    )
    assert sorted(map(str, outcomes)) == ["claimed", "taken"]
    assert len(summaries(gateway)) + len(summaries(other_gateway)) == 1


async def test_a_time_changed_after_posting_waits_for_the_next_day(bot, dispatcher, gateway):
    services = bot
    await say(dispatcher, gateway, "/settings timezone Europe/Berlin")
    await until(services, NINE_TUESDAY)
    assert len(summaries(gateway)) == 1
    await until(services, NINE_TUESDAY + timedelta(minutes=30))
    reply = await say(dispatcher, gateway, "/settings summary 10:00")
    assert "every day at 10:00 (Europe/Berlin)" in reply
    await until(services, NINE_TUESDAY + timedelta(hours=2))
    assert len(summaries(gateway)) == 1  # the 8th had its summary already
    await until(services, NINE_TUESDAY + timedelta(days=1, hours=1))
    assert len(summaries(gateway)) == 2
    await say(dispatcher, gateway, "/settings summary off")
    cid = await community_id(services)
    assert services.scheduler.next_run(f"summary:{cid}") is None
    await until(services, NINE_TUESDAY + timedelta(days=3))
    assert len(summaries(gateway)) == 2


async def test_a_missed_summary_is_posted_late_within_the_grace_or_recorded(
    bot, dispatcher, gateway
):
    services = bot
    await say(dispatcher, gateway, "/settings timezone Europe/Berlin")
    cid = await community_id(services)
    # The bot is away from 08:00 to 09:30 UTC on Tuesday: back 90 minutes late.
    await services.scheduler.stop()
    services.clock.set(NINE_TUESDAY + timedelta(minutes=90))
    await restart_stopped(services)
    [late] = summaries(gateway)
    assert "⏰ Posted late: the bot was offline at 09:00, when this summary was due." in late
    # Away again from before Wednesday's run until 4 hours after it: too late to post.
    await services.scheduler.stop()
    services.clock.set(NINE_TUESDAY + timedelta(days=1, hours=4))
    await restart_stopped(services)
    assert len(summaries(gateway)) == 1
    assert await occurrences(services) == [
        (f"summary:{cid}:2030-01-07", "done"),
        (f"summary:{cid}:2030-01-08", "missed"),
    ]
    # Thursday goes out on time again.
    await until(services, NINE_TUESDAY + timedelta(days=2))
    assert len(summaries(gateway)) == 2 and "Posted late" not in summaries(gateway)[-1]


async def restart_stopped(services: Services) -> None:
    await start_scheduler(services)
    await until(services, services.clock.now() + delivery.START_SWEEP_DELAY)


async def test_dst_days_in_new_york(bot, dispatcher, gateway):
    services = bot
    services.clock.set(datetime(2030, 11, 2, 12, tzinfo=UTC))
    await say(dispatcher, gateway, "/settings timezone America/New_York")
    await say(dispatcher, gateway, "/settings summary 01:30")
    cid = await community_id(services)
    # 3 November 2030: 01:30 happens twice (EDT, then EST); it runs at the first only.
    first = datetime(2030, 11, 3, 5, 30, tzinfo=UTC)
    assert services.scheduler.next_run(f"summary:{cid}") == first
    await until(services, first)
    assert len(summaries(gateway)) == 1 and "Saturday 2030-11-02" in summaries(gateway)[0]
    assert services.scheduler.next_run(f"summary:{cid}") == datetime(
        2030, 11, 4, 6, 30, tzinfo=UTC
    )  # 01:30 EST the next day
    await until(services, first + timedelta(hours=2))  # past the second 01:30 (06:30 UTC)
    assert len(summaries(gateway)) == 1
    # In spring 02:30 doesn't exist on 10 March: it runs when the clocks jump, 03:30 EDT.
    spring = datetime(2030, 3, 9, 12, tzinfo=UTC)
    assert schedule.next_due(spring, time(2, 30), NEW_YORK) == (
        date(2030, 3, 10),
        datetime(2030, 3, 10, 7, 30, tzinfo=UTC),
    )
    # 09:00 is 14:00 UTC on the 9th (EST) and 13:00 UTC on the 10th (EDT).
    assert schedule.next_due(spring, time(9, 0), NEW_YORK) == (
        date(2030, 3, 9),
        datetime(2030, 3, 9, 14, 0, tzinfo=UTC),
    )
    assert schedule.due_on(date(2030, 3, 10), time(9, 0), NEW_YORK) == datetime(
        2030, 3, 10, 13, 0, tzinfo=UTC
    )


async def test_on_discord_only_where_managers_chose_a_channel(bot, dispatcher):
    services = bot
    discord = RecordingGateway(platform=Platform.DISCORD)
    discord.roles[BOSS.user_id] = Role.MANAGER
    services.gateways.register(discord)
    general = ChatRef(Platform.DISCORD, "111", "900", "general", ChatKind.GROUP, "Guild")
    staff = ChatRef(Platform.DISCORD, "222", "900", "staff", ChatKind.GROUP, "Guild")
    boss = user("boss")
    boss = type(boss)(Platform.DISCORD, boss.user_id, boss.display_name)
    await say(dispatcher, discord, "/settings summary 12:30", boss, general)
    cid = await community_id(services)
    await until(services, START + timedelta(minutes=30, seconds=5))
    await until(services, START + timedelta(minutes=40))  # and a sweep
    await delivery.sweep(services)
    assert summaries(discord) == [] and await occurrences(services) == []
    reply = await say(dispatcher, discord, "/settings managers here", boss, staff)
    assert "staff" in reply
    await until(services, START + timedelta(days=1, minutes=30))
    [posted] = [s for s in discord.sent if s.text.startswith("📈 Daily summary")]
    assert posted.chat.chat_id == "222"
    assert await occurrences(services) == [(f"summary:{cid}:2030-01-07", "done")]


async def test_the_sweep_arms_communities_seen_after_start(bot, dispatcher, gateway):
    services = bot
    await ann_says(dispatcher, gateway, START)  # a new community, known only to the database
    cid = await community_id(services)
    services.scheduler.cancel(f"summary:{cid}")
    assert await delivery.sweep(services) == 0  # nothing due yet
    assert services.scheduler.next_run(f"summary:{cid}") == datetime(2030, 1, 8, 9, tzinfo=UTC)
    await until(services, datetime(2030, 1, 8, 9, tzinfo=UTC))
    [posted] = summaries(gateway)
    assert "Monday 2030-01-07 (UTC)" in posted and "💬 Messages: 1 " in posted


def test_summary_times_from_settings() -> None:
    assert schedule.summary_time(None) == time(9, 0)
    assert schedule.summary_time({"summary_time": "07:45"}) == time(7, 45)
    assert schedule.summary_time({"summary_time": "off"}) is None
    assert schedule.summary_time({"summary_time": "garbage"}) == time(9, 0)
    assert schedule.parse_clock("9") == time(9, 0) and schedule.parse_clock("24:00") is None
    assert schedule.parse_clock("21：15") == time(21, 15)  # a full-width colon
    now = datetime(2030, 1, 8, 8, 0, tzinfo=UTC)
    berlin = ZoneInfo("Europe/Berlin")
    assert schedule.last_due(now, time(9, 0), berlin) == (date(2030, 1, 8), now)
    assert schedule.next_due(now, time(9, 0), berlin) == (
        date(2030, 1, 9),
        now + timedelta(days=1),
    )


class CountingGateway(RecordingGateway):
    async def member_count(self, chat: ChatRef) -> int | None:
        return 12


async def test_the_scheduled_summary_records_the_member_count(bot, dispatcher):
    services = bot
    counting = CountingGateway()
    counting.roles[BOSS.user_id] = Role.MANAGER
    services.gateways.register(counting)  # the console's gateway, now with a member count
    await say(dispatcher, counting, "/settings timezone Europe/Berlin")
    await services.activity.flush()  # the command is Monday's one message
    await until(services, NINE_TUESDAY)
    [posted] = summaries(counting)
    assert "👥 Members: 12 · engagement 8.3% of members active" in posted  # 1 of 12
    async with services.db.session() as s:
        row = await s.get(CommunityDay, (await community_id(services), date(2030, 1, 7)))
    assert row is not None and row.member_count == 12
