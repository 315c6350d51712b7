"""Wiring of the alerts feature: the timers behind the message path and the activity check.

- `alerts.refresh` reloads the watched communities' settings into the in-memory registry
  (at start-up and every `TTL`: other processes, and `/settings managers`, change them);
- `alerts.flush` writes hits that messages left pending when a storm stopped;
- `alerts.activity` judges the last hour's activity of every community (`anomaly`).

All of it is rebuilt from the database at start-up; nothing is lost by a restart but the
counts of the last few seconds' messages and the current 10-minute window.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from handlers.alerts.anomaly import check_activity
from handlers.alerts.state import REGISTRY, TTL, WATCH_KEY
from handlers.alerts.watch import flush
from handlers.core.context import Services
from handlers.settings import SPECIAL_CHATS
from scheduler.service import SchedulerService
from storage import alerts as store

REFRESH_JOB = "alerts.refresh"
FLUSH_JOB = "alerts.flush"
ACTIVITY_JOB = "alerts.activity"
FLUSH_EVERY = timedelta(seconds=30)
ACTIVITY_EVERY = timedelta(minutes=15)
# The first activity check waits for the platforms to connect (they start after the timers).
FIRST_CHECK_AFTER = timedelta(seconds=60)


async def refresh(services: Services) -> int:
    """Load every watched community's settings into the registry; returns how many."""
    async with services.db.session() as session:
        communities = await store.configured_communities(
            session, (WATCH_KEY, SPECIAL_CHATS["managers"])
        )
    REGISTRY.replace_all(communities)
    return len(REGISTRY.communities)


async def _start(services: Services, scheduler: SchedulerService) -> None:
    await refresh(services)
    now = services.clock.now()
    scheduler.schedule_sweep(
        "alerts-refresh", REFRESH_JOB, now=now, every=timedelta(seconds=TTL),
        first_after=timedelta(seconds=TTL),
    )  # fmt: skip
    scheduler.schedule_sweep(
        "alerts-flush", FLUSH_JOB, now=now, every=FLUSH_EVERY, first_after=FLUSH_EVERY
    )
    scheduler.schedule_sweep(
        "alerts-activity", ACTIVITY_JOB, now=now, every=ACTIVITY_EVERY,
        first_after=FIRST_CHECK_AFTER,
    )  # fmt: skip


def install(services: Services, scheduler: SchedulerService) -> None:
    """Register the alert jobs and their start-up on the scheduler."""
    scheduler.register(REFRESH_JOB, partial(refresh, services))
    scheduler.register(FLUSH_JOB, partial(flush, services))
    scheduler.register(ACTIVITY_JOB, partial(check_activity, services))
    scheduler.on_start(partial(_start, services))
