"""Benchmark `ingest`: raw platform payloads to committed activity rows and rollups (issue 10).

The workload is a file of raw Telegram `getUpdates` bodies (`bench/telegram_payloads.py`) and
one of Discord `MESSAGE_CREATE` frames (`bench/discord_payloads.py`), generated before any
timing. Variants, each on a fresh migrated database where it writes, verified afterwards:

  telegram e2e       body bytes -> json.loads -> TelegramAdapter.process_raw -> router ->
                     ActivityWriter, until `writer.stop()` returned (all committed)
  storage floor      the same rows and rollups from pre-extracted tuples, raw driver only
  floor, no rollups  the same, events (and their communities, chats, members) only
  writer only        pre-built ActivityRecords -> ActivityWriter
  de_json only       bare telegram.Update.de_json on the first updates (no database)
  naive baseline     de_json + translate + one ORM session and commit per event (a subset)
  discord parse      frames -> discord.py's own MESSAGE_CREATE parser -> translate_message
  discord e2e        the same through DiscordAdapter -> router -> ActivityWriter

Peak memory: the full telegram e2e once more in a child process (`bench.ingest_rss`).
"""

from __future__ import annotations

import asyncio
import json
import math
import resource
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import discord
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot, Update

from bench import (
    BenchResult,
    Target,
    VariantResult,
    VerificationError,
    _remove_sqlite_files,
    aligned,
    clock,
    describe,
    fresh_database,
    interleave,
    progress,
)
from bench import discord_payloads as dp
from bench import floor as fl
from bench import telegram_payloads as tp
from bot.app import build_dispatcher
from bot.discord_adapter.adapter import DiscordAdapter, DiscordSettings, intents
from bot.discord_adapter.translate import translate_message
from bot.heap import settled
from bot.telegram_adapter.adapter import TelegramAdapter, TelegramSettings
from bot.telegram_adapter.translate import BotIdentity, translate
from handlers.core.clock import SystemClock
from handlers.core.context import Services
from handlers.core.events import MessageEvent
from handlers.core.recording import activity_record
from handlers.core.render import Renderer
from storage.activity import (
    DEFAULT_BATCH_SIZE,
    ActivityKind,
    ActivityRecord,
    ActivityWriter,
    CommunityDefaults,
    zone,
)
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
E2E = "telegram e2e"
FLOOR = "storage floor"
FLOOR_BARE = "floor, no rollups"
WRITER = "writer only"
DE_JSON = "de_json only"
NAIVE = "naive baseline"
DISCORD_PARSE = "discord parse"
DISCORD_E2E = "discord e2e"
VARIANTS = (E2E, FLOOR, FLOOR_BARE, WRITER, DE_JSON, NAIVE, DISCORD_PARSE, DISCORD_E2E)
# Variants that write nothing: no database is created for them.
DATABASE_FREE = frozenset({DE_JSON, DISCORD_PARSE})
# Compared with the storage floor (the others parse only, or are the floor).
WRITES = (E2E, WRITER, NAIVE, DISCORD_E2E)

BATCH_SIZE = DEFAULT_BATCH_SIZE  # as `commops run` writes by default
WARMUP_EVENTS = 200
PROGRESS_SECONDS = 5.0
# Records and parsed updates are built this many at a time outside the timing (flat memory).
CHUNK = 50_000
TOKEN = "123:abc"
ME = BotIdentity(4_242_424_242, "commops_bench_bot")

# Issue 10's bars for the end-to-end Telegram figure.
E2E_BAR = {"sqlite": 25_000, "postgresql": 20_000}
NAIVE_BAR = 20.0
FLOOR_BAR = 0.60
RSS_BAR_MB = 300


