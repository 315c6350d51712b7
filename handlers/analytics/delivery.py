"""The scheduled daily summary: one timer per community, posted exactly once per day.

Every community gets its summary of yesterday at its chosen local time (default 09:00,
`/settings summary 09:00|off`; see `handlers.analytics.schedule` for DST). Where it goes:

- the managers' chat, if a manager set one (`/settings managers here`);
- else the announcements chat (`/settings announcements here`);
- else the community's own group: Telegram (and the console), where the group is the
  community. On Discord a server has no single chat of its own, so with neither chat set the
  summary is not posted at all (managers can still read `/summary`).

Exactly once per community and day, across restarts and instances: the firing claims the
occurrence `summary:<community id>:<reported day>` (`handlers.core.firing.fire_once`: the
unique key lets one process win, and the claim is committed before anything is sent). A
day whose summary was already claimed (say the time was changed after it went out) is not
claimed again. Timers are rebuilt from the communities at start-up, and a sweep every few
minutes arms timers for communities seen since, and fires summaries whose timer was lost
(the bot was away): up to `GRACE` late they are posted and say they are late; later ones
are recorded as missed, not posted. Only the latest due summary is considered: after days
away, older days are neither posted nor recorded (managers can ask `/summary <date>`).

A quiet community still gets its summary, which says the day was quiet. A send that fails
is recorded as failed (at most once: it is not retried).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from functools import partial

from sqlalchemy import select

from handlers.analytics import schedule, summary
from handlers.core.context import Services
from handlers.core.events import ChatRef, Platform
from handlers.core.firing import fire_once
from handlers.core.gateway import ChatGateway, GatewayUnavailable
from handlers.settings import special_chat
from scheduler.service import SchedulerService
from storage.activity import zone
from storage.analytics import local_midnight, record_member_count
from storage.models import Community, Occurrence
from storage.occurrences import ClaimOutcome

log = logging.getLogger(__name__)

FIRE_JOB = schedule.FIRE_JOB
SWEEP_JOB = "summary.sweep"
# A summary this late still goes out (and says it is late); later, it is recorded as missed.
GRACE = timedelta(hours=3)
# Posted more than this after its time, a summary says it is late.
LATE_AFTER = timedelta(minutes=2)
SWEEP_EVERY = timedelta(minutes=5)
# The first sweep waits for the platforms to connect (they start after the scheduler).
START_SWEEP_DELAY = timedelta(seconds=5)
# The sweep leaves a summary that just fell due to its timer.
SWEEP_SETTLE = timedelta(seconds=30)
# How long a timer waits for its platform to connect (start-up, reconnects).
PLATFORM_WAIT = 30.0


def summary_target(community: Community) -> ChatRef | None:
    """Where the community's scheduled summary goes, or None (Discord without a managers'
    or announcements channel)."""
    platform = Platform(community.platform)
    settings = community.settings or {}
    for purpose in ("managers", "announcements"):
        chosen = special_chat(settings, purpose)
        if chosen is not None:
            return ChatRef(
                platform,
                str(chosen["id"]),
                community.external_id,
                chosen.get("title") or None,
                community_title=community.title,
            )
    if platform is Platform.DISCORD:
        return None
    return summary.main_chat(community)


def _unknown_day(community: Community, posting_day: date) -> bool:
    """Whether the reported day (the one before `posting_day`) ended before the bot knew the
    community: such a summary would report nothing, so it is neither posted nor recorded."""
    return community.created_at >= local_midnight(posting_day, zone(community.timezone))


async def _already_claimed(services: Services, name: str) -> bool:
    """Whether this community and day has a summary occurrence already (any due time)."""
    async with services.db.session() as session:
        found = await session.execute(select(Occurrence.id).where(Occurrence.what == name).limit(1))
        return found.first() is not None


async def _post(
    services: Services,
    community_id: int,
    day: date,
    due_at: datetime,
    gateway: ChatGateway,
    target: ChatRef,
) -> None:
    """The claimed firing: read the summary (recording the member count), draw, send."""
    now = services.clock.now()
    async with services.db.session() as session:
        community = await session.get(Community, community_id)
    assert community is not None
    today = now.astimezone(zone(community.timezone)).date()
    # Asked of the platform before the unit of work: no transaction waits on the network.
    live = await summary.live_member_count(gateway, community, day, today=today)
    async with services.db.session() as session:
        if live is not None and summary.records_member_count(day, today):
            await record_member_count(session, community_id, day, live)
        data = await summary.gather(
            session, community, kind=summary.Kind.DAILY, day=day, now=now, live_member_count=live
        )
    # Drawn and sent outside the unit of work: no transaction waits on the chart.
    message = await summary.render(
        services,
        community,
        data,
        images=gateway.capabilities.images,
        now=now,
        late_for=due_at if now - due_at > LATE_AFTER else None,
    )
    await gateway.send(target, message)


async def fire(
    services: Services, community_id: int, due: str, *, platform_wait: float = PLATFORM_WAIT
) -> ClaimOutcome | None:
    """Timer and sweep entry point: post the summary due at `due` (ISO) unless it was
    handled; returns the claim's outcome, or None when nothing was due after all."""
    due_at = datetime.fromisoformat(due).astimezone(UTC)
    now = services.clock.now()
    async with services.db.session() as session:
        community = await session.get(Community, community_id)
    if community is None:
        return None
    at = schedule.summary_time(community.settings)
    tz = zone(community.timezone)
    posting_day = due_at.astimezone(tz).date()
    if at is None or community.removed_at is not None:
        schedule.arm(services.scheduler, community, now)  # cancels the timer
        return None
    if schedule.due_on(posting_day, at, tz) != due_at:
        # The time or the zone changed since this timer was set: a stale timer.
        schedule.arm(services.scheduler, community, now)
        return None
    day = schedule.reported_day(posting_day)
    name = schedule.what(community_id, day)
    try:
        if _unknown_day(community, posting_day):
            return None
        if await _already_claimed(services, name):
            return ClaimOutcome.TAKEN
        target = summary_target(community)
        if target is None:
            log.info("community %s: no chat to post its daily summary in", community_id)
            return None
        gateway: ChatGateway | None = None
        if now - due_at <= GRACE:
            try:
                # Waiting for the platform holds no database session and claims nothing:
                # if it never comes, the sweep tries again while the grace lasts.
                gateway = await services.gateways.wait(target.platform, within=platform_wait)
            except GatewayUnavailable:
                log.warning("community %s: daily summary waits for %s", community_id,
                            target.platform.value)  # fmt: skip
                return None

        async def action() -> None:
            assert gateway is not None  # a claim within the grace always has its gateway
            await _post(services, community_id, day, due_at, gateway, target)

        return await fire_once(
            services.db,
            what=name,
            due_at=due_at,
            clock=services.clock,
            action=action,
            grace=GRACE,
        )
    finally:
        _arm_after(services, community, due_at)


