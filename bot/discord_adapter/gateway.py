"""The `ChatGateway` for Discord: neutral output -> discord.py calls.

The neutral Markdown subset is a subset of Discord's, and its backslash escapes are
Discord's too, so text passes through; what Discord needs on top is a mention policy
(posts never ping @everyone, @here or roles) and the 2,000-character limit, handled by
splitting at line breaks. Reports and announcements (a bold title line and a body) are
sent as embeds; `embeds.py` states the rule. Images and documents are attachments (an
embedded message shows its image inside the embed). Buttons carry their payload as
`custom_id` and are answered by the adapter's interaction listener, so they keep working
after a restart. Edits keep the files a message already has and attach no new ones.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import discord

from bot.discord_adapter.embeds import embed_layout, pings
from handlers.core.events import ChatKind, ChatRef, Platform, Role, UserRef
from handlers.core.gateway import GatewayError, MemberProfile, PrivateMessageUnavailable
from handlers.core.markup import mentioned_ids, replace_mentions, split_message
from handlers.core.outgoing import (
    Button,
    Capabilities,
    OutgoingMessage,
    OutgoingPoll,
    SentMessage,
)

log = logging.getLogger(__name__)

MAX_CONTENT = 2000
MAX_POLL_ANSWERS = 10
# Discord polls last at most 32 days; commops closes them itself when they are due earlier.
POLL_DURATION = timedelta(days=32)
MAX_POLL_QUESTION = 300
MAX_POLL_ANSWER = 55
NO_MENTIONS = discord.AllowedMentions.none()


def poll_duration(closes_at: datetime | None, now: datetime) -> timedelta:
    """How long Discord keeps the poll open: whole hours (at least one) until commops closes
    it, so it also ends about then should the bot be away; 32 days without a close time."""
    if closes_at is None:
        return POLL_DURATION
    hours = math.ceil((closes_at - now).total_seconds() / 3600)
    return min(max(timedelta(hours=hours), timedelta(hours=1)), POLL_DURATION)


def button_view(buttons: tuple[tuple[Button, ...], ...]) -> discord.ui.View | None:
    """Neutral button rows -> a view whose buttons carry their payload as `custom_id`."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for row_index, row in enumerate(buttons):
        for button in row:
            if len(button.data) > 100:
                raise GatewayError(f"button data over 100 characters: {button.data[:20]}…")
            view.add_item(
                discord.ui.Button(
                    label=button.label[:80],
                    custom_id=button.data,
                    style=discord.ButtonStyle.primary,
                    row=min(row_index, 4),
                )
            )
    return view


def _files(message: OutgoingMessage) -> list[discord.File]:
    """The message's image and document as attachments (fresh objects: a file sends once)."""
    files: list[discord.File] = []
    if message.image is not None:
        files.append(
            discord.File(
                io.BytesIO(message.image.content),
                filename=message.image.filename,
                description=message.image.alt or None,
            )
        )
    if message.document is not None:
        files.append(
            discord.File(io.BytesIO(message.document.content), filename=message.document.filename)
        )
    return files


def member_role(member: discord.Member, manager_role: str | None) -> Role:
    """A guild member's privilege: the owner, Manage Server or the configured role, else a
    member. discord.py keeps members and roles current from gateway events: no cache here."""
    if member.guild.owner_id == member.id:
        return Role.OWNER
    if member.guild_permissions.manage_guild:
        return Role.MANAGER
    if manager_role and any(
        r.name == manager_role or str(r.id) == manager_role for r in member.roles
    ):
        return Role.MANAGER
    return Role.MEMBER


