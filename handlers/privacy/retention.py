"""Retention: how long commops keeps what it records, and the daily job that enforces it.

- Raw activity events (who posted or reacted where and when; never text) are kept for
  `[privacy] retention_days`, then deleted. The rollups that summaries read (community and
  member days) stay, so every summary reads the same before and after.
- When the bot is removed from a community (`BotMembershipChanged`), the community is marked
  `removed_at`; if the bot does not come back within `[privacy] removed_grace_days`,
  everything about the community is deleted, and so are members it was the last one of.

The job runs once a day across restarts and instances: an hourly timer tries to claim the
day's occurrence (`fire_once`), and only the claimant purges. Deletes go in bounded batches,
one transaction each, so the activity writer is never held up for long.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from handlers.core.context import HandlerContext, Services
from handlers.core.events import BotMembershipChanged
from handlers.core.firing import fire_once
from handlers.core.router import Router
from scheduler.service import SchedulerService
from storage import retention as store
from storage.models import Community
from storage.occurrences import ClaimOutcome

log = logging.getLogger(__name__)

JOB = "privacy.retention"
WHAT = "privacy.retention"  # the occurrence claimed once a day
# The day's purge is due at this UTC time (a quiet hour for most communities).
PURGE_AT = time(3, 17)
CHECK_EVERY = timedelta(hours=1)
# The first check waits for start-up to settle (adapters connect after the scheduler starts).
START_DELAY = timedelta(seconds=30)
# Raw events per delete; days of member rollups per delete.
EVENT_BATCH = 2_000
MEMBER_DAY_BATCH = 31
# Members per delete. Deleting a member makes the database look for their rows in
# activity_events and member_days, which have no index on the member: a scan of each table
# per member (about 0.2 s per million raw events on SQLite), so one member per transaction
# keeps the activity writer from waiting long. An index on member_id would make it cheap.
MEMBER_BATCH = 1
# `/post besttime` reads four weeks of raw events: shorter retention would starve it.
MIN_RETENTION_DAYS = 30

router = Router("retention")


class PrivacySettings(BaseModel):
    """`[privacy]` in the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # 0 keeps raw events for ever; otherwise at least `MIN_RETENTION_DAYS`.
    retention_days: int = Field(90, ge=0, le=36_500)
    removed_grace_days: int = Field(30, ge=1, le=3_650)

    @field_validator("retention_days")
    @classmethod
    def _long_enough(cls, value: int) -> int:
        if 0 < value < MIN_RETENTION_DAYS:
            raise ValueError(
                f"keep raw events at least {MIN_RETENTION_DAYS} days (/post besttime reads the "
                "last four weeks), or 0 to keep them for ever"
            )
        return value


def privacy_settings(features: dict[str, Any]) -> PrivacySettings:
    settings = features.get("privacy")
    return settings if isinstance(settings, PrivacySettings) else PrivacySettings()


@dataclass
class PurgeReport:
    """What one purge deleted."""

    events: int = 0
    communities: int = 0
    members: int = 0
    kept: int = 0  # communities marked removed that turned out to be active: unmarked


# --- the bot added to or removed from a community --------------------------------------------


@router.on(BotMembershipChanged)
async def bot_membership_changed(event: BotMembershipChanged, ctx: HandlerContext) -> None:
    """Start (or stop) the removed community's grace period."""
    community = ctx.community
    if event.present:
        if community.removed_at is not None:
            log.info("bot is back in community %s: it will not be purged", community.id)
            community.removed_at = None
    elif community.removed_at is None:
        # The platform's time, unless it claims the future: the grace period can only be longer.
        community.removed_at = min(event.at, ctx.now())
        log.info("bot removed from community %s: purged after the grace period", community.id)
    return None


# --- the daily purge ---------------------------------------------------------------------------


def due_slot(now: datetime) -> datetime:
    """The latest purge time at or before `now`: the day's occurrence to claim."""
    now = now.astimezone(UTC)
    today = datetime.combine(now.date(), PURGE_AT, tzinfo=UTC)
    return today if today <= now else today - timedelta(days=1)