def _arm_after(services: Services, community: Community, handled: datetime) -> None:
    """Set the timer for the next summary once the one due at `handled` was dealt with,
    unless the timer already waits for a later one (the sweep caught up an older day)."""
    scheduler = services.scheduler
    if scheduler is None:
        return
    waiting = scheduler.next_run(schedule.timer_key(community.id))
    if waiting is None or waiting <= handled:
        schedule.arm(scheduler, community, services.clock.now())


async def sweep(services: Services) -> int:
    """Arm missing timers, and fire each community's latest due summary nobody claimed
    (lost timers, the bot was away); returns how many were fired."""
    now = services.clock.now()
    scheduler = services.scheduler
    async with services.db.session() as session:
        communities = (
            (await session.execute(select(Community).where(Community.removed_at.is_(None))))
            .scalars()
            .all()
        )
        claimed = set(
            (
                await session.execute(
                    select(Occurrence.what).where(
                        Occurrence.what.startswith("summary:"),
                        Occurrence.due_at >= now - GRACE - timedelta(days=2),
                    )
                )
            ).scalars()
        )
    fired = 0
    for community in communities:
        at = schedule.summary_time(community.settings)
        if at is None:
            continue
        timer = schedule.timer_key(community.id)
        if scheduler is not None and scheduler.running and scheduler.next_run(timer) is None:
            schedule.arm(scheduler, community, now)
        posting_day, due = schedule.last_due(now - SWEEP_SETTLE, at, zone(community.timezone))
        if _unknown_day(community, posting_day) or summary_target(community) is None:
            continue
        if schedule.what(community.id, schedule.reported_day(posting_day)) in claimed:
            continue
        try:
            # Never wait for a platform here: one that is away would hold up every community.
            await fire(services, community.id, due.isoformat(), platform_wait=0)
            fired += 1
        except Exception:
            log.exception("daily summary of community %s could not be fired", community.id)
    return fired


async def _rebuild_timers(services: Services, scheduler: SchedulerService) -> None:
    now = services.clock.now()
    async with services.db.session() as session:
        communities = (
            (await session.execute(select(Community).where(Community.removed_at.is_(None))))
            .scalars()
            .all()
        )
    for community in communities:
        schedule.arm(scheduler, community, now)
    # Summaries missed while the bot was away, and timers for communities seen later.
    scheduler.schedule_sweep(
        "summary", SWEEP_JOB,
        now=now, every=SWEEP_EVERY, first_after=START_SWEEP_DELAY,
    )  # fmt: skip


def install(services: Services, scheduler: SchedulerService) -> None:
    """Register the summary jobs and the start-up reconciler on the scheduler."""
    scheduler.register(FIRE_JOB, partial(fire, services))
    scheduler.register(SWEEP_JOB, partial(sweep, services))
    scheduler.on_start(partial(_rebuild_timers, services))
