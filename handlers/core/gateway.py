"""The port every platform adapter implements so features can talk to chats."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from handlers.core.events import ChatRef, Platform, Role, UserRef
from handlers.core.outgoing import Capabilities, OutgoingMessage, OutgoingPoll, SentMessage


class GatewayError(Exception):
    """A send or edit the platform refused (the bot was removed, a message is gone, ...)."""


class PrivateMessageUnavailable(GatewayError):
    """The member cannot be messaged privately (never started the bot, DMs closed)."""


@dataclass(frozen=True, slots=True)
class MemberProfile:
    """What the platform says about a member: `None` means the platform can't tell."""

    roles: frozenset[str] | None = None  # role names and ids, lower-cased
    joined_at: datetime | None = None


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

    async def profile(self, chat: ChatRef, user: UserRef) -> MemberProfile:
        """The member's roles and join date in the chat's community, as far as the platform says."""
        ...


class GatewayUnavailable(GatewayError):
    """No adapter for that platform is connected (yet) in this process."""


class GatewayRegistry:
    """The connected adapters' gateways, for work that starts from a timer, not a chat event."""

    def __init__(self) -> None:
        self._gateways: dict[Platform, ChatGateway] = {}
        self._changed = asyncio.Event()

    def register(self, gateway: ChatGateway) -> None:
        """Called by an adapter once it can send."""
        self._gateways[gateway.platform] = gateway
        self._changed.set()
        self._changed = asyncio.Event()

    def get(self, platform: Platform | str) -> ChatGateway | None:
        return self._gateways.get(Platform(platform))

    async def wait(self, platform: Platform | str, within: float = 30.0) -> ChatGateway:
        """The platform's gateway, waiting up to `within` seconds for its adapter to connect;
        raises `GatewayUnavailable` after that."""
        platform = Platform(platform)
        try:
            async with asyncio.timeout(within):
                while (found := self._gateways.get(platform)) is None:
                    await self._changed.wait()
        except TimeoutError:
            raise GatewayUnavailable(f"no {platform.value} adapter connected") from None
        return found
