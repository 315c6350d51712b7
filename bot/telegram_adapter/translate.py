"""python-telegram-bot `Update` -> neutral events. Pure: no network, no clock unless defaulted.

What becomes what (see the tests for a recorded update of each kind):

- group/private/channel messages with content -> `MessageEvent` (kind and length; `text` is kept
  in memory only). Service messages (pins, title changes, topic created, ...) -> nothing.
- `/cmd args` at offset 0 of a text message -> `CommandEvent`; `/cmd@ThisBot` is addressed;
  `/cmd@OtherBot` is someone else's command, recorded as a plain `MessageEvent` with content
  COMMAND so the member's activity still counts.
- `edited_message`, `edited_channel_post` -> nothing (a message is counted once).
- `channel_post` -> `MessageEvent` whose actor is the channel itself (a channel post has no
  person behind it; the channel's id and title stand in), never a `CommandEvent`.
- a message sent "on behalf of" a chat (anonymous group admin, a linked channel) is attributed to
  that `sender_chat`, not to Telegram's placeholder bots (@GroupAnonymousBot, @Channel_Bot).
- joins/leaves from service messages and from `chat_member` updates -> `MemberJoined` /
  `MemberLeft`, with the same key for the same join reported both ways (see `_membership_key`).
- `message_reaction` -> one `ReactionAdded` per newly added reaction.
- `callback_query` -> `ButtonPressed`; `poll_answer` -> `PollVote` (chat from `poll_chats`);
  `poll` (the counts of a poll the bot sent: all there is for an anonymous one) -> `PollTotals`.
- `my_chat_member` (the bot's own membership) in a group or channel -> `BotMembershipChanged`
  when the bot comes in (member, administrator) or goes out (left, kicked); a promotion of the
  bot, or a member blocking it in a private chat, -> nothing.
- group -> supergroup migration -> nothing here; `migration()` gives the adapter both ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from telegram import (
    Chat,
    ChatMember,
    ChatMemberUpdated,
    Message,
    MessageEntity,
    ReactionType,
    ReactionTypeCustomEmoji,
    ReactionTypeEmoji,
    Update,
    User,
)

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
    PollTotals,
    PollVote,
    ReactionAdded,
    UserRef,
)

P = Platform.TELEGRAM

_IN = frozenset({ChatMember.OWNER, ChatMember.ADMINISTRATOR, ChatMember.MEMBER})
_ADMIN = frozenset({ChatMember.OWNER, ChatMember.ADMINISTRATOR})

# Checked in order: an animation message also carries `document`, so it must come first.
_MEDIA: tuple[tuple[str, ContentKind], ...] = (
    ("photo", ContentKind.PHOTO),
    ("live_photo", ContentKind.PHOTO),
    ("animation", ContentKind.VIDEO),
    ("video", ContentKind.VIDEO),
    ("video_note", ContentKind.VIDEO),
    ("voice", ContentKind.VOICE),
    ("sticker", ContentKind.STICKER),
    ("audio", ContentKind.FILE),
    ("document", ContentKind.FILE),
    ("poll", ContentKind.POLL),
    ("contact", ContentKind.OTHER),
    ("dice", ContentKind.OTHER),
    ("game", ContentKind.OTHER),
    ("location", ContentKind.OTHER),
    ("venue", ContentKind.OTHER),
    ("story", ContentKind.OTHER),
    ("invoice", ContentKind.OTHER),
    ("paid_media", ContentKind.OTHER),
    ("giveaway", ContentKind.OTHER),
    ("checklist", ContentKind.OTHER),
)


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """The bot itself, as `getMe` reports it."""

    id: int
    username: str


def chat_ref(chat: Chat) -> ChatRef:
    """A Telegram chat as a neutral chat; a group is its own community."""
    if chat.type == Chat.CHANNEL:
        kind = ChatKind.CHANNEL
    elif chat.type in (Chat.GROUP, Chat.SUPERGROUP):
        kind = ChatKind.GROUP
    else:
        kind = ChatKind.PRIVATE
    # Private chats have no title; the other person's name is the useful label there.
    title = chat.title if chat.title is not None else (chat.full_name or chat.username)
    return ChatRef(
        platform=P, chat_id=str(chat.id), community_id=str(chat.id), title=title, kind=kind
    )


def user_ref(user: User) -> UserRef:
    """A Telegram user (or bot) as a neutral user."""
    return UserRef(
        platform=P,
        user_id=str(user.id),
        display_name=user.full_name,
        username=user.username,
        is_bot=user.is_bot,
    )


def _chat_as_user(chat: Chat) -> UserRef:
    """A chat acting as a sender (a channel post, an anonymous admin): its id and title."""
    name = chat.title or chat.full_name or chat.username or str(chat.id)
    return UserRef(platform=P, user_id=str(chat.id), display_name=name, username=chat.username)


def _sender(message: Message) -> UserRef | None:
    """Who wrote a message: the `sender_chat` when sent on behalf of a chat, else the user."""
    if message.sender_chat is not None:
        return _chat_as_user(message.sender_chat)
    if message.from_user is not None:
        return user_ref(message.from_user)
    return None


def _utc(at: datetime) -> datetime:
    """An aware UTC datetime (python-telegram-bot gives UTC unless its Defaults say otherwise)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def translate(
    update: Update,
    me: BotIdentity,
    *,
    poll_chats: Mapping[str, ChatRef] | None = None,
    now: datetime | None = None,
) -> list[Event]:
    """The neutral events in one update: usually one, sometimes several or none."""
    # `poll_chats` maps the ids of polls the bot sent to their chats (a poll answer names no
    # chat); `now` stamps callback queries and poll answers, which carry no date of their own
    # (default: the wall clock; the adapter may pass its injectable clock's time).
    if update.message is not None:
        return _message(update.message, me)
    if update.channel_post is not None:
        return _message(update.channel_post, me, channel=True)
    if update.chat_member is not None:
        return _chat_member(update.chat_member)
    if update.message_reaction is not None:
        return _reactions(update)
    if update.callback_query is not None:
        return _callback(update, now)
    if update.poll_answer is not None:
        return _poll_answer(update, poll_chats or {}, now)
    if update.poll is not None:
        return _poll_state(update, poll_chats or {}, now)
    if update.my_chat_member is not None:
        return _bot_membership(update.my_chat_member, me)
    # edited_message / edited_channel_post (never counted twice), inline queries, payments,
    # boosts, ...: no event.
    return []


