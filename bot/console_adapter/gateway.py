"""The console's `ChatGateway`: prints the bot's messages as plain text in the terminal."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bot.console_adapter.translate import CONSOLE_CHAT, ConsoleState
from handlers.core.events import ChatRef, Platform, Role, UserRef
from handlers.core.gateway import MemberProfile
from handlers.core.markup import to_plain
from handlers.core.outgoing import Capabilities, OutgoingMessage, OutgoingPoll, SentMessage

BOT_NAME = "commops"


@dataclass(frozen=True, slots=True)
class ConsoleOutput:
    """One thing the bot showed, as the person at the console saw it."""

    message_id: str
    text: str
    private_to: str | None = None


class ConsoleGateway:
    """Renders neutral output as plain text; buttons become numbered `/press N` choices."""

    platform = Platform.CONSOLE
    capabilities = Capabilities(
        native_polls=False,
        buttons=True,
        images=False,
        ephemeral=False,
        roles=False,
        private_messages=True,
        max_text_length=100_000,
    )

    def __init__(
        self,
        state: ConsoleState,
        write: Callable[[str], None] = print,
        *,
        images_dir: Path | None = None,
    ) -> None:
        self.state = state
        self.write = write
        self.shown: list[ConsoleOutput] = []
        self._ids = itertools.count(1)
        # A terminal shows no pictures: with a folder, images (charts) and files (data
        # exports) are saved there and their path printed, so features send them as they
        # would to a real chat.
        self.images_dir = images_dir
        if images_dir is not None:
            self.capabilities = replace(type(self).capabilities, images=True)

    def _save_image(self, message_id: str, message: OutgoingMessage) -> str:
        assert message.image is not None
        if self.images_dir is None:
            return f"[image: {message.image.alt or message.image.filename}]"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        path = self.images_dir / f"{message_id}-{Path(message.image.filename).name}"
        path.write_bytes(message.image.content)
        return f"[image saved: {path}]"

    def _save_document(self, message_id: str, message: OutgoingMessage) -> str:
        """Files (a member's data export) are saved like images, and their path printed."""
        assert message.document is not None
        name = Path(message.document.filename).name or "file"
        if self.images_dir is None:
            return f"[file: {name}, {len(message.document.content)} bytes, not saved]"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        path = self.images_dir / f"{message_id}-{name}"
        path.write_bytes(message.document.content)
        return f"[file saved: {path}]"

    def _show(self, message: OutgoingMessage, *, prefix: str, private_to: str | None) -> str:
        message_id = f"bot-{next(self._ids)}"
        body = to_plain(message.text)
        indent = " " * len(prefix)
        first, *rest = body.split("\n")
        lines = [prefix + first, *((indent + line) if line else "" for line in rest)]
        if message.image is not None:
            lines.append(indent + self._save_image(message_id, message))
        if message.document is not None:
            lines.append(indent + self._save_document(message_id, message))
        flat = [b for row in message.buttons for b in row]
        if flat:
            choices = "  ".join(f"[{i}] {b.label}" for i, b in enumerate(flat, 1))
            lines.append(" " * len(prefix) + choices + "   (/press N)")
            self.state.last_buttons = flat
            self.state.last_bot_message_id = message_id
        text = "\n".join(lines)
        self.write(text)
        self.shown.append(ConsoleOutput(message_id, body, private_to))
        return message_id

    async def send(
        self, chat: ChatRef, message: OutgoingMessage, *, reply_to: str | None = None
    ) -> SentMessage:
        message_id = self._show(message, prefix=f"{BOT_NAME} › ", private_to=None)
        return SentMessage(chat, message_id)

    async def edit(self, sent: SentMessage, message: OutgoingMessage) -> None:
        self._show(message, prefix=f"{BOT_NAME} (edited {sent.message_id}) › ", private_to=None)

    async def send_private(self, user: UserRef, message: OutgoingMessage) -> SentMessage:
        message_id = self._show(
            message,
            prefix=f"{BOT_NAME} → {user.display_name} (private) › ",
            private_to=user.user_id,
        )
        return SentMessage(CONSOLE_CHAT, message_id)

    async def send_poll(self, chat: ChatRef, poll: OutgoingPoll) -> SentMessage:
        # No native polls in a terminal: a numbered list the features pair with buttons.
        options = "\n".join(f"{i}. {text}" for i, text in enumerate(poll.options, 1))
        message_id = self._show(
            OutgoingMessage(f"{poll.question}\n{options}"), prefix=f"{BOT_NAME} › ", private_to=None
        )
        return SentMessage(chat, message_id, poll_id=message_id)

    async def close_poll(self, sent: SentMessage) -> None:
        self.write(f"{BOT_NAME} › (poll {sent.message_id} closed)")

    async def role_of(self, chat: ChatRef, user: UserRef) -> Role:
        # The console's "platform truth" is the operator's roster: `/as @name` makes a manager.
        return Role.MANAGER if user.display_name in self.state.managers else Role.MEMBER

    async def member_count(self, chat: ChatRef) -> int | None:
        return len(self.state.roster)

    async def profile(self, chat: ChatRef, user: UserRef) -> MemberProfile:
        # A terminal has no roles and no join dates: features fall back to what they recorded.
        return MemberProfile()
