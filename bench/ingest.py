"""Benchmark `ingest`: activity recording from neutral events to committed rows and rollups.

Variants, each on a fresh migrated database and timed until everything is committed:
  dispatcher+writer  neutral events -> `Dispatcher.handle` -> `ActivityWriter` (batches of 500)
  writer only        pre-built `ActivityRecord`s -> `ActivityWriter.record`
  naive baseline     one ORM session and one commit per event (get-or-create, get-or-add rollups)
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bench import (
    BenchResult,
    Target,
    VariantResult,
    VerificationError,
    clock,
    fresh_database,
    interleave,
    progress,
)
from bot.app import build_dispatcher
from handlers.core.clock import SystemClock
from handlers.core.context import Services
from handlers.core.events import (
    ChatRef,
    ContentKind,
    Event,
    MessageEvent,
    Platform,
    ReactionAdded,
    Role,
    UserRef,
)
from handlers.core.outgoing import Capabilities, OutgoingMessage, OutgoingPoll, SentMessage
from handlers.core.recording import activity_record
from handlers.core.render import Renderer
from storage.activity import ActivityKind, ActivityRecord, ActivityWriter, CommunityDefaults, zone
from storage.db import Database
from storage.models import (
    ActivityEvent,
    Chat,
    Community,
    CommunityDay,
    Member,
    MemberDay,
    Membership,
)

NAME = "ingest"
DISPATCHER = "dispatcher+writer"
WRITER = "writer only"
NAIVE = "naive baseline"
VARIANTS = (DISPATCHER, WRITER, NAIVE)
BATCH_SIZE = 500
WARMUP_EVENTS = 200
T0 = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Workload:
    """The synthetic traffic: N events by M members in C chats over a few days, seeded."""

    events: int
    members: int
    chats: int
    baseline_events: int
    seed: int = 20261116
    days: int = 7
    reply_share: float = 0.15
    reaction_share: float = 0.10
    discord_share: float = 0.25
    channels_per_guild: int = 5


QUICK = Workload(events=3_000, members=600, chats=10, baseline_events=500)
FULL = Workload(events=100_000, members=20_000, chats=100, baseline_events=2_000)


class NullGateway:
    """A `ChatGateway` that sends nowhere (messages have no handlers, so nothing is sent)."""

    platform = Platform.TELEGRAM
    capabilities = Capabilities(buttons=True, private_messages=True)

    def __init__(self) -> None:
        self.sent = 0

    async def send(
        self, chat: ChatRef, message: OutgoingMessage, *, reply_to: str | None = None
    ) -> SentMessage:
        self.sent += 1
        return SentMessage(chat, f"out-{self.sent}")

    async def edit(self, sent: SentMessage, message: OutgoingMessage) -> None:
        return None

    async def send_private(self, user: UserRef, message: OutgoingMessage) -> SentMessage:
        self.sent += 1
        return SentMessage(ChatRef(user.platform, user.user_id, user.user_id), f"out-{self.sent}")

    async def send_poll(self, chat: ChatRef, poll: OutgoingPoll) -> SentMessage:
        self.sent += 1
        return SentMessage(chat, f"out-{self.sent}", poll_id=f"poll-{self.sent}")

    async def close_poll(self, sent: SentMessage) -> None:
        return None

    async def role_of(self, chat: ChatRef, user: UserRef) -> Role:
        return Role.MEMBER

    async def member_count(self, chat: ChatRef) -> int | None:
        return None


# --- workload -------------------------------------------------------------------------------


def make_chats(load: Workload) -> list[ChatRef]:
    """Telegram groups (each its own community) and Discord channels grouped into servers."""
    discord = round(load.chats * load.discord_share)
    chats = [
        ChatRef(Platform.TELEGRAM, f"-100{1_000_000 + i}", f"-100{1_000_000 + i}", f"Group {i}")
        for i in range(load.chats - discord)
    ]
    for i in range(discord):
        guild = 900_000_000_000 + i // load.channels_per_guild
        chats.append(
            ChatRef(Platform.DISCORD, str(800_000_000_000 + i), str(guild), f"channel-{i}")
        )
    return chats


def make_members(load: Workload) -> list[UserRef]:
    """M people, a quarter of them on Discord; every third has no username."""
    members = []
    for i in range(load.members):
        platform = Platform.DISCORD if i % 4 == 3 else Platform.TELEGRAM
        user_id = str((700_000_000_000 if platform is Platform.DISCORD else 5_000_000) + i)
        username = None if i % 3 == 2 else f"member{i}"
        members.append(UserRef(platform, user_id, f"Member {i}", username))
    return members


def make_events(load: Workload) -> list[Event]:
    """The deterministic event stream, in time order: messages, replies and reactions."""
    rng = random.Random(load.seed)
    chats = make_chats(load)
    by_platform = {p: [c for c in chats if c.platform is p] for p in Platform}
    members = [m for m in make_members(load) if by_platform[m.platform]]
    # Zipf-like activity: a few members write most messages, as in real groups.
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(members))]
    authors = rng.choices(members, weights=weights, k=load.events)
    recent: dict[str, list[tuple[str, str]]] = {c.chat_id: [] for c in chats}
    step = timedelta(days=load.days) / load.events
    events: list[Event] = []
    for n, who in enumerate(authors):
        own = by_platform[who.platform]
        home = own[int(who.user_id) % len(own)]
        chat = home if rng.random() < 0.8 else rng.choice(own)
        at = T0 + step * n
        earlier = recent[chat.chat_id]
        roll = rng.random()
        if earlier and roll < load.reaction_share:
            message_id, _ = rng.choice(earlier)
            key = f"r:{message_id}:{who.user_id}:{n}"
            events.append(ReactionAdded(chat, who, at, key, message_id, "👍"))
            continue
        reply_to = None
        if earlier and roll < load.reaction_share + load.reply_share:
            reply_to = rng.choice(earlier)[1]
        message_id = str(n + 1)
        length = rng.randint(1, 400)
        events.append(
            MessageEvent(
                chat,
                who,
                at,
                f"m:{message_id}",
                message_id,
                ContentKind.TEXT,
                length,
                "x" * min(length, 32),
                reply_to,
            )
        )
        earlier.append((message_id, who.user_id))
        if len(earlier) > 50:
            del earlier[:25]
    return events


def records_of(events: Sequence[Event]) -> list[ActivityRecord]:
    """The activity records the router would queue for these events."""
    records = [activity_record(e) for e in events]
    return [r for r in records if r is not None]


@dataclass(frozen=True)
class Expected:
    """What the database must hold after a variant wrote a list of records."""

    events: int
    messages: int
    replies: int
    reactions: int
    communities: int
    chats: int
    members: int
    memberships: int
    member_days: int
    active_members: int
    characters: int


def expected_counts(records: Sequence[ActivityRecord]) -> Expected:
    """Count, in plain Python, what the rows and rollups must say (time zone UTC)."""
    communities = {(r.platform, r.community_key) for r in records}
    chats = {(r.platform, r.community_key, r.chat_key) for r in records}
    members = {(r.platform, r.member_key) for r in records}
    memberships = {(r.platform, r.community_key, r.member_key) for r in records}
    days = {(r.platform, r.community_key, r.at.date(), r.member_key) for r in records}
    messages = [r for r in records if r.kind is ActivityKind.MESSAGE]
    active = {(r.platform, r.community_key, r.at.date(), r.member_key) for r in messages}
    return Expected(
        events=len({(r.platform, r.community_key, r.chat_key, r.event_key) for r in records}),
        messages=len(messages),
        replies=sum(r.is_reply for r in messages),
        reactions=sum(r.kind is ActivityKind.REACTION for r in records),
        communities=len(communities),
        chats=len(chats),
        members=len(members),
        memberships=len(memberships),
        member_days=len(days),
        active_members=len(active),
        characters=sum(r.length for r in messages),
    )


async def database_counts(db: Database) -> Expected:
    """The same figures, read back from the database."""
    async with db.session() as s:

        async def one(query: Any) -> int:
            return int((await s.execute(query)).scalar_one() or 0)

        cday = select(
            func.sum(CommunityDay.messages),
            func.sum(CommunityDay.replies),
            func.sum(CommunityDay.reactions),
            func.sum(CommunityDay.active_members),
        )
        messages, replies, reactions, active = (await s.execute(cday)).one()
        return Expected(
            events=await one(select(func.count()).select_from(ActivityEvent)),
            messages=int(messages or 0),
            replies=int(replies or 0),
            reactions=int(reactions or 0),
            communities=await one(select(func.count()).select_from(Community)),
            chats=await one(select(func.count()).select_from(Chat)),
            members=await one(select(func.count()).select_from(Member)),
            memberships=await one(select(func.count()).select_from(Membership)),
            member_days=await one(select(func.count()).select_from(MemberDay)),
            active_members=int(active or 0),
            characters=await one(select(func.sum(MemberDay.characters))),
        )


async def verify(db: Database, expected: Expected) -> None:
    """Raise `VerificationError` unless every count matches the workload."""
    found = await database_counts(db)
    wrong = [
        f"{k}={v} (want {getattr(expected, k)})"
        for k, v in asdict(found).items()
        if v != getattr(expected, k)
    ]
    if wrong:
        raise VerificationError(", ".join(wrong))


# --- variants -------------------------------------------------------------------------------


async def run_dispatcher_writer(
    db: Database,
    events: Sequence[Event],
    renderer: Renderer,
    stats: dict[str, Any] | None = None,
) -> float:
    """Neutral events through `Dispatcher.handle` into the batched writer; seconds to commit."""
    writer = ActivityWriter(db, batch_size=BATCH_SIZE)
    services = Services(db=db, activity=writer, renderer=renderer, clock=SystemClock())
    dispatcher = build_dispatcher(services)
    gateway = NullGateway()
    started = clock()
    await writer.start()
    for event in events:
        await dispatcher.handle(event, gateway)
    await writer.stop()
    took = clock() - started
    _keep_stats(writer, stats, replies=gateway.sent)
    return took


async def run_writer(
    db: Database, records: Sequence[ActivityRecord], stats: dict[str, Any] | None = None
) -> float:
    """Pre-built records straight into the batched writer; seconds until all are committed."""
    writer = ActivityWriter(db, batch_size=BATCH_SIZE)
    started = clock()
    await writer.start()
    for record in records:
        await writer.record(record)
    await writer.stop()
    took = clock() - started
    _keep_stats(writer, stats)
    return took


def _keep_stats(writer: ActivityWriter, stats: dict[str, Any] | None, **more: Any) -> None:
    """Copy the writer's counters (batches, retries, drops) of the last run into `stats`."""
    if stats is not None:
        stats.update(batch_size=writer.batch_size, **asdict(writer.stats), **more)


