"""discord.py model objects -> neutral events. Pure: no network, no clock unless defaulted.

What becomes what (see the tests for a recorded gateway payload of each kind):

- guild and DM messages (`on_message`) -> `MessageEvent` (kind and length; `text` is kept in
  memory only). The chat of a thread message is the thread's parent channel (threads count toward
  their parent's chat and community), with `thread_id` set. System messages (joins, pins, boosts,
  thread created, ...: any `message.type` other than default or reply) -> nothing.
- a message starting with the configured text prefix (``!stats 7d``) -> `CommandEvent`, always
  addressed (a prefix is this bot's own). Bots and webhooks never issue commands: their messages
  are plain `MessageEvent`s whose actor has `is_bot=True` (the recorder skips them).
- the bot's own messages -> nothing.
- edits -> nothing: there is no edit translation, the adapter does not subscribe to
  `on_message_edit` / `on_raw_message_edit`. Should an edited message reach `translate_message`
  anyway it has the same key (``m:<id>``) as the original, so the activity writer keeps one.
- member join/leave -> `MemberJoined` / `MemberLeft` on the guild's "membership chat" (see
  `membership_chat`), keyed like Telegram's (``join:<user>:<epoch minute>``).
- reaction adds -> `ReactionAdded`; removals -> nothing.
- button presses -> `ButtonPressed`; other components (select menus) -> nothing.
- slash commands -> `CommandEvent` (the adapter flattens the options into `args`).
- poll vote adds and removals -> `PollVote` with `change` ADD or REMOVE and the one answer as a
  0-based option (Discord numbers answers from 1; a poll may allow several answers and each
  arrives alone, so a removal takes back that answer only).
- the bot added to a guild (`on_guild_join`) or removed from one (`on_guild_remove`: kicked,
  banned, left, or the guild deleted) -> `BotMembershipChanged` with `present` True or False,
  on the guild's membership chat. Discord does not say who added or removed the bot (only
  the audit log does), so the actor is the bot itself.

Channels: pass what discord.py gives (`TextChannel`, `Thread`, `DMChannel`, ... or a
`PartialMessageable` when the guild or channel is not cached). Ids are strings, times aware UTC.
"""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime

import discord

from handlers.core.events import (
    BotMembershipChanged,
    ButtonPressed,
    ChatKind,
    ChatRef,
    CommandEvent,
    ContentKind,
    Event,
    MemberJoined,
    MemberLeft,
    MessageEvent,
    Platform,
    PollVote,
    ReactionAdded,
    UserRef,
    VoteChange,
)

P = Platform.DISCORD

# Only these carry something a member wrote; every other type is a system message.
_MEMBER_MESSAGES = frozenset({discord.MessageType.default, discord.MessageType.reply})

_User = discord.User | discord.Member | discord.ClientUser
_Channel = (
    discord.abc.GuildChannel
    | discord.Thread
    | discord.abc.PrivateChannel
    | discord.PartialMessageable
)


def _utc(at: datetime) -> datetime:
    """An aware UTC datetime (discord.py already gives aware UTC; this guards naive input)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _now(now: datetime | None) -> datetime:
    """`now` as aware UTC, or the wall clock (for payloads that carry no time of their own)."""
    return _utc(now) if now is not None else datetime.now(UTC)


def chat_ref(channel: _Channel) -> ChatRef:
    """A Discord channel as a neutral chat; a thread is its parent channel's chat."""
    if isinstance(channel, discord.Thread):
        parent = channel.parent
        if parent is not None:
            return chat_ref(parent)
        # Parent not cached: its id is still known, its name is not.
        return _guild_chat(channel.parent_id, channel.guild, None)
    if isinstance(channel, discord.DMChannel):
        recipient = channel.recipient
        title = recipient.display_name if recipient is not None else None
        return _private_chat(channel.id, title)
    if isinstance(channel, discord.GroupChannel):
        return _private_chat(channel.id, channel.name)
    if isinstance(channel, discord.PartialMessageable):
        # No guild id: Discord only omits it for direct messages.
        if channel.guild_id is None:
            return _private_chat(channel.id, None)
        guild = channel.guild
        return ChatRef(
            platform=P,
            chat_id=str(channel.id),
            community_id=str(channel.guild_id),
            kind=ChatKind.GROUP,
            community_title=(guild.name or None) if guild is not None else None,
        )
    return _guild_chat(channel.id, channel.guild, channel.name)


