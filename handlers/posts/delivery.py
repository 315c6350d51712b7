"""Scheduled posts going out: timers, exactly-once firing, missed runs, retries, reports.

The `posts` table is the truth; each active post has one timer, keyed by post, set for its
next run (held back to the end of quiet hours when the run falls inside them). A firing
works out every run the post owes up to now and, in ONE transaction, claims the run it
will send, records the others as missed (or merged), and moves `next_run_at` on with a
conditional UPDATE. Two instances, a restart or a sweep racing a timer: only one moves the
post, and the occurrence's unique key lets only one send. Never a burst: several runs owed
at once become one post.

Misfire rules (per post): `catch-up` posts a late run within the grace window (default 10
min) and records older ones as missed; `skip` never posts late; `merge` posts once for
everything owed, however late. Missed runs are reported to the managers once.

A send that fails is retried with backoff (the occurrence waits as `retrying`, so a restart
resumes it and only one instance takes it), then recorded as failed and reported; the
schedule goes on regardless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.args import ParseEnv
from handlers.core.chats import chat_of
from handlers.core.context import Services
from handlers.core.events import ChatRef, Platform, UserRef
from handlers.core.firing import instance_name, record_together
from handlers.core.gateway import ChatGateway, GatewayError
from handlers.core.markup import Safe
from handlers.core.outgoing import OutgoingMessage
from handlers.posts.compliance import review
from handlers.posts.policy import PostPolicy
from handlers.posts.schedule import Misfire, Schedule, parse_schedule_text
from handlers.posts.text import VARIABLES, PostTextError, PostTextRenderer
from handlers.settings import special_chat
from scheduler.service import SchedulerService
from storage import occurrences
from storage import posts as store
from storage.activity import zone
from storage.models import Community, CommunityDay, Membership, Occurrence, ScheduledPost
from storage.occurrences import ClaimOutcome, OccurrenceStatus

log = logging.getLogger(__name__)

FIRE_JOB = "post.fire"
RETRY_JOB = "post.retry"
SWEEP_JOB = "post.sweep"
RETRY_DELAYS = (timedelta(seconds=15), timedelta(minutes=1), timedelta(minutes=5))
# `skip` still posts a run this late: timers and start-up are never to the millisecond.
ON_TIME = timedelta(minutes=1)
SWEEP_EVERY = timedelta(seconds=60)
START_SWEEP_DELAY = timedelta(seconds=5)
# A retry left waiting by a stopped process is resumed at start-up if it isn't older.
RESUME_RETRIES_WITHIN = timedelta(hours=1)
# How long a send waits for its platform to connect (start-up, reconnects).
PLATFORM_WAIT = 30.0
MAX_MISSED_SHOWN = 5
_FOREVER = timedelta(days=36500)

TEXTS = PostTextRenderer.create()


class ComplianceRefused(Exception):
    """The rendered post holds banned words and no manager overrode the check."""

    def __init__(self, words: list[str]) -> None:
        super().__init__(", ".join(words))
        self.words = words


def what(post_id: int) -> str:
    """The occurrence name of a post's runs."""
    return f"post:{post_id}"


def timer_key(post_id: int) -> str:
    return f"post:{post_id}"


def schedule_of(post: ScheduledPost, community: Community, now: datetime) -> Schedule:
    return parse_schedule_text(post.schedule, ParseEnv(zone(community.timezone), now))


def release_time(due: datetime, community: Community) -> datetime:
    """When the run due at `due` may go out: after quiet hours if it falls inside them."""
    quiet = PostPolicy.of(community.settings).quiet
    return due if quiet is None else quiet.release(due, zone(community.timezone))


# --- what a post says ----------------------------------------------------------------------


async def _member_count(
    services: Services, session: AsyncSession, community: Community, chat: ChatRef
) -> int:
    gateway = services.gateways.get(chat.platform)
    if gateway is not None:
        try:
            counted = await gateway.member_count(chat)
        except Exception:
            counted = None
        if counted is not None:
            return counted
    query = select(func.count()).where(
        Membership.community_id == community.id, Membership.left_at.is_(None)
    )
    return int((await session.execute(query)).scalar_one())


