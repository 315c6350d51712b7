"""In-process fakes: a clock you move by hand, a gateway that records, and event builders."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from handlers.core.events import (
    ButtonPressed,
    ChatKind,
    ChatRef,
    CommandEvent,
    ContentKind,
    MemberJoined,
    MemberLeft,
    MessageEvent,
    Platform,
    ReactionAdded,
    Role,
    UserRef,
)
from handlers.core.gateway import MemberProfile, PrivateMessageUnavailable
from handlers.core.markup import to_plain
from handlers.core.outgoing import Capabilities, OutgoingMessage, OutgoingPoll, SentMessage

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when a test moves it."""

    def __init__(self, start: datetime = T0) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self.current += delta if delta is not None else timedelta(**kwargs)
        return self.current

    def set(self, when: datetime) -> None:
        self.current = when


@dataclass
class Sent:
    chat: ChatRef
    message: OutgoingMessage
    reply_to: str | None = None
    private_to: str | None = None

    @property
    def text(self) -> str:
        return to_plain(self.message.text)


@dataclass
class RecordingGateway:
    """A `ChatGateway` that keeps everything the bot sent; roles are set by the test."""

    platform: Platform = Platform.CONSOLE
    capabilities: Capabilities = field(
        default_factory=lambda: Capabilities(buttons=True, private_messages=True)
    )
    roles: dict[str, Role] = field(default_factory=dict)
    profiles: dict[str, MemberProfile] = field(default_factory=dict)
    no_private: set[str] = field(default_factory=set)
    fail_sends: bool = False
    sent: list[Sent] = field(default_factory=list)
    edits: list[tuple[SentMessage, OutgoingMessage]] = field(default_factory=list)
    polls: list[OutgoingPoll] = field(default_factory=list)
    role_checks: int = 0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def send(
        self, chat: ChatRef, message: OutgoingMessage, *, reply_to: str | None = None
    ) -> SentMessage:
        if self.fail_sends:
            raise ConnectionError("platform unreachable")
        self.sent.append(Sent(chat, message, reply_to))
        return SentMessage(chat, f"out-{next(self._ids)}")

    async def edit(self, sent: SentMessage, message: OutgoingMessage) -> None:
        self.edits.append((sent, message))

    async def send_private(self, user: UserRef, message: OutgoingMessage) -> SentMessage:
        if user.user_id in self.no_private:
            raise PrivateMessageUnavailable(user.user_id)
        chat = ChatRef(self.platform, user.user_id, user.user_id, kind=ChatKind.PRIVATE)
        self.sent.append(Sent(chat, message, None, private_to=user.user_id))
        return SentMessage(chat, f"out-{next(self._ids)}")

    async def send_poll(self, chat: ChatRef, poll: OutgoingPoll) -> SentMessage:
        self.polls.append(poll)
        return SentMessage(chat, f"out-{next(self._ids)}", poll_id=f"poll-{len(self.polls)}")

    async def close_poll(self, sent: SentMessage) -> None:
        return None

    async def role_of(self, chat: ChatRef, user: UserRef) -> Role:
        self.role_checks += 1
        return self.roles.get(user.user_id, Role.MEMBER)

    async def member_count(self, chat: ChatRef) -> int | None:
        return None

    async def profile(self, chat: ChatRef, user: UserRef) -> MemberProfile:
        return self.profiles.get(user.user_id, MemberProfile())

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.sent]

    @property
    def last(self) -> str:
        assert self.sent, "the bot sent nothing"
        return self.sent[-1].text


CHAT = ChatRef(Platform.CONSOLE, "chat-1", "community-1", "Test *Group*", ChatKind.GROUP)
_keys = itertools.count(1)


def user(name: str = "alice", *, bot: bool = False, user_id: str | None = None) -> UserRef:
    return UserRef(Platform.CONSOLE, user_id or name.lower(), name, name.lower(), is_bot=bot)


def message(
    who: UserRef,
    at: datetime = T0,
    *,
    chat: ChatRef = CHAT,
    key: str | None = None,
    length: int = 5,
    reply_to: UserRef | None = None,
    text: str | None = "hello",
) -> MessageEvent:
    n = next(_keys)
    return MessageEvent(
        chat,
        who,
        at,
        key or f"m:{n}",
        str(n),
        ContentKind.TEXT,
        length,
        text,
        reply_to.user_id if reply_to else None,
    )


def command(
    who: UserRef,
    text: str,
    at: datetime = T0,
    *,
    chat: ChatRef = CHAT,
    addressed: bool = True,
) -> CommandEvent:
    n = next(_keys)
    name, _, args = text.lstrip("/").partition(" ")
    return CommandEvent(chat, who, at, f"m:{n}", str(n), name, args, addressed, len(text))


def joined(who: UserRef, at: datetime = T0, *, chat: ChatRef = CHAT) -> MemberJoined:
    return MemberJoined(chat, who, at, f"join:{who.user_id}:{next(_keys)}")


def left(who: UserRef, at: datetime = T0, *, chat: ChatRef = CHAT) -> MemberLeft:
    return MemberLeft(chat, who, at, f"leave:{who.user_id}:{next(_keys)}")


def reaction(
    who: UserRef, message_id: str, at: datetime = T0, *, chat: ChatRef = CHAT, emoji: str = "👍"
) -> ReactionAdded:
    return ReactionAdded(chat, who, at, f"r:{message_id}:{who.user_id}:{emoji}", message_id, emoji)


def press(
    who: UserRef, data: str, message_id: str = "out-1", at: datetime = T0, *, chat: ChatRef = CHAT
) -> ButtonPressed:
    n = next(_keys)
    return ButtonPressed(chat, who, at, f"press:{n}", message_id, data, f"interaction-{n}")


def batch_commits(db: Any) -> list[int]:
    """A one-item list counting the commits made by scheduler batches on `db` from here on
    (not the activity writer's, nor the test's own)."""
    import asyncio

    from sqlalchemy import event

    commits = [0]

    def on_commit(_connection: Any) -> None:
        task = asyncio.current_task()  # the greenlet runs inside the committing task
        if task is not None and task.get_coro().__qualname__ == "SchedulerService._work":
            commits[0] += 1

    event.listen(db.engine.sync_engine, "commit", on_commit)
    return commits
