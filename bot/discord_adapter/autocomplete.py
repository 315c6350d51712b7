"""Autocomplete for slash options that name something: an id, a quiz set, a chat.

An option autocompletes when its parameter's label says what it names (`giveaway id`,
`post id`, `poll id`, `quiz id`, `set name`, `FAQ id`, `question id`, and `chat` for a
post's `--to`). Suggestions are the community's items, newest first, at most 25, filtered
by what the member typed (an id's leading digits, or words of its title), each shown as
`#id · short title`.

Who sees what: only items the asker may act on with that command. A member gets nothing
for a manager command; a command that acts on items in some state suggests only those
(`/giveaway end`: open giveaways, `/post resume`: paused posts, `/giveaway verify`: drawn
ones); a member is otherwise shown open items only, and AMA questions only of AMAs they
host. The rows are read in one short read-only session; the adapter bounds the time and
turns any failure into "no suggestions" (Discord waits 3 s for an answer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import discord
from sqlalchemy import ColumnElement, String, cast, func, or_, select

from bot.discord_adapter.slash import shorten
from handlers.core.events import Role
from handlers.core.markup import to_plain
from handlers.core.router import CommandSpec
from storage.db import Database
from storage.giveaways import GiveawayStatus
from storage.models import (
    Community,
    FaqEntry,
    Giveaway,
    Poll,
    QaQuestion,
    QaSession,
    Quiz,
    QuizSet,
    ScheduledPost,
)
from storage.polls import PollStatus
from storage.posts import PostStatus
from storage.qa import QuestionStatus
from storage.quizzes import QuizStatus, SetStatus

MAX_CHOICES = 25
MAX_CHOICE_NAME = 100
MAX_TYPED = 100
# Long text columns are read only as far as a choice can show them.
_TITLE_CHARS = 200
CHAT_LABEL = "chat"
OPEN = "open"


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One choice: what the option receives, and what the member reads."""

    value: int | str
    label: str


@dataclass(frozen=True, slots=True)
class Asker:
    """Who is typing: their id and their privilege in the community."""

    user_id: str
    role: Role


@dataclass(frozen=True)
class ItemSource:
    """Where the items an option names live, and how one is shown."""

    model: Any
    title: Callable[[], Sequence[ColumnElement[Any]]]  # columns the title is made of
    status: Callable[[], Any] | None = None
    by_name: bool = False  # the option takes the item's name (quiz sets), not its id
    hidden: tuple[str, ...] = ()  # states offered only to commands that ask for them
    mine: Callable[[str], ColumnElement[bool]] | None = None  # a member's own items


def _short(column: Any) -> ColumnElement[Any]:
    return func.substr(column, 1, _TITLE_CHARS)


def _hosted_by(user_id: str) -> ColumnElement[bool]:
    """Questions of AMAs this member hosts (hosts answer and dismiss them)."""
    return QaQuestion.session_id.in_(select(QaSession.id).where(QaSession.host_id == user_id))


SOURCES: dict[str, ItemSource] = {
    "giveaway id": ItemSource(Giveaway, lambda: (Giveaway.prize,), lambda: Giveaway.status),
    "post id": ItemSource(
        ScheduledPost,
        lambda: (_short(ScheduledPost.body), ScheduledPost.template_name),
        lambda: ScheduledPost.status,
        hidden=(PostStatus.DELETED.value,),
    ),
    "poll id": ItemSource(Poll, lambda: (Poll.question,), lambda: Poll.status),
    "quiz id": ItemSource(Quiz, lambda: (Quiz.question,), lambda: Quiz.status),
    "set name": ItemSource(QuizSet, lambda: (QuizSet.name,), lambda: QuizSet.status, by_name=True),
    "faq id": ItemSource(FaqEntry, lambda: (_short(FaqEntry.question),)),
    "question id": ItemSource(
        QaQuestion, lambda: (_short(QaQuestion.text),), lambda: QaQuestion.status, mine=_hosted_by
    ),
}