async def _yesterday(session: AsyncSession, community_id: int, today: date) -> tuple[int, int]:
    row = await session.get(CommunityDay, (community_id, today - timedelta(days=1)))
    return (row.messages, row.active_members) if row is not None else (0, 0)


async def _once(
    memo: dict[tuple[Any, ...], Any] | None,
    key: tuple[Any, ...],
    read: Callable[[], Awaitable[Any]],
) -> Any:
    """`read()`, or what it gave before for `key` in this `memo` (None: no memo)."""
    if memo is None:
        return await read()
    if key not in memo:
        memo[key] = await read()
    return memo[key]


async def post_values(
    services: Services,
    session: AsyncSession,
    community: Community,
    chat: ChatRef,
    at: datetime,
    *,
    memo: dict[tuple[Any, ...], Any] | None = None,
    wanted: Collection[str] = VARIABLES,
) -> dict[str, Any]:
    """The variables a post text may use, as of `at` in the community's time zone; only
    those `wanted` that cost a read (the figures are read only for a text that uses them).
    `memo` (a batch of firings in one transaction) keeps each community's and chat's
    figures for the batch's other posts."""
    local = at.astimezone(zone(community.timezone))
    weekdays = services.renderer.catalog(community.locale).get("weekdays", [])
    values: dict[str, Any] = {
        "community": community.title or chat.community_name or "",
        "chat": chat.title or "",
        "date": local.date().isoformat(),
        "time": local.strftime("%H:%M"),
        "weekday": weekdays[local.weekday()] if len(weekdays) == 7 else local.strftime("%A"),
    }
    if "messages_yesterday" in wanted or "active_yesterday" in wanted:
        values["messages_yesterday"], values["active_yesterday"] = await _once(
            memo,
            ("day", community.id, local.date()),
            lambda: _yesterday(session, community.id, local.date()),
        )
    if "member_count" in wanted:
        values["member_count"] = await _once(
            memo,
            ("count", community.id, chat.platform, chat.chat_id),
            lambda: _member_count(services, session, community, chat),
        )
    return values


async def body_of(session: AsyncSession, post: ScheduledPost) -> str:
    """The post's own text, or its saved template's current text."""
    if post.template_name is None:
        return post.body or ""
    saved = await store.template(session, post.community_id, post.template_name)
    if saved is None:
        raise PostTextError("template_gone", name=post.template_name)
    return saved.body


async def compose(
    services: Services,
    session: AsyncSession,
    post: ScheduledPost,
    community: Community,
    *,
    at: datetime,
    limit: int,
    memo: dict[tuple[Any, ...], Any] | None = None,
) -> str:
    """The post as it would go out at `at`: rendered, then checked against the word list."""
    chat = chat_of(post, community)
    prepared = TEXTS.prepare(await body_of(session, post))
    values = await post_values(
        services, session, community, chat, at, memo=memo, wanted=prepared.names
    )
    text = prepared.render(values, limit=limit)
    if not post.compliance_override:
        found = review(text, PostPolicy.of(community.settings).words.words())
        if found:
            raise ComplianceRefused(sorted({f.word for f in found}))
    return text


# --- firing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FiringPlan:
    """What one firing does with the runs a post owes."""

    send: datetime | None  # the run to post now
    missed: tuple[tuple[datetime, str], ...]  # not posted, why: late|skipped|merged|combined
    next_run: datetime | None


def plan(
    owed: list[datetime],
    *,
    now: datetime,
    misfire: Misfire,
    grace: timedelta,
    release: Callable[[datetime], datetime],
    next_run: datetime | None,
) -> FiringPlan:
    """Decide which owed run to post and what to record as missed (pure, for tests)."""
    tolerance = ON_TIME if misfire is Misfire.SKIP else grace
    on_time = [r for r in owed if now - release(r) <= tolerance]
    send = on_time[-1] if on_time else (owed[-1] if misfire is Misfire.MERGE and owed else None)
    missed: list[tuple[datetime, str]] = []
    for run in owed:
        if run == send:
            continue
        if run in on_time:
            missed.append((run, "combined"))  # due together (quiet hours): one post, no report
        elif misfire is Misfire.MERGE:
            missed.append((run, "merged"))
        else:
            missed.append((run, "skipped" if misfire is Misfire.SKIP else "late"))
    return FiringPlan(send, tuple(missed), next_run)