def _private_chat(channel_id: int, title: str | None) -> ChatRef:
    """A DM: private, and its own community (as a Telegram private chat is)."""
    cid = str(channel_id)
    return ChatRef(platform=P, chat_id=cid, community_id=cid, title=title, kind=ChatKind.PRIVATE)


def _guild_chat(channel_id: int, guild: discord.Guild, title: str | None) -> ChatRef:
    """A channel of a guild: the guild is the community."""
    return ChatRef(
        platform=P,
        chat_id=str(channel_id),
        community_id=str(guild.id),
        title=title,
        kind=ChatKind.GROUP,
        # An unavailable (uncached) guild's name is "" (or unset): no title then.
        community_title=getattr(guild, "name", None) or None,
    )


def membership_chat(guild: discord.Guild) -> ChatRef:
    """The chat joins and leaves are recorded in: the system channel, else the guild itself."""
    # Joins belong to the guild, not to a channel. Discord announces them in the system channel
    # (when one is set and cached), so that channel is the natural chat; without one the guild id
    # stands in as a chat id, titled with the guild's name.
    channel = guild.system_channel
    if channel is not None:
        return _guild_chat(channel.id, guild, channel.name)
    return _guild_chat(guild.id, guild, guild.name)


def user_ref(user: _User) -> UserRef:
    """A Discord user or member (or bot) as a neutral user."""
    # display_name: the member's server nickname, else the global name, else the username.
    return UserRef(
        platform=P,
        user_id=str(user.id),
        display_name=user.display_name,
        username=user.name,
        is_bot=user.bot or user.system,
    )


def _content_kind(message: discord.Message) -> ContentKind:
    """What a message carried; the first attachment decides for attachments."""
    if message.poll is not None:
        return ContentKind.POLL
    if message.stickers:
        return ContentKind.STICKER
    if message.flags.voice:
        return ContentKind.VOICE
    if message.attachments:
        return _attachment_kind(message.attachments[0])
    if message.content:
        return ContentKind.TEXT
    # Embeds only (webhooks, bots), or nothing visible: without the message-content intent
    # Discord strips content, attachments, embeds and polls, so the kind is unknown.
    return ContentKind.OTHER


def _attachment_kind(attachment: discord.Attachment) -> ContentKind:
    """An attachment's kind from its MIME type (or, if Discord sent none, its file name)."""
    mime = attachment.content_type or mimetypes.guess_type(attachment.filename)[0] or ""
    if mime.startswith("image/"):
        return ContentKind.PHOTO
    if mime.startswith("video/"):
        return ContentKind.VIDEO
    return ContentKind.FILE


def _reply_to(message: discord.Message) -> str | None:
    """The id of the author replied to, when Discord resolved the replied message."""
    reference = message.reference
    if reference is None or reference.type is not discord.MessageReferenceType.default:
        return None  # no reference, or a forward
    resolved = reference.resolved
    if not isinstance(resolved, discord.Message):
        return None  # not sent (too deep, no access) or deleted
    return str(resolved.author.id)


def _command(content: str, prefix: str | None) -> tuple[str, str] | None:
    """(name, args) of a prefix command, or None."""
    if not prefix or not content.startswith(prefix):
        return None
    rest = content[len(prefix) :]
    if not rest or rest[0].isspace():
        return None  # a bare prefix, or "! word": not a command
    name, *args = rest.split(None, 1)
    return name.lower(), args[0].strip() if args else ""


