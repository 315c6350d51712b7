"""Benchmark `scheduler`: lateness of scheduled posts, giveaway draws and poll closes.

Variants, interleaved, each a fresh run over the same stretch of REAL time:
  commops               N pending items (a third each: one-off posts, giveaway draws, timed
                        polls) in a fresh migrated database, due uniformly over the next S
                        seconds; the real `SchedulerService` with every feature installed as
                        `bot/app.py` does (start-up timer rebuild included), a `SystemClock`
                        and a gateway that stamps each send on arrival. Lateness = arrival -
                        due instant: timer, claim, rendering and send included.
  APScheduler alone     APScheduler 3.11 `AsyncIOScheduler`, memory job store, N no-op async
                        jobs over the same S seconds, each noting its own lateness.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
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
from bot.heap import settled
from handlers.alerts import lifecycle as alert_lifecycle
from handlers.analytics import delivery as analytics_delivery
from handlers.core.clock import SystemClock
from handlers.core.context import Services
from handlers.core.events import ChatKind, ChatRef, Platform, Role, UserRef
from handlers.core.gateway import MemberProfile
from handlers.core.outgoing import Capabilities, OutgoingMessage, OutgoingPoll, SentMessage
from handlers.core.render import Renderer
from handlers.giveaways import lifecycle as giveaway_lifecycle
from handlers.giveaways.draw import commitment
from handlers.points import lifecycle as points_lifecycle
from handlers.polls import lifecycle as poll_lifecycle
from handlers.posts import delivery as post_delivery
from handlers.privacy import retention as privacy_retention
from handlers.quizzes import lifecycle as quiz_lifecycle
from scheduler.service import SchedulerService
from storage.activity import ActivityWriter
from storage.db import Database
from storage.models import (
    Community,
    Giveaway,
    GiveawayEntry,
    Occurrence,
    Poll,
    PollVote,
    ScheduledPost,
)

NAME = "scheduler"
COMMOPS = "commops"
APS = "APScheduler alone"
VARIANTS = (COMMOPS, APS)
KINDS = ("post", "draw", "poll")
# A post text as a manager writes one: variables filled in at each send.
BODY = "Good morning, {{{{ community }}}}! We are {{{{ member_count }}}}. Post {n}."
KIND_ROWS = {"post": "commops: posts", "draw": "commops: draws", "poll": "commops: poll closes"}
# What `bot/app.py` installs on the scheduler: every feature's jobs and start-up reconciler.
INSTALLS = (
    giveaway_lifecycle.install,
    post_delivery.install,
    poll_lifecycle.install,
    quiz_lifecycle.install,
    points_lifecycle.install,
    privacy_retention.install,
    alert_lifecycle.install,
    analytics_delivery.install,
)


@dataclass(frozen=True)
class Workload:
    """N items (`events`, so `--events` scales it) due over `seconds` of real time."""

    events: int
    baseline_events: int
    seconds: float
    # Between start-up and the first due instant: the timers are rebuilt in this margin.
    margin: float = 2.0
    communities: int = 20
    entrants: int = 3  # per giveaway, drawn at the draw
    votes: int = 2  # per poll, tallied at the close
    drain: float = 15.0  # after the last due instant, stop waiting when no send came this long
    seed: int = 10


QUICK = Workload(events=300, baseline_events=300, seconds=6.0, margin=1.0)
FULL = Workload(events=10_000, baseline_events=10_000, seconds=60.0)


@dataclass
class StampingGateway:
    """A `ChatGateway` that notes when each send arrives (perf_counter) and for which chat."""

    platform: Platform = Platform.TELEGRAM
    # No images: a poll result is the text-bar form (a chart is a thread's matplotlib job,
    # not the scheduler's); private messages on, as on Telegram.
    capabilities: Capabilities = field(
        default_factory=lambda: Capabilities(buttons=True, private_messages=True)
    )
    sends: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    private: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # Sends that answer a message, by the message answered (command replies).
    replies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    edits: int = 0
    on_send: Callable[[str, float], None] | None = None
    _n: int = 0

    def _id(self) -> str:
        self._n += 1
        return f"out-{self._n}"

    async def send(
        self, chat: ChatRef, message: OutgoingMessage, *, reply_to: str | None = None
    ) -> SentMessage:
        now = time.perf_counter()
        self.sends[chat.chat_id].append(now)
        if reply_to is not None:
            self.replies[reply_to].append(now)
        if self.on_send is not None:
            self.on_send(chat.chat_id, now)
        return SentMessage(chat, self._id())

    async def send_private(self, user: UserRef, message: OutgoingMessage) -> SentMessage:
        now = time.perf_counter()
        self.private[user.user_id].append(now)
        if self.on_send is not None:
            self.on_send(f"private:{user.user_id}", now)
        chat = ChatRef(self.platform, user.user_id, user.user_id, kind=ChatKind.PRIVATE)
        return SentMessage(chat, self._id())

    async def edit(self, sent: SentMessage, message: OutgoingMessage) -> None:
        self.edits += 1

    async def send_poll(self, chat: ChatRef, poll: OutgoingPoll) -> SentMessage:
        return SentMessage(chat, self._id(), poll_id=self._id())

    async def close_poll(self, sent: SentMessage) -> None:
        return None

    async def role_of(self, chat: ChatRef, user: UserRef) -> Role:
        return Role.MEMBER

    async def member_count(self, chat: ChatRef) -> int | None:
        return None

    async def profile(self, chat: ChatRef, user: UserRef) -> MemberProfile:
        return MemberProfile()


@dataclass(frozen=True)
class Item:
    """One pending item: its kind, the chat its send goes to, and its offset from the anchor."""

    kind: str
    chat_id: str
    offset: float


def make_items(load: Workload) -> list[Item]:
    """N items, kinds in turn, due offsets uniform over [0, seconds) (seeded)."""
    rng = random.Random(load.seed)
    return [
        Item(KINDS[i % 3], f"{KINDS[i % 3]}-{i}", rng.uniform(0.0, load.seconds))
        for i in range(load.events)
    ]


# --- seeding ---------------------------------------------------------------------------------


async def seed(db: Database, load: Workload, items: Sequence[Item], anchor: datetime) -> None:
    """The rows `/post add`, `/giveaway` and `/poll` would have written, in bulk."""
    now = datetime.now(UTC)
    async with db.session() as session:
        await session.execute(
            insert(Community),
            [
                {
                    "platform": Platform.TELEGRAM.value,
                    "external_id": f"bench-{c}",
                    "title": f"Bench community {c}",
                    "timezone": "UTC",
                    "locale": "en",
                    "settings": {},
                    "created_at": now,
                }
                for c in range(load.communities)
            ],
        )
        ids = list((await session.execute(select(Community.id).order_by(Community.id))).scalars())
        posts, draws, polls = [], [], []
        for n, item in enumerate(items):
            due = anchor + timedelta(seconds=item.offset)
            common = {
                "community_id": ids[n % len(ids)],
                "chat_id": item.chat_id,
                "chat_title": item.chat_id,
                "chat_kind": ChatKind.GROUP.value,
                "created_by": "100",
                "created_at": now,
            }
            if item.kind == "post":
                posts.append(
                    common
                    | {
                        "body": BODY.format(n=n),
                        "schedule": due.isoformat(),
                        "misfire": "catch-up",
                        "status": "active",
                        "next_run_at": due,
                        "runs": 0,
                        "created_by_name": "Bench manager",
                        "updated_at": now,
                    }
                )
            elif item.kind == "draw":
                key = secrets.token_hex(16)
                draws.append(
                    common
                    | {
                        "message_id": f"announce-{n}",
                        "prize": f"Prize {n}",
                        "winners": 1,
                        "ends_at": due,
                        "status": "open",
                        "seed": key,
                        "commitment": commitment(key),
                        "requirements": {},
                        "entry_count": load.entrants,
                        "count_shown": load.entrants,
                        "rounds": [],
                    }
                )
            else:
                polls.append(
                    common
                    | {
                        "message_id": f"poll-message-{n}",
                        "native": False,
                        "question": f"Question {n}?",
                        "options": ["yes", "no", "maybe"],
                        "status": "open",
                        "closes_at": due,
                        "created_by_name": "Bench manager",
                    }
                )
        for model, rows in ((ScheduledPost, posts), (Giveaway, draws), (Poll, polls)):
            if rows:
                await session.execute(insert(model), rows)
        await _seed_children(session, load, now)


async def _seed_children(session: Any, load: Workload, now: datetime) -> None:
    """Each giveaway's entrants and each poll's votes."""
    draw_ids = list((await session.execute(select(Giveaway.id))).scalars())
    poll_ids = list((await session.execute(select(Poll.id))).scalars())
    entries = [
        {
            "giveaway_id": gid,
            "user_id": str(1000 + e),
            "entrant_id": secrets.token_hex(8),
            "display_name": f"Member {e}",
            "weight": 1,
            "entered_at": now,
        }
        for gid in draw_ids
        for e in range(load.entrants)
    ]
    votes = [
        {
            "poll_id": pid,
            "user_id": str(1000 + v),
            "display_name": f"Member {v}",
            "option_ids": [v % 3],
            "voted_at": now,
        }
        for pid in poll_ids
        for v in range(load.votes)
    ]
    for model, rows in ((GiveawayEntry, entries), (PollVote, votes)):
        if rows:
            await session.execute(insert(model), rows)


# --- the runs ----------------------------------------------------------------------------------


@dataclass
class Run:
    """One repetition: lateness (s) per kind, start-up seconds, and what went wrong."""

    lateness: dict[str, list[float]]
    startup: float
    problems: list[str] = field(default_factory=list)


def _plan_anchor(load: Workload) -> tuple[float, datetime]:
    """When the first item is due, as perf_counter and as an aware UTC instant, leaving time
    to seed (about 0.3 ms an item, generously) and then `margin` for the start-up."""
    lead = 0.5 + load.events * 0.0003 + load.margin
    return time.perf_counter() + lead, datetime.now(UTC) + timedelta(seconds=lead)


async def _sleep_until(perf: float) -> None:
    await asyncio.sleep(max(0.0, perf - time.perf_counter()))


async def _watch(
    label: str, total: int, done: Callable[[], int], last_due: float, stall: float
) -> None:
    """Wait until `done()` reaches `total`; after `last_due`, give up once nothing more was
    sent for `stall` seconds (a backlog still draining keeps the wait going). A progress
    line every 10 s."""
    shown = seen_at = time.perf_counter()
    seen = done()
    while seen < total:
        await asyncio.sleep(0.05)
        now = time.perf_counter()
        if done() != seen:
            seen, seen_at = done(), now
        elif now > last_due and now - max(seen_at, last_due) > stall:
            return
        if now - shown >= 10.0:
            shown = now
            progress(f"[{NAME}] {label}: {seen:,}/{total:,} sent")


async def run_commops(target: Target, load: Workload, items: Sequence[Item], rep: int) -> Run:
    """Seed, start the real scheduler (+ every reconciler), wait for every send; lateness."""
    async with fresh_database(target, f"sched-{rep}") as db:
        perf_anchor, anchor = _plan_anchor(load)
        await seed(db, load, items, anchor)
        if time.perf_counter() > perf_anchor - load.margin:
            progress(f"[{NAME}] seeding overran its budget: lateness includes the overrun")
        services = Services(
            db=db,
            activity=ActivityWriter(db),
            renderer=Renderer(),
            clock=SystemClock(),
            scheduler=SchedulerService(),
        )
        gateway = StampingGateway()
        services.gateways.register(gateway)
        scheduler = services.scheduler
        assert scheduler is not None
        for install in INSTALLS:
            install(services, scheduler)
        await _sleep_until(perf_anchor - load.margin)
        started = time.perf_counter()
        await scheduler.start()
        startup = time.perf_counter() - started
        due = {item.chat_id: perf_anchor + item.offset for item in items}
        # As `commops run` runs once the app (its scheduler too) has started; afterwards this
        # repetition's objects become collectable again.
        with settled():
            try:
                await _watch(
                    f"{target.name} rep {rep}",
                    len(items),
                    lambda: sum(1 for chat in due if gateway.sends.get(chat)),
                    perf_anchor + load.seconds,
                    load.drain,
                )
                # The last sends arrived; their jobs still record the outcome before they end.
                problems = await _settled(db, load, items, time.perf_counter() + load.drain)
            finally:
                await scheduler.stop()
        run = Run({kind: [] for kind in KINDS}, startup, problems)
        for item in items:
            arrivals = gateway.sends.get(item.chat_id, [])
            if len(arrivals) != 1:
                run.problems.append(f"{item.chat_id} sent {len(arrivals)} times")
                continue
            run.lateness[item.kind].append(arrivals[0] - due[item.chat_id])
    return run


async def _settled(
    db: Database, load: Workload, items: Sequence[Item], deadline: float
) -> list[str]:
    """What is still wrong in the database once the jobs in flight have finished (or the
    deadline passed)."""
    while True:
        problems = await _check_rows(db, load, items)
        if not problems or time.perf_counter() > deadline:
            return problems
        await asyncio.sleep(0.05)


async def _check_rows(db: Database, load: Workload, items: Sequence[Item]) -> list[str]:
    """Every item is finished in the database, once: the occurrence, the draw, the close."""
    counts = {kind: sum(1 for i in items if i.kind == kind) for kind in KINDS}
    async with db.session() as session:
        sent_posts = await session.scalar(
            select(func.count()).where(Occurrence.status == "done", Occurrence.what.like("post:%"))
        )
        runs = await session.scalar(select(func.count()).where(Occurrence.what.like("post:%")))
        drawn = await session.scalar(
            select(func.count()).where(
                Giveaway.status == "drawn", Giveaway.result_message_id.is_not(None)
            )
        )
        closed = await session.scalar(
            select(func.count()).where(Poll.status == "closed", Poll.result_message_id.is_not(None))
        )
    found = {"post": (sent_posts, runs), "draw": (drawn, drawn), "poll": (closed, closed)}
    return [
        f"{kind}: {done} finished, {total} recorded of {counts[kind]}"
        for kind, (done, total) in found.items()
        if done != counts[kind] or total != counts[kind]
    ]


async def run_apscheduler(load: Workload, items: Sequence[Item]) -> Run:
    """APScheduler alone: the same due instants as no-op async jobs in the memory store."""
    fired: dict[int, list[float]] = defaultdict(list)

    async def job(n: int) -> None:
        fired[n].append(time.perf_counter())

    perf_anchor, anchor = _plan_anchor(load)
    scheduler = AsyncIOScheduler(timezone=UTC)
    work = items[: load.baseline_events]
    await _sleep_until(perf_anchor - load.margin)
    started = time.perf_counter()
    scheduler.start()
    for n, item in enumerate(work):
        when = anchor + timedelta(seconds=item.offset)
        scheduler.add_job(job, DateTrigger(run_date=when), args=(n,), id=str(n))
    startup = time.perf_counter() - started
    try:
        await _watch(
            "APScheduler",
            len(work),
            lambda: len(fired),
            perf_anchor + load.seconds,
            load.drain,
        )
    finally:
        scheduler.shutdown(wait=False)
    run = Run({kind: [] for kind in KINDS}, startup)
    for n, item in enumerate(work):
        if len(fired[n]) != 1:
            run.problems.append(f"job {n} ran {len(fired[n])} times")
            continue
        run.lateness[item.kind].append(fired[n][0] - (perf_anchor + item.offset))
    return run


# --- figures -------------------------------------------------------------------------------------


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of lateness, in seconds (nearest-rank p99)."""
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {"p50": statistics.median(ordered), "p99": p99, "max": ordered[-1]}