@dataclass(slots=True)
class _Firing:
    """One timer's firing worked out inside its (batch's) transaction."""

    post_id: int
    due_at: datetime
    decided: FiringPlan
    release: Callable[[datetime], datetime]
    ready: Ready | None = None
    sending: int | None = None
    newly_missed: list[tuple[datetime, str]] = field(default_factory=list)


async def _work_out(
    services: Services,
    session: AsyncSession,
    post: ScheduledPost,
    community: Community,
    due_at: datetime,
    now: datetime,
    memo: dict[tuple[Any, ...], Any] | None = None,
) -> _Firing | None:
    """What firing the run due at `due_at` does (reads only); None when there is nothing
    to do now: a stale timer, or quiet hours that began since (the timer is set again)."""
    if post.status != store.PostStatus.ACTIVE or post.next_run_at != due_at:
        return None  # paused, deleted, edited or already handled: a stale timer
    policy = PostPolicy.of(community.settings)
    tz = zone(community.timezone)

    def release(run: datetime) -> datetime:
        return run if policy.quiet is None else policy.quiet.release(run, tz)

    if release(due_at) > now + timedelta(seconds=1):
        # Quiet hours changed since the timer was set: wait for their end.
        _set_timer(services.scheduler, post.id, due_at, release(due_at))
        return None
    schedule = schedule_of(post, community, now)
    owed = [due_at, *schedule.runs_between(due_at, now, tz)]
    decided = plan(
        owed,
        now=now,
        misfire=Misfire(post.misfire),
        grace=policy.grace,
        release=release,
        next_run=schedule.next_after(max(owed[-1], now), tz),
    )
    ready = None
    if decided.send is not None:
        # Composed before the claim (reads only), so the run needs no second transaction
        # to load the post again; a compose failure is still claimed, then recorded.
        ready = await _prepare(services, session, post, community, at=now, memo=memo)
    return _Firing(post.id, due_at, decided, release, ready)


async def _after(services: Services, firing: _Firing, sent: list[tuple[int, int]] | None) -> None:
    """After the firing's transaction: the next timer, the report of missed runs, the send."""
    decided = firing.decided
    if decided.next_run is not None:
        _set_timer(
            services.scheduler, firing.post_id, decided.next_run, firing.release(decided.next_run)
        )
    reported = [(run, why) for run, why in firing.newly_missed if why != "combined"]
    if reported:
        await report(
            services,
            firing.post_id,
            "missed",
            runs=[run for run, _ in reported],
            why=reported[-1][1],
            merged=firing.sending is not None and reported[-1][1] == "merged",
        )
    if firing.sending is not None:
        await deliver(
            services, firing.post_id, firing.sending, attempt=0, ready=firing.ready, sent=sent
        )


async def fire(services: Services, post_id: int, due: str) -> None:
    """Timer and sweep entry point: post the run due at `due` (ISO) unless it was handled."""
    due_at = datetime.fromisoformat(due).astimezone(UTC)
    now = services.clock.now()
    instance = instance_name()
    # Not `writing()`: composing may ask the platform for the member count, and SQLite's
    # write gate (the activity writer's too) must not wait on that; the claim takes it.
    async with services.db.session() as session:
        found = await store.with_community(session, post_id)
        if found is None:
            return  # deleted
        firing = await _work_out(services, session, *found, due_at, now)
        if firing is None:
            return
        decided = firing.decided
        if decided.send is not None:
            claimed = await occurrences.claim(
                session, what(post_id), decided.send, now=now, instance=instance, grace=_FOREVER
            )
            if claimed.outcome is ClaimOutcome.CLAIMED:
                firing.sending = claimed.occurrence_id
        for run, why in decided.missed:
            if await occurrences.record_missed(
                session, what(post_id), run, now=now, instance=instance, detail=why
            ):
                firing.newly_missed.append((run, why))
        moved = await store.advance(
            session,
            post_id,
            due=due_at,
            next_run=decided.next_run,
            ran_at=now if firing.sending is not None else None,
            outcome="sending" if firing.sending is not None else "missed",
            ran=firing.sending is not None,
        )
        if not moved:
            await session.rollback()
            return  # another instance (or the sweep) took this firing
    await _after(services, firing, None)