def translate_message(message: discord.Message, *, me_id: int, prefix: str | None) -> list[Event]:
    """The neutral events of one new message: none or one."""
    if message.author.id == me_id or message.type not in _MEMBER_MESSAGES:
        return []
    channel = message.channel
    chat = chat_ref(channel)
    actor = user_ref(message.author)
    if message.webhook_id is not None and not actor.is_bot:
        # Webhook authors are flagged as bots by Discord; make sure regardless.
        actor = UserRef(P, actor.user_id, actor.display_name, actor.username, is_bot=True)
    at = _utc(message.created_at)
    message_id = str(message.id)
    key = f"m:{message_id}"
    content = message.content
    length = len(content)
    command = None if actor.is_bot else _command(content, prefix)
    if command is not None:
        name, args = command
        return [
            CommandEvent(
                chat=chat,
                actor=actor,
                at=at,
                key=key,
                message_id=message_id,
                name=name,
                args=args,
                addressed=True,
                length=length,
            )
        ]
    return [
        MessageEvent(
            chat=chat,
            actor=actor,
            at=at,
            key=key,
            message_id=message_id,
            content=_content_kind(message),
            length=length,
            text=content or None,
            reply_to_user_id=_reply_to(message),
            thread_id=str(channel.id) if isinstance(channel, discord.Thread) else None,
        )
    ]


def _membership_key(kind: str, user_id: int, at: datetime) -> str:
    """One key per membership change, the same scheme as Telegram's (floored to the minute)."""
    return f"{kind}:{user_id}:{int(at.timestamp()) // 60}"


def translate_member_join(member: discord.Member, *, now: datetime | None = None) -> list[Event]:
    """A member joined a guild (`on_member_join`)."""
    # `joined_at` comes with the payload; `now` is only a fallback should it be missing.
    at = _utc(member.joined_at) if member.joined_at is not None else _now(now)
    return [
        MemberJoined(
            chat=membership_chat(member.guild),
            actor=user_ref(member),
            at=at,
            key=_membership_key("join", member.id, at),
        )
    ]


def translate_member_remove(
    member_or_user: discord.Member | discord.User,
    guild: discord.Guild,
    *,
    now: datetime | None = None,
) -> list[Event]:
    """A member left, was kicked or banned (`on_raw_member_remove`: user and guild)."""
    # GUILD_MEMBER_REMOVE carries no time, and who removed them is only in the audit log.
    at = _now(now)
    return [
        MemberLeft(
            chat=membership_chat(guild),
            actor=user_ref(member_or_user),
            at=at,
            key=_membership_key("leave", member_or_user.id, at),
        )
    ]


def translate_bot_membership(
    guild: discord.Guild, me: _User, *, present: bool, now: datetime | None = None
) -> list[Event]:
    """The bot joined (`present`) or left a guild: `on_guild_join` / `on_guild_remove`."""
    # On a join the guild payload says when the bot joined; a removal carries no time.
    member = guild.me if present else None
    joined_at = member.joined_at if member is not None else None
    at = _utc(joined_at) if joined_at is not None else _now(now)
    kind = "bot-join" if present else "bot-leave"
    return [
        BotMembershipChanged(
            chat=membership_chat(guild),
            actor=user_ref(me),
            at=at,
            key=_membership_key(kind, guild.id, at),
            present=present,
        )
    ]


def emoji_name(emoji: discord.PartialEmoji) -> str:
    """A reaction's emoji: the character, or a custom emoji's name (its id if nameless)."""
    return emoji.name or str(emoji.id)


