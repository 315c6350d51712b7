"""Member segments: the rules at their edges, movement since last week, `/segments` and its
listing, the daily summary's lines, in both locales, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import event, func, select

from handlers.core.events import Role
from handlers.core.render import Renderer
from handlers.segments import summary_lines
from handlers.segments.report import build, segment_report
from handlers.segments.rules import reference, segment_named
from storage import postdays
from storage import segments as store
from storage.activity import zone
from storage.db import Database
from storage.models import Community, Member, MemberDay, Membership
from tests.fakes import CHAT, T0, RecordingGateway, command, user

TODAY = T0.date()  # the fake clock's day; the community's zone is UTC unless a test says so
BOSS = user("boss")


@dataclass
class Person:
    """A member as the rollups know them: days are counted back from `TODAY`."""

    name: str
    posted: tuple[int, ...] = ()  # days ago with at least one message
    reacted: tuple[int, ...] = ()  # days ago with reactions only
    joined: int | None = None
    left: int | None = None
    seen_since: int = 60  # first seen this many days ago (unless a join or post is earlier)
    opted_out: bool = False
    username: bool = True


def at(days_ago: int, hour: int = 12) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), time(hour), tzinfo=UTC)


async def seed(
    db: Database, people: list[Person], *, timezone: str = "UTC", locale: str = "en"
) -> int:
    """The console community of `tests.fakes.CHAT` with these members; returns its id."""
    async with db.session() as session:
        community = Community(
            platform="console",
            external_id=CHAT.community_id,
            title="Test group",
            timezone=timezone,
            locale=locale,
            settings={},
            created_at=at(90),
        )
        session.add(community)
        await session.flush()
        for p in people:
            days = [*p.posted, *p.reacted, *([p.joined] if p.joined is not None else [])]
            first = at(max([p.seen_since, *days]))
            last = at(min([*days, *([p.left] if p.left is not None else []), p.seen_since]))
            mask = postdays.mask_of(TODAY - timedelta(days=d) for d in p.posted)
            member = Member(
                platform="console",
                external_id=p.name.lower(),
                display_name=p.name,
                username=p.name.lower() if p.username else None,
                first_seen_at=first,
            )
            session.add(member)
            await session.flush()
            session.add(
                Membership(
                    community_id=community.id,
                    member_id=member.id,
                    first_seen_at=first,
                    last_seen_at=last,
                    joined_at=at(p.joined) if p.joined is not None else None,
                    left_at=at(p.left, 13) if p.left is not None else None,
                    opted_out_at=at(1) if p.opted_out else None,
                    first_posted_on=TODAY - timedelta(days=max(p.posted)) if p.posted else None,
                    last_posted_on=TODAY - timedelta(days=min(p.posted)) if p.posted else None,
                    recent_posts=mask[1] if mask else 0,
                    recent_posts_day=mask[0] if mask else None,
                )
            )
            rows = [(d, 3, 0) for d in p.posted] + [(d, 0, 2) for d in p.reacted]
            for days_ago, messages, reactions in rows:
                session.add(
                    MemberDay(
                        community_id=community.id,
                        day=TODAY - timedelta(days=days_ago),
                        member_id=member.id,
                        messages=messages,
                        reactions=reactions,
                    )
                )
        return community.id


async def community_row(db: Database) -> Community:
    async with db.session() as session:
        return (await session.execute(select(Community))).scalar_one()


async def segments_of(db: Database, day: date = TODAY) -> dict[str, set[str]]:
    """Segment -> member names on `day`, through the listing query (so both paths agree)."""
    community = await community_row(db)
    tz = zone(community.timezone)
    found: dict[str, set[str]] = {}
    async with db.session() as session:
        for segment in store.SEGMENTS:
            members, total, hidden = await store.members_in(
                session, community.id, segment, reference(day, tz), limit=1000
            )
            assert total == len(members) + hidden
            if members or hidden:
                found[segment] = {m.display_name for m in members}
    return found


# --- the rules --------------------------------------------------------------------------------

EDGES = [
    Person("New6", posted=(0, 1, 2, 3, 4), joined=6),  # new wins over core
    Person("Joined7", joined=7),  # no longer new; never posted
    Person("Core4", posted=(0, 1, 2, 3)),
    Person("CoreEdge", posted=(3, 4, 5, 6)),  # 6 days ago is inside the window
    Person("Casual3", posted=(0, 2, 6)),
    Person("CasualOut", posted=(1, 2, 3, 7)),  # 7 days ago is outside it: 3 days
    Person("Risk7", posted=(7, 8, 9, 10)),  # silent 7 days
    Person("Risk14", posted=(14, 20)),  # silent 14 days
    Person("Dormant15", posted=(15,)),  # silent 15 days
    # Silent beyond every window: only `memberships.first_posted_on` says they ever posted.
    Person("Dormant60", posted=(60,)),
    Person("Lurker", seen_since=200),
    Person("Reactor", reacted=(0, 1, 2, 3, 4)),  # reactions are not posts
    Person("Gone", posted=(0, 1, 2, 3), left=1),
    Person("GoneToday", posted=(5, 6), left=0),
    Person("Back", posted=(20,), joined=3, left=10),  # left, then joined again
    Person("Private", posted=(0, 1, 2, 3, 4), opted_out=True),
]


async def test_every_member_is_in_exactly_one_segment_by_the_documented_rules(any_db):
    await seed(any_db, EDGES)
    assert await segments_of(any_db) == {
        "new": {"New6", "Back"},
        "lurker": {"Joined7", "Lurker", "Reactor"},
        "core": {"Core4", "CoreEdge"},  # and Private, counted but never named
        "casual": {"Casual3", "CasualOut"},
        "at_risk": {"Risk7", "Risk14"},
        "dormant": {"Dormant15", "Dormant60"},
    }
    community = await community_row(any_db)
    async with any_db.session() as session:
        report = await segment_report(session, community, TODAY)
        dormant, _, _ = await store.members_in(
            session, community.id, "dormant", reference(TODAY, zone("UTC")), limit=10
        )
    assert report.counts == {
        "new": 2, "core": 3, "casual": 2, "at_risk": 2, "dormant": 2, "lurker": 3,
    }  # fmt: skip
    assert report.total == len(EDGES) - 2  # the two who left are not counted
    # Listed most recently active first, with the last message day even beyond the window.
    assert [(m.display_name, (TODAY - m.last_active).days) for m in dormant] == [
        ("Dormant15", 15),
        ("Dormant60", 60),
    ]


async def test_a_day_is_the_communitys_local_day(db):
    # In Shanghai (UTC+8) the 21st starts at 16:00 UTC on the 20th. Posts on the local 21st
    # are "today" there; a join at 17:00 UTC on the 14th is the local 15th (6 days before
    # the 21st: new), one at 15:00 UTC the local 14th (7 days before: not new).
    await seed(
        db,
        [
            Person("Today", posted=(-1, 0, 1, 2)),
            Person("Late", joined=7),
            Person("Early", joined=7),
        ],
        timezone="Asia/Shanghai",
    )
    fourteenth = TODAY - timedelta(days=6)
    async with db.session() as session:
        for name, hour in (("late", 17), ("early", 15)):
            row = (
                await session.execute(
                    select(Membership).join(Member).where(Member.external_id == name)
                )
            ).scalar_one()
            row.joined_at = datetime.combine(fourteenth, time(hour), tzinfo=UTC)
    local_today = TODAY + timedelta(days=1)
    assert await segments_of(db, local_today) == {
        "core": {"Today"},
        "new": {"Late"},
        "lurker": {"Early"},
    }
    assert await segments_of(db, TODAY) == {"casual": {"Today"}, "new": {"Late", "Early"}}


async def test_segment_names_in_english_and_chinese():
    assert segment_named("at-risk") == segment_named("At Risk") == "at_risk"
    assert segment_named("流失风险") == segment_named("ＲＩＳＫ") == "at_risk"
    assert segment_named("lurkers") == segment_named("潜水") == "lurker"
    assert segment_named("核心") == "core" and segment_named("新成员") == "new"
    assert segment_named("everyone") is None


# --- movement ---------------------------------------------------------------------------------


MOVERS = [
    Person("Rising", posted=(0, 1, 2, 3, 8)),  # casual a week ago, core now
    Person("Fading", posted=(7, 8, 9, 10, 11)),  # core a week ago, at risk now
    Person("Steady", posted=(0, 1, 2, 3, 7, 8, 9, 10)),  # core both times
    Person("Newbie", posted=(0,), joined=9),  # new a week ago (joined 2 days before it)
    Person("Fresh", joined=2, seen_since=2),  # not there a week ago (first seen since)
    Person("Quitter", posted=(8, 9, 10, 11), left=3),  # core a week ago, gone now
    Person("Sleeper", posted=(20,)),  # at risk a week ago, dormant now
    Person("Debut", posted=(0,), seen_since=30),  # a lurker a week ago, casual now
    Person("LongGone", posted=(40, 45)),  # dormant both times
]


async def test_movement_since_last_week(any_db):
    await seed(any_db, MOVERS)
    community = await community_row(any_db)
    async with any_db.session() as session:
        report = await segment_report(session, community, TODAY)
    assert report.before == {
        "new": 1, "core": 3, "casual": 1, "at_risk": 1, "dormant": 1, "lurker": 1,
    }  # fmt: skip
    assert report.counts == {
        "new": 1, "core": 2, "casual": 2, "at_risk": 1, "dormant": 2, "lurker": 0,
    }  # fmt: skip
    moves = {(m.source, m.target): m.count for m in report.moves}
    assert moves == {
        ("casual", "core"): 1,
        ("core", "at_risk"): 1,
        ("new", "casual"): 1,
        ("at_risk", "dormant"): 1,
        ("lurker", "casual"): 1,
    }
    assert (report.joined, report.left) == (1, 1)
    assert report.change("core") == -1 and report.moved == 5


@pytest.mark.parametrize("rng_seed", [3, 11])
async def test_counts_from_the_mask_equal_counts_from_member_days(any_db, rng_seed):
    # Random histories, reference days from today back to three months: the mask path
    # (or its fallback, for days it cannot reach) gives what the member_days path gives.
    rng = random.Random(rng_seed)
    people = []
    for i in range(120):
        posted = sorted(rng.sample(range(100), rng.choice([0, 1, 3, 8, 20])))
        quiet = [d for d in range(30) if d not in posted]
        people.append(
            Person(
                f"R{i}",
                posted=tuple(posted),
                reacted=tuple(rng.sample(quiet, rng.randint(0, 2))),
                joined=rng.choice([None, None, rng.randrange(100)]),
                left=rng.choice([None, None, None, rng.randrange(20)]),
                seen_since=rng.randrange(100, 130),
            )
        )
    await seed(any_db, people)
    community = await community_row(any_db)
    tz = zone(community.timezone)
    async with any_db.session() as session:
        for days_back in (0, 1, 6, 13, 30, 45, 60, 90):
            now = reference(TODAY - timedelta(days=days_back), tz)
            before = reference(now.day - timedelta(days=7), tz)
            masked = await store.movement(session, community.id, now, before)
            rolled = await store.movement(session, community.id, now, before, use_mask=False)
            assert masked == rolled, days_back


def test_report_orders_moves_biggest_first():
    flows = {
        ("core", "core"): 9,
        ("casual", "core"): 2,
        ("core", "at_risk"): 5,
        (None, "new"): 3,
        ("dormant", None): 1,
    }
    report = build(TODAY, flows)
    assert [(m.source, m.target, m.count) for m in report.moves] == [
        ("core", "at_risk", 5),
        ("casual", "core", 2),
    ]
    assert report.counts["core"] == 11 and report.before["core"] == 14
    assert (report.joined, report.left, report.total, report.total_before) == (3, 1, 19, 17)


# --- /segments --------------------------------------------------------------------------------


@pytest.fixture
def managed(gateway: RecordingGateway) -> RecordingGateway:
    gateway.roles[BOSS.user_id] = Role.MANAGER
    return gateway


async def ask(dispatcher, gateway, text: str, who=BOSS) -> str:
    before = len(gateway.sent)
    await dispatcher.handle(command(who, text, T0), gateway)
    return "\n".join(gateway.texts[before:])


async def test_segments_shows_counts_and_moves(db, dispatcher, managed):
    await seed(db, MOVERS)
    text = await ask(dispatcher, managed, "/segments")
    assert "Member segments · Fri 2026-11-20" in text
    assert "Core: 2 (−1) — posted on 4+ of the last 7 days" in text
    assert "At risk: 1 (±0)" in text and "Dormant: 2 (+1)" in text
    # The manager's own command is a message: they count as a casual member, first seen now.
    assert "Casual: 3 (+2)" in text and "In all: 9 members (+1)" in text
    assert "Casual → Core: 1" in text and "Core → At risk: 1" in text
    assert "Arrived (joined or first seen): 2 · left: 1" in text


async def test_listing_a_segment_most_recent_first_without_opted_out_members(
    db, dispatcher, managed
):
    await seed(
        db,
        [
            Person("Older", posted=(12,)),
            Person("Recent", posted=(7, 30)),
            Person("Middle", posted=(9,), username=False),
            Person("Hidden", posted=(8,), opted_out=True),
            Person("Active", posted=(0,)),
            Person("Sleepy", posted=(20,), opted_out=True),
        ],
    )
    text = await ask(dispatcher, managed, "/segments at-risk")
    lines = text.splitlines()
    assert lines[0] == "👥 At risk (silent for 7–14 days): 4 members"
    assert [line for line in lines if line[:2] in ("1.", "2.", "3.", "4.")] == [
        "1. Recent @recent — last message 7 days ago",
        "2. Middle — last message 9 days ago",
        "3. Older @older — last message 12 days ago",
    ]
    assert "Hidden" not in text
    assert "1 member who opted out is counted but not named." in text
    # Chinese names work too; a segment of only opted-out members names nobody.
    assert "1. Recent" in await ask(dispatcher, managed, "/segments 流失风险")
    dormant = await ask(dispatcher, managed, "/segments dormant")
    assert dormant.splitlines()[0] == "👥 Dormant (silent for over 14 days): 1 member"
    assert "Sleepy" not in dormant and "1 member who opted out is counted" in dormant
    assert "Lurkers (never posted): 0 members" in await ask(dispatcher, managed, "/segments lurker")


async def test_a_listing_names_at_most_50(db, dispatcher, managed):
    await seed(db, [Person(f"M{i:02}", posted=(i % 7,)) for i in range(60)])
    text = await ask(dispatcher, managed, "/segments casual")
    assert text.count(" — posted today") + text.count(" ago") == 50
    # 60 seeded plus the manager, whose command was a message today.
    assert "Casual (posted in the last 7 days): 61 members" in text
    assert "…and 11 more: the 50 most recently active are shown." in text
    assert "1. M00 @m00 — posted today" in text


async def test_bad_segment_names_and_members_are_refused_kindly(db, dispatcher, managed):
    await seed(db, [Person("Ann", posted=(0,))])
    text = await ask(dispatcher, managed, "/segments everyone")
    assert text.startswith('⚠️ There is no segment called "everyone". Use one of: new, core')
    refused = await ask(dispatcher, managed, "/segments", who=user("ann"))
    assert "Only the community's managers" in refused and "Ann" not in refused


async def test_segments_in_chinese(db, dispatcher, managed):
    await seed(db, [*EDGES], locale="zh")
    text = await ask(dispatcher, managed, "/segments")
    assert "👥 **成员分群**" not in text and "👥 成员分群 · 2026-11-20，与一周前相比" in text
    assert "核心成员：3（" in text and "已退群的成员不计入" in text
    listing = await ask(dispatcher, managed, "/segments 潜水")
    assert listing.startswith("👥 潜水成员（从未发言）：共 3 人")
    assert "Reactor @reactor — 还没发过言" in listing
    bad = await ask(dispatcher, managed, "/segments 全部")
    assert bad.startswith("⚠️ 没有名为“全部”的分群。")


# --- the daily summary ------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_summary_lines_for_the_daily_summary(db, locale):
    await seed(db, MOVERS)
    community = await community_row(db)
    async with db.session() as session:
        lines = await summary_lines(session, community, TODAY, locale)
        quiet = await summary_lines(session, community, TODAY - timedelta(days=100), locale)
    expected = {
        "en": [
            "👥 Segments: 1 new (±0) · 2 core (−1) · 2 casual (+1) · 1 at risk (±0) · "
            "2 dormant (+1) · 0 lurkers (−1)",
            "↪️ Since last week: 1 new → casual · 1 core → at risk · 1 casual → core · "
            "1 arrived · 1 left",
        ],
        "zh": [
            "👥 成员分群：新成员 1（±0） · 核心成员 2（−1） · 普通成员 2（+1） · "
            "流失风险 1（±0） · 沉睡成员 2（+1） · 潜水成员 0（−1）",
            "↪️ 一周变化：新成员 → 普通成员 1 人 · 核心成员 → 流失风险 1 人 · "
            "普通成员 → 核心成员 1 人 · 新来 1 人 · 退群 1 人",
        ],
    }[locale]
    assert lines == expected
    assert len(quiet) == 1  # nobody was there yet: counts only, no movement line


def test_summary_templates_render_in_both_locales():
    renderer = Renderer()
    report = build(TODAY, {("core", "core"): 1})
    for locale in ("en", "zh"):
        text = renderer.render("segments/summary.j2", locale, report=report, shown_moves=3)
        assert text.count("\n") == 0 and "1" in text


async def test_segments_are_one_query_over_the_rollups(db):
    # 400 members, 30 days: the overview is one statement, whatever the size.
    await seed(db, [Person(f"P{i}", posted=tuple(range(i % 30, 30, 5))) for i in range(400)])
    community = await community_row(db)
    statements: list[str] = []
    engine = db.engine.sync_engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        async with db.session() as session:
            report = await segment_report(session, community, TODAY)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    reads = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert reads == statements and "member_days" not in statements[0]
    assert len(statements) == 1
    assert report.total == 400
    async with db.session() as session:
        rows = (await session.execute(select(func.count()).select_from(MemberDay))).scalar_one()
    assert rows > 1000


def test_templates_and_help_exist_in_both_locales():
    from handlers.core.render import templates_root

    root = templates_root()
    names = {
        loc: sorted(p.name for p in (root / loc / "segments").iterdir()) for loc in ("en", "zh")
    }
    assert names["en"] == names["zh"] and "overview.j2" in names["en"]
    for locale in ("en", "zh"):
        entry = Renderer().catalog(locale)["commands"]["segments"]
        assert entry["help"] and "1." in entry["details"] and "6." in entry["details"]
