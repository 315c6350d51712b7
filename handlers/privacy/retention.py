"""Placeholder: being written this session."""

from __future__ import annotations

from handlers.core.context import Services
from handlers.core.router import Router
from scheduler.service import SchedulerService

router = Router("retention")


def install(services: Services, scheduler: SchedulerService) -> None:
    """Register the retention jobs."""
