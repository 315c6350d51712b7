"""Activity drops and surges against the weekly baseline, from hourly rows, on a timer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from handlers.alerts import summary_lines
from handlers.alerts.anomaly import check_activity, judge, last_complete_hour
from handlers.alerts.lifecycle import install
from handlers.alerts.state import REGISTRY
from handlers.core.context import Services
from scheduler.service import SchedulerService
from storage.activity import zone
from storage.models import AlertRecord, Community, CommunityHour
from tests.fakes import FakeClock, RecordingGateway

DAY = date(2026, 11, 20)


def utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_registry():
    REGISTRY.clear()
    yield
    REGISTRY.clear()


@pytest.fixture
def connected(gateway: RecordingGateway, services: Services) -> RecordingGateway:
    services.gateways.register(gateway)
    return gateway


async def community(
    services: Services,
    *,
    name: str = "c1",
    timezone: str = "UTC",
    age: timedelta = timedelta(days=30),
    managers: bool = True,
    locale: str = "en",
    today: date = DAY,
) -> int:
    async with services.db.session() as session:
        row = Community(
            platform="console",
            external_id=name,
            title=name,
            timezone=timezone,
            locale=locale,
            settings={"managers_chat": {"id": f"{name}-managers", "title": "Managers"}}
            if managers
            else {},
            created_at=utc(today, 0) - age,
        )
        session.add(row)
        await session.flush()
        return row.id


async def hours(services: Services, community_id: int, counts: dict[tuple[date, int], int]) -> None:
    async with services.db.session() as session:
        for (day, hour), messages in counts.items():
            session.add(
                CommunityHour(community_id=community_id, day=day, hour=hour, messages=messages)
            )


def week(hour: int, usual: int, today: int | None, *, day: date = DAY) -> dict:
    """`usual` messages in `hour` on each of the 7 days before `day`, `today` on `day`."""
    rows = {(day - timedelta(days=n), hour): usual for n in range(1, 8)}
    if today is not None:
        rows[day, hour] = today
    return rows


async def rows(services: Services) -> list[AlertRecord]:
    async with services.db.session() as session:
        found = await session.execute(select(AlertRecord).order_by(AlertRecord.id))
        return list(found.scalars())


def test_judging_an_hour():
    assert judge(120, 40.0).kind == "surge"
    assert judge(119, 40.0) is None
    assert judge(30, 0.0).kind == "surge"  # a quiet hour suddenly busy
    assert judge(29, 0.0) is None  # but not a handful of messages
    assert judge(10, 40.0).kind == "drop"
    assert judge(11, 40.0) is None
    assert judge(0, 19.9) is None  # too quiet an hour to call a drop


def test_the_last_complete_hour_is_local():
    shanghai = zone("Asia/Shanghai")
    assert last_complete_hour(utc(DAY, 12, 5), zone("UTC"))[:2] == (DAY, 11)
    assert last_complete_hour(utc(DAY, 16, 10), shanghai)[:2] == (DAY, 23)
    assert last_complete_hour(utc(DAY, 17, 10), shanghai)[:2] == (DAY + timedelta(days=1), 0)
    # The night clocks go back in Berlin: 02:00-03:00 happens twice; each is judged.
    berlin = zone("Europe/Berlin")
    day, hour, started = last_complete_hour(datetime(2026, 10, 25, 1, 30, tzinfo=UTC), berlin)
    assert (day, hour, started) == (date(2026, 10, 25), 2, datetime(2026, 10, 25, 0, 0, tzinfo=UTC))


async def test_a_surge_is_one_alert_counted_hour_by_hour(services, connected, clock: FakeClock):
    cid = await community(services)
    counts = {**week(11, 40, 180), **week(12, 40, 200), **week(13, 40, 190), **week(14, 40, 210)}
    await hours(services, cid, counts)

    clock.set(utc(DAY, 12, 5))
    assert await check_activity(services) == 1
    assert connected.sent[-1].chat.chat_id == "c1-managers"
    assert connected.last == (
        "📈 Activity surge: 180 messages in the hour 11:00–12:00, 4.5× the usual 40 "
        "(the average of that hour over the last 7 days)."
    )
    clock.set(utc(DAY, 12, 20))  # the check runs every 15 minutes: the same hour counts once
    assert await check_activity(services) == 0
    for hour in (13, 14):
        clock.set(utc(DAY, hour, 5))
        assert await check_activity(services) == 0  # the same storm, within the cooldown
    [row] = await rows(services)
    assert (row.kind, row.subject, row.count) == ("surge", "activity", 3)

    clock.set(utc(DAY, 15, 5))  # three hours after the alert: one follow-up
    assert await check_activity(services) == 1
    assert connected.last == (
        "📈 Activity still unusually high: 4 unusual hours since 12:05; the latest, "
        "14:00–15:00, had 210 messages (usually 40)."
    )
    [row] = await rows(services)
    assert row.count == 4 and row.detail["messages"] == 210


async def test_a_drop(services, connected, clock):
    cid = await community(services)
    await hours(services, cid, week(11, 40, 5))
    clock.set(utc(DAY, 12, 1))
    assert await check_activity(services) == 1
    assert connected.last == (
        "📉 Activity drop: only 5 messages in the hour 11:00–12:00, 12% of the usual 40 "
        "(the average of that hour over the last 7 days)."
    )
    # A silent hour has no row at all: that is a drop too.
    await hours(services, cid, week(12, 60, None))
    clock.set(utc(DAY, 13, 1))
    assert await check_activity(services) == 0  # same storm (cooldown)
    [row] = await rows(services)
    assert (row.kind, row.count, row.detail["messages"]) == ("drop", 2, 0)


async def test_ordinary_small_young_or_unknown_hours_raise_nothing(services, connected, clock):
    ordinary = await community(services, name="ordinary")
    await hours(services, ordinary, week(11, 40, 55))
    small = await community(services, name="small")
    await hours(services, small, {**week(11, 10, 1), **week(10, 2, 25)})
    young = await community(services, name="young", age=timedelta(days=3))
    await hours(services, young, week(11, 40, 400))
    # Hourly counts that start 3 days ago: no baseline yet, however busy the hour.
    fresh = await community(services, name="fresh")
    await hours(services, fresh, {(DAY - timedelta(days=n), 11): 5 for n in range(1, 4)})
    await hours(services, fresh, {(DAY, 11): 300})
    clock.set(utc(DAY, 12, 5))
    assert await check_activity(services) == 0
    clock.set(utc(DAY, 11, 5))
    assert await check_activity(services) == 0
    assert await rows(services) == []


async def test_hours_are_the_communitys_local_hours(services, connected, clock):
    cid = await community(services, timezone="Asia/Shanghai", locale="zh")
    await hours(services, cid, week(11, 40, 180))  # 11:00-12:00 in Shanghai
    clock.set(utc(DAY, 4, 5))  # 12:05 there
    assert await check_activity(services) == 1
    assert connected.last == (
        "📈 活跃度激增：11:00–12:00 共 180 条消息，是平时（40 条）的 4.5 倍"
        "（按最近 7 天同一时段的平均值）。"
    )


async def test_without_a_managers_chat_the_alert_is_only_recorded(services, connected, clock):
    cid = await community(services, managers=False)
    await hours(services, cid, week(11, 40, 180))
    clock.set(utc(DAY, 12, 5))
    assert await check_activity(services) == 0
    assert connected.sent == []
    [row] = await rows(services)
    assert row.notified_at is None
    async with services.db.session() as session:
        found = await session.get(Community, cid)
        lines = await summary_lines(session, found, DAY, "en")
    assert lines == [
        "📈 Activity surge: 1 unusual hour, the latest 11:00–12:00 with 180 messages (usually 40)"
    ]


async def test_the_timer_runs_the_check_and_a_restart_does_not_repeat_it(
    services, connected, clock
):
    # A real scheduler, driven by a fake clock in the future (its interval timers start now).
    later = date(2030, 1, 10)
    clock.set(utc(later, 12, 5))
    cid = await community(services, today=later)
    await hours(services, cid, week(11, 40, 180, day=later))
    for _ in range(2):  # a first start, then a restart of the process
        REGISTRY.clear()
        scheduler = SchedulerService()
        services.scheduler = scheduler
        install(services, scheduler)
        await scheduler.start()
        try:
            assert {"alerts-activity:sweep", "alerts-refresh:sweep"} <= set(scheduler.keys())
            assert REGISTRY.get(("console", "c1")) is not None  # loaded at start-up
            ran = await scheduler.run_due(clock.now() + timedelta(minutes=2))
            assert "alerts-activity:sweep:start" in ran
        finally:
            await scheduler.stop()
    assert len(connected.sent) == 1 and connected.last.startswith("📈 Activity surge: 180")
    [row] = await rows(services)
    assert row.count == 1
