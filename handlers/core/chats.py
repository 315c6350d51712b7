"""Chats stored on feature rows (a giveaway's, a post's) back as neutral chat references."""

from __future__ import annotations

from typing import Protocol

from handlers.core.events import ChatKind, ChatRef, Platform
from storage.models import Community


class StoredChat(Protocol):
    chat_id: str
    chat_title: str | None
    chat_kind: str


def chat_of(row: StoredChat, community: Community) -> ChatRef:
    """Where a feature row posts, as a neutral chat reference."""
    return ChatRef(
        platform=Platform(community.platform),
        chat_id=row.chat_id,
        community_id=community.external_id,
        title=row.chat_title,
        kind=ChatKind(row.chat_kind),
        community_title=community.title,
    )
