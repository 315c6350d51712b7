"""Placeholder: being written this session."""

from __future__ import annotations

from handlers.core.context import Services
from scheduler.service import SchedulerService


def install(services: Services, scheduler: SchedulerService) -> None:
    """Register this feature's jobs and hooks."""