async def run_naive(db: Database, events: Sequence[Event]) -> float:
    """One ORM session and one commit per event, the straightforward way; seconds."""
    defaults = CommunityDefaults()
    started = clock()
    for event in events:
        record = activity_record(event)
        if record is not None:
            async with db.sessions() as session, session.begin():
                await naive_write(session, record, defaults)
    return clock() - started


async def naive_write(
    session: AsyncSession, rec: ActivityRecord, defaults: CommunityDefaults
) -> None:
    """Get or create the community, chat and member, add the event, bump the rollups."""
    community = await _naive_community(session, rec, defaults)
    chat = await _naive_chat(session, rec, community.id)
    member = await _naive_member(session, rec)
    session.add(
        ActivityEvent(
            community_id=community.id,
            chat_id=chat.id,
            member_id=member.id,
            kind=int(rec.kind),
            content=rec.content,
            length=max(0, rec.length),
            is_reply=rec.is_reply,
            occurred_at=rec.at,
            event_key=rec.event_key[:128],
        )
    )
    day = rec.at.astimezone(zone(community.timezone)).date()
    cday = await session.get(CommunityDay, (community.id, day))
    if cday is None:
        cday = CommunityDay(
            community_id=community.id,
            day=day,
            messages=0,
            active_members=0,
            joins=0,
            leaves=0,
            reactions=0,
            replies=0,
        )
        session.add(cday)
    await _naive_member_day(session, rec, community.id, day, member.id, cday)
    await _naive_membership(session, rec, community.id, member.id)


