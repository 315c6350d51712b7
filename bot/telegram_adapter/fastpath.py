"""Raw Bot API JSON -> neutral events for plain messages, without python-telegram-bot objects.

Building a python-telegram-bot `Update` costs ~270 µs; plain group messages are most of the
traffic and all the activity log needs, so they are read straight from the update's JSON here.
`fast_events` gives exactly what `translate(Update.de_json(raw, bot), me)` gives, or None when
it is not sure; None sends the update down the ordinary (slow) path, so the whitelist below is
deliberately narrow: commands, service messages, polls, edits, channel posts, member and
reaction updates, buttons and anything unknown all go through python-telegram-bot.

Every field translate reads is type-checked here as python-telegram-bot would need it (a value it
could not build an object from means None). Fields translate never reads (file ids, entities
other than commands, link previews, ...) are trusted to be as the Bot API defines them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from bot.telegram_adapter.translate import _MEDIA, BotIdentity
from handlers.core.events import (
    ChatKind,
    ChatRef,
    ContentKind,
    Event,
    MessageEvent,
    Platform,
    UserRef,
)

P = Platform.TELEGRAM

# The media a plain message may carry, in translate's order (an animation also carries
# `document`, so order decides the kind). Polls, games, invoices, giveaways, stories, paid media,
# checklists and live photos are rare and not taken here: they go the slow way.
_FAST_MEDIA_KEYS = frozenset(
    {
        "photo",
        "animation",
        "video",
        "video_note",
        "voice",
        "sticker",
        "audio",
        "document",
        "contact",
        "dice",
        "location",
        "venue",
    }
)
_MEDIA_ORDER: tuple[tuple[str, ContentKind], ...] = tuple(
    (key, kind) for key, kind in _MEDIA if key in _FAST_MEDIA_KEYS
)

# Everything a plain message may hold. Any other key (new_chat_members, pinned_message,
# migrate_to_chat_id, forum_topic_created, poll, ... or a field newer than this list) means None.
_PLAIN_KEYS = _FAST_MEDIA_KEYS | frozenset(
    {
        "message_id",
        "message_thread_id",
        "from",
        "sender_chat",
        "sender_boost_count",
        "sender_tag",
        "chat",
        "date",
        "is_topic_message",
        "is_automatic_forward",
        "is_from_offline",
        "forward_origin",
        "reply_to_message",
        "external_reply",
        "quote",
        "via_bot",
        "has_protected_content",
        "media_group_id",
        "author_signature",
        "text",
        "entities",
        "link_preview_options",
        "effect_id",
        "caption",
        "caption_entities",
        "show_caption_above_media",
        "has_media_spoiler",
    }
)

_CHAT_KINDS = {"group": ChatKind.GROUP, "supergroup": ChatKind.GROUP, "private": ChatKind.PRIVATE}
_UPDATE_KEYS = frozenset({"update_id", "message"})
_STR = (str, type(None))
_INT = (int, type(None))
_BOOL = (bool, type(None))


def fast_events(raw: Mapping[str, Any], me: BotIdentity) -> list[Event] | None:
    """The events of a plain group/private message update, or None to take the slow path."""
    # `me` is only needed for commands and joins, which never come this way; kept so the
    # signature matches translate's.
    if type(raw) is not dict or raw.keys() != _UPDATE_KEYS:
        return None
    message = raw["message"]
    if type(message) is not dict or type(raw["update_id"]) is not int:
        return None
    if not _PLAIN_KEYS.issuperset(message):
        return None
    chat = _chat(message.get("chat"))
    message_id = message.get("message_id")
    date = message.get("date")
    if chat is None or type(message_id) is not int or type(date) is not int:
        return None
    actor = _sender(message)
    if actor is None:
        return None
    text = message.get("text")
    if text is not None:
        if type(text) is not str or text[:1] == "/" or _has_command(message.get("entities")):
            return None
        content = ContentKind.TEXT
    else:
        text = message.get("caption")
        if type(text) not in _STR:
            return None
        content = _media(message)
        if content is None:
            return None
    replied = message.get("reply_to_message")
    reply_to: str | None = None
    if replied is not None:
        reply_to = _reply_author(replied)
        if reply_to is _INVALID:
            return None
    topic = message.get("is_topic_message")
    thread = message.get("message_thread_id")
    if type(topic) not in _BOOL or type(thread) not in _INT:
        return None
    at = _at(date)
    if at is None:
        return None
    id_text = str(message_id)
    # Positional: a third cheaper than keywords on this path (the field order is checked below).
    return [
        MessageEvent(
            chat,
            actor,
            at,
            "m:" + id_text,
            id_text,
            content,
            len(text) if text else 0,
            text,
            reply_to,
            str(thread) if topic and thread is not None else None,
        )
    ]


_MESSAGE_FIELDS = (
    "chat",
    "actor",
    "at",
    "key",
    "message_id",
    "content",
    "length",
    "text",
    "reply_to_user_id",
    "thread_id",
)
if tuple(f.name for f in fields(MessageEvent)) != _MESSAGE_FIELDS:  # pragma: no cover
    raise ImportError("MessageEvent's fields changed: update fast_events' constructor call")

_INVALID = "\0invalid"  # a sentinel no user id can be

# Chats and members recur all the time: their (immutable) refs are kept, keyed by every raw field
# they are made of. Numeric fields are type-checked before a lookup, because 1 == 1.0 == True
# would otherwise find the ref of a differently typed id. Cleared when full: cheap, and bounded.
_CACHE_LIMIT = 50_000
_chats: dict[tuple[Any, ...], ChatRef] = {}
_users: dict[tuple[Any, ...], UserRef] = {}


_last_date: tuple[int, datetime | None] = (-1, None)


def _at(date: int) -> datetime | None:
    """The aware UTC datetime of a Unix date; None when out of range (the slow path reports)."""
    global _last_date
    if date != _last_date[0]:  # messages arrive in bursts within the same second
        try:
            _last_date = (date, datetime.fromtimestamp(date, UTC))
        except (OverflowError, OSError, ValueError):
            return None
    return _last_date[1]


def _full_name(first: Any, last: Any) -> str | None:
    """python-telegram-bot's `full_name`: first name, then the last name when there is one."""
    if not first:
        return None
    return f"{first} {last}" if last else first