def _now(now: datetime | None) -> datetime:
    return _utc(now) if now is not None else datetime.now(UTC)


def _message(message: Message, me: BotIdentity, *, channel: bool = False) -> list[Event]:
    chat = chat_ref(message.chat)
    at = _utc(message.date)
    if message.new_chat_members:
        return _joined_by_message(message, chat, at, me)
    if message.left_chat_member is not None:
        return _left_by_message(message, chat, at, me)
    actor = _sender(message)
    if actor is None:
        return []
    text = message.text if message.text is not None else message.caption
    length = len(text) if text else 0
    message_id = str(message.message_id)
    key = f"m:{message_id}"
    content: ContentKind | None = None
    if message.text is not None:
        content = ContentKind.TEXT
        command = _command(message, me)
        if command is not None:
            name, target, args = command
            addressed = target is True or message.chat.type == Chat.PRIVATE
            foreign = target is False
            if foreign or channel:
                content = ContentKind.COMMAND
            else:
                return [
                    CommandEvent(
                        chat=chat,
                        actor=actor,
                        at=at,
                        key=key,
                        message_id=message_id,
                        name=name,
                        args=args,
                        addressed=addressed,
                        length=length,
                    )
                ]
    else:
        for attribute, kind in _MEDIA:
            if getattr(message, attribute, None):
                content = kind
                break
    if content is None:  # a service message: pinned, title changed, topic created, ...
        return []
    return [
        MessageEvent(
            chat=chat,
            actor=actor,
            at=at,
            key=key,
            message_id=message_id,
            content=content,
            length=length,
            text=text,
            reply_to_user_id=_reply_to(message),
            # Only forum topics are threads one can post into; in a plain supergroup Telegram
            # also sets message_thread_id on replies (the id of the reply chain's root).
            thread_id=str(message.message_thread_id)
            if message.is_topic_message and message.message_thread_id is not None
            else None,
        )
    ]