async def _naive_community(
    session: AsyncSession, rec: ActivityRecord, defaults: CommunityDefaults
) -> Community:
    query = select(Community).where(
        Community.platform == rec.platform, Community.external_id == rec.community_key
    )
    community = (await session.execute(query)).scalar_one_or_none()
    if community is None:
        community = Community(
            platform=rec.platform,
            external_id=rec.community_key,
            title=(rec.community_title or "")[:256] or None,
            timezone=defaults.timezone,
            locale=defaults.locale,
            settings={},
            created_at=rec.at,
        )
        session.add(community)
        await session.flush()
    return community


async def _naive_chat(session: AsyncSession, rec: ActivityRecord, community_id: int) -> Chat:
    query = select(Chat).where(Chat.community_id == community_id, Chat.external_id == rec.chat_key)
    chat = (await session.execute(query)).scalar_one_or_none()
    if chat is None:
        chat = Chat(
            community_id=community_id,
            external_id=rec.chat_key,
            title=(rec.chat_title or "")[:256] or None,
            kind=rec.chat_kind,
        )
        session.add(chat)
        await session.flush()
    return chat


async def _naive_member(session: AsyncSession, rec: ActivityRecord) -> Member:
    query = select(Member).where(
        Member.platform == rec.platform, Member.external_id == rec.member_key
    )
    member = (await session.execute(query)).scalar_one_or_none()
    if member is None:
        member = Member(
            platform=rec.platform,
            external_id=rec.member_key,
            display_name=rec.member_name[:256],
            username=(rec.member_username or "")[:64] or None,
            is_bot=False,
            first_seen_at=rec.at,
        )
        session.add(member)
        await session.flush()
    elif member.display_name != rec.member_name[:256]:
        member.display_name = rec.member_name[:256]
    return member