def _all(run: Run) -> list[float]:
    return [x for kind in KINDS for x in run.lateness[kind]]


def _record(r: VariantResult, figures: dict[str, float], startup: float | None) -> None:
    """One repetition's figures into the row: `seconds` holds each rep's p99 lateness."""
    r.seconds.append(figures["p99"])
    for key, value in figures.items():
        r.extra.setdefault(f"{key}_seconds", []).append(round(value, 6))
    if startup is not None:
        r.extra.setdefault("startup_seconds", []).append(round(startup, 4))


async def run(target: Target, load: Workload, mode: str, reps: int) -> BenchResult:
    """Interleave the two variants `reps` times, verifying every item was sent exactly once."""
    items = make_items(load)
    n_base = min(load.baseline_events, len(items))
    rows: dict[str, VariantResult] = {
        APS: VariantResult(APS, n_base, baseline=True, note="no-op jobs, memory job store"),
        COMMOPS: VariantResult(COMMOPS, len(items), note="all kinds"),
    }
    for kind in KINDS:
        count = sum(1 for i in items if i.kind == kind)
        rows[KIND_ROWS[kind]] = VariantResult(KIND_ROWS[kind], count)
    progress(
        f"[{NAME} {target.name}] {len(items):,} items over {load.seconds:g} s a rep, "
        f"{reps} reps per variant (about {2 * reps * (load.seconds + load.margin + 1):.0f} s)"
    )
    counter = {COMMOPS: 0, APS: 0}

    def variant(name: str) -> Callable[[], Awaitable[float]]:
        async def one() -> float:
            counter[name] += 1
            rep = counter[name]
            if name == APS:
                result = await run_apscheduler(load, items)
            else:
                result = await run_commops(target, load, items, rep)
            _keep(name, result)
            return percentiles(_all(result))["p99"]

        return one

    def _keep(name: str, result: Run) -> None:
        _record(rows[name], percentiles(_all(result)), result.startup)
        if name == COMMOPS:
            for kind in KINDS:
                _record(rows[KIND_ROWS[kind]], percentiles(result.lateness[kind]), None)
        if result.problems:
            rows[name].verified = False
            rows[name].error = f"{len(result.problems)} problems, e.g. {result.problems[0]}"

    def report(name: str, rep: int, p99: float) -> None:
        r = rows[name]
        state = "verified" if r.verified else f"WRONG: {r.error}"
        startup = r.extra["startup_seconds"][-1]
        progress(
            f"[{NAME} {target.name}] rep {rep}/{reps} {name:<18} p99 {p99 * 1e3:7.1f} ms, "
            f"max {r.extra['max_seconds'][-1] * 1e3:7.1f} ms, start-up {startup:.3f} s {state}"
        )

    await interleave([(n, variant(n)) for n in (APS, COMMOPS)], reps, report)
    return BenchResult(
        NAME,
        target.name,
        mode,
        reps,
        {
            "N": len(items),
            "over_seconds": load.seconds,
            "kinds": "posts, draws, poll closes (a third each)",
            "communities": load.communities,
        },
        list(rows.values()),
        where=target.describe(),
    )


