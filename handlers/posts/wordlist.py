"""`/compliance …`: the banned-word list every scheduled post is checked against."""

from __future__ import annotations

from handlers.core.args import Choice, Param, Text
from handlers.core.context import HandlerContext
from handlers.core.errors import UserInputError
from handlers.core.events import CommandEvent, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.posts.compliance import WordList, normalize_word, review
from handlers.posts.policy import WORDS, PostPolicy

router = Router("compliance")

MAX_ADDED_WORDS = 500
SHOWN_WORDS = 60


def _store(ctx: HandlerContext, words: WordList) -> None:
    # A new dict, so SQLAlchemy sees the JSON column change.
    ctx.community.settings = {**(ctx.community.settings or {}), WORDS: words.to_json()}


def _words_of(raw: str) -> list[str]:
    """Words separated by commas (or 、，); each one normalized or refused by name."""
    parts = [p.strip() for p in raw.replace("，", ",").replace("、", ",").split(",")]
    words = []
    for part in parts:
        if not part:
            continue
        try:
            normalize_word(part)
        except ValueError:
            raise UserInputError(
                "posts/compliance.j2", problem="bad_word", word=part[:64]
            ) from None
        words.append(part)
    if not words:
        raise UserInputError("posts/compliance.j2", problem="bad_word", word=raw[:64])
    return words


@router.command("compliance", min_role=Role.MANAGER)
async def show(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """The banned-word list posts are checked against."""
    words = PostPolicy.of(ctx.community.settings).words
    return ctx.render("posts/compliance.j2", action="show", list=words, shown=SHOWN_WORDS)


@router.command(
    "compliance add", params=[Param("words", Text(label="word, word…", max_length=1000))],
    min_role=Role.MANAGER,
)  # fmt: skip
async def add(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Ban words or phrases in posts (several with commas)."""
    words = PostPolicy.of(ctx.community.settings).words
    added = _words_of(ctx.args.words)
    if len(words.added) + len(added) > MAX_ADDED_WORDS:
        raise UserInputError("posts/compliance.j2", problem="too_many", limit=MAX_ADDED_WORDS)
    for word in added:
        words = words.add(word)
    _store(ctx, words)
    return ctx.render("posts/compliance.j2", action="added", words=added, list=words)


@router.command(
    "compliance remove", params=[Param("words", Text(label="word, word…", max_length=1000))],
    min_role=Role.MANAGER,
)  # fmt: skip
async def remove(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Allow words again (including words of the starter list)."""
    words = PostPolicy.of(ctx.community.settings).words
    removed = _words_of(ctx.args.words)
    known = set(words.words())
    missing = [w for w in removed if normalize_word(w) not in known]
    if missing:
        raise UserInputError("posts/compliance.j2", problem="not_listed", words=missing)
    for word in removed:
        words = words.remove(word)
    _store(ctx, words)
    return ctx.render("posts/compliance.j2", action="removed", words=removed, list=words)


@router.command(
    "compliance starter", params=[Param("state", Choice(("on", "off"), label="on|off"))],
    min_role=Role.MANAGER,
)  # fmt: skip
async def starter(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Use the shipped starter list (advertising-law absolute claims), or not."""
    words = PostPolicy.of(ctx.community.settings).words
    words = WordList(ctx.args.state == "on", words.added, words.removed)
    _store(ctx, words)
    return ctx.render("posts/compliance.j2", action="starter", list=words)


@router.command(
    "compliance check", params=[Param("text", Text(label="text"))], min_role=Role.MANAGER
)
async def check(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Check a text against the list without posting anything."""
    words = PostPolicy.of(ctx.community.settings).words.words()
    found = review(ctx.args.text, words)
    fragments = [ctx.args.text[f.start : f.end] for f in found]
    return ctx.render(
        "posts/compliance.j2",
        action="check",
        words=sorted({f.word for f in found}),
        fragments=fragments,
    )
