"""What handlers send: platform-neutral messages, buttons and polls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from handlers.core.events import ChatRef


@dataclass(frozen=True, slots=True)
class Button:
    """A button under a message; pressing it produces a `ButtonPressed` event with `data`."""

    label: str
    data: str


@dataclass(frozen=True, slots=True)
class Image:
    """An image attached to a message (charts are PNG bytes)."""

    content: bytes
    filename: str = "image.png"
    alt: str = ""


@dataclass(frozen=True, slots=True)
class Document:
    """A file attached to a message (a member's data export, a report)."""

    content: bytes
    filename: str
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message in the neutral Markdown subset (see `handlers.core.markup`).

    `buttons` is a list of rows. `private` asks for an answer only the actor sees
    (ephemeral or a direct message) where the platform can do that.
    """

    text: str
    image: Image | None = None
    document: Document | None = None
    buttons: tuple[tuple[Button, ...], ...] = ()
    private: bool = False
    silent: bool = False
    # Let `@everyone`, `@here` and role mentions in the text ping (Discord). Only for text
    # managers wrote and explicitly allowed to ping (`/settings pings on`); never for replies.
    mass_mentions: bool = False


@dataclass(frozen=True, slots=True)
class OutgoingPoll:
    """A native poll. `closes_at` is when commops will close it; an adapter may also let the
    platform close it then where the platform can (the bot closes it either way)."""

    question: str
    options: tuple[str, ...]
    multiple: bool = False
    anonymous: bool = False
    closes_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A handle to something the bot posted, for later edits or poll closing."""

    chat: ChatRef
    message_id: str
    poll_id: str | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an adapter can show; features degrade on purpose where a capability is missing."""

    native_polls: bool = False
    buttons: bool = False
    images: bool = False
    ephemeral: bool = False
    roles: bool = False
    private_messages: bool = False
    max_text_length: int = 4096
    # Native polls: can they hide who voted, how long may one stay open (None: no limit),
    # how long may an option be.
    anonymous_polls: bool = False
    max_poll_duration: timedelta | None = None
    max_poll_option_length: int = 100
