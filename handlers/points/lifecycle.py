"""Wiring of the points feature: message points are awarded by the activity writer."""

from __future__ import annotations

from handlers.core.context import Services
from handlers.points.messages import MessagePoints
from scheduler.service import SchedulerService


def install(services: Services, scheduler: SchedulerService) -> None:
    """Add the message-points hook to the activity writer (once, however often called).

    Points need no timers: the ledger is written when things happen, and weekly or
    monthly leaderboards are windows over it.
    """
    hooks = services.activity.hooks
    if not any(isinstance(hook, MessagePoints) for hook in hooks):
        hooks.append(MessagePoints(services.features))
