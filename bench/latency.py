"""Benchmark `latency`: `/stats` and a giveaway entry answered while messages stream in.

The production path without a platform: `build_dispatcher(Services(...))` (every feature
router), an `ActivityWriter` as `bot/app.py` configures it by default, a fresh migrated
database with a seeded community (members with history, an open giveaway) and a gateway
that stamps each reply on arrival. Neutral events stand in for a platform's updates.

Variants, interleaved, each on a fresh database:
  under load    a producer hands R plain group messages a second to `Dispatcher.handle`
                (paced by the loop clock, in bursts every 10 ms) while, every ~20 ms, a
                member's `/stats` or press of the giveaway's Enter button is handled in its
                own task, as an adapter does with concurrent updates
  no load       the same commands at the same pace, nothing else running (the baseline)

Latency = the reply's arrival at the gateway - the moment the update went to the dispatcher.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from bench import (
    BenchResult,
    Target,
    VariantResult,
    aligned,
    describe,
    fresh_database,
    interleave,
    progress,
)
from bench.scheduler import StampingGateway, percentiles
from bot.app import build_dispatcher
from bot.heap import release_heap, settle_heap
from handlers.core.clock import SystemClock
from handlers.core.context import Services
from handlers.core.events import (
    ButtonPressed,
    ChatKind,
    ChatRef,
    CommandEvent,
    ContentKind,
    Event,
    MessageEvent,
    Platform,
    UserRef,
)
from handlers.core.recording import activity_record
from handlers.core.render import Renderer
from handlers.core.router import Dispatcher
from handlers.giveaways.draw import commitment
from handlers.giveaways.lifecycle import ENTER_PREFIX
from storage.activity import DEFAULT_BATCH_SIZE, ActivityWriter
from storage.models import ActivityEvent, Community, Giveaway, GiveawayEntry

NAME = "latency"
LOADED = "under load"
QUIET = "no load"
VARIANTS = (LOADED, QUIET)
STATS, ENTRY = "/stats", "giveaway entry"
COMMANDS = (STATS, ENTRY)
ROWS = {(v, c): f"{c}, {v}" for v in VARIANTS for c in COMMANDS}
TICK = 0.010  # the producer's pacing: one burst every 10 ms
PLATFORM = Platform.TELEGRAM
# The ActivityWriter settings `bot/app.py` uses by default (`[activity]` in the config).
WRITER = {"batch_size": DEFAULT_BATCH_SIZE, "flush_interval": 1.0, "queue_size": 20_000}


@dataclass(frozen=True)
class Workload:
    """Background rate (`events` a second, so `--events` scales it) for `seconds` a rep."""

    events: int
    baseline_events: int  # unused: the baseline is the same commands without load
    seconds: float
    every: float = 0.020  # one command this often, /stats and entries in turn
    members: int = 2_000
    chats: int = 10  # group chats, each its own community; commands go to the first
    warmup_events: int = 2_000
    seed: int = 20


QUICK = Workload(events=1_000, baseline_events=0, seconds=2.0)
FULL = Workload(events=5_000, baseline_events=0, seconds=10.0)


def chats(load: Workload) -> list[ChatRef]:
    return [
        ChatRef(PLATFORM, f"-100{c}", f"-100{c}", f"Bench group {c}", ChatKind.GROUP)
        for c in range(load.chats)
    ]


def members(load: Workload) -> list[UserRef]:
    return [
        UserRef(PLATFORM, str(10_000 + m), f"Member {m}", f"member{m}") for m in range(load.members)
    ]


def stream(load: Workload, tag: str, start: datetime) -> Iterator[MessageEvent]:
    """Plain group messages from random members in random chats (seeded), without end."""
    rng = random.Random(f"{load.seed}:{tag}")
    where, who = chats(load), members(load)
    for n in itertools.count():
        yield MessageEvent(
            rng.choice(where),
            rng.choice(who),
            start,
            f"{tag}:{n}",
            f"{tag}{n}",
            ContentKind.TEXT,
            24,
            "just chatting along here",
        )


def messages(load: Workload, count: int, tag: str, start: datetime) -> list[MessageEvent]:
    """The first `count` messages of `stream`."""
    return list(itertools.islice(stream(load, tag, start), count))


@dataclass
class Run:
    """One repetition: latencies per command (s), the background achieved, what went wrong."""

    latency: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in COMMANDS})
    background: int = 0
    background_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


WARMUP_MEMBER = UserRef(PLATFORM, "99999999", "Warm-up member")


async def _seed(services: Services, dispatcher: Dispatcher, load: Workload) -> int:
    """History for every member (through the dispatcher), then an open giveaway in chat 0."""
    gateway = StampingGateway()
    now = datetime.now(UTC)
    for event in messages(load, load.warmup_events, "warm", now - timedelta(hours=1)):
        await dispatcher.handle(event, gateway)
    await services.activity.flush()
    home = chats(load)[0]
    async with services.db.session() as session:
        community_id = await session.scalar(
            select(Community.id).where(
                Community.platform == PLATFORM.value, Community.external_id == home.community_id
            )
        )
        seed = "ab" * 16
        giveaway_id = int(
            await session.scalar(
                insert(Giveaway)
                .values(
                    community_id=community_id,
                    chat_id=home.chat_id,
                    chat_title=home.title,
                    chat_kind=home.kind.value,
                    message_id="announce-1",
                    prize="A bench mug",
                    winners=1,
                    ends_at=now + timedelta(days=1),
                    status="open",
                    seed=seed,
                    commitment=commitment(seed),
                    requirements={},
                    entry_count=0,
                    count_shown=0,
                    created_by="1",
                    created_at=now,
                    rounds=[],
                )
                .returning(Giveaway.id)
            )
        )
    # Untimed: the first command of each kind compiles its templates and statements.
    for event in _warmup(home, giveaway_id):
        await dispatcher.handle(event, gateway)
    return giveaway_id


def _warmup(home: ChatRef, giveaway_id: int) -> list[Event]:
    now = datetime.now(UTC)
    who = WARMUP_MEMBER
    return [
        CommandEvent(home, who, now, "warm:stats", "warm-stats", "stats", length=6),
        ButtonPressed(home, who, now, "warm:press", "announce-1", f"{ENTER_PREFIX}{giveaway_id}"),
    ]


def _commands(load: Workload, giveaway_id: int) -> list[tuple[str, Event]]:
    """What members send, in turn: `/stats`, then a press of Enter (a new member each time)."""
    home = chats(load)[0]
    count = int(load.seconds / load.every)
    entrants = members(load)
    made: list[tuple[str, Event]] = []
    now = datetime.now(UTC)
    for n in range(count):
        who = entrants[n % len(entrants)]
        if n % 2 == 0:
            made.append(
                (STATS, CommandEvent(home, who, now, f"cmd:{n}", f"cmd{n}", "stats", length=6))
            )
        else:
            made.append(
                (
                    ENTRY,
                    ButtonPressed(
                        home,
                        who,
                        now,
                        f"press:{n}",
                        "announce-1",
                        f"{ENTER_PREFIX}{giveaway_id}",
                        f"press-{n}",
                    ),
                )
            )
    return made


async def _produce(
    dispatcher: Dispatcher,
    gateway: StampingGateway,
    events: Iterator[MessageEvent],
    limit: int,
    rate: float,
    stop: asyncio.Event,
) -> tuple[int, float]:
    """Hand `rate` events a second to the dispatcher, in bursts every TICK, until `stop` or
    `limit` events; how many went and over how long. Events are made as they are due, as an
    adapter receives them: a stream built up front would outlive the run in the oldest
    garbage-collector generation and trigger full collections (~0.1 s each) while it is timed."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    while sent < limit and not stop.is_set():
        due = min(limit, int((loop.time() - started) * rate) + 1)
        while sent < due:
            await dispatcher.handle(next(events), gateway)
            sent += 1
        await asyncio.sleep(TICK)
    return sent, loop.time() - started