def _command(message: Message, me: BotIdentity) -> tuple[str, bool | None, str] | None:
    """(name, target, args) of a command at offset 0; target: us True, another bot False, None."""
    entities = message.entities or ()
    entity = next(
        (e for e in entities if e.type == MessageEntity.BOT_COMMAND and e.offset == 0), None
    )
    if entity is None or message.text is None:
        return None
    # Offsets are in UTF-16 code units, but a command is ASCII: they match Python indices here.
    word = message.text[1 : entity.length]
    name, _, bot = word.partition("@")
    args = message.text[entity.length :].strip()
    target: bool | None = None
    if bot:
        target = bot.lower() == me.username.lower()
    return name.lower(), target, args


def _reply_to(message: Message) -> str | None:
    """The id of the author replied to, if this is a reply (a topic's root message is not)."""
    replied = message.reply_to_message
    if replied is None or replied.forum_topic_created is not None:
        # In a forum every message of a topic "replies" to the topic's creation message.
        return None
    author = _sender(replied)
    return author.user_id if author is not None else None


def _membership_key(kind: str, user_id: int | str, at: datetime) -> str:
    """One key for one membership change, however Telegram reports it."""
    # A join arrives twice when the bot sees both the `new_chat_members` service message and the
    # `chat_member` update; both carry the same user and (practically) the same date, so both get
    # this key and the activity writer, unique on (chat, key), keeps one. The chat is not spelled
    # into the key because keys are unique per chat already (the writer's index is chat + key).
    # The date is floored to the minute to absorb a second or so of skew; the price: a leave and
    # re-join within one minute counts once, and two reports straddling a minute boundary count
    # twice (rare, and harmless beyond one extra join row).
    minute = int(at.timestamp()) // 60
    return f"{kind}:{user_id}:{minute}"


def _membership(
    joined: bool, chat: ChatRef, member: User, at: datetime, by: User | None
) -> MemberJoined | MemberLeft:
    """A join or leave; `by` is who added or removed the member, when not themselves."""
    other = str(by.id) if by is not None and by.id != member.id else None
    actor, key = user_ref(member), _membership_key("join" if joined else "leave", member.id, at)
    if joined:
        return MemberJoined(chat=chat, actor=actor, at=at, key=key, invited_by_user_id=other)
    return MemberLeft(chat=chat, actor=actor, at=at, key=key, removed_by_user_id=other)


def _joined_by_message(
    message: Message, chat: ChatRef, at: datetime, me: BotIdentity
) -> list[Event]:
    # The bot being added is not a member joining.
    return [
        _membership(True, chat, member, at, message.from_user)
        for member in message.new_chat_members
        if member.id != me.id
    ]


def _left_by_message(message: Message, chat: ChatRef, at: datetime, me: BotIdentity) -> list[Event]:
    member = message.left_chat_member
    if member is None or member.id == me.id:
        return []
    return [_membership(False, chat, member, at, message.from_user)]


def _is_in(member: ChatMember) -> bool:
    """Whether a chat member is in the chat (a restricted member may or may not be)."""
    if member.status == ChatMember.RESTRICTED:
        return bool(getattr(member, "is_member", False))
    return member.status in _IN


def _chat_member(change: ChatMemberUpdated) -> list[Event]:
    was, now_in = _is_in(change.old_chat_member), _is_in(change.new_chat_member)
    if was == now_in:  # promotion, demotion, new restrictions: no join or leave
        return []
    member = change.new_chat_member.user
    return [_membership(now_in, chat_ref(change.chat), member, _utc(change.date), change.from_user)]


def _bot_membership(change: ChatMemberUpdated, me: BotIdentity) -> list[Event]:
    """The bot added to or removed from a group or channel (its grace period starts or ends).

    In a private chat `kicked` means the member blocked the bot: no community is involved.
    """
    if change.chat.type == Chat.PRIVATE or change.new_chat_member.user.id != me.id:
        return []
    present = _is_in(change.new_chat_member)
    if present == _is_in(change.old_chat_member):  # the bot promoted or demoted: still there
        return []
    at = _utc(change.date)
    return [
        BotMembershipChanged(
            chat=chat_ref(change.chat),
            actor=user_ref(change.from_user),
            at=at,
            key=f"bot:{'in' if present else 'out'}:{int(at.timestamp())}",
            present=present,
        )
    ]


def _reaction_name(reaction: ReactionType) -> str:
    if isinstance(reaction, ReactionTypeEmoji):
        return reaction.emoji
    if isinstance(reaction, ReactionTypeCustomEmoji):
        return reaction.custom_emoji_id
    return "paid"  # ReactionTypePaid: a star reaction, no emoji of its own


