"""The port every platform adapter implements so features can talk to chats."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from handlers.core.events import ChatRef, Platform, Role, UserRef
from handlers.core.outgoing import Capabilities, OutgoingMessage, OutgoingPoll, SentMessage


class GatewayError(Exception):
    """A send or edit the platform refused (the bot was removed, a message is gone, ...)."""


class PrivateMessageUnavailable(GatewayError):
    """The member cannot be messaged privately (never started the bot, DMs closed)."""


@runtime_checkable
class ChatGateway(Protocol):
    """Sends neutral output to one platform and answers questions only the platform can."""

    platform: Platform
    capabilities: Capabilities

    async def send(
        self, chat: ChatRef, message: OutgoingMessage, *, reply_to: str | None = None
    ) -> SentMessage:
        """Post a message in a chat."""
        ...

    async def edit(self, sent: SentMessage, message: OutgoingMessage) -> None:
        """Replace the text (and buttons) of a message the bot posted."""
        ...

    async def send_private(self, user: UserRef, message: OutgoingMessage) -> SentMessage:
        """Message a member privately; raises `PrivateMessageUnavailable` when impossible."""
        ...

    async def send_poll(self, chat: ChatRef, poll: OutgoingPoll) -> SentMessage:
        """Post a native poll, or the adapter's documented fallback."""
        ...

    async def close_poll(self, sent: SentMessage) -> None:
        """Stop a poll the bot posted."""
        ...

    async def role_of(self, chat: ChatRef, user: UserRef) -> Role:
        """The member's rank as the platform reports it (cached briefly by the adapter)."""
        ...

    async def member_count(self, chat: ChatRef) -> int | None:
        """How many members the chat has, when the platform says."""
        ...