async def _naive_member_day(
    session: AsyncSession,
    rec: ActivityRecord,
    community_id: int,
    day: date,
    member_id: int,
    cday: CommunityDay,
) -> None:
    if rec.kind not in (ActivityKind.MESSAGE, ActivityKind.REACTION):
        return
    mday = await session.get(MemberDay, (community_id, day, member_id))
    if mday is None:
        mday = MemberDay(
            community_id=community_id,
            day=day,
            member_id=member_id,
            messages=0,
            reactions=0,
            replies=0,
            characters=0,
        )
        session.add(mday)
    if rec.kind is ActivityKind.MESSAGE:
        if mday.messages == 0:
            cday.active_members += 1
        mday.messages += 1
        mday.characters += max(0, rec.length)
        cday.messages += 1
        if rec.is_reply:
            mday.replies += 1
            cday.replies += 1
    else:
        mday.reactions += 1
        cday.reactions += 1


async def _naive_membership(
    session: AsyncSession, rec: ActivityRecord, community_id: int, member_id: int
) -> None:
    membership = await session.get(Membership, (community_id, member_id))
    if membership is None:
        session.add(
            Membership(
                community_id=community_id,
                member_id=member_id,
                first_seen_at=rec.at,
                last_seen_at=rec.at,
            )
        )
        return
    membership.first_seen_at = min(membership.first_seen_at, rec.at)
    membership.last_seen_at = max(membership.last_seen_at, rec.at)


# --- the benchmark --------------------------------------------------------------------------


@dataclass
class _Plan:
    """Everything built before timing starts: events, records and the expected counts."""

    events: list[Event]
    records: list[ActivityRecord]
    baseline: list[Event]
    expected: Expected
    expected_baseline: Expected


