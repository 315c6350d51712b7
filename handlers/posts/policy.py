"""A community's rules for automatic posts, read from its settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from handlers.posts.compliance import WordList
from handlers.posts.quiet import QuietHours

DEFAULT_GRACE = timedelta(minutes=10)
MAX_GRACE = timedelta(hours=24)

# Keys in `Community.settings`.
QUIET_HOURS = "quiet_hours"
APPROVAL = "post_approval"
GRACE_MINUTES = "post_grace_minutes"
WORDS = "compliance_words"
PINGS = "post_pings"


@dataclass(frozen=True, slots=True)
class PostPolicy:
    """Quiet hours, the approval step, the grace window for late posts and the word list."""

    quiet: QuietHours | None = None
    approval: bool = False
    grace: timedelta = DEFAULT_GRACE
    words: WordList = field(default_factory=WordList)
    # Managers chose to let scheduled posts ping @everyone, @here and roles (Discord).
    pings: bool = False

    @classmethod
    def of(cls, settings: dict[str, Any] | None) -> PostPolicy:
        """Tolerant of missing or hand-edited values: anything unreadable means the default."""
        settings = settings or {}
        minutes = settings.get(GRACE_MINUTES)
        grace = DEFAULT_GRACE
        if isinstance(minutes, int) and not isinstance(minutes, bool) and minutes >= 0:
            grace = min(timedelta(minutes=minutes), MAX_GRACE)
        return cls(
            quiet=QuietHours.from_json(settings.get(QUIET_HOURS)),
            approval=settings.get(APPROVAL) is True,
            grace=grace,
            words=WordList.from_json(settings.get(WORDS)),
            pings=settings.get(PINGS) is True,
        )
