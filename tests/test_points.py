"""Points: message points from the activity writer, /points, /leaderboard, manager changes.

Storage is involved everywhere, so every test runs on SQLite and PostgreSQL (`any_db`).
Messages are driven through the real `ActivityWriter` as records built from `message(...)`
events, and commands through a dispatcher holding the points (and giveaway) routers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, insert, select, update

from handlers.core.context import Services
from handlers.core.events import Role
from handlers.core.members import parse_member
from handlers.core.recording import activity_record
from handlers.core.render import LOCALES, Renderer
from handlers.core.router import Dispatcher
from handlers.giveaways import commands as giveaway_commands
from handlers.giveaways import entry as giveaway_entry
from handlers.points import commands as points_commands
from handlers.points import lifecycle
from handlers.points.messages import MessagePoints, day_window
from handlers.points.periods import period_start
from handlers.points.rules import PointsRules, points_rules
from scheduler.service import SchedulerService
from storage import points as ledger
from storage.activity import ActivityWriter, CommunityDefaults, WrittenActivity
from storage.db import Database
from storage.models import ActivityEvent, Community, PointsEntry
from storage.points import Award, PointsReason
from tests.conftest import postgres_schema_database
from tests.fakes import CHAT, T0, FakeClock, RecordingGateway, command, message, press, user

BOSS = user("boss")
ANN, BEN, CAT = user("Ann"), user("Ben"), user("Cat")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


# For tests of replies and permissions rather than of SQL: SQLite alone keeps the file fast.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])


@asynccontextmanager
async def database(backend: str, tmp_path) -> AsyncIterator[Database]:
    """A migrated database: a SQLite file, or a throwaway PostgreSQL schema (dropped after)."""
    if backend == "postgresql":
        async with postgres_schema_database() as db:
            yield db
        return
    db = Database(f"sqlite:///{tmp_path / 'points.db'}")
    await db.migrate()
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def points(backend: str, tmp_path, clock: FakeClock) -> AsyncIterator[Services]:
    """Services with the points feature installed (the message points hook)."""
    async with database(backend, tmp_path) as db:
        writer = ActivityWriter(db, batch_size=500, flush_interval=0.05)
        await writer.start()
        services = Services(
            db=db,
            activity=writer,
            renderer=Renderer(),
            clock=clock,
            defaults=CommunityDefaults("UTC", "en"),
        )
        lifecycle.install(services, SchedulerService())
        lifecycle.install(services, SchedulerService())  # twice: still one hook
        assert sum(isinstance(h, MessagePoints) for h in writer.hooks) == 1
        try:
            yield services
        finally:
            await writer.stop()


@pytest.fixture
def gw(points: Services) -> RecordingGateway:
    gateway = RecordingGateway(roles={BOSS.user_id: Role.MANAGER})
    points.gateways.register(gateway)
    return gateway


@pytest.fixture
def bot(points: Services) -> Dispatcher:
    dispatcher = Dispatcher(points)
    for router in (points_commands.router, giveaway_commands.router, giveaway_entry.router):
        dispatcher.include(router)
    return dispatcher


async def say(services: Services, who, at: datetime, count: int = 1, *, every: float = 0) -> None:
    """`count` messages from `who`, `every` seconds apart, recorded as the router would."""
    for i in range(count):
        await services.activity.record(
            activity_record(message(who, at + timedelta(seconds=i * every)))
        )


async def ask(bot: Dispatcher, gw: RecordingGateway, who, text: str) -> str:
    before = len(gw.sent)
    await bot.handle(command(who, text, bot.services.clock.now()), gw)
    assert len(gw.sent) == before + 1, gw.texts[before:]
    return gw.last


async def community(db: Database, **values) -> Community:
    """The test community (created on first sight), with `values` changed."""
    async with db.session() as session:
        if values:
            await session.execute(update(Community).values(**values))
        return (await session.execute(select(Community))).scalar_one()


async def rows(db: Database, **where) -> list[PointsEntry]:
    async with db.session() as session:
        query = select(PointsEntry).filter_by(**where).order_by(PointsEntry.at, PointsEntry.id)
        return list((await session.execute(query)).scalars())


async def balance_of(db: Database, who) -> int:
    cid = (await community(db)).id
    async with db.session() as session:
        return await ledger.balance(session, cid, who.user_id)


# --- message points -------------------------------------------------------------------------


async def test_messages_earn_points_with_a_minimum_gap_and_a_daily_cap(points):
    # Ann writes every 61 s: one point each, until the cap of 20 for the day.
    await say(points, ANN, T0, 30, every=61)
    # Ben floods: 100 messages 2 s apart (200 s) earn only the ones 60 s apart.
    await say(points, BEN, T0, 100, every=2)
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    engine = points.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        await points.activity.flush()  # one batch of 130 records
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # Cheap whatever the batch: the rules, one grouped read of the ledger, one insert.
    assert sum("communities.settings" in s for s in statements) == 1
    assert sum("points_ledger" in s for s in statements) == 2
    assert await balance_of(points.db, ANN) == 20
    assert len(await rows(points.db, user_id="ann")) == 20
    ben = await rows(points.db, user_id="ben")
    assert [r.at for r in ben] == [T0 + timedelta(seconds=s) for s in (0, 60, 120, 180)]
    assert {r.reason for r in ben} == {"message"}
    # The activity itself is all there: points never cost a message.
    async with points.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(ActivityEvent)) == 130


async def test_the_gap_counts_across_batches_and_commands_earn_nothing(points):
    await say(points, ANN, T0)
    await points.activity.flush()
    await say(points, ANN, T0 + timedelta(seconds=30))  # too soon after the last reward
    await points.activity.record(
        activity_record(command(ANN, "/points", T0 + timedelta(minutes=5)))
    )
    await points.activity.flush()
    assert await balance_of(points.db, ANN) == 1
    await say(points, ANN, T0 + timedelta(seconds=61))
    await points.activity.flush()
    assert await balance_of(points.db, ANN) == 2


async def test_a_replayed_message_adds_nothing(points):
    first = message(ANN, T0, key="m:1")
    await points.activity.record(activity_record(first))
    await points.activity.record(activity_record(first))  # a duplicate inside the batch
    await points.activity.flush()
    await points.activity.record(activity_record(message(ANN, T0, key="m:1")))  # a later replay
    await points.activity.flush()
    assert [r.amount for r in await rows(points.db)] == [1]
    # Even if the hook ran again for the same message, its ref makes the award a no-op.
    [hook] = [h for h in points.activity.hooks if isinstance(h, MessagePoints)]
    cid = (await community(points.db)).id
    again = WrittenActivity(
        activity_record(message(ANN, T0 + timedelta(hours=1), key="m:1")), cid, "UTC"
    )
    async with points.db.session() as session:
        await hook(session, [again])
    assert [r.amount for r in await rows(points.db)] == [1]


async def test_local_midnight_resets_the_cap_in_the_community_zone(points):
    await say(points, BOSS, T0)  # creates the community
    await points.activity.flush()
    await community(
        points.db, timezone="Asia/Shanghai", settings={"points": {"message_daily_cap": 3}}
    )
    # 23:50-23:58 and 00:01-00:09 in Shanghai (UTC+8): the same UTC day, two local days.
    # Ann's messages arrive in one batch (it spans midnight), Ben's in one batch per day.
    evening = datetime(2026, 11, 21, 15, 50, tzinfo=UTC)
    for who, one_batch in ((ANN, True), (BEN, False)):
        await say(points, who, evening, 5, every=120)
        if not one_batch:
            await points.activity.flush()
        await say(points, who, evening + timedelta(minutes=11), 5, every=120)
        await points.activity.flush()
        by_day: dict[str, int] = {}
        for r in await rows(points.db, user_id=who.user_id):
            day = str(r.at.astimezone(ZoneInfo("Asia/Shanghai")).date())
            by_day[day] = by_day.get(day, 0) + r.amount
        assert by_day == {"2026-11-21": 3, "2026-11-22": 3}, who


async def test_community_rules_change_message_points(points):
    await say(points, ANN, T0)
    await points.activity.flush()
    await community(points.db, settings={"points": {"message": 4, "message_daily_cap": 10}})
    await say(points, ANN, T0 + timedelta(minutes=2), 5, every=61)
    await points.activity.flush()
    # 1 before the change, then 4 + 4 + 1 (the cap is reached with a partial award).
    assert [r.amount for r in await rows(points.db, user_id="ann")] == [1, 4, 4, 1]
    await community(points.db, settings={"points": {"message": 0}})
    await say(points, BEN, T0 + timedelta(hours=1))
    await points.activity.flush()
    assert await rows(points.db, user_id="ben") == []


async def test_a_failing_points_hook_never_costs_activity(points, monkeypatch):
    async def broken(session, items):
        # A row the database refuses: on PostgreSQL this aborts the whole transaction unless
        # the hook's savepoint is rolled back.
        await session.execute(insert(PointsEntry).values(community_id=items[0][0], user_id=None))

    monkeypatch.setattr(ledger, "award_many", broken)
    await say(points, ANN, T0, 3, every=61)
    await points.activity.flush()
    assert points.activity.stats.dropped == 0
    async with points.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(ActivityEvent)) == 3
    assert await rows(points.db) == []


# --- /points, give and take -------------------------------------------------------------------


async def test_points_shows_balance_rank_and_this_week(points, bot, gw, clock):
    await say(points, ANN, T0 - timedelta(days=10), 3, every=61)  # an earlier week
    await say(points, ANN, T0, 2, every=61)
    await say(points, BEN, T0, 1)
    reply = await ask(bot, gw, ANN, "/points")
    assert "You have 5 points — #1 of 2" in reply and "This week: +2" in reply
    reply = await ask(bot, gw, ANN, "/points @BEN")
    assert "Ben has 1 point — #2 of 2" in reply and "This week: +1" in reply
    assert "no points here yet" in await ask(bot, gw, CAT, "/points")
    assert 'don\'t know a member "@nobody"' in await ask(bot, gw, ANN, "/points @nobody")


async def test_give_and_take_are_audited_and_take_never_goes_below_zero(points, bot, gw):
    await say(points, ANN, T0)
    reply = await ask(bot, gw, BOSS, "/points give @ann 10 answered every newcomer's question")
    assert "Gave 10 points to Ann" in reply and "now has 11 points" in reply
    [given] = await rows(points.db, reason="given")
    assert (given.user_id, given.amount, given.actor_id) == ("ann", 10, "boss")
    assert given.note == "answered every newcomer's question"
    refused = await ask(bot, gw, BOSS, "/points take ann 12 spam")
    assert "has only 11 points" in refused and "at most 11" in refused
    assert await rows(points.db, reason="taken") == []
    assert "now has 4 points" in await ask(bot, gw, BOSS, "/points take ann 7 spam")
    [taken] = await rows(points.db, reason="taken")
    assert (taken.amount, taken.actor_id, taken.note) == (-7, "boss", "spam")
    assert await balance_of(points.db, ANN) == 4


async def test_takes_at_the_same_time_never_go_below_zero(points, bot, gw, monkeypatch):
    await say(points, ANN, T0)
    await ask(bot, gw, BOSS, "/points give ann 9 welcome")
    read_balance = ledger.balance

    async def slow_balance(*args, **kwargs) -> int:
        # Widen the window between checking the balance and writing the take.
        found = await read_balance(*args, **kwargs)
        await asyncio.sleep(0.05)
        return found

    monkeypatch.setattr(ledger, "balance", slow_balance)
    takes = [command(BOSS, f"/points take ann 10 race {i}", T0) for i in range(3)]
    await asyncio.gather(*(bot.handle(event, gw) for event in takes))
    assert await balance_of(points.db, ANN) == 0
    assert sum("Took 10 points" in t for t in gw.texts) == 1
    assert sum("below zero" in t for t in gw.texts) == 2


@SQLITE_ONLY
async def test_members_cannot_give_or_take_and_bad_amounts_are_refused(points, bot, gw):
    await say(points, ANN, T0)
    await say(points, BEN, T0)
    assert "Only the community's managers" in await ask(bot, gw, BEN, "/points give ben 50 me")
    assert "Only the community's managers" in await ask(bot, gw, BEN, "/points take ann 1 x")
    for text, expected in [
        ("/points give ann 0 nothing", "out of range"),
        ("/points give ann -5 negative", "out of range"),
        ("/points give ann 99999999999999999 lots", "out of range"),
        ("/points give ann many lots", "isn't a whole number"),
        ("/points give ann 5", "Say why, after the number"),
        ("/points take ann 1", "like /points take @name 10 spam"),
        ("/points give @zed 5 who", "don't know a member"),
        ("/points take ann 0 x", "out of range"),
    ]:
        assert expected in await ask(bot, gw, BOSS, text), text
    assert {r.reason for r in await rows(points.db)} == {"message"}


@SQLITE_ONLY
async def test_a_replayed_give_command_gives_once(points, bot, gw):
    await say(points, ANN, T0)
    event = command(BOSS, "/points give ann 5 thanks", T0)
    await bot.handle(event, gw)
    await bot.handle(event, gw)
    assert [r.amount for r in await rows(points.db, reason="given")] == [5]


@SQLITE_ONLY
async def test_members_are_named_by_username_mention_or_id(points, bot, gw):
    zed = user("Zed", user_id="4242")
    await say(points, zed, T0)
    other_chat = CHAT.__class__(CHAT.platform, "chat-9", "community-9", "Elsewhere")
    await points.activity.record(activity_record(message(user("Yan"), T0, chat=other_chat)))
    for name in ("@zed", "@ZED", "<@4242>", "<@!4242>", "4242", "tg://user?id=4242"):
        assert "Zed has 1 point" in await ask(bot, gw, ANN, f"/points {name}"), name
    # Yan is a member of another community only.
    assert "don't know a member" in await ask(bot, gw, ANN, "/points @yan")
    assert parse_member("@al_ice").username == "al_ice" and parse_member("12").user_id == "12"


# --- leaderboards ---------------------------------------------------------------------------


async def seed(db: Database, cid: int, who, amount: int, at: datetime) -> None:
    async with db.session() as session:
        ref = f"seed:{who.user_id}:{at.isoformat()}"
        item = Award(who.user_id, who.display_name, amount, PointsReason.GIVEN, ref=ref)
        await ledger.award(session, cid, item, now=at)


async def test_leaderboard_windows_follow_the_community_zone(points, bot, gw, clock):
    await say(points, BOSS, T0 - timedelta(days=60))
    await points.activity.flush()
    cid = (await community(points.db, timezone="America/New_York")).id
    dan = user("Dan")
    # T0 is Friday 2026-11-20; in New York the week began Mon 16th 00:00 (05:00 UTC).
    await seed(points.db, cid, ANN, 50, datetime(2026, 10, 20, 12, tzinfo=UTC))
    await seed(points.db, cid, BEN, 30, datetime(2026, 11, 3, 12, tzinfo=UTC))
    await seed(points.db, cid, CAT, 10, datetime(2026, 11, 18, 12, tzinfo=UTC))
    await seed(points.db, cid, dan, 5, datetime(2026, 11, 16, 4, 30, tzinfo=UTC))  # Sun 23:30 NY
    week = await ask(bot, gw, ANN, "/leaderboard")
    assert "This week's leaderboard · since Mon 2026-11-16" in week
    assert "1. Cat — 10" in week and "Dan" not in week and "Ben" not in week
    assert "You have no points this week" in week
    month = await ask(bot, gw, ANN, "/leaderboard month")
    assert "1. Ben — 30" in month and "2. Cat — 10" in month and "3. Dan — 5" in month
    assert "Ann" not in month
    alltime = await ask(bot, gw, ANN, "/leaderboard all")
    assert alltime.index("1. Ann — 50 ← you") < alltime.index("2. Ben — 30")
    assert "\n…" not in alltime
    assert "isn't one of: week, month, all" in await ask(bot, gw, ANN, "/leaderboard year")
    assert "This month's" in await ask(bot, gw, ANN, "/leaderboard 本月")


async def test_leaderboard_shows_top_ten_ties_and_the_callers_own_rank(points, bot, gw):
    await say(points, BOSS, T0)
    await points.activity.flush()
    cid = (await community(points.db)).id
    crowd = [user(f"m{i:02}") for i in range(12)]
    for i, who in enumerate(crowd):
        await seed(points.db, cid, who, 100 - i * 5, T0)
    await seed(points.db, cid, ANN, 1, T0)
    await seed(points.db, cid, BEN, 90, T0 + timedelta(seconds=1))  # ties m02 for rank 3
    board = await ask(bot, gw, ANN, "/leaderboard")
    lines = [line for line in board.splitlines() if " — " in line and "You" not in line]
    assert len(lines) == 10
    assert "🥉 3. Ben — 90" in board and "🥉 3. m02 — 90" in board and "5. m03 — 85" in board
    # Thirteen members have more; Ann ties with the boss (one message point) at 14.
    assert board.rstrip().endswith("14. You — 1")
    assert "You —" not in await ask(bot, gw, user("m00"), "/leaderboard")


# --- history and rules ----------------------------------------------------------------------


@SQLITE_ONLY
async def test_history_members_see_their_own_managers_see_anyones(points, bot, gw, clock):
    await say(points, ANN, T0 - timedelta(hours=3), 3, every=61)
    await ask(bot, gw, BOSS, "/points give ann 5 great answer")
    own = await ask(bot, gw, ANN, "/points history")
    assert "Points history — you · balance 8" in own
    assert "+5 given by boss: great answer" in own and "+3 messages ×3" in own
    assert own.index("given") < own.index("messages")  # newest first
    assert "Only managers can see someone else's" in await ask(bot, gw, BEN, "/points history @ann")
    assert "Points history — Ann · balance 8" in await ask(bot, gw, BOSS, "/points history ann")


@SQLITE_ONLY
async def test_rules_are_shown_to_all_and_changed_by_managers(points, bot, gw):
    await say(points, ANN, T0)
    shown = await ask(bot, gw, ANN, "/points rules")
    assert "message_daily_cap = 20" in shown and "(set here)" not in shown
    assert "Only the community's managers can change" in await ask(
        bot, gw, ANN, "/points rules message 5"
    )
    changed = await ask(bot, gw, BOSS, "/points rules message-daily-cap 5")
    assert "message_daily_cap is now 5 (was 20)" in changed and "(set here)" in changed
    assert (await community(points.db)).settings == {"points": {"message_daily_cap": 5}}
    assert "from 0 to 1,000" in await ask(bot, gw, BOSS, "/points rules message 5000")
    assert 'no points rule "bonus"' in await ask(bot, gw, BOSS, "/points rules bonus 5")
    assert "Give message a value" in await ask(bot, gw, BOSS, "/points rules message")
    await ask(bot, gw, BOSS, "/points rules message_daily_cap default")
    assert (await community(points.db)).settings == {}


async def test_rules_use_config_defaults_and_skip_broken_overrides():
    config = PointsRules(message=2, poll_vote=7)
    rules = points_rules({"points": config}, {"points": {"message": 3, "poll_vote": -1, "x": 1}})
    assert (rules.message, rules.poll_vote, rules.quiz_correct) == (3, 7, 10)
    assert points_rules({}, {"points": "junk"}) == PointsRules()


def test_periods_and_days_are_local():
    tz = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 3, 29, 12, tzinfo=UTC)  # a Sunday, the day clocks go forward
    assert period_start("week", now, tz) == datetime(2026, 3, 22, 23, tzinfo=UTC)
    assert period_start("month", now, tz) == datetime(2026, 2, 28, 23, tzinfo=UTC)
    assert period_start("all", now, tz) is None
    start, end = day_window(now.astimezone(tz).date(), tz)
    assert end - start == timedelta(hours=23)


@SQLITE_ONLY
async def test_zh_replies(points, bot, gw):
    await say(points, ANN, T0)
    await points.activity.flush()
    await community(points.db, locale="zh")
    assert "你目前有 1 积分" in await ask(bot, gw, ANN, "/points")
    assert "本周积分榜" in await ask(bot, gw, ANN, "/leaderboard")
    assert "已给 Ann 加 3 积分" in await ask(bot, gw, BOSS, "/points give ann 3 谢谢")
    assert "最多只能扣 4" in await ask(bot, gw, BOSS, "/points take ann 9 刷屏")
    assert "积分记录" in await ask(bot, gw, ANN, "/points history")
    assert "本社群的积分规则" in await ask(bot, gw, ANN, "/points rules")


@pytest.mark.parametrize("locale", LOCALES)
def test_every_points_command_has_help(locale):
    catalog = Renderer().catalog(locale)["commands"]
    for spec in points_commands.router.commands:
        assert catalog.get(spec.name, {}).get("help"), f"/{spec.name} has no {locale} help"


# --- the ledger is the truth ----------------------------------------------------------------


async def test_ledger_sums_equal_balances_over_random_operations(points, bot, gw, clock):
    members = [ANN, BEN, CAT, user("Dan")]
    rng = random.Random(7)
    oracle = dict.fromkeys((m.user_id for m in members), 0)
    last_reward: dict[str, datetime] = {}
    for m in members:
        await say(points, m, T0 - timedelta(days=1))
        oracle[m.user_id] += 1
        last_reward[m.user_id] = T0 - timedelta(days=1)
    await points.activity.flush()
    for step in range(30):
        clock.advance(seconds=rng.choice((5, 30, 90)))
        who = rng.choice(members)
        action = rng.choice(("message", "give", "take"))
        amount = rng.randint(1, 8)
        if action == "message":
            await say(points, who, clock.now())  # written by the next command's flush
            if clock.now() - last_reward[who.user_id] >= timedelta(seconds=60):
                oracle[who.user_id] += 1
                last_reward[who.user_id] = clock.now()
        elif action == "give":
            await ask(bot, gw, BOSS, f"/points give {who.user_id} {amount} step {step}")
            oracle[who.user_id] += amount
        else:
            reply = await ask(bot, gw, BOSS, f"/points take {who.user_id} {amount} step {step}")
            if oracle[who.user_id] >= amount:
                oracle[who.user_id] -= amount
            else:
                assert "below zero" in reply
    await points.activity.flush()
    cid = (await community(points.db)).id
    async with points.db.session() as session:
        balances = await ledger.balances(session, cid)
        top = await ledger.leaderboard(session, cid, limit=10)
    assert balances == oracle
    assert all(value >= 0 for value in balances.values())
    assert {s.user_id: s.total for s in top} == {k: v for k, v in oracle.items() if v > 0}
    assert sum(r.amount for r in await rows(points.db)) == sum(oracle.values())


# --- giveaway entries -----------------------------------------------------------------------


async def test_entering_a_giveaway_awards_points_once(points, bot, gw):
    from storage.models import Giveaway

    await say(points, BOSS, T0)
    await points.activity.flush()
    await community(points.db, settings={"points": {"giveaway_entry": 3}})
    await ask(bot, gw, BOSS, "/giveaway start 2h 1 a mug")
    async with points.db.session() as session:
        giveaway_id = (await session.execute(select(Giveaway.id))).scalar_one()
    for _ in range(3):
        await bot.handle(press(ANN, f"giveaway:enter:{giveaway_id}"), gw)
    assert "You're in" in gw.texts[-3] and "already in" in gw.last
    await bot.handle(command(BEN, f"/enter {giveaway_id}"), gw)
    entries = await rows(points.db, reason="giveaway_entry")
    assert [(r.user_id, r.amount, r.ref) for r in entries] == [
        ("ann", 3, f"giveaway:{giveaway_id}"),
        ("ben", 3, f"giveaway:{giveaway_id}"),
    ]