@dataclass(frozen=True)
class Workload:
    """N Telegram updates from M members in C supergroups, plus a Discord stream; seeded."""

    events: int
    members: int
    chats: int
    baseline_events: int
    de_json_events: int
    discord_events: int
    seed: int = 20261123
    peak_rss: bool = True

    def telegram(self) -> tp.TelegramLoad:
        return tp.TelegramLoad(self.events, self.members, self.chats, seed=self.seed)

    def discord(self) -> dp.DiscordLoad:
        messages = min(self.discord_events, self.events)
        return dp.DiscordLoad(messages, max(100, self.members // 10))


QUICK = Workload(
    events=3_000, members=600, chats=10, baseline_events=500, de_json_events=3_000,
    discord_events=1_000,
)  # fmt: skip
FULL = Workload(
    events=1_000_000, members=200_000, chats=100, baseline_events=2_000, de_json_events=50_000,
    discord_events=100_000,
)  # fmt: skip


class Ticker:
    """Progress on stderr about every `PROGRESS_SECONDS` during a long variant."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total
        self.started = self.last = clock()

    def __call__(self, done: int) -> None:
        now = clock()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            progress(
                f"[{NAME}] {self.label}: {done:,}/{self.total:,} "
                f"({done / (now - self.started):,.0f}/s so far)"
            )


# --- expected counts ------------------------------------------------------------------------


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


def expected_of_rows(rows: Sequence[fl.Row]) -> Expected:
    """The counts for a list of Telegram message rows (UTC days; every row a new message)."""
    days = {(r.chat, r.day, r.member) for r in rows}
    return Expected(
        events=len({(r.chat, r.event_key) for r in rows}),
        messages=len(rows),
        replies=sum(r.is_reply for r in rows),
        reactions=0,
        communities=len({r.chat for r in rows}),
        chats=len({r.chat for r in rows}),
        members=len({r.member for r in rows}),
        memberships=len({(r.chat, r.member) for r in rows}),
        member_days=len(days),
        active_members=len(days),
        characters=sum(r.length for r in rows),
    )


def without_rollups(expected: Expected) -> Expected:
    """What the floor without rollups leaves: events, communities, chats, members."""
    return replace(
        expected,
        messages=0,
        replies=0,
        memberships=0,
        member_days=0,
        active_members=0,
        characters=0,
    )


def record_of(row: fl.Row) -> ActivityRecord:
    """The record the router queues for one plain Telegram group message."""
    return ActivityRecord(
        kind=ActivityKind.MESSAGE,
        platform="telegram",
        community_key=row.chat,
        chat_key=row.chat,
        member_key=row.member,
        member_name=row.name,
        at=row.at,
        event_key=row.event_key,
        community_title=row.chat_title,
        chat_title=row.chat_title,
        member_username=row.username,
        content=row.content,
        length=row.length,
        is_reply=row.is_reply,
    )


# --- variants -------------------------------------------------------------------------------


class NoReplies:
    """Stands in for a gateway's sending methods: a plain message must never cause a reply."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise RuntimeError("the benchmark's plain messages must not make the bot send anything")


def _silence(gateway: Any, guard: NoReplies) -> None:
    """Replace every sending method of `gateway` with `guard` (no network, counted)."""
    for name in ("send", "edit", "send_private", "send_poll", "close_poll"):
        if hasattr(gateway, name):
            setattr(gateway, name, guard)


def _services(db: Database, renderer: Renderer) -> tuple[Services, ActivityWriter]:
    writer = ActivityWriter(db, batch_size=BATCH_SIZE)
    return Services(db=db, activity=writer, renderer=renderer, clock=SystemClock()), writer


def _keep_stats(writer: ActivityWriter, stats: dict[str, Any] | None, **more: Any) -> None:
    """Copy the writer's counters (batches, retries, drops) of the last run into `stats`."""
    if stats is not None:
        stats.update(batch_size=writer.batch_size, **asdict(writer.stats), **more)


async def run_telegram_e2e(
    db: Database,
    path: Path,
    renderer: Renderer,
    limit: int | None = None,
    stats: dict[str, Any] | None = None,
    tick: Callable[[int], None] | None = None,
) -> float:
    """Raw bodies -> `json.loads` -> `process_raw` -> router -> writer; seconds to commit."""
    services, writer = _services(db, renderer)
    dispatcher = build_dispatcher(services)
    adapter = TelegramAdapter(TelegramSettings(token=TOKEN))
    adapter.attach(dispatcher, ME)
    guard = NoReplies()
    _silence(adapter.gateway, guard)
    process = adapter.process_raw
    done = 0
    with settled():  # as `commops run` runs once it has started
        started = clock()
        await writer.start()
        for body in tp.bodies(path, limit):
            batch = json.loads(body)["result"]
            await process(batch)
            if tick is not None:
                done += len(batch)
                tick(done)
        await writer.stop()
        took = clock() - started
    _keep_stats(writer, stats, replies=guard.calls)
    return took


async def run_writer(
    db: Database,
    path: Path,
    limit: int | None = None,
    stats: dict[str, Any] | None = None,
    tick: Callable[[int], None] | None = None,
) -> float:
    """Pre-built records into the batched writer (built a chunk at a time, untimed)."""
    writer = ActivityWriter(db, batch_size=BATCH_SIZE)
    took = 0.0
    done = 0
    with settled():  # as `commops run` runs once it has started
        await writer.start()
        for chunk in fl.chunks(path, limit, CHUNK):
            records = [record_of(r) for r in chunk]
            started = clock()
            for record in records:
                await writer.record(record)
            await writer.flush()
            took += clock() - started
            done += len(records)
            if tick is not None:
                tick(done)
        started = clock()
        await writer.stop()
        took += clock() - started
    _keep_stats(writer, stats)
    return took


def _update_chunks(path: Path, limit: int, size: int = 10_000) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for update in tp.updates(path, limit):
        chunk.append(update)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def run_de_json(path: Path, limit: int, stats: dict[str, Any] | None = None) -> float:
    """Bare `Update.de_json` over the first `limit` updates (dicts parsed untimed)."""
    bot = Bot(TOKEN)
    took = 0.0
    messages = 0
    for chunk in _update_chunks(path, limit):
        started = clock()
        built = [Update.de_json(u, bot) for u in chunk]
        took += clock() - started
        messages += sum(u.message is not None for u in built)
    if stats is not None:
        stats["messages"] = messages
    return took


async def run_naive(db: Database, updates: Sequence[dict[str, Any]]) -> float:
    """PTB `de_json` + translate, then one ORM session and one commit per event; seconds."""
    bot = Bot(TOKEN)
    defaults = CommunityDefaults()
    started = clock()
    for raw in updates:
        for event in translate(Update.de_json(raw, bot), ME):
            record = activity_record(event)
            if record is not None:
                async with db.sessions() as session, session.begin():
                    await naive_write(session, record, defaults)
    return clock() - started


@dataclass
class DiscordWorld:
    """discord.py's client and cache, filled with the generated guilds as after READY."""

    client: discord.Client
    parse: Callable[[Any], None]


async def discord_world(load: dp.DiscordLoad, client: discord.Client) -> DiscordWorld:
    """Prime `client`'s ConnectionState without a network: loop, bot user, guild cache."""
    await client._async_setup_hook()
    state = client._connection
    state.user = discord.ClientUser(state=state, data=dp.bot_user())
    for guild in dp.guilds(load):
        state._add_guild_from_data(guild)
    return DiscordWorld(client, state.parsers["MESSAGE_CREATE"])


def _frames(path: Path, limit: int | None) -> Iterator[bytes]:
    with path.open("rb") as source:
        for n, line in enumerate(source):
            if limit is not None and n >= limit:
                return
            yield line


async def _feed(world: DiscordWorld, path: Path, limit: int | None) -> None:
    """Frames through discord.py's parser; every 100 frames the handlers it started finish
    (the gateway reader yields between frames, so handlers never pile up unboundedly)."""
    parse = world.parse
    for n, frame in enumerate(_frames(path, limit), 1):
        parse(json.loads(frame)["d"])
        if n % 100 == 0:
            await _settle()
    await _settle()


async def _settle() -> None:
    """Wait for the `on_message` tasks discord.py scheduled so far."""
    current = asyncio.current_task()
    pending = [
        t for t in asyncio.all_tasks() if t is not current and t.get_name().startswith("discord.py")
    ]
    if pending:
        await asyncio.gather(*pending)


def _discord_intents() -> discord.Intents:
    return intents(DiscordSettings(token=TOKEN, message_content=True))


async def run_discord_parse(
    load: dp.DiscordLoad, path: Path, limit: int | None = None, stats: dict[str, Any] | None = None
) -> float:
    """Frames -> discord.py's MESSAGE_CREATE parser -> `translate_message`; seconds."""
    client = discord.Client(intents=_discord_intents())
    world = await discord_world(load, client)
    events: list[int] = [0, 0, 0]  # messages, replies, characters

    @client.event
    async def on_message(message: discord.Message) -> None:
        for event in translate_message(message, me_id=dp.BOT_ID, prefix="!"):
            if isinstance(event, MessageEvent):
                events[0] += 1
                events[1] += event.reply_to_user_id is not None
                events[2] += event.length

    started = clock()
    await _feed(world, path, limit)
    took = clock() - started
    if stats is not None:
        stats.update(messages=events[0], replies=events[1], characters=events[2])
    return took


async def run_discord_e2e(
    db: Database,
    load: dp.DiscordLoad,
    path: Path,
    renderer: Renderer,
    limit: int | None = None,
    stats: dict[str, Any] | None = None,
) -> float:
    """Frames -> discord.py -> DiscordAdapter -> router -> writer; seconds until committed."""
    services, writer = _services(db, renderer)
    dispatcher = build_dispatcher(services)
    client = discord.Client(intents=_discord_intents())
    settings = DiscordSettings(token=TOKEN, message_content=True, sync_state_file=None)
    adapter = DiscordAdapter(settings, client=client)
    adapter.attach(dispatcher)
    guard = NoReplies()
    _silence(adapter.gateway, guard)
    world = await discord_world(load, client)
    with settled():  # as `commops run` runs once it has started
        started = clock()
        await writer.start()
        await _feed(world, path, limit)
        await writer.stop()
        took = clock() - started
    _keep_stats(writer, stats, replies=guard.calls)
    return took


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

PAYLOADS_ENV = "COMMOPS_BENCH_PAYLOADS"


def payload_dir() -> Path:
    """Where the generated payload files are cached between runs (deterministic, seeded)."""
    import os
    import tempfile

    chosen = os.environ.get(PAYLOADS_ENV)
    where = Path(chosen) if chosen else Path(tempfile.gettempdir()) / "commops-bench-payloads"
    where.mkdir(parents=True, exist_ok=True)
    return where


@dataclass
class Plan:
    """Everything built before timing starts: the payload files and the expected counts."""

    load: Workload
    telegram: Path
    expected: Expected
    baseline: list[dict[str, Any]]
    expected_baseline: Expected
    de_json_events: int
    discord_load: dp.DiscordLoad
    discord: Path
    expected_discord: Expected


def plan(load: Workload, where: Path | None = None) -> Plan:
    """Generate (or reuse) the payload files; the baseline's updates are held in memory."""
    where = where or payload_dir()
    path, counts = tp.ensure(load.telegram(), where)
    baseline = list(tp.updates(path, min(load.baseline_events, load.events)))
    rows = [fl.row_of(u) for u in baseline]
    discord_load = load.discord()
    discord_path, discord_counts = dp.ensure(discord_load, where)
    return Plan(
        load,
        path,
        Expected(**counts),
        baseline,
        expected_of_rows(rows),
        min(load.de_json_events, load.events),
        discord_load,
        discord_path,
        Expected(**discord_counts),
    )


Work = Callable[[Database], Awaitable[float]]
Check = Callable[[dict[str, Any]], str | None]


async def _timed(
    target: Target, label: str, work: Work, expected: Expected, result: VariantResult
) -> float:
    """Run one variant on a fresh database, then check its rows; returns the timed seconds."""
    async with fresh_database(target, label) as db:
        took = await work(db)
        try:
            await verify(db, expected)
            if result.extra.get("replies"):
                raise VerificationError(f"the bot tried to reply {result.extra['replies']} times")
        except VerificationError as exc:
            result.verified, result.error = False, str(exc)
    return float(took)


async def _checked(
    work: Callable[[], Awaitable[float]], check: Check, result: VariantResult
) -> float:
    """Run a variant that writes nothing; `check` reads its counters (None when right)."""
    took = await work()
    wrong = check(result.extra)
    if wrong:
        result.verified, result.error = False, wrong
    return float(took)


def _discord_check(p: Plan) -> Check:
    want = p.expected_discord

    def check(extra: dict[str, Any]) -> str | None:
        got = (extra.get("messages"), extra.get("replies"), extra.get("characters"))
        if got != (want.messages, want.replies, want.characters):
            expected = (want.messages, want.replies, want.characters)
            return f"parsed (messages, replies, characters)={got}, want {expected}"
        return None

    return check


def _setup(
    target: Target, p: Plan, renderer: Renderer, results: dict[str, VariantResult]
) -> dict[str, Callable[[], Awaitable[float]]]:
    """Each variant as a zero-argument coroutine: fresh database, timed run, verification."""
    n = p.load.events
    url = target.url

    def ticker(name: str, total: int) -> Callable[[int], None]:
        return Ticker(f"{target.name} {name}", total)

    db_work: dict[str, tuple[Callable[[], Work], Expected]] = {
        E2E: (
            lambda: (
                lambda db: run_telegram_e2e(
                    db, p.telegram, renderer, None, results[E2E].extra, ticker(E2E, n)
                )
            ),
            p.expected,
        ),
        FLOOR: (
            lambda: (
                lambda db: fl.run_floor(
                    db, p.telegram, None, rollups=True, postgres_url=url, report=ticker(FLOOR, n)
                )
            ),
            p.expected,
        ),
        FLOOR_BARE: (
            lambda: (
                lambda db: fl.run_floor(
                    db,
                    p.telegram,
                    None,
                    rollups=False,
                    postgres_url=url,
                    report=ticker(FLOOR_BARE, n),
                )
            ),
            without_rollups(p.expected),
        ),
        WRITER: (
            lambda: (
                lambda db: run_writer(
                    db, p.telegram, None, results[WRITER].extra, ticker(WRITER, n)
                )
            ),
            p.expected,
        ),
        NAIVE: (lambda: lambda db: run_naive(db, p.baseline), p.expected_baseline),
        DISCORD_E2E: (
            lambda: (
                lambda db: run_discord_e2e(
                    db, p.discord_load, p.discord, renderer, None, results[DISCORD_E2E].extra
                )
            ),
            p.expected_discord,
        ),
    }
    runs: dict[str, Callable[[], Awaitable[float]]] = {}
    for name, (make, expected) in db_work.items():
        label = name.replace(" ", "-").replace(",", "")
        runs[name] = lambda make=make, expected=expected, label=label, name=name: _timed(
            target, label, make(), expected, results[name]
        )
    de_json_n = p.de_json_events
    runs[DE_JSON] = lambda: _checked(
        lambda: run_de_json(p.telegram, de_json_n, results[DE_JSON].extra),
        lambda extra: (
            None
            if extra.get("messages") == de_json_n
            else f"{extra.get('messages')} messages built, want {de_json_n}"
        ),
        results[DE_JSON],
    )
    runs[DISCORD_PARSE] = lambda: _checked(
        lambda: run_discord_parse(p.discord_load, p.discord, None, results[DISCORD_PARSE].extra),
        _discord_check(p),
        results[DISCORD_PARSE],
    )
    return runs


async def _warm_up(target: Target, p: Plan, renderer: Renderer) -> None:
    """One untimed run of every variant on the first updates (imports, caches, connections).

    The adapter paths and the writer share a database (replays are harmless to the writer);
    the floors and the naive baseline insert blindly, so each gets its own.
    """
    w = min(WARMUP_EVENTS, p.load.events)
    async with fresh_database(target, "warmup") as db:
        await run_telegram_e2e(db, p.telegram, renderer, w)
        await run_writer(db, p.telegram, w)
        await run_discord_e2e(db, p.discord_load, p.discord, renderer, w)
    for rollups in (True, False):
        async with fresh_database(target, "warmup") as db:
            await fl.run_floor(db, p.telegram, w, rollups=rollups, postgres_url=target.url)
    async with fresh_database(target, "warmup") as db:
        await run_naive(db, p.baseline[: min(50, len(p.baseline))])
    await run_de_json(p.telegram, w)
    await run_discord_parse(p.discord_load, p.discord, w)


def _notes(p: Plan) -> dict[str, str]:
    n = p.load.events
    notes = {
        E2E: f"process_raw, writer batches of {BATCH_SIZE}",
        FLOOR: "raw driver, pre-extracted tuples",
        FLOOR_BARE: "events, chats, members only",
        WRITER: "ActivityRecords built untimed",
        DISCORD_PARSE: f"discord.py parser + translate, N={p.discord_load.messages:,}",
        DISCORD_E2E: "DiscordAdapter -> router -> writer",
    }
    if p.de_json_events < n:
        notes[DE_JSON] = f"first {p.de_json_events:,} updates only, no database"
    else:
        notes[DE_JSON] = "no database"
    if len(p.baseline) < n:
        notes[NAIVE] = f"first {len(p.baseline):,} updates only"
    else:
        notes[NAIVE] = "PTB + one ORM commit per event"
    return notes


async def run(target: Target, load: Workload, mode: str, reps: int) -> BenchResult:
    """Measure every variant on one database, interleaved, verify every run, then peak RSS."""
    progress(f"[{NAME} {target.name}] payload files for {load.events:,} updates (seed {load.seed})")
    p = plan(load)
    renderer = Renderer()
    notes = _notes(p)
    sizes = {
        E2E: load.events,
        FLOOR: load.events,
        FLOOR_BARE: load.events,
        WRITER: load.events,
        DE_JSON: p.de_json_events,
        NAIVE: p.expected_baseline.events,
        DISCORD_PARSE: p.discord_load.messages,
        DISCORD_E2E: p.discord_load.messages,
    }
    results = {
        name: VariantResult(name, sizes[name], baseline=name == NAIVE, note=notes[name])
        for name in VARIANTS
    }
    runs = _setup(target, p, renderer, results)

    def report(name: str, rep: int, seconds: float) -> None:
        r = results[name]
        state = "verified" if r.verified else f"WRONG: {r.error}"
        progress(
            f"[{NAME} {target.name}] rep {rep}/{reps} {name:<17} {r.events:>9,} events "
            f"in {seconds:8.3f} s ({r.events / seconds:>9,.0f}/s) {state}"
        )

    warm = min(WARMUP_EVENTS, load.events)
    progress(f"[{NAME} {target.name}] warm-up ({warm} events per variant, untimed)")
    await _warm_up(target, p, renderer)
    seconds = await interleave([(n, runs[n]) for n in VARIANTS], reps, report)
    for name, times in seconds.items():
        results[name].seconds = times
    if load.peak_rss:
        results[E2E].extra["peak_rss"] = await peak_rss(target, p)
    return BenchResult(
        NAME,
        target.name,
        mode,
        reps,
        _summary(p),
        list(results.values()),
        where=target.describe(),
    )


async def peak_rss(target: Target, p: Plan) -> dict[str, Any]:
    """Run the whole telegram e2e once in a child process; its peak resident set size."""
    import uuid

    if target.name == "sqlite":
        assert target.workdir is not None
        db_path = target.workdir / f"rss-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{db_path}"
    else:
        assert target.url is not None
        db_path, url = None, target.url
    argv = [
        sys.executable, "-m", "bench.ingest_rss", "--url", url, "--payloads", str(p.telegram),
        "--expected", json.dumps(asdict(p.expected)),
    ]  # fmt: skip
    progress(f"[{NAME} {target.name}] peak RSS: telegram e2e over {p.load.events:,} in a child")
    child = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    out, _ = await child.communicate()
    if db_path is not None:
        _remove_sqlite_files(db_path)
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    try:
        reported = json.loads(out.decode().strip().splitlines()[-1])
    except (IndexError, ValueError):
        reported = {"error": f"the child exited with {child.returncode} and no result"}
    return {
        "children_maxrss_mb": round(children_kb / 1024, 1),
        "returncode": child.returncode,
        **reported,
    }


def _summary(p: Plan) -> dict[str, Any]:
    """The workload as the table title and the JSON show it."""
    return {
        "N": p.load.events,
        "M": p.load.members,
        "C": p.load.chats,
        "seed": p.load.seed,
        "replies": p.expected.replies,
        "members_seen": p.expected.members,
        "discord_N": p.discord_load.messages,
    }


# --- the table ------------------------------------------------------------------------------


def _rate(result: BenchResult, name: str) -> float:
    found = [v for v in result.variants if v.name == name]
    return found[0].rate if found else float("nan")


def bars(result: BenchResult) -> list[tuple[str, str, bool]]:
    """Issue 10's bars: (what, the figure measured, met)."""
    e2e, naive, floor = (_rate(result, n) for n in (E2E, NAIVE, FLOOR))
    want = E2E_BAR.get(result.db, E2E_BAR["postgresql"])
    lines = [
        (f"telegram e2e ≥ {want:,} events/s", f"{e2e:,.0f}/s", e2e >= want),
        (
            f"telegram e2e ≥ {NAIVE_BAR:.0f}× naive baseline",
            f"{e2e / naive:,.1f}×",
            e2e / naive >= NAIVE_BAR,
        ),
        (
            f"telegram e2e ≥ {FLOOR_BAR:.0%} of storage floor",
            f"{e2e / floor:.0%}",
            e2e / floor >= FLOOR_BAR,
        ),
    ]
    e2e_result = [v for v in result.variants if v.name == E2E]
    rss = e2e_result[0].extra.get("peak_rss") if e2e_result else None
    if rss:
        # The child's own peak; `children_maxrss_mb` includes the parent's (see ingest_rss).
        peak = rss.get("peak_rss_mb")
        mb = float(rss.get("children_maxrss_mb", math.nan) if peak is None else peak)
        ok = mb < RSS_BAR_MB and rss.get("verified") is True
        figure = f"{mb:,.0f} MB ({rss.get('events', 0):,} events, child)"
        if not rss.get("verified"):
            figure += f" — {rss.get('error') or 'not verified'}"
        lines.append((f"peak RSS < {RSS_BAR_MB} MB", figure, ok))
    return lines


def format_table(result: BenchResult) -> str:
    """The table: events/s with ratios to the naive baseline and to the storage floor, then
    the bars with PASS/MISS and the Discord ceiling."""
    if result.skipped:
        return f"{result.db}: SKIPPED ({result.skipped})"
    load = describe(result.workload)
    naive, floor = _rate(result, NAIVE), _rate(result, FLOOR)
    head = ("variant", "events", "seconds", "events/s", "vs naive", "vs floor", "range (s)", "note")
    rows = [head]
    for v in result.variants:
        vs_naive = "baseline" if v.baseline else f"{v.rate / naive:,.1f}×"
        if v.name == FLOOR:
            vs_floor = "floor"
        elif v.name in WRITES or v.name == FLOOR_BARE:
            vs_floor = f"{v.rate / floor:.0%}"
        else:
            vs_floor = "-"
        spread = f"{min(v.seconds):.3f}–{max(v.seconds):.3f}" if v.seconds else "-"
        note = v.note if v.verified else f"WRONG: {v.error}"
        rows.append(
            (
                v.name,
                f"{v.events:,}",
                f"{v.median:.3f}",
                f"{v.rate:,.0f}",
                vs_naive,
                vs_floor,
                spread,
                note,
            )
        )
    lines = aligned(rows, {0, 7})
    title = f"{result.benchmark} · {result.db} · {result.mode} ({load})"
    out = [f"{title} · median of {result.reps} interleaved reps", *lines, ""]
    caveat = " (quick mode: the bars are for the full run)" if result.mode == "quick" else ""
    out.append(f"bars (issue 10){caveat}:")
    for what, figure, ok in bars(result):
        out.append(f"  {'PASS' if ok else 'MISS'}  {what:<38} {figure}")
    out.append(
        f"  discord ceiling (parse + translate alone): {_rate(result, DISCORD_PARSE):,.0f} events/s"
    )
    return "\n".join(out)