class _TakenRun(Exception):
    """A batch's run was claimed elsewhere while its post moved on here (`/post now` at the
    very instant): the batch is undone and its firings run one by one."""


# Sends of one batch under way at once (as many as jobs ran at once before batching).
BATCH_SENDS = 8


async def fire_many(services: Services, items: list[dict[str, Any]]) -> None:
    """Batched timer job: fire every queued run together. One transaction loads the posts
    and communities, composes each run (each community's figures read once), moves each
    post on and claims its run; the sends go out, then one transaction records them all.
    Failures stay each run's own: a run that cannot be worked out, or a batch whose
    transaction fails, is fired alone (`fire`), as its own timer would have been."""
    now = services.clock.now()
    instance = instance_name()
    wanted: dict[int, datetime] = {}
    extra: list[tuple[int, str]] = []  # the same post twice: the later one on its own
    alone: list[tuple[int, str]] = []
    for item in items:
        post_id, due = int(item["post_id"]), str(item["due"])
        if post_id in wanted:
            extra.append((post_id, due))
        else:
            wanted[post_id] = datetime.fromisoformat(due).astimezone(UTC)
    firings: list[_Firing] = []
    try:
        async with services.db.session() as session:
            found = await store.with_communities(session, list(wanted))
            memo: dict[tuple[Any, ...], Any] = {}
            for post_id, due_at in wanted.items():
                if post_id not in found:
                    continue  # deleted
                try:
                    firing = await _work_out(services, session, *found[post_id], due_at, now, memo)
                except Exception:
                    alone.append((post_id, due_at.isoformat()))  # fails (and is logged) alone
                    continue
                if firing is not None:
                    firings.append(firing)
            # Writes in post order: instances batching the same posts lock rows alike.
            firings.sort(key=lambda f: f.post_id)
            moved: list[_Firing] = []
            for firing in firings:
                decided = firing.decided
                # The conditional move first: a post another instance (or the sweep) moved
                # already is left alone, with nothing written for it.
                if not await store.advance(
                    session,
                    firing.post_id,
                    due=firing.due_at,
                    next_run=decided.next_run,
                    ran_at=now if decided.send is not None else None,
                    outcome="sending" if decided.send is not None else "missed",
                    ran=decided.send is not None,
                ):
                    continue
                moved.append(firing)
                if decided.send is not None:
                    claimed = await occurrences.claim(
                        session,
                        what(firing.post_id),
                        decided.send,
                        now=now,
                        instance=instance,
                        grace=_FOREVER,
                    )
                    if claimed.outcome is not ClaimOutcome.CLAIMED:
                        raise _TakenRun(firing.post_id)
                    firing.sending = claimed.occurrence_id
                for run, why in decided.missed:
                    if await occurrences.record_missed(
                        session, what(firing.post_id), run, now=now, instance=instance, detail=why
                    ):
                        firing.newly_missed.append((run, why))
            firings = moved
    except Exception:
        log.warning("a batch of %d post firings is fired one by one", len(wanted), exc_info=True)
        await _fire_alone(services, [(i, d.isoformat()) for i, d in wanted.items()] + extra)
        return
    sent: list[tuple[int, int]] = []
    try:
        slots = asyncio.Semaphore(BATCH_SENDS)

        async def finish_firing(firing: _Firing) -> None:
            async with slots:
                try:
                    await _after(services, firing, sent)
                except Exception:
                    log.exception("post %s: firing failed", firing.post_id)

        await asyncio.gather(*(finish_firing(f) for f in firings))
    finally:
        # Also when stopped mid-batch: what went out is recorded as sent.
        await _record_sent(services, sent)
    await _fire_alone(services, alone + extra)