async def daily(services: Services) -> ClaimOutcome:
    """Timer entry point: purge once for the current day's slot (taken: someone else did)."""

    async def action() -> None:
        await purge(services)

    return await fire_once(
        services.db,
        what=WHAT,
        due_at=due_slot(services.clock.now()),
        clock=services.clock,
        action=action,
        # The slot is never more than a day old, so a check after a long stop still purges.
        grace=timedelta(days=1),
    )


async def purge(services: Services, *, batch_size: int = EVENT_BATCH) -> PurgeReport:
    """Delete raw events past retention and communities past their grace; one report."""
    settings = privacy_settings(services.features)
    now = services.clock.now()
    report = PurgeReport()
    if settings.retention_days:
        report.events = await _purge_old_events(
            services, now - timedelta(days=settings.retention_days), batch_size
        )
    async with services.db.session() as session:
        removed = await store.removed_before(
            session, now - timedelta(days=settings.removed_grace_days)
        )
    for community_id in removed:
        outcome, members = await _purge_community(services, community_id, batch_size)
        if outcome == "kept":
            report.kept += 1
        elif outcome == "purged":
            report.communities += 1
            report.members += members
    if report.communities:
        _forget_cached_ids(services)
    log.info(
        "retention purge: %d raw events, %d removed communities, %d members deleted%s",
        report.events,
        report.communities,
        report.members,
        f"; {report.kept} communities active again, kept" if report.kept else "",
    )
    return report


async def _purge_old_events(services: Services, before: datetime, batch_size: int) -> int:
    async with services.db.session() as session:
        communities = await store.community_ids(session)
    deleted = 0
    for community_id in communities:
        while True:
            async with services.db.session() as session:
                count = await store.delete_events_before(
                    session, community_id, before, limit=batch_size
                )
            deleted += count
            if count < batch_size:
                break
            await asyncio.sleep(0)  # let chats flow between batches
    return deleted


async def _purge_community(
    services: Services, community_id: int, batch_size: int
) -> tuple[str, int]:
    """Delete a removed community: ("purged", members that went with it); ("kept", 0) when it
    shows activity since its removal (the bot is evidently there: it is unmarked); ("gone", 0)
    when it was deleted or unmarked meanwhile (another instance, the bot added back)."""
    async with services.db.session() as session:
        community = await session.get(Community, community_id)
        if community is None or community.removed_at is None:
            return "gone", 0
        if await store.active_since(session, community_id, community.removed_at):
            # E.g. a removal reported for a group that was in fact upgraded to a supergroup.
            await store.set_removed(session, community_id, None)
            return "kept", 0
        candidates = await store.member_ids(session, community_id)
    while True:
        async with services.db.session() as session:
            count = await store.delete_community_events(session, community_id, limit=batch_size)
        if count < batch_size:
            break
        await asyncio.sleep(0)
    while True:
        async with services.db.session() as session:
            count = await store.delete_member_days(session, community_id, days=MEMBER_DAY_BATCH)
        if not count:
            break
        await asyncio.sleep(0)
    async with services.db.session() as session:
        if not await store.delete_community(session, community_id):
            return "gone", 0  # the bot came back meanwhile: the community stays
    members = 0
    for start in range(0, len(candidates), MEMBER_BATCH):
        async with services.db.session() as session:
            members += await store.delete_orphan_members(
                session, candidates[start : start + MEMBER_BATCH]
            )
        await asyncio.sleep(0)
    log.info("purged community %s (removed more than the grace period ago)", community_id)
    return "purged", members


def _forget_cached_ids(services: Services) -> None:
    """The activity writer caches chat and member ids; some of them were just deleted."""
    cache = getattr(services.activity, "cache", None)
    if cache is not None:
        cache.chats.clear()
        cache.members.clear()


async def _start_timers(services: Services, scheduler: SchedulerService) -> None:
    scheduler.schedule_sweep(
        "privacy:retention",
        JOB,
        now=services.clock.now(),
        every=CHECK_EVERY,
        first_after=START_DELAY,
    )


def install(services: Services, scheduler: SchedulerService) -> None:
    """Register the retention job and its timers (an hourly check; the first soon after start)."""
    scheduler.register(JOB, partial(daily, services))
    scheduler.on_start(partial(_start_timers, services))
