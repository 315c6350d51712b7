"""Member segments (用户分群): rules in `rules`, `/segments` in `commands`, the daily summary's
lines in `summary` (`summary_lines`, re-exported here for `handlers.analytics`)."""

from handlers.segments.summary import summary_lines

__all__ = ["summary_lines"]