class DiscordGateway:
    """Sends through a discord.py client; manager checks from Manage Server or a role."""

    platform = Platform.DISCORD
    capabilities = Capabilities(
        native_polls=True,
        buttons=True,
        images=True,
        ephemeral=False,
        roles=True,
        private_messages=True,
        max_text_length=MAX_CONTENT,
        anonymous_polls=False,  # everyone can see who voted for what in a Discord poll
        max_poll_duration=POLL_DURATION,
        max_poll_option_length=MAX_POLL_ANSWER,
    )

    def __init__(
        self,
        client: discord.Client,
        *,
        manager_role: str | None = None,
        allowed_mentions: discord.AllowedMentions = NO_MENTIONS,
    ) -> None:
        self.client = client
        self.manager_role = manager_role
        self.allowed_mentions = allowed_mentions

    async def _channel(self, chat_id: str) -> Any:
        channel = self.client.get_channel(int(chat_id))
        if channel is None:
            try:
                channel = await self.client.fetch_channel(int(chat_id))
            except discord.HTTPException as exc:
                raise GatewayError(f"channel {chat_id}: {exc.text or exc}") from exc
        return channel

    def _compose(self, message: OutgoingMessage) -> list[dict[str, Any]]:
        """The Discord messages (send keyword arguments) one neutral message becomes: its
        embeds, or plain text split at line breaks. The view and files go on the last piece
        of the message itself; pings that did not fit the embeds' contents follow it."""
        text, allowed = self._mentions(message.text, mass=message.mass_mentions)
        layout = embed_layout(message, text)
        extra: list[dict[str, Any]] = []
        if layout is not None:
            parts: list[dict[str, Any]] = [{"content": None, "embed": e} for e in layout.embeds()]
            for index, content in enumerate(pings(message.text, MAX_CONTENT)):
                if index < len(parts):
                    parts[index]["content"] = content
                else:
                    extra.append({"content": content})
        else:
            parts = [{"content": piece or None} for piece in split_message(text, MAX_CONTENT)]
        view = button_view(message.buttons)
        if view is not None:
            parts[-1]["view"] = view
        files = _files(message)
        if files:
            parts[-1]["files"] = files
        parts += extra
        for part in parts:
            part["allowed_mentions"] = allowed
        return parts

    async def _deliver(
        self, target: Any, message: OutgoingMessage, reference: Any = None
    ) -> discord.Message:
        """Send to a channel or user; the first piece answers `reference`."""
        last: discord.Message | None = None
        for index, kwargs in enumerate(self._compose(message)):
            kwargs["silent"] = message.silent
            if index == 0 and reference is not None:
                kwargs["reference"] = reference
                kwargs["mention_author"] = False
            last = await target.send(**kwargs)
        assert last is not None
        return last

    def _mentions(self, text: str, *, mass: bool = False) -> tuple[str, discord.AllowedMentions]:
        """Neutral mentions become `<@id>`; only the members named so are pinged, plus
        @everyone, @here and roles when the message says managers allowed it."""
        base = self.allowed_mentions
        if mass:
            base = base.merge(discord.AllowedMentions(everyone=True, roles=True))
        ids = [i for i in mentioned_ids(text) if i.isdigit()]
        if not ids:
            return text, base
        allowed = base.merge(discord.AllowedMentions(users=[discord.Object(int(i)) for i in ids]))
        return replace_mentions(text, lambda user_id, _name: f"<@{user_id}>"), allowed

    async def send(
        self, chat: ChatRef, message: OutgoingMessage, *, reply_to: str | None = None
    ) -> SentMessage:
        channel = await self._channel(chat.chat_id)
        reference = (
            discord.MessageReference(
                message_id=int(reply_to), channel_id=int(chat.chat_id), fail_if_not_exists=False
            )
            if reply_to and reply_to.isdigit()
            else None
        )
        try:
            sent = await self._deliver(channel, message, reference)
        except discord.HTTPException as exc:
            raise GatewayError(f"send to {chat.chat_id}: {exc.text or exc}") from exc
        return SentMessage(chat, str(sent.id))

    async def edit(self, sent: SentMessage, message: OutgoingMessage) -> None:
        channel = await self._channel(sent.chat.chat_id)
        text, allowed = self._mentions(message.text, mass=message.mass_mentions)
        layout = embed_layout(message, text)
        kwargs: dict[str, Any]
        if layout is not None and len(layout.descriptions) == 1:
            # An edit pings nobody (Discord notifies mentions when a message is sent), so
            # the content only keeps naming who the embed mentions.
            named = pings(message.text, MAX_CONTENT)
            kwargs = {"content": named[0] if named else None, "embeds": layout.embeds()}
        else:
            if len(text) > MAX_CONTENT:
                # A sent message can't become several; edited messages are short in practice.
                log.warning("edit of %s cut to %d characters", sent.message_id, MAX_CONTENT)
            kwargs = {"content": text[:MAX_CONTENT], "embeds": []}
        try:
            await channel.get_partial_message(int(sent.message_id)).edit(
                view=button_view(message.buttons), allowed_mentions=allowed, **kwargs
            )
        except discord.HTTPException as exc:
            raise GatewayError(f"edit {sent.message_id}: {exc.text or exc}") from exc

    async def send_private(self, user: UserRef, message: OutgoingMessage) -> SentMessage:
        try:
            target = self.client.get_user(int(user.user_id)) or await self.client.fetch_user(
                int(user.user_id)
            )
            sent = await self._deliver(target, message)
        except discord.Forbidden as exc:
            # The member closed DMs from server members, or blocked the bot.
            raise PrivateMessageUnavailable(user.user_id) from exc
        except discord.HTTPException as exc:
            raise GatewayError(f"DM to {user.user_id}: {exc.text or exc}") from exc
        chat = ChatRef(
            Platform.DISCORD, str(sent.channel.id), str(sent.channel.id), None, ChatKind.PRIVATE
        )
        return SentMessage(chat, str(sent.id))

    async def send_poll(self, chat: ChatRef, poll: OutgoingPoll) -> SentMessage:
        if not 1 <= len(poll.options) <= MAX_POLL_ANSWERS:
            raise GatewayError(f"a Discord poll takes 1 to {MAX_POLL_ANSWERS} answers")
        if len(poll.question) > MAX_POLL_QUESTION or any(
            len(o) > MAX_POLL_ANSWER for o in poll.options
        ):
            # Never trimmed silently: the poll feature checks these limits before it gets here.
            raise GatewayError("a Discord poll question or answer is too long")
        native = discord.Poll(
            question=poll.question,
            duration=poll_duration(poll.closes_at, datetime.now(UTC)),
            multiple=poll.multiple,
        )
        for option in poll.options:
            native.add_answer(text=option)
        channel = await self._channel(chat.chat_id)
        try:
            sent = await channel.send(poll=native, allowed_mentions=self.allowed_mentions)
        except discord.HTTPException as exc:
            raise GatewayError(f"poll in {chat.chat_id}: {exc.text or exc}") from exc
        return SentMessage(chat, str(sent.id), poll_id=str(sent.id))

    async def close_poll(self, sent: SentMessage) -> None:
        channel = await self._channel(sent.chat.chat_id)
        try:
            message = await channel.fetch_message(int(sent.message_id))
            await message.end_poll()
        except discord.HTTPException as exc:
            raise GatewayError(f"end poll {sent.message_id}: {exc.text or exc}") from exc

    async def role_of(self, chat: ChatRef, user: UserRef) -> Role:
        member = await self._member(chat, user)
        if member is None:
            return Role.MEMBER
        return member_role(member, self.manager_role)

    async def member_count(self, chat: ChatRef) -> int | None:
        guild = self.client.get_guild(int(chat.community_id))
        return guild.member_count if guild is not None else None

    async def profile(self, chat: ChatRef, user: UserRef) -> MemberProfile:
        member = await self._member(chat, user)
        if member is None:
            return MemberProfile()
        roles = frozenset(
            name for r in member.roles if not r.is_default() for name in (r.name.lower(), str(r.id))
        )
        return MemberProfile(roles=roles, joined_at=member.joined_at)

    async def _member(self, chat: ChatRef, user: UserRef) -> discord.Member | None:
        if chat.kind is ChatKind.PRIVATE:
            return None
        guild = self.client.get_guild(int(chat.community_id))
        if guild is None:
            return None
        member = guild.get_member(int(user.user_id))
        if member is None:
            try:
                member = await guild.fetch_member(int(user.user_id))
            except discord.HTTPException:
                return None
        return member


class InteractionGateway(DiscordGateway):
    """The gateway for one slash command or button press: the first reply answers the
    interaction (ephemeral when private), later ones are follow-ups."""

    capabilities = replace(DiscordGateway.capabilities, ephemeral=True)

    def __init__(self, base: DiscordGateway, interaction: discord.Interaction) -> None:
        super().__init__(
            base.client, manager_role=base.manager_role, allowed_mentions=base.allowed_mentions
        )
        self.interaction = interaction

    async def send(
        self, chat: ChatRef, message: OutgoingMessage, *, reply_to: str | None = None
    ) -> SentMessage:
        if chat.chat_id != str(self.interaction.channel_id):
            return await super().send(chat, message, reply_to=reply_to)
        response = self.interaction.response
        try:
            for kwargs in self._compose(message):
                kwargs["ephemeral"] = message.private
                if not response.is_done():
                    await response.send_message(**kwargs)
                    sent = await self.interaction.original_response()
                else:
                    sent = await self.interaction.followup.send(wait=True, **kwargs)
        except discord.HTTPException as exc:
            raise GatewayError(f"interaction reply: {exc.text or exc}") from exc
        return SentMessage(chat, str(sent.id))