def format_table(result: BenchResult) -> str:
    """variant, items, p50/p99/max lateness (ms), p99 vs the baseline, start-up seconds."""
    if result.skipped:
        return f"{result.db}: SKIPPED ({result.skipped})"
    base = [v for v in result.variants if v.baseline]
    base_p99 = base[0].median if base else float("nan")
    head = ("variant", "items", "p50 ms", "p99 ms", "max ms", "p99 vs baseline", "start-up s")
    head += ("note",)
    table = [head]
    for v in result.variants:
        med = {
            k: statistics.median(v.extra.get(f"{k}_seconds") or [float("nan")])
            for k in ("p50", "p99", "max")
        }
        startup = v.extra.get("startup_seconds")
        ratio = "baseline" if v.baseline else f"{med['p99'] / base_p99:,.1f}×"
        table.append(
            (
                v.name,
                f"{v.events:,}",
                f"{med['p50'] * 1e3:,.1f}",
                f"{med['p99'] * 1e3:,.1f}",
                f"{med['max'] * 1e3:,.1f}",
                ratio,
                f"{statistics.median(startup):.3f}" if startup else "",
                v.note if v.verified else f"WRONG: {v.error}",
            )
        )
    lines = aligned(table, {0, 7})
    load = describe(result.workload)
    title = f"{result.benchmark} · {result.db} · {result.mode} ({load})"
    return "\n".join(
        [
            f"{title} · lateness = send arrival - due; median of {result.reps} interleaved reps",
            *lines,
        ]
    )
