"""Writing alert hits and telling the managers, for the message path and the timers alike.

Alerts go to the community's managers' chat (`/settings managers here`) and nowhere else:
not the main chat (members would read alerts about themselves, and mentions there would
ping the people named), and not a manager's private chat (bots often can't start one, and
which manager should it be?). Without a managers' chat, alerts are still recorded (the
daily summary lists them, `/watch` shows them) and `/watch` says where to turn them on; the
first hit after a managers' chat is chosen tells the managers about the storm so far.
On Telegram a community is one group, so its managers' chat can only be that group: alerts
are then posted there, as the managers chose (`/settings managers here` warns about it).

Members are named with a mention, except those who opted out (`/optout`), who are counted.
Never any message text: there is no switch for storing it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.alerts.state import DROP, NEGATIVE, SURGE, WORD, Pending
from handlers.core.context import Services
from handlers.core.events import ChatRef, Platform
from handlers.core.gateway import ChatGateway
from handlers.core.markup import Safe, mention
from handlers.settings import special_chat
from storage import alerts as store
from storage.activity import zone
from storage.models import Community

log = logging.getLogger(__name__)

# A storm of the same alert is one message; "still going" at most once per cooldown.
COOLDOWNS = {
    WORD: timedelta(hours=1),
    NEGATIVE: timedelta(hours=1),
    # Activity is checked hour by hour: one follow-up per 3 hours of an unusual day is enough.
    SURGE: timedelta(hours=3),
    DROP: timedelta(hours=3),
}


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """One message to send to the managers about an alert row."""

    alert_id: int
    kind: str
    subject: str
    notice: store.Notice
    count: int  # hits on the row so far
    more: int  # hits since the managers were last told
    first_at: datetime
    previous_notified_at: datetime | None
    noticed_before: int
    detail: dict[str, Any]
    named: tuple[Safe, ...] = ()  # mentions of the members it concerns
    unnamed: int = 0  # members it concerns who opted out


def managers_chat(community: Community) -> ChatRef | None:
    """The community's managers' chat, if a manager chose one."""
    chosen = special_chat(community.settings or {}, "managers")
    if not chosen or not chosen.get("id"):
        return None
    return ChatRef(
        Platform(community.platform),
        str(chosen["id"]),
        community.external_id,
        chosen.get("title") or None,
        community_title=community.title,
    )


def _detail(item: Pending) -> dict[str, Any]:
    """What the row keeps: chats and numbers. Never text, and no member: who is named only
    in the message sent (so `/forgetme` has nothing to find here)."""
    return {
        "chats": [{"id": chat_id, "title": title} for chat_id, title in item.chats.items()],
        **item.numbers,
    }


async def write(
    session: AsyncSession, community: Community, batch: Sequence[Pending], *, now: datetime
) -> list[AlertNotice]:
    """Record `batch` on the community's alert rows; the notices this caller must send."""
    notify = managers_chat(community) is not None
    named_ids = [user_id for item in batch for user_id in item.members]
    hidden = await store.opted_out(session, community.id, community.platform, named_ids)
    notices: list[AlertNotice] = []
    for item in batch:
        recorded = await store.record(
            session,
            community.id,
            item.kind,
            item.subject,
            now=now,
            count=item.count,
            detail=_detail(item),
            cooldown=COOLDOWNS[item.kind],
            notify=notify,
        )
        if recorded is None or recorded.notice is None:
            continue
        notices.append(_notice(recorded, item.members, hidden))
    return notices


def notice_of(recorded: store.Recorded) -> AlertNotice:
    """A notice about a recorded hit that names nobody (activity alerts)."""
    return _notice(recorded, {}, set())


def _notice(recorded: store.Recorded, members: dict[str, str], hidden: set[str]) -> AlertNotice:
    alert = recorded.alert
    assert recorded.notice is not None
    return AlertNotice(
        alert_id=alert.id,
        kind=alert.kind,
        subject=alert.subject,
        notice=recorded.notice,
        count=alert.count,
        more=recorded.more,
        first_at=alert.first_at,
        previous_notified_at=recorded.previous_notified_at,
        noticed_before=alert.count - recorded.more,
        detail=dict(alert.detail),
        named=tuple(mention(i, name) for i, name in members.items() if i not in hidden),
        unnamed=sum(1 for i in members if i in hidden),
    )


async def deliver(
    services: Services,
    community: Community,
    notices: Iterable[AlertNotice],
    gateway: ChatGateway | None = None,
) -> int:
    """Send the notices to the managers' chat; a notice that can't be sent gives its claim
    back (so a later hit tries again). Returns how many were sent; never raises."""
    notices = list(notices)
    if not notices:
        return 0
    chat = managers_chat(community)
    gateway = gateway or services.gateways.get(community.platform)
    sent = 0
    for notice in notices:
        try:
            if chat is None or gateway is None:
                raise LookupError("no managers' chat or no gateway")
            message = services.renderer.message(
                "alerts/alert.j2",
                community.locale,
                a=notice,
                community=community,
                tz=zone(community.timezone),
            )
            await gateway.send(chat, message)
            sent += 1
        except Exception:
            log.warning(
                "alert %s could not be sent to the managers", notice.alert_id, exc_info=True
            )
            await _give_back(services, notice)
    return sent


async def _give_back(services: Services, notice: AlertNotice) -> None:
    try:
        async with services.db.session() as session:
            await store.unclaim(
                session,
                notice.alert_id,
                notified_at=notice.previous_notified_at,
                noticed=notice.noticed_before,
            )
    except Exception:
        log.exception("alert %s: the notice claim could not be given back", notice.alert_id)
