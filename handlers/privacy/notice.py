"""The privacy notice: shown by `/privacy`, and sent once to members who join when a
manager switched it on (privately where the platform lets the bot, else in the chat)."""

from __future__ import annotations

import logging
from dataclasses import replace

from handlers.core.context import HandlerContext
from handlers.core.events import ChatRef, MemberJoined, UserRef
from handlers.core.gateway import ChatGateway, PrivateMessageUnavailable
from handlers.core.markup import mention
from handlers.core.outgoing import OutgoingMessage
from handlers.privacy.policy import notice_enabled, retention_days

log = logging.getLogger(__name__)


def notice(ctx: HandlerContext, **values: object) -> OutgoingMessage:
    """The `/privacy` notice in the community's language."""
    return ctx.render(
        "privacy/notice.j2",
        days=retention_days(ctx.services.features),
        notice_on=notice_enabled(ctx.community.settings),
        **values,
    )


def welcome(ctx: HandlerContext, who: UserRef, *, in_chat: bool) -> OutgoingMessage:
    """The notice a joining member gets; in the chat it names them (a mention)."""
    return ctx.render(
        "privacy/welcome.j2",
        days=retention_days(ctx.services.features),
        who=mention(who.user_id, who.display_name) if in_chat else None,
    )


async def deliver_welcome(
    gateway: ChatGateway,
    event: MemberJoined,
    private: OutgoingMessage,
    public: OutgoingMessage,
) -> None:
    """Privately if the platform can and the member accepts it, else in the chat."""
    if gateway.capabilities.private_messages:
        try:
            await gateway.send_private(event.actor, private)
            return
        except PrivateMessageUnavailable:
            pass  # e.g. a Telegram member who never started the bot: the chat it is
        except Exception:
            log.warning("privacy notice: private message failed", exc_info=True)
    await _send_in_chat(gateway, event.chat, replace(public, silent=True))


async def _send_in_chat(gateway: ChatGateway, chat: ChatRef, message: OutgoingMessage) -> None:
    try:
        await gateway.send(chat, message)
    except Exception:
        # At most once per member: the marker is committed; a lost notice is not retried.
        log.warning("privacy notice could not be posted in %s", chat.chat_id, exc_info=True)
