"""Message points, written by the activity writer inside each batch's own transaction.

A member earns `rules.message` points per message, at most `message_daily_cap` points per
local day (the community's time zone), and only when `message_min_gap_seconds` have passed
since their last rewarded message, so flooding a chat earns nothing. Commands are not
messages here. Each award's `ref` is the message's event key: a replayed message adds nothing.

Cost per batch, whatever its size: one query for the communities' settings, one grouped
query for the members' message points today (and their last award), one multi-row insert.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.events import ContentKind
from handlers.points.rules import PointsRules, points_rules
from storage import points as ledger
from storage.activity import ActivityKind, WrittenActivity, zone
from storage.points import Award, PointsReason

log = logging.getLogger(__name__)

# PostgreSQL's deadlock and serialization failures: the writer retries the whole batch.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})


def message_ref(chat_key: str, event_key: str) -> str:
    """The ledger ref of one message: event keys are unique per chat, not per community."""
    ref = f"{chat_key}/{event_key}"
    if len(ref) <= 128:
        return ref
    return "h:" + hashlib.sha256(ref.encode()).hexdigest()


def _zone(name: str) -> ZoneInfo:
    try:
        return zone(name)
    except Exception:  # a hand-edited time zone: count days in UTC rather than not at all
        return zone("UTC")


def day_window(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """A local calendar day as a UTC [start, end) interval (23 or 25 hours on DST days)."""
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def _transient(exc: BaseException) -> bool:
    """Failures after which the same batch succeeds when tried again (the writer retries)."""
    if isinstance(exc, OperationalError | InterfaceError | OSError | ConnectionError):
        return True
    return isinstance(exc, DBAPIError) and (getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES)


@dataclass(frozen=True, slots=True)
class _Message:
    community_id: int
    user_id: str
    name: str
    at: datetime
    ref: str
    window: int


class MessagePoints:
    """The activity writer's batch hook that awards message points."""

    def __init__(self, features: dict[str, Any]) -> None:
        # The live dict of config sections: rules are read per batch, never cached stale.
        self.features = features

    async def __call__(self, session: AsyncSession, written: Sequence[WrittenActivity]) -> None:
        messages = [
            w
            for w in written
            if w.record.kind is ActivityKind.MESSAGE
            and w.record.content != ContentKind.COMMAND.value
        ]
        if not messages:
            return
        try:
            # A savepoint: if awarding fails, the activity itself still commits.
            async with session.begin_nested():
                await self._award(session, messages)
        except Exception as exc:
            if _transient(exc):
                raise
            log.exception("message points of a batch of %d not awarded", len(messages))

    async def _award(self, session: AsyncSession, messages: Sequence[WrittenActivity]) -> int:
        settings = await ledger.settings_of(session, {w.community_id for w in messages})
        rules: dict[int, PointsRules] = {
            cid: points_rules(self.features, value if isinstance(value, dict) else None)
            for cid, value in settings.items()
        }
        windows: dict[tuple[datetime, datetime], int] = {}
        todo: list[_Message] = []
        for w in messages:
            r = rules.get(w.community_id)
            if r is None or r.message <= 0 or r.message_daily_cap <= 0:
                continue
            rec = w.record
            tz = _zone(w.timezone)
            span = day_window(rec.at.astimezone(tz).date(), tz)
            index = windows.setdefault(span, len(windows))
            ref = message_ref(rec.chat_key, rec.event_key)
            todo.append(
                _Message(w.community_id, rec.member_key, rec.member_name, rec.at, ref, index)
            )
        if not todo:
            return 0
        spans = sorted(windows, key=windows.__getitem__)
        longest_gap = max(rules[m.community_id].message_min_gap_seconds for m in todo)
        since = min(start for start, _ in spans) - timedelta(seconds=longest_gap)
        recent = await ledger.recent_message_points(
            session, {(m.community_id, m.user_id) for m in todo}, spans, since=since
        )
        earned: dict[tuple[int, str, int], int] = {}
        last: dict[tuple[int, str], datetime | None] = {}
        for key, found in recent.items():
            last[key] = found.last_at
            for index, amount in enumerate(found.per_window):
                earned[(*key, index)] = amount
        awards: list[tuple[int, Award, datetime]] = []
        for m in sorted(todo, key=lambda m: m.at):
            r = rules[m.community_id]
            member = (m.community_id, m.user_id)
            previous = last.get(member)
            if previous is not None and m.at < previous + timedelta(
                seconds=r.message_min_gap_seconds
            ):
                continue  # too soon after the last rewarded message (or older than it)
            today = earned.get((*member, m.window), 0)
            amount = min(r.message, r.message_daily_cap - today)
            if amount <= 0:
                continue
            awards.append(
                (
                    m.community_id,
                    Award(m.user_id, m.name, amount, PointsReason.MESSAGE, m.ref),
                    m.at,
                )
            )
            earned[(*member, m.window)] = today + amount
            last[member] = m.at
        return await ledger.award_many(session, awards)