async def _command(
    dispatcher: Dispatcher, gateway: StampingGateway, kind: str, event: Event, run: Run
) -> None:
    """Handle one command in its own task; latency from hand-over to the reply's arrival."""
    started = time.perf_counter()
    await dispatcher.handle(event, gateway)
    arrivals = (
        gateway.replies.get(getattr(event, "message_id", ""), [])
        if kind == STATS
        else gateway.private.get(event.actor.user_id, [])
    )
    if len(arrivals) != 1:
        run.problems.append(f"{kind} {event.key} got {len(arrivals)} replies")
        return
    run.latency[kind].append(arrivals[0] - started)


async def run_once(target: Target, load: Workload, loaded: bool, rep: int) -> Run:
    """One repetition on a fresh database: seed, then commands (with or without load)."""
    run = Run()
    async with fresh_database(target, f"latency-{rep}") as db:
        writer = ActivityWriter(db, **WRITER)
        services = Services(db=db, activity=writer, renderer=Renderer(), clock=SystemClock())
        dispatcher = build_dispatcher(services)
        await writer.start()
        try:
            giveaway_id = await _seed(services, dispatcher, load)
            settle_heap()  # as `commops run` does once it has started
            commands = _commands(load, giveaway_id)
            background_start = datetime.now(UTC)
            background = stream(load, f"bg{rep}", background_start)
            limit = int(load.events * (load.seconds + 1)) if loaded else 0
            gateway = StampingGateway(platform=PLATFORM)
            services.gateways.register(gateway)
            stop = asyncio.Event()
            producer = (
                asyncio.create_task(
                    _produce(dispatcher, gateway, background, limit, load.events, stop)
                )
                if loaded
                else None
            )
            tasks = []
            loop = asyncio.get_running_loop()
            begin = loop.time()
            for n, (kind, event) in enumerate(commands):
                await asyncio.sleep(max(0.0, begin + n * load.every - loop.time()))
                tasks.append(asyncio.create_task(_command(dispatcher, gateway, kind, event, run)))
            await asyncio.gather(*tasks)
            stop.set()
            if producer is not None:
                run.background, run.background_seconds = await producer
        finally:
            await writer.stop()
            release_heap()
        handled = [e for _, e in commands] + messages(
            load, run.background, f"bg{rep}", background_start
        )
        warm = [
            *messages(load, load.warmup_events, "warm", datetime.now(UTC)),
            *_warmup(chats(load)[0], 0),
        ]
        expected = sum(1 for e in [*warm, *handled] if activity_record(e) is not None)
        async with db.session() as session:
            stored = await session.scalar(select(func.count()).select_from(ActivityEvent))
            entries = await session.scalar(select(func.count()).select_from(GiveawayEntry))
        if stored != expected:
            run.problems.append(f"{stored:,} activity events committed, {expected:,} expected")
        wanted = 1 + sum(1 for kind, _ in commands if kind == ENTRY)  # the warm-up's too
        if entries != wanted:
            run.problems.append(f"{entries} giveaway entries, {wanted} expected")
    return run


