"""Member segments (用户分群): the rules, their names, and reference days.

Every member of a community is in exactly one segment on a reference day D (a calendar day
in the community's time zone; `/segments` uses today). The first rule that matches wins:

1. **new** (新成员): joined on D or the 6 days before it (a join the bot saw: platforms tell
   bots about joins where the bot may see them). New wins over everything else, so a
   newcomer who is already very active shows up as new for their first week.
2. **lurker** (潜水): never sent a message (up to D). Reactions alone don't count as posting.
3. **core** (核心): sent messages on at least 4 of the last 7 days (D and the 6 before it).
4. **casual** (普通): sent a message in the last 7 days, but on fewer than 4 of them.
5. **at risk** (流失风险): silent for 7 to 14 days: their last message was 7 to 14 days
   before D, so they were core or casual a week ago (active in days 8–14) and have gone
   quiet since.
6. **dormant** (沉睡): silent for more than 14 days.

"Active on a day" means at least one message that day (`member_days.messages > 0`, as in the
daily active members count); "silent N days" means the last message was N days before D.
Members who left are not counted; members who opted out are counted but never listed by name.

Movement compares D with D − 7: the same rules applied a week earlier, so managers see how
many members moved from which segment to which, who joined since and who left.
Everything is computed from `member_days` and `memberships` (never raw events), by
`storage.segments` in one grouped query.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from storage.segments import (
    AT_RISK,
    CASUAL,
    CORE,
    DORMANT,
    LURKER,
    NEW,
    NEW_DAYS,
    SEGMENTS,
    Reference,
)

__all__ = ["SEGMENTS", "Reference", "reference", "segment_named", "week_before"]

# What managers may type after `/segments`, folded (NFKC, lower case, `-`, `_` and spaces
# removed), in English and Chinese.
_NAMES = {
    NEW: ("new", "newcomer", "newcomers", "newmembers", "新", "新人", "新成员", "新用户", "新手"),
    CORE: ("core", "active", "核心", "核心成员", "核心用户", "活跃", "活跃成员"),
    CASUAL: ("casual", "occasional", "普通", "普通成员", "一般", "偶尔", "休闲"),
    AT_RISK: (
        "atrisk", "risk", "risky", "churning", "风险", "流失风险", "有流失风险", "流失预警",
        "预警", "即将流失",
    ),
    DORMANT: ("dormant", "inactive", "sleeping", "沉睡", "沉默", "休眠", "流失", "不活跃"),
    LURKER: ("lurker", "lurkers", "silent", "潜水", "潜水者", "潜水员", "潜水成员", "旁观"),
}  # fmt: skip
_LOOKUP = {alias: key for key, aliases in _NAMES.items() for alias in aliases}


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if ch not in "-_ ·")


def segment_named(text: str) -> str | None:
    """The segment key a manager means (`at-risk`, `At Risk`, `流失风险`), or None."""
    return _LOOKUP.get(_fold(text))


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def reference(day: date, tz: ZoneInfo) -> Reference:
    """The bounds of reference day `day` in the community's zone, in UTC."""
    return Reference(
        day=day,
        end=_midnight(day + timedelta(days=1), tz),
        new_since=_midnight(day - timedelta(days=NEW_DAYS - 1), tz),
    )


def week_before(ref: Reference, tz: ZoneInfo) -> Reference:
    """The reference day a week earlier: what movement is measured against."""
    return reference(ref.day - timedelta(days=7), tz)