def _reactions(update: Update) -> list[Event]:
    reaction = update.message_reaction
    if reaction is None or reaction.actor_chat is not None or reaction.user is None:
        return []  # anonymous (on behalf of a chat): nobody to credit
    old = {_reaction_name(r) for r in reaction.old_reaction}
    chat = chat_ref(reaction.chat)
    actor = user_ref(reaction.user)
    at = _utc(reaction.date)
    message_id = str(reaction.message_id)
    events: list[Event] = []
    for item in reaction.new_reaction:
        emoji = _reaction_name(item)
        if emoji in old:
            continue
        events.append(
            ReactionAdded(
                chat=chat,
                actor=actor,
                at=at,
                key=f"r:{message_id}:{actor.user_id}:{emoji}",
                message_id=message_id,
                emoji=emoji,
            )
        )
    return events


def _callback(update: Update, now: datetime | None) -> list[Event]:
    query = update.callback_query
    if query is None or query.message is None or query.data is None:
        return []  # a button under an inline-mode message (no chat), or a game button
    message = query.message
    return [
        ButtonPressed(
            chat=chat_ref(message.chat),
            actor=user_ref(query.from_user),
            at=_now(now),
            key=f"b:{query.id}",
            message_id=str(message.message_id),
            data=query.data,
            interaction_id=query.id,
        )
    ]


def _poll_answer(
    update: Update, poll_chats: Mapping[str, ChatRef], now: datetime | None
) -> list[Event]:
    answer = update.poll_answer
    # An anonymous vote (on behalf of a chat) still carries the placeholder user @Channel_Bot.
    if answer is None or answer.voter_chat is not None or answer.user is None:
        return []
    chat = poll_chats.get(answer.poll_id)
    if chat is None:
        return []
    actor = user_ref(answer.user)
    return [
        PollVote(
            chat=chat,
            actor=actor,
            at=_now(now),
            # A member may retract and vote again: each answer is its own update.
            key=f"v:{answer.poll_id}:{actor.user_id}:{update.update_id}",
            poll_id=answer.poll_id,
            option_ids=tuple(answer.option_ids),
        )
    ]


def _poll_state(
    update: Update, poll_chats: Mapping[str, ChatRef], now: datetime | None
) -> list[Event]:
    poll = update.poll
    chat = poll_chats.get(poll.id) if poll is not None else None
    if poll is None or chat is None:
        return []  # not a poll the bot sent (Telegram also reports polls it stopped by hand)
    # Nobody is behind a count update: the chat stands in as the actor.
    actor = UserRef(platform=P, user_id=chat.chat_id, display_name=chat.title or chat.chat_id)
    return [
        PollTotals(
            chat=chat,
            actor=actor,
            at=_now(now),
            key=f"p:{poll.id}:{update.update_id}",
            poll_id=poll.id,
            totals=tuple(option.voter_count for option in poll.options),
            voters=poll.total_voter_count,
            closed=poll.is_closed,
        )
    ]


def poll_id_of(update: Update) -> str | None:
    """The poll a vote or count update is about (these carry no chat of their own)."""
    if update.poll_answer is not None:
        return update.poll_answer.poll_id
    if update.poll is not None:
        return update.poll.id
    return None


def admin_change(update: Update) -> tuple[str, str] | None:
    """(chat_id, user_id) when a (my_)chat_member update touches an administrator, else None."""
    # For the gateway to refresh its cached administrator list of that chat. Covers promotion,
    # demotion, changed rights, and an administrator joining or leaving.
    change = update.chat_member or update.my_chat_member
    if change is None:
        return None
    old, new = change.old_chat_member, change.new_chat_member
    if old.status not in _ADMIN and new.status not in _ADMIN:
        return None
    return str(change.chat.id), str(new.user.id)


def migration(update: Update) -> tuple[str, str] | None:
    """(old_chat_id, new_chat_id) when a group became a supergroup, from either side's message."""
    message = update.message
    if message is None:
        return None
    if message.migrate_to_chat_id is not None:
        return str(message.chat.id), str(message.migrate_to_chat_id)
    if message.migrate_from_chat_id is not None:
        return str(message.migrate_from_chat_id), str(message.chat.id)
    return None