def _record(row: VariantResult, values: Sequence[float]) -> None:
    """One repetition's figures into the row: `seconds` holds each rep's p99."""
    figures = percentiles(values)
    row.seconds.append(figures["p99"])
    for key, value in figures.items():
        row.extra.setdefault(f"{key}_seconds", []).append(round(value, 6))


async def run(target: Target, load: Workload, mode: str, reps: int) -> BenchResult:
    """Interleave loaded and quiet repetitions, verifying every reply and every commit."""
    count = int(load.seconds / load.every)
    rows = {
        (v, c): VariantResult(
            ROWS[(v, c)], count // 2 + (count % 2 if c == STATS else 0), baseline=v == QUIET
        )
        for v in VARIANTS
        for c in COMMANDS
    }
    progress(
        f"[{NAME} {target.name}] commands every {load.every * 1e3:g} ms for {load.seconds:g} s, "
        f"background {load.events:,}/s; {reps} reps per variant"
    )
    counter = itertools.count(1)

    def variant(name: str) -> Callable[[], Awaitable[float]]:
        async def one() -> float:
            result = await run_once(target, load, name == LOADED, next(counter))
            for kind in COMMANDS:
                row = rows[(name, kind)]
                _record(row, result.latency[kind])
                if result.problems:
                    row.verified = False
                    row.error = f"{len(result.problems)} problems, e.g. {result.problems[0]}"
                if name == LOADED:
                    rate = result.background / max(result.background_seconds, 1e-9)
                    row.extra.setdefault("background_per_second", []).append(round(rate, 1))
                    row.extra.setdefault("background_events", []).append(result.background)
            return percentiles([x for k in COMMANDS for x in result.latency[k]])["p99"]

        return one

    def report(name: str, rep: int, p99: float) -> None:
        first = rows[(name, STATS)]
        state = "verified" if first.verified else f"WRONG: {first.error}"
        rate = first.extra.get("background_per_second", [0.0])[-1] if name == LOADED else 0.0
        progress(
            f"[{NAME} {target.name}] rep {rep}/{reps} {name:<10} p99 {p99 * 1e3:7.1f} ms, "
            f"background {rate:,.0f}/s {state}"
        )

    await interleave([(n, variant(n)) for n in VARIANTS], reps, report)
    for row in rows.values():
        rates = row.extra.get("background_per_second")
        row.note = f"background {statistics.median(rates):,.0f} ev/s" if rates else "no background"
    ordered = [rows[(v, c)] for c in COMMANDS for v in (QUIET, LOADED)]
    return BenchResult(
        NAME,
        target.name,
        mode,
        reps,
        {
            "background_per_second": load.events,
            "seconds": load.seconds,
            "command_every_ms": round(load.every * 1e3),
            "members": load.members,
            "chats": load.chats,
        },
        ordered,
        where=target.describe(),
    )


def format_table(result: BenchResult) -> str:
    """command + variant, replies, p50/p99/max latency (ms), p99 vs the quiet baseline."""
    if result.skipped:
        return f"{result.db}: SKIPPED ({result.skipped})"
    base = {v.name.split(",")[0]: v.median for v in result.variants if v.baseline}
    head = ("command, variant", "replies", "p50 ms", "p99 ms", "max ms", "p99 vs no load", "note")
    table = [head]
    for v in result.variants:
        med = {
            k: statistics.median(v.extra.get(f"{k}_seconds") or [float("nan")])
            for k in ("p50", "p99", "max")
        }
        ratio = "baseline" if v.baseline else f"{med['p99'] / base[v.name.split(',')[0]]:,.1f}×"
        table.append(
            (
                v.name,
                f"{v.events:,}",
                f"{med['p50'] * 1e3:,.1f}",
                f"{med['p99'] * 1e3:,.1f}",
                f"{med['max'] * 1e3:,.1f}",
                ratio,
                v.note if v.verified else f"WRONG: {v.error}",
            )
        )
    lines = aligned(table, {0, 6})
    load = describe(result.workload)
    title = f"{result.benchmark} · {result.db} · {result.mode} ({load})"
    return "\n".join(
        [f"{title} · latency = reply arrival - hand-over; median of {result.reps} reps", *lines]
    )