# The states each command acts on (its handler refuses the others). Commands not listed
# take an item in any state (deleted posts aside); a member is shown open items only.
ACCEPTS: dict[str, tuple[str, ...]] = {
    "giveaway end": (GiveawayStatus.OPEN,),
    "giveaway cancel": (GiveawayStatus.OPEN,),
    "enter": (GiveawayStatus.OPEN,),
    "giveaway reroll": (GiveawayStatus.DRAWN,),
    "giveaway verify": (GiveawayStatus.DRAWN,),
    "post pause": (PostStatus.ACTIVE, PostStatus.PENDING),
    "post resume": (PostStatus.PAUSED,),
    "post approve": (PostStatus.PENDING,),
    "post now": (PostStatus.ACTIVE, PostStatus.PAUSED),
    "post restore": (PostStatus.DELETED,),
    "poll close": (PollStatus.OPEN,),
    "quiz close": (QuizStatus.OPEN,),
    "quizset start": (SetStatus.IDLE, SetStatus.FINISHED),
    "quizset delete": (SetStatus.IDLE, SetStatus.FINISHED),
    "quizset stop": (SetStatus.RUNNING,),
    "qa answer": (QuestionStatus.OPEN,),
    "qa dismiss": (QuestionStatus.OPEN,),
    "qa promote": (QuestionStatus.ANSWERED,),
}


def completes(label: str) -> bool:
    """Does an option with this label autocomplete?"""
    return label.lower() in SOURCES or label.lower() == CHAT_LABEL


def typed_text(current: Any) -> str:
    """What the member typed, tidied: no `#` before an id, bounded in length."""
    return str(current if current is not None else "").strip().lstrip("#").strip()[:MAX_TYPED]


def _states(spec: CommandSpec, asker: Asker) -> tuple[str, ...] | None:
    """The states to offer (None: any but the hidden ones)."""
    accepted = ACCEPTS.get(spec.name)
    if accepted is not None:
        return tuple(str(s) for s in accepted)
    if asker.role < Role.MANAGER:
        return (OPEN,)
    return None


async def suggest_items(
    db: Database,
    *,
    platform: str,
    community: str,
    spec: CommandSpec,
    label: str,
    typed: Any,
    asker: Asker,
) -> list[Suggestion]:
    """The items of `community` an option labelled `label` of `spec` may name, for `asker`."""
    source = SOURCES.get(label.lower())
    if source is None or asker.role < spec.min_role:
        return []
    model = source.model
    text = typed_text(typed)
    query = select(model.id, *source.title())
    where: list[ColumnElement[bool]] = []
    if source.status is not None:
        states = _states(spec, asker)
        if states is not None:
            where.append(source.status().in_(states))
        elif source.hidden:
            where.append(source.status().not_in(source.hidden))
    if source.mine is not None and asker.role < Role.MANAGER:
        where.append(source.mine(asker.user_id))
    if text:
        needle = text.lower()
        matches = [func.lower(c).contains(needle, autoescape=True) for c in source.title()]
        if text.isdigit() and not source.by_name:
            matches.append(cast(model.id, String).startswith(text))
        where.append(or_(*matches))
    async with db.sessions() as session:  # read only: closed (rolled back) on leaving
        community_id = await session.scalar(
            select(Community.id).where(
                Community.platform == platform, Community.external_id == community
            )
        )
        if community_id is None:
            return []
        query = query.where(model.community_id == community_id, *where)
        rows = (await session.execute(query.order_by(model.id.desc()).limit(MAX_CHOICES))).all()
    return [_suggestion(source, row) for row in rows]


def _suggestion(source: ItemSource, row: Any) -> Suggestion:
    item_id, first, *more = row
    title = _one_line(first) if first else ""
    if source.by_name:
        return Suggestion(title, shorten(title, MAX_CHOICE_NAME))
    if not title and more and more[0]:
        title = f"template {more[0]}"  # a post that uses a saved template
    label = f"#{item_id} · {title}" if title else f"#{item_id}"
    return Suggestion(int(item_id), shorten(label, MAX_CHOICE_NAME))


def _one_line(text: str) -> str:
    """The first non-blank line of stored text, as plain words."""
    for line in str(text).splitlines():
        if line.strip():
            return " ".join(to_plain(line).split())
    return ""


def suggest_channels(guild: discord.Guild, typed: Any) -> list[Suggestion]:
    """The guild's text channels the bot may post in, in the server's order, by name."""
    text = typed_text(typed).lower()
    me = guild.me
    found: list[Suggestion] = []
    for channel in sorted(guild.text_channels, key=lambda c: (c.position, c.id)):
        if me is not None and not channel.permissions_for(me).send_messages:
            continue
        if text and text not in channel.name.lower() and text != str(channel.id):
            continue
        found.append(Suggestion(str(channel.id), shorten(f"#{channel.name}", MAX_CHOICE_NAME)))
        if len(found) == MAX_CHOICES:
            break
    return found