async def _fire_alone(services: Services, runs: list[tuple[int, str]]) -> None:
    for post_id, due in runs:
        try:
            await fire(services, post_id, due)
        except Exception:
            log.exception("post %s could not be fired", post_id)


async def _record_sent(services: Services, sent: list[tuple[int, int]]) -> None:
    """Record a batch's sends in one transaction (each alone if that fails)."""
    now = services.clock.now()

    async def together(session: AsyncSession, items: Sequence[tuple[int, int]]) -> None:
        await occurrences.finish_done(session, [o for o, _ in items], now=now)
        await store.set_outcomes(session, [p for _, p in items], "sent")

    async def alone(session: AsyncSession, item: tuple[int, int]) -> None:
        await occurrences.finish(session, item[0], now=now)
        await store.set_outcome(session, item[1], "sent")

    await record_together(
        services.db, sent, together, alone, what="sends", label=lambda one: f"post {one[1]}"
    )


@dataclass(frozen=True, slots=True)
class Ready:
    """A run composed inside its firing's transaction: what `deliver` would load again."""

    post: ScheduledPost
    community: Community
    gateway: ChatGateway
    text: str | PostTextError | ComplianceRefused  # the post, or why it cannot go out


async def _prepare(
    services: Services,
    session: AsyncSession,
    post: ScheduledPost,
    community: Community,
    *,
    at: datetime,
    memo: dict[tuple[Any, ...], Any] | None = None,
) -> Ready | None:
    """Compose the run now when its platform is connected; None leaves it to `deliver`."""
    gateway = services.gateways.get(chat_of(post, community).platform)
    if gateway is None:
        return None  # start-up or a reconnect: `deliver` waits for the platform, then composes
    try:
        text: str | PostTextError | ComplianceRefused = await compose(
            services,
            session,
            post,
            community,
            at=at,
            limit=gateway.capabilities.max_text_length,
            memo=memo,
        )
    except (PostTextError, ComplianceRefused) as exc:
        text = exc
    return Ready(post, community, gateway, text)


async def deliver(
    services: Services,
    post_id: int,
    occurrence_id: int,
    *,
    attempt: int,
    ready: Ready | None = None,
    sent: list[tuple[int, int]] | None = None,
) -> bool:
    """Send one claimed run; on a platform failure retry later, then give up and report.
    With `sent` (a batch), a run that went out is noted there as (occurrence, post) for
    the batch to record with the others, instead of in a transaction of its own."""
    if ready is not None:
        post, community = ready.post, ready.community
    else:
        async with services.db.writing() as session:
            found = await store.with_community(session, post_id)
            if found is None or found[0].status == store.PostStatus.DELETED:
                await occurrences.finish(
                    session, occurrence_id, now=services.clock.now(), failed=True, detail="deleted"
                )
                return False
        post, community = found
    chat = chat_of(post, community)
    problem: Exception
    try:
        if ready is not None:
            gateway = ready.gateway
            if not isinstance(ready.text, str):
                raise ready.text
            text = ready.text
        else:
            # Waiting for the platform (start-up, a reconnect) holds no database session.
            gateway = await services.gateways.wait(chat.platform, within=PLATFORM_WAIT)
            async with services.db.session() as session:
                text = await compose(
                    services,
                    session,
                    post,
                    community,
                    at=services.clock.now(),
                    limit=gateway.capabilities.max_text_length,
                )
        pings = PostPolicy.of(community.settings).pings
        await gateway.send(chat, OutgoingMessage(text, mass_mentions=pings))
    except (PostTextError, ComplianceRefused) as exc:
        await _give_up(services, post, community, occurrence_id, exc)  # retrying can't help
        return False
    except (GatewayError, TimeoutError, OSError) as exc:
        problem = exc
    else:
        if sent is not None:
            sent.append((occurrence_id, post_id))
            return True
        async with services.db.writing() as session:
            await occurrences.finish(session, occurrence_id, now=services.clock.now())
            await store.set_outcome(session, post_id, "sent")
        return True
    log.warning("post %s: send failed (attempt %d): %r", post_id, attempt + 1, problem)
    if attempt >= len(RETRY_DELAYS) or services.scheduler is None:
        await _give_up(services, post, community, occurrence_id, problem)
        return False
    async with services.db.writing() as session:
        await _mark_retrying(session, occurrence_id, type(problem).__name__)
    services.scheduler.schedule(
        f"post:{post_id}:retry:{occurrence_id}",
        RETRY_JOB,
        services.clock.now() + RETRY_DELAYS[attempt],
        post_id=post_id,
        occurrence_id=occurrence_id,
        attempt=attempt + 1,
    )
    return False


