"""Posting after the unit of work commits: a button or a reply must never point at a row
that was rolled back. Each step records what it posted in a short unit of work of its own."""

from __future__ import annotations

import logging

from handlers.core.context import Services
from handlers.core.events import ChatRef
from handlers.core.gateway import ChatGateway
from handlers.core.outgoing import OutgoingMessage, SentMessage
from storage import qa as store
from storage.models import QaSession

log = logging.getLogger(__name__)


async def publish_question(
    services: Services,
    gateway: ChatGateway,
    chat: ChatRef,
    question_id: int,
    message: OutgoingMessage,
    reply_to: str | None,
) -> None:
    """Post a new question with its Upvote button and remember the message, which the
    answer later replies to. If the platform refuses, the question still waits in the
    queue (`/qa list`, `/qa next`): it was accepted, only its post is missing."""
    try:
        sent = await gateway.send(chat, message, reply_to=reply_to)
    except Exception:
        log.exception("qa question %s could not be posted", question_id)
        return
    async with services.db.session() as session:
        await store.set_message_id(session, question_id, sent.message_id)


async def post_answer(
    gateway: ChatGateway,
    chat: ChatRef,
    answer: OutgoingMessage,
    *,
    question_message_id: str | None,
    settled: OutgoingMessage,
) -> None:
    """Post an answer as a reply to its question, then take the question's Upvote
    button away (`settled` is the question as it reads now)."""
    await gateway.send(chat, answer, reply_to=question_message_id)
    await settle_question(gateway, chat, question_message_id, settled)


async def settle_question(
    gateway: ChatGateway, chat: ChatRef, message_id: str | None, settled: OutgoingMessage
) -> None:
    """Edit an answered or dismissed question's post; a message that is gone costs nothing."""
    if message_id is None:
        return
    try:
        await gateway.edit(SentMessage(chat, message_id), settled)
    except Exception:
        log.warning("qa question message %s could not be edited", message_id, exc_info=True)


async def publish_recap(
    services: Services,
    gateway: ChatGateway,
    chat: ChatRef,
    qa_session: QaSession,
    recap: OutgoingMessage,
) -> None:
    """Post the closing recap and remember where it is."""
    sent = await gateway.send(chat, recap)
    async with services.db.session() as session:
        row = await store.get_session(session, qa_session.id)
        if row is not None:
            row.recap_message_id = sent.message_id
