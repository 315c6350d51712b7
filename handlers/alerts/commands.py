"""`/watch`: the words managers want to hear about, and where alerts go.

`/watch` shows the words, where alerts are sent and the latest alerts; `/watch add` and
`/watch remove` change the words (several at once with commas). Words are kept normalized
(`handlers.posts.compliance.normalize_word`: case, width and spacing folded) in the
community settings under `watch`. Watching itself is in `handlers.alerts.watch`, registered
here on the same router; its in-memory copy of the words is updated once a change commits.
"""

from __future__ import annotations

from datetime import timedelta

from handlers.alerts.anomaly import DROP_MIN_BASELINE, DROP_SHARE, SURGE_FACTOR
from handlers.alerts.notify import managers_chat
from handlers.alerts.state import (
    REGISTRY,
    SPIKE_MIN_NEGATIVE,
    SPIKE_MIN_SHARE,
    WATCH_KEY,
    WINDOW_MINUTES,
    watch_words,
)
from handlers.alerts.watch import on_message, worth_a_look
from handlers.core.args import Param, Text
from handlers.core.context import HandlerContext
from handlers.core.errors import UserInputError
from handlers.core.events import CommandEvent, MessageEvent, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.posts.compliance import normalize_word
from storage import alerts as store

router = Router("alerts")

# Every chat message of a watched community is looked at; most never reach the database.
router.on(MessageEvent, when=worth_a_look)(on_message)

MAX_WORDS = 100
RECENT = timedelta(days=7)
RECENT_SHOWN = 5
_WORDS = [Param("words", Text(label="words", max_length=1000))]


def _words_of(raw: str) -> list[str]:
    """Words separated by commas (or 、，), normalized; an unusable one is refused by name."""
    parts = [p.strip() for p in raw.replace("，", ",").replace("、", ",").split(",")]
    words: list[str] = []
    for part in parts:
        if not part:
            continue
        try:
            word = normalize_word(part)
        except ValueError:
            raise UserInputError("alerts/errors.j2", problem="bad_word", word=part[:64]) from None
        if word not in words:
            words.append(word)
    if not words:
        raise UserInputError("alerts/errors.j2", problem="bad_word", word=raw[:64])
    return words


def _save(ctx: HandlerContext, words: list[str]) -> None:
    # A new dict, so SQLAlchemy sees the JSON column change.
    settings = dict(ctx.community.settings or {})
    if words:
        settings[WATCH_KEY] = words
    else:
        settings.pop(WATCH_KEY, None)
    ctx.community.settings = settings
    community = ctx.community

    async def remember() -> None:
        REGISTRY.update(community)

    ctx.then(remember)


def _render(ctx: HandlerContext, action: str, **values: object) -> OutgoingMessage:
    return ctx.render(
        "alerts/watch.j2",
        action=action,
        words=watch_words(ctx.community.settings),
        target=managers_chat(ctx.community),
        limits={
            "negative": SPIKE_MIN_NEGATIVE,
            "share": SPIKE_MIN_SHARE,
            "minutes": WINDOW_MINUTES,
            "surge": SURGE_FACTOR,
            "drop": DROP_SHARE,
            "drop_baseline": DROP_MIN_BASELINE,
        },
        **values,
    )


@router.command("watch", min_role=Role.MANAGER)
async def show(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """The watch words, where alerts go, and the latest alerts."""
    recent = await store.recent(
        ctx.session, ctx.community.id, since=ctx.now() - RECENT, limit=RECENT_SHOWN
    )
    return _render(ctx, "show", recent=recent)


@router.command("watch add", params=_WORDS, min_role=Role.MANAGER)
async def add(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Alert the managers when a member's message contains a word (several with commas)."""
    words = list(watch_words(ctx.community.settings))
    given = _words_of(ctx.args.words)
    new = [w for w in given if w not in words]
    if len(words) + len(new) > MAX_WORDS:
        raise UserInputError("alerts/errors.j2", problem="too_many", limit=MAX_WORDS)
    _save(ctx, words + new)
    return _render(ctx, "added", changed=new, already=[w for w in given if w in words])


@router.command("watch remove", params=_WORDS, min_role=Role.MANAGER)
async def remove(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Stop watching words."""
    words = list(watch_words(ctx.community.settings))
    given = _words_of(ctx.args.words)
    missing = [w for w in given if w not in words]
    if missing:
        raise UserInputError("alerts/errors.j2", problem="not_watched", words=missing)
    _save(ctx, [w for w in words if w not in given])
    return _render(ctx, "removed", changed=given)
