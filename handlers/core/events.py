"""Neutral chat events: what every platform adapter turns its updates into.

Events are frozen, slotted dataclasses holding plain values only, so no platform
object is reachable from a handler and an event costs a few hundred bytes to buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum


class Platform(StrEnum):
    """The chat platforms commops speaks to."""

    TELEGRAM = "telegram"
    DISCORD = "discord"
    CONSOLE = "console"


class Role(IntEnum):
    """Privilege levels, ordered so `role >= Role.MANAGER` reads naturally."""

    MEMBER = 0
    MANAGER = 1
    OWNER = 2


class ChatKind(StrEnum):
    GROUP = "group"
    CHANNEL = "channel"
    PRIVATE = "private"


class ContentKind(StrEnum):
    """What a message carried; its text is never part of the activity record."""

    TEXT = "text"
    COMMAND = "command"
    PHOTO = "photo"
    VIDEO = "video"
    VOICE = "voice"
    STICKER = "sticker"
    FILE = "file"
    POLL = "poll"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ChatRef:
    """A chat on a platform, and the community it belongs to.

    On Telegram a group is its own community; on Discord the community is the
    server (guild) and `chat_id` is one of its channels.
    """

    platform: Platform
    chat_id: str
    community_id: str
    title: str | None = None
    kind: ChatKind = ChatKind.GROUP
    community_title: str | None = None

    @property
    def community_name(self) -> str | None:
        """The community's own name: the server's on Discord, the group's on Telegram."""
        return self.community_title or self.title

    @property
    def community_key(self) -> tuple[str, str]:
        """(platform, community id): how per-community memory in this process is keyed."""
        # `str()` of a StrEnum is its value, without `.value`'s Python-level property: this
        # runs for every message.
        return (str(self.platform), self.community_id)


@dataclass(frozen=True, slots=True)
class UserRef:
    """A person (or bot) on a platform."""

    platform: Platform
    user_id: str
    display_name: str
    username: str | None = None
    is_bot: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """Fields every event has. `key` is unique per chat and makes replays idempotent."""

    chat: ChatRef
    actor: UserRef
    at: datetime
    key: str


@dataclass(frozen=True, slots=True)
class MessageEvent(Event):
    """A member posted something. `text` lives in memory only and is never stored by default."""

    message_id: str
    content: ContentKind = ContentKind.TEXT
    length: int = 0
    text: str | None = None
    reply_to_user_id: str | None = None
    thread_id: str | None = None


@dataclass(frozen=True, slots=True)
class CommandEvent(Event):
    """A bot command: `/name args`. `addressed` is true when the bot was named explicitly
    (``/cmd@ThisBot``, a private chat, the console), so unknown commands may be answered."""

    message_id: str
    name: str
    args: str = ""
    addressed: bool = False
    length: int = 0


@dataclass(frozen=True, slots=True)
class MemberJoined(Event):
    invited_by_user_id: str | None = None


@dataclass(frozen=True, slots=True)
class MemberLeft(Event):
    removed_by_user_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReactionAdded(Event):
    message_id: str
    emoji: str


@dataclass(frozen=True, slots=True)
class ButtonPressed(Event):
    """A member pressed a button the bot attached; `data` is the button's payload."""

    message_id: str
    data: str
    interaction_id: str | None = None


class VoteChange(StrEnum):
    """How a `PollVote` changes a member's choice. Telegram sends the whole new choice (SET;
    empty means the vote was retracted); Discord sends one answer added or removed at a time."""

    SET = "set"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class PollVote(Event):
    """A member's vote in a native poll the bot sent; `poll_id` is the platform's poll id and
    `option_ids` are 0-based option positions."""

    poll_id: str
    option_ids: tuple[int, ...] = ()
    change: VoteChange = VoteChange.SET


@dataclass(frozen=True, slots=True)
class PollTotals(Event):
    """The platform's own counts for a native poll the bot sent: all there is for an
    anonymous poll. No member is behind it, so `actor` stands for the chat."""

    poll_id: str
    totals: tuple[int, ...] = ()
    voters: int = 0
    closed: bool = False


@dataclass(frozen=True, slots=True)
class BotMembershipChanged(Event):
    """The bot was added to (`present`) or removed from a community's chat (Telegram group,
    Discord server); `actor` is who did it, or the bot itself when the platform doesn't say."""

    present: bool = True