async def _give_up(
    services: Services,
    post: ScheduledPost,
    community: Community,
    occurrence_id: int,
    problem: Exception,
) -> None:
    """Record the run as failed, then tell the managers why in words they can act on."""
    words: list[str] = []
    reason = None
    if isinstance(problem, ComplianceRefused):
        detail, words = "compliance", problem.words
    elif isinstance(problem, PostTextError):
        detail = problem.problem
        reason = Safe(
            services.renderer.render(
                "posts/errors.j2", community.locale, problem=problem.problem, **problem.values
            ).removeprefix("⚠️ ")
        )
    else:
        detail = type(problem).__name__
    async with services.db.writing() as session:
        await occurrences.finish(
            session, occurrence_id, now=services.clock.now(), failed=True, detail=detail
        )
        await store.set_outcome(session, post.id, "failed")
    await report(services, post.id, "failed", detail=detail, words=words, reason=reason)


async def _mark_retrying(session: AsyncSession, occurrence_id: int, detail: str) -> None:
    await session.execute(
        update(Occurrence)
        .where(Occurrence.id == occurrence_id)
        .values(status=OccurrenceStatus.RETRYING.value, detail=detail[:256])
    )


async def retry(services: Services, post_id: int, occurrence_id: int, attempt: int) -> None:
    """Retry job: take the waiting occurrence back (only one instance can) and send again."""
    async with services.db.writing() as session:
        taken = await session.execute(
            update(Occurrence)
            .where(
                Occurrence.id == occurrence_id,
                Occurrence.status == OccurrenceStatus.RETRYING.value,
            )
            .values(status=OccurrenceStatus.CLAIMED.value, claimed_by=instance_name()[:64])
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return
    await deliver(services, post_id, occurrence_id, attempt=attempt)


async def send_now(services: Services, post_id: int, *, now: datetime) -> int | None:
    """`/post now`: claim an extra run at `now` (outside the schedule); None if taken."""
    async with services.db.session() as session:
        claimed = await occurrences.claim(
            session, what(post_id), now, now=now, instance=instance_name(), grace=_FOREVER
        )
    return claimed.occurrence_id if claimed.outcome is ClaimOutcome.CLAIMED else None


# --- telling the managers ------------------------------------------------------------------


async def managers_target(
    services: Services, community: Community, post: ScheduledPost
) -> tuple[ChatGateway, ChatRef | None, UserRef | None] | None:
    """Where reports go: the managers' chat if set, else the post's author privately,
    else the post's own chat."""
    platform = Platform(community.platform)
    gateway = services.gateways.get(platform)
    if gateway is None:
        return None
    chosen = special_chat(community.settings or {}, "managers")
    post_chat = chat_of(post, community)
    if chosen is not None:
        chat = ChatRef(
            platform, chosen["id"], community.external_id, chosen.get("title") or None,
            community_title=community.title,
        )  # fmt: skip
        return gateway, chat, None
    if gateway.capabilities.private_messages:
        return gateway, None, UserRef(platform, post.created_by, post.created_by_name)
    return gateway, post_chat, None


async def report(services: Services, post_id: int, kind: str, **values: Any) -> None:
    """Tell the managers that runs were missed or a run failed; never raises."""
    try:
        async with services.db.session() as session:
            post = await store.by_id(session, post_id)
            community = await session.get(Community, post.community_id) if post else None
        if post is None or community is None:
            return
        target = await managers_target(services, community, post)
        message = services.renderer.message(
            "posts/report.j2",
            community.locale,
            kind=kind,
            post=post,
            tz=zone(community.timezone),
            grace=PostPolicy.of(community.settings).grace,
            shown=MAX_MISSED_SHOWN,
            **values,
        )
        if target is None:
            log.warning("post %s: %s, and no platform connected to tell anyone", post_id, kind)
            return
        gateway, chat, person = target
        if chat is not None:
            await gateway.send(chat, message)
            return
        assert person is not None
        try:
            await gateway.send_private(person, message)
        except GatewayError:
            await gateway.send(chat_of(post, community), message)
    except Exception:
        log.exception("post %s: could not report %s", post_id, kind)


# --- timers --------------------------------------------------------------------------------


def _set_timer(
    scheduler: SchedulerService | None, post_id: int, due: datetime, at: datetime
) -> None:
    if scheduler is not None and scheduler.running:
        scheduler.schedule(timer_key(post_id), FIRE_JOB, at, post_id=post_id, due=due.isoformat())


def arm(services: Services, post: ScheduledPost, community: Community) -> None:
    """(Re)set the post's timer after a change; cancels it when nothing is due."""
    if services.scheduler is None:
        return
    if post.status != store.PostStatus.ACTIVE or post.next_run_at is None:
        services.scheduler.cancel(timer_key(post.id))
        return
    _set_timer(
        services.scheduler, post.id, post.next_run_at, release_time(post.next_run_at, community)
    )


async def sweep(services: Services) -> int:
    """Fire every active post whose run is past due (lost timers, a stalled loop)."""
    now = services.clock.now()
    async with services.db.session() as session:
        due = await store.overdue(session, now=now - timedelta(seconds=30))
    for post_id, due_at in due:
        try:
            await fire(services, post_id, due_at.isoformat())
        except Exception:
            log.exception("post %s could not be fired", post_id)
    return len(due)


async def _rebuild_timers(services: Services, scheduler: SchedulerService) -> None:
    now = services.clock.now()
    async with services.db.session() as session:
        query = (
            select(ScheduledPost, Community)
            .join(Community, Community.id == ScheduledPost.community_id)
            .where(
                ScheduledPost.status == store.PostStatus.ACTIVE,
                ScheduledPost.next_run_at.is_not(None),
            )
        )
        rows = (await session.execute(query)).all()
        waiting = await session.execute(
            select(Occurrence.id, Occurrence.what).where(
                Occurrence.status == OccurrenceStatus.RETRYING.value,
                Occurrence.what.startswith("post:"),
                Occurrence.claimed_at >= now - RESUME_RETRIES_WITHIN,
            )
        )
        retries = waiting.all()
    soon = now + START_SWEEP_DELAY
    for post, community in rows:
        assert post.next_run_at is not None
        # Overdue runs fire soon, once the platforms had a moment to connect; runs still to
        # come keep their time (a send waits for its platform anyway, see `deliver`).
        release = release_time(post.next_run_at, community)
        at = release if release > now else soon
        _set_timer(scheduler, post.id, post.next_run_at, at)
    for occurrence_id, name in retries:
        post_id = int(name.split(":")[1])
        scheduler.schedule(
            f"post:{post_id}:retry:{occurrence_id}",
            RETRY_JOB,
            soon,
            post_id=post_id,
            occurrence_id=occurrence_id,
            attempt=1,
        )
    scheduler.schedule(
        "post:sweep", SWEEP_JOB, IntervalTrigger(seconds=SWEEP_EVERY.total_seconds())
    )


def install(services: Services, scheduler: SchedulerService) -> None:
    """Register the post jobs and the start-up reconciler on the scheduler."""
    scheduler.register_batch(FIRE_JOB, partial(fire_many, services))
    scheduler.register(RETRY_JOB, partial(retry, services))
    scheduler.register(SWEEP_JOB, partial(sweep, services))
    scheduler.on_start(partial(_rebuild_timers, services))