def plan(load: Workload) -> _Plan:
    """Build the workload once; the naive baseline gets its first `baseline_events` events."""
    events = make_events(load)
    records = records_of(events)
    baseline = events[: min(load.baseline_events, len(events))]
    return _Plan(
        events, records, baseline, expected_counts(records), expected_counts(records_of(baseline))
    )


Work = Callable[[Database], Awaitable[float]]


async def _timed(
    target: Target, label: str, work: Work, expected: Expected, result: VariantResult
) -> float:
    """Run one variant on a fresh database, then check its rows; returns the timed seconds."""
    async with fresh_database(target, label) as db:
        took = await work(db)
        try:
            await verify(db, expected)
            if result.extra.get("replies"):
                raise VerificationError(f"the bot replied {result.extra['replies']} times")
        except VerificationError as exc:
            result.verified, result.error = False, str(exc)
    return float(took)


async def _warm_up(target: Target, renderer: Renderer, events: int) -> None:
    """One untimed run of every variant on a small slice (imports, caches, connections)."""
    small = plan(Workload(events=events, members=50, chats=4, baseline_events=min(events, 50)))
    async with fresh_database(target, "warmup") as db:
        await run_dispatcher_writer(db, small.events, renderer)
    async with fresh_database(target, "warmup") as db:
        await run_writer(db, small.records)
    async with fresh_database(target, "warmup") as db:
        await run_naive(db, small.baseline)


async def run(target: Target, load: Workload, mode: str, reps: int) -> BenchResult:
    """Measure the three variants on one database, interleaved, and verify every run."""
    progress(f"[{NAME} {target.name}] building {load.events:,} events (seed {load.seed})")
    p = plan(load)
    renderer = Renderer()
    baseline_n = len(p.baseline)
    note = f"first {baseline_n:,} events only" if baseline_n < len(p.events) else ""
    results = {
        DISPATCHER: VariantResult(DISPATCHER, len(p.events)),
        WRITER: VariantResult(WRITER, len(p.records)),
        NAIVE: VariantResult(NAIVE, baseline_n, baseline=True, note=note),
    }
    work: dict[str, tuple[Work, Expected]] = {
        DISPATCHER: (
            lambda db: run_dispatcher_writer(db, p.events, renderer, results[DISPATCHER].extra),
            p.expected,
        ),
        WRITER: (lambda db: run_writer(db, p.records, results[WRITER].extra), p.expected),
        NAIVE: (lambda db: run_naive(db, p.baseline), p.expected_baseline),
    }

    def variant(name: str) -> Callable[[], Awaitable[float]]:
        fn, expected = work[name]
        label = name.replace(" ", "-").replace("+", "-")
        return lambda: _timed(target, label, fn, expected, results[name])

    def report(name: str, rep: int, seconds: float) -> None:
        r = results[name]
        state = "verified" if r.verified else f"WRONG: {r.error}"
        progress(
            f"[{NAME} {target.name}] rep {rep}/{reps} {name:<17} {r.events:>8,} events "
            f"in {seconds:8.3f} s ({r.events / seconds:>9,.0f}/s) {state}"
        )

    warm = min(WARMUP_EVENTS, len(p.events))
    progress(f"[{NAME} {target.name}] warm-up ({warm} events per variant, untimed)")
    await _warm_up(target, renderer, warm)
    seconds = await interleave([(n, variant(n)) for n in VARIANTS], reps, report)
    for name, runs in seconds.items():
        results[name].seconds = runs
    return BenchResult(
        NAME,
        target.name,
        mode,
        reps,
        _summary(p, load),
        list(results.values()),
        where=target.describe(),
    )


def _summary(p: _Plan, load: Workload) -> dict[str, Any]:
    """The workload as the table title and the JSON show it."""
    return {
        "N": len(p.events),
        "M": load.members,
        "C": load.chats,
        "seed": load.seed,
        "messages": p.expected.messages,
        "replies": p.expected.replies,
        "reactions": p.expected.reactions,
    }
