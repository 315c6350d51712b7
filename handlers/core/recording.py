"""Neutral events -> activity records for the batched writer (who, where, when, what kind)."""

from __future__ import annotations

from handlers.core.events import (
    ChatKind,
    CommandEvent,
    ContentKind,
    Event,
    MemberJoined,
    MemberLeft,
    MessageEvent,
    ReactionAdded,
)
from storage.activity import ActivityKind, ActivityRecord


def activity_record(event: Event) -> ActivityRecord | None:
    """The record to log for an event, or None (bots, private chats, non-activity events)."""
    if event.actor.is_bot or event.chat.kind is ChatKind.PRIVATE:
        return None
    content: str | None = None
    length = 0
    is_reply = False
    if isinstance(event, MessageEvent):
        kind = ActivityKind.MESSAGE
        content, length, is_reply = str(event.content), event.length, bool(event.reply_to_user_id)
    elif isinstance(event, CommandEvent):
        kind = ActivityKind.MESSAGE
        content, length = ContentKind.COMMAND.value, event.length
    elif isinstance(event, ReactionAdded):
        kind = ActivityKind.REACTION
    elif isinstance(event, MemberJoined):
        kind = ActivityKind.JOIN
    elif isinstance(event, MemberLeft):
        kind = ActivityKind.LEAVE
    else:
        return None
    chat, actor = event.chat, event.actor
    # `str()` of a StrEnum is its value: a C call, where `.value` is a Python-level property
    # (this runs for every message).
    return ActivityRecord(
        kind=kind,
        platform=str(chat.platform),
        community_key=chat.community_id,
        chat_key=chat.chat_id,
        member_key=actor.user_id,
        member_name=actor.display_name,
        at=event.at,
        event_key=event.key,
        community_title=chat.community_name,
        chat_title=chat.title,
        chat_kind=str(chat.kind),
        member_username=actor.username,
        content=content,
        length=length,
        is_reply=is_reply,
    )