def _chat(data: Any) -> ChatRef | None:
    """`chat_ref` of a group, supergroup or private chat; None for a channel or a bad chat."""
    if type(data) is not dict:
        return None
    chat_id = data.get("id")
    if type(chat_id) is not int:
        return None
    key = (
        chat_id,
        data.get("type"),
        data.get("title"),
        data.get("first_name"),
        data.get("last_name"),
        data.get("username"),
    )
    try:
        ref = _chats.get(key)
    except TypeError:  # an unhashable name: not a chat python-telegram-bot would build
        return None
    if ref is not None:
        return ref
    _, chat_type, title, first, last, username = key
    kind = _CHAT_KINDS.get(chat_type) if type(chat_type) is str else None
    if kind is None or not (type(title) in _STR and type(first) in _STR):
        return None
    if not (type(last) in _STR and type(username) in _STR):
        return None
    if title is None:
        title = _full_name(first, last) or username
    text_id = str(chat_id)
    ref = ChatRef(platform=P, chat_id=text_id, community_id=text_id, title=title, kind=kind)
    if len(_chats) >= _CACHE_LIMIT:
        _chats.clear()
    _chats[key] = ref
    return ref


def _chat_as_user(data: Any) -> UserRef | None:
    """translate's `_chat_as_user` (anonymous admins, linked channels); None if malformed."""
    if type(data) is not dict or type(data.get("type")) is not str:
        return None
    chat_id = data.get("id")
    title = data.get("title")
    first = data.get("first_name")
    last = data.get("last_name")
    username = data.get("username")
    if type(chat_id) is not int or type(title) not in _STR or type(first) not in _STR:
        return None
    if type(last) not in _STR or type(username) not in _STR:
        return None
    name = title or _full_name(first, last) or username or str(chat_id)
    return UserRef(platform=P, user_id=str(chat_id), display_name=name, username=username)


def _user(data: Any) -> UserRef | None:
    """translate's `user_ref`; None when python-telegram-bot could not build the `User`."""
    if type(data) is not dict:
        return None
    user_id = data.get("id")
    is_bot = data.get("is_bot")
    if type(user_id) is not int or type(is_bot) is not bool:
        return None
    key = (user_id, is_bot, data.get("first_name"), data.get("last_name"), data.get("username"))
    try:
        ref = _users.get(key)
    except TypeError:
        return None
    if ref is not None:
        return ref
    _, _, first, last, username = key
    if type(first) is not str or type(last) not in _STR or type(username) not in _STR:
        return None
    ref = UserRef(
        platform=P,
        user_id=str(user_id),
        # full_name is None for an empty first name, as in python-telegram-bot.
        display_name=_full_name(first, last),  # type: ignore[arg-type]
        username=username,
        is_bot=is_bot,
    )
    if len(_users) >= _CACHE_LIMIT:
        _users.clear()
    _users[key] = ref
    return ref


def _sender(message: dict[str, Any]) -> UserRef | None:
    """The `sender_chat` when sent on behalf of a chat, else the user; None if neither."""
    sender_chat = message.get("sender_chat")
    if sender_chat is not None:
        return _chat_as_user(sender_chat)
    return _user(message.get("from"))


def _has_command(entities: Any) -> bool:
    """True when there is a bot_command entity anywhere, or the entities are malformed."""
    if entities is None:
        return False
    if type(entities) is not list:
        return True
    for entity in entities:
        if (
            type(entity) is not dict
            or entity.get("type") == "bot_command"
            or type(entity.get("type")) is not str
            or type(entity.get("offset")) is not int
            or type(entity.get("length")) is not int
        ):
            return True
    return False


def _media(message: dict[str, Any]) -> ContentKind | None:
    """The kind of the first media field present, in translate's order; None if none or bad."""
    for key, kind in _MEDIA_ORDER:
        value = message.get(key)
        if value is None:
            continue
        if key == "photo":
            if type(value) is not list or not all(type(p) is dict and p for p in value):
                return None
        elif type(value) is not dict or not value:
            return None
        if value:  # an empty photo list is no photo: translate looks on
            return kind
    return None


def _reply_author(replied: Any) -> str | None:
    """translate's `_reply_to` on the raw replied message; `_INVALID` when malformed."""
    if (
        type(replied) is not dict
        or type(replied.get("message_id")) is not int
        or type(replied.get("date")) is not int
        or type(replied.get("chat")) is not dict
    ):
        return _INVALID
    created = replied.get("forum_topic_created")
    if created is not None:
        # In a forum every message of a topic "replies" to the topic's creation message.
        return None if type(created) is dict and created else _INVALID
    sender_chat = replied.get("sender_chat")
    if sender_chat is not None:
        author = _chat_as_user(sender_chat)
    elif replied.get("from") is not None:
        author = _user(replied["from"])
    else:
        return None
    return _INVALID if author is None else author.user_id
