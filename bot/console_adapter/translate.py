"""Console lines -> neutral events. Pure: the only state is the `ConsoleState` passed in.

A line is what someone types in the console community:

    hello everyone            a message from the current identity
    /stats                    a bot command
    alice: hi there           a message from alice (one line only)
    @carol: /settings         carol speaks as a manager
    /as alice                 switch identity to alice (a member)
    /as @carol                switch identity to carol, a manager
    /join bob, /leave bob     bob joins or leaves the community
    /react 👍                 react to the last message
    /reply thanks!            reply to the last message
    /press 1                  press button 1 of the bot's last message with buttons
    /quit                     leave the console
    # a comment               ignored (handy in script files)
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from handlers.core.events import (
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
    ReactionAdded,
    UserRef,
)
from handlers.core.outgoing import Button

CONSOLE_CHAT = ChatRef(
    platform=Platform.CONSOLE,
    chat_id="console",
    community_id="console",
    title="Console community",
    kind=ChatKind.GROUP,
)

META_COMMANDS = frozenset({"as", "join", "leave", "react", "reply", "press", "quit", "exit"})
_NAME = re.compile(r"@?[^\s:/@#][^\s:]{0,31}")
_SPEAKER = re.compile(r"^(@?[^\s:/@#][^\s:]{0,31}):\s?(.*)$", re.DOTALL)
_COMMAND = re.compile(r"^/([A-Za-z0-9_\-]{1,32})(?:@(\S+))?(?:\s+(.*))?$", re.DOTALL)


class ConsoleInputError(ValueError):
    """A console line the console itself can't follow (shown to the operator, not the bot)."""


@dataclass
class ConsoleState:
    """Who is typing, who is a manager, and what the last message and buttons were."""

    identity: str = "you"
    managers: set[str] = field(default_factory=set)
    roster: dict[str, UserRef] = field(default_factory=dict)
    last_message_id: str | None = None
    last_author: str | None = None
    last_buttons: list[Button] = field(default_factory=list)
    last_bot_message_id: str | None = None
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    counter: int = 0

    def user(self, name: str) -> UserRef:
        """The console member called `name` (created on first use)."""
        ref = self.roster.get(name)
        if ref is None:
            ref = UserRef(Platform.CONSOLE, user_id=name.lower(), display_name=name, username=name)
            self.roster[name] = ref
        return ref

    def next_id(self) -> str:
        self.counter += 1
        return f"{self.run_id}-{self.counter}"


@dataclass(frozen=True, slots=True)
class Quit:
    """The operator asked to leave the console."""


@dataclass(frozen=True, slots=True)
class IdentityChanged:
    name: str
    manager: bool


ConsoleAction = Event | Quit | IdentityChanged


def _parse_name(raw: str) -> tuple[str, bool]:
    raw = raw.strip()
    if not _NAME.fullmatch(raw):
        raise ConsoleInputError(f"not a usable name: {raw!r} (one word, at most 32 characters)")
    return raw.removeprefix("@"), raw.startswith("@")


def _speaker(state: ConsoleState, name: str, manager: bool) -> UserRef:
    if manager:
        state.managers.add(name)
    return state.user(name)


def translate(line: str, state: ConsoleState, now: datetime) -> ConsoleAction | None:
    """Turn one console line into an event or a console action (None for blank lines)."""
    text = line.rstrip("\r\n")
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return None
    name, manager = state.identity, state.identity in state.managers
    said = _SPEAKER.match(stripped)
    if said and not stripped.startswith("/"):
        name, manager = _parse_name(said.group(1))
        stripped = said.group(2).strip()
        if not stripped:
            return None
    actor = _speaker(state, name, manager)
    command = _COMMAND.match(stripped)
    if command:
        cmd, _target, args = command.group(1).lower(), command.group(2), command.group(3) or ""
        if cmd in META_COMMANDS:
            return _meta(cmd, args.strip(), state, actor, now)
        message_id = state.next_id()
        state.last_message_id, state.last_author = message_id, actor.display_name
        return CommandEvent(
            chat=CONSOLE_CHAT,
            actor=actor,
            at=now,
            key=f"m:{message_id}",
            message_id=message_id,
            name=cmd,
            args=args.strip(),
            addressed=True,
            length=len(stripped),
        )
    message_id = state.next_id()
    event = MessageEvent(
        chat=CONSOLE_CHAT,
        actor=actor,
        at=now,
        key=f"m:{message_id}",
        message_id=message_id,
        content=ContentKind.TEXT,
        length=len(stripped),
        text=stripped,
    )
    state.last_message_id, state.last_author = message_id, actor.display_name
    return event


def _meta(cmd: str, args: str, state: ConsoleState, actor: UserRef, now: datetime) -> ConsoleAction:
    if cmd in ("quit", "exit"):
        return Quit()
    if cmd == "as":
        if not args:
            raise ConsoleInputError("say who: /as alice, or /as @carol for a manager")
        name, manager = _parse_name(args)
        state.identity = name
        if manager:
            state.managers.add(name)
        else:
            state.managers.discard(name)
        state.user(name)
        return IdentityChanged(name, manager)
    if cmd in ("join", "leave"):
        who = state.user(_parse_name(args)[0]) if args else actor
        key = f"{cmd}:{who.user_id}:{state.next_id()}"
        if cmd == "join":
            return MemberJoined(chat=CONSOLE_CHAT, actor=who, at=now, key=key)
        return MemberLeft(chat=CONSOLE_CHAT, actor=who, at=now, key=key)
    if cmd == "react":
        if state.last_message_id is None:
            raise ConsoleInputError("there is no message to react to yet")
        emoji = args or "👍"
        return ReactionAdded(
            chat=CONSOLE_CHAT,
            actor=actor,
            at=now,
            key=f"r:{state.last_message_id}:{actor.user_id}:{emoji}",
            message_id=state.last_message_id,
            emoji=emoji,
        )
    if cmd == "reply":
        if state.last_message_id is None or state.last_author is None:
            raise ConsoleInputError("there is no message to reply to yet")
        if not args:
            raise ConsoleInputError("say something: /reply thanks!")
        reply_to = state.user(state.last_author).user_id
        message_id = state.next_id()
        state.last_message_id, state.last_author = message_id, actor.display_name
        return MessageEvent(
            chat=CONSOLE_CHAT,
            actor=actor,
            at=now,
            key=f"m:{message_id}",
            message_id=message_id,
            length=len(args),
            text=args,
            reply_to_user_id=reply_to,
        )
    # press
    if not state.last_buttons or state.last_bot_message_id is None:
        raise ConsoleInputError("the bot's last message has no buttons")
    if not args.isdigit() or not 1 <= int(args) <= len(state.last_buttons):
        raise ConsoleInputError(f"press a button from 1 to {len(state.last_buttons)}")
    button = state.last_buttons[int(args) - 1]
    return ButtonPressed(
        chat=CONSOLE_CHAT,
        actor=actor,
        at=now,
        key=f"b:{state.next_id()}",
        message_id=state.last_bot_message_id,
        data=button.data,
    )