def translate_reaction(
    payload: discord.RawReactionActionEvent,
    channel_ref: ChatRef,
    user: UserRef | None,
    *,
    now: datetime | None = None,
) -> list[Event]:
    """A reaction added (`on_raw_reaction_add`); removals give nothing."""
    # `user` falls back to `payload.member` (present in guilds); with neither there is nobody to
    # credit. `channel_ref` is the adapter's `chat_ref` of the channel (a thread's parent).
    if payload.event_type != "REACTION_ADD":
        return []
    if user is None and payload.member is not None:
        user = user_ref(payload.member)
    if user is None:
        return []
    message_id = str(payload.message_id)
    emoji = emoji_name(payload.emoji)
    return [
        ReactionAdded(
            chat=channel_ref,
            actor=user,
            at=_now(now),  # the payload carries no time
            key=f"r:{message_id}:{user.user_id}:{emoji}",
            message_id=message_id,
            emoji=emoji,
        )
    ]


def _interaction_chat(interaction: discord.Interaction) -> ChatRef | None:
    """The chat an interaction happened in (a thread's parent), if known."""
    channel = interaction.channel
    if channel is not None:
        return chat_ref(channel)
    if interaction.channel_id is None:
        return None
    if interaction.guild_id is None:
        return _private_chat(interaction.channel_id, None)
    return ChatRef(
        platform=P,
        chat_id=str(interaction.channel_id),
        community_id=str(interaction.guild_id),
        kind=ChatKind.GROUP,
    )


def translate_component(interaction: discord.Interaction) -> list[Event]:
    """A button press (`on_interaction`, component type); other interactions give nothing."""
    data = interaction.data or {}
    if (
        interaction.type is not discord.InteractionType.component
        or data.get("component_type") != discord.ComponentType.button.value
        or interaction.message is None
    ):
        return []
    chat = _interaction_chat(interaction)
    if chat is None:
        return []
    return [
        ButtonPressed(
            chat=chat,
            actor=user_ref(interaction.user),
            at=_utc(interaction.created_at),
            key=f"b:{interaction.id}",
            message_id=str(interaction.message.id),
            data=str(data.get("custom_id", "")),
            interaction_id=str(interaction.id),
        )
    ]


def translate_slash(interaction: discord.Interaction, name: str, args: str) -> CommandEvent:
    """A slash command as a command event; `name` and `args` are flattened by the adapter."""
    # An interaction has no message: its id stands in for the message id. The length counts the
    # command as if typed (``/name args``) so activity stats see a command of a plausible size.
    chat = _interaction_chat(interaction)
    if chat is None:  # Discord always sends the channel; this only guards odd payloads
        gid = str(interaction.guild_id or interaction.id)
        chat = ChatRef(platform=P, chat_id=gid, community_id=gid)
    return CommandEvent(
        chat=chat,
        actor=user_ref(interaction.user),
        at=_utc(interaction.created_at),
        key=f"i:{interaction.id}",
        message_id=str(interaction.id),
        name=name,
        args=args,
        addressed=True,
        length=len(f"/{name} {args}".rstrip()),
    )


def translate_poll_vote(
    payload: discord.RawPollVoteActionEvent,
    channel_ref: ChatRef,
    user: UserRef | None,
    *,
    added: bool = True,
    now: datetime | None = None,
) -> list[Event]:
    """A vote added to (`on_raw_poll_vote_add`) or removed from (`on_raw_poll_vote_remove`) a
    native poll, as one answer added or taken back."""
    # The raw payload does not say whether it was an add or a remove (discord.py dispatches the
    # same class to both events), hence `added`. The poll id is the poll message's id.
    if user is None or payload.answer_id < 1:
        return []
    message_id = str(payload.message_id)
    change = VoteChange.ADD if added else VoteChange.REMOVE
    return [
        PollVote(
            chat=channel_ref,
            actor=user,
            at=_now(now),  # the payload carries no time
            key=f"v:{message_id}:{user.user_id}:{payload.answer_id}"
            + ("" if added else ":removed"),
            poll_id=message_id,
            option_ids=(payload.answer_id - 1,),
            change=change,
        )
    ]
