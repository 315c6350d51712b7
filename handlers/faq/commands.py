"""`/faq …`: managers keep the community's FAQ and tune when the bot answers from it.

Everyone may read the FAQ (`list`, `show`; declared first, so platforms that show one menu
entry per command group show `/faq` to members too); managers add and remove entries, try
a message against it (`test`) and change the per-community settings. The automatic
answers themselves are in `handlers.faq.autoanswer`, registered here on the same router.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

from handlers.core.args import Choice, Integer, Param, Text, Word, format_duration, parse_duration
from handlers.core.context import HandlerContext
from handlers.core.errors import BadArgument, NotFound, UserInputError
from handlers.core.events import CommandEvent, MessageEvent, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.faq import autoanswer
from handlers.faq.cache import CACHE, CommunityFaq
from handlers.faq.defaults import SETTINGS_KEY, FaqDefaults, faq_settings
from handlers.faq.matcher import FaqIndex, features, phrasings
from storage import faq as store
from storage.models import FaqEntry

router = Router("faq")

# Every chat message may be a question; the pre-filter keeps most of them off the database.
router.on(MessageEvent, when=autoanswer.worth_a_look)(autoanswer.answer)

_ID = Param("id", Integer(label="FAQ id", minimum=1, maximum=2**62))
# Question and answer are split at the first bar; members type the full-width one too.
_SEPARATOR = re.compile(r"[|｜]")
# A new question this close to an existing one asks the same thing.
DUPLICATE_SCORE = 0.999
PAGE_SIZE = 20
TEST_MATCHES = 3
SETTING_NAMES = ("threshold", "cooldown", "managers", "auto")
MIN_COOLDOWN = timedelta(minutes=1)
MAX_COOLDOWN = timedelta(days=7)
_SWITCH = {"on": True, "off": False, "yes": True, "no": False, "开": True, "关": False}


def _problem(problem: str, **values: Any) -> UserInputError:
    return UserInputError("faq/errors.j2", problem=problem, **values)


async def _state(ctx: HandlerContext) -> CommunityFaq:
    """This community's index and settings (from memory when fresh)."""
    settings = faq_settings(ctx.services.features, ctx.community.settings)
    return await CACHE.load(ctx.session, ctx.event.chat.community_key, ctx.community.id, settings)


def _split(text: str) -> tuple[str, str]:
    """`question | answer` -> (question, answer), or a friendly refusal."""
    parts = _SEPARATOR.split(text, maxsplit=1)
    if len(parts) < 2:
        raise _problem("no_separator")
    question, answer = (p.strip() for p in parts)
    if not question:
        raise _problem("empty_question")
    if not answer:
        raise _problem("empty_answer")
    if len(question) > store.MAX_QUESTION_LENGTH:
        raise _problem("question_too_long", limit=store.MAX_QUESTION_LENGTH)
    if len(answer) > store.MAX_ANSWER_LENGTH:
        raise _problem("answer_too_long", limit=store.MAX_ANSWER_LENGTH)
    if not all(features(p) for p in phrasings(question)):
        raise _problem("no_words", question=question)
    return question, answer


def _overlaps(index: FaqIndex, question: str, threshold: float) -> dict[int, float]:
    """Existing entries that members asking `question` could be answered from instead."""
    found: dict[int, float] = {}
    for phrasing in phrasings(question):
        for faq_id, score in index.scores(phrasing).items():
            if score >= threshold and score > found.get(faq_id, 0.0):
                found[faq_id] = score
    return found


@router.command(
    "faq list",
    params=[Param("page", Integer(label="page", minimum=1, maximum=10_000), required=False)],
)
async def list_entries(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """The community's FAQ, 20 entries a page."""
    total = await store.count(ctx.session, ctx.community.id)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = ctx.args.page or 1
    if page > pages:
        raise _problem("no_page", page=page, pages=pages)
    entries = await store.listing(
        ctx.session, ctx.community.id, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    settings = faq_settings(ctx.services.features, ctx.community.settings)
    return ctx.render(
        "faq/list.j2",
        entries=[{"entry": e, "title": phrasings(e.question)[0]} for e in entries],
        total=total,
        page=page,
        pages=pages,
        settings=settings,
    )


async def _find(ctx: HandlerContext, faq_id: int) -> FaqEntry:
    entry = await store.get(ctx.session, ctx.community.id, faq_id)
    if entry is None:
        raise NotFound("faq/errors.j2", problem="not_found", id=faq_id)
    return entry


@router.command("faq show", params=[_ID])
async def show(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """One entry in full: its phrasings, the answer and how often it was given."""
    entry = await _find(ctx, ctx.args.id)
    return ctx.render("faq/show.j2", entry=entry, phrasings=phrasings(entry.question))


@router.command(
    "faq add", params=[Param("text", Text(label="question | answer"))], min_role=Role.MANAGER
)
async def add(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Add an entry: `/faq add How do I reset my password? | Settings → Account → Reset`."""
    question, answer = _split(ctx.args.text)
    community_id = ctx.community.id
    if await store.count(ctx.session, community_id) >= store.MAX_ENTRIES_PER_COMMUNITY:
        raise _problem("too_many", limit=store.MAX_ENTRIES_PER_COMMUNITY)
    state = await _state(ctx)
    overlaps = _overlaps(state.index, question, state.settings.threshold)
    same = [faq_id for faq_id, score in overlaps.items() if score >= DUPLICATE_SCORE]
    if same:
        raise _problem("duplicate", id=min(same))
    entry = await store.add(
        ctx.session,
        community_id,
        question=question,
        answer=answer,
        created_by=event.actor.user_id,
        now=ctx.now(),
    )
    close = sorted(overlaps.items(), key=lambda item: -item[1])
    return ctx.render(
        "faq/added.j2",
        entry=entry,
        phrasings=phrasings(question),
        close=[{"id": faq_id, "score": score} for faq_id, score in close],
        settings=state.settings,
    )


@router.command("faq remove", params=[_ID], aliases=["faq delete"], min_role=Role.MANAGER)
async def remove(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Delete an entry; the bot stops answering from it at once."""
    entry = await _find(ctx, ctx.args.id)
    title = phrasings(entry.question)[0]
    await store.remove(ctx.session, ctx.community.id, entry.id)
    return ctx.render("faq/removed.j2", id=entry.id, title=title)


@router.command("faq test", params=[Param("text", Text(label="text"))], min_role=Role.MANAGER)
async def try_text(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """The closest entries to a message, with scores, and whether it would be answered."""
    state = await _state(ctx)
    text = ctx.args.text
    settings = state.settings
    matches = []
    for rank, match in enumerate(state.index.top(text, TEST_MATCHES)):
        entry = await store.get(ctx.session, ctx.community.id, match.faq_id)
        if entry is None:  # removed by another process since the index was built
            continue
        matches.append(
            {
                "id": entry.id,
                "title": phrasings(entry.question)[0],
                "score": match.score,
                "answered": rank == 0 and match.score >= settings.threshold,
                "above": match.score >= settings.threshold,
            }
        )
    return ctx.render(
        "faq/test.j2",
        text=text,
        matches=matches,
        settings=settings,
        empty=state.index.empty,
        too_long=len(text) > autoanswer.MAX_QUESTION_CHARS,
    )


def _setting(name: str, raw: str) -> tuple[str, Any]:
    """A `/faq settings` name and value -> (stored key, value), or a friendly refusal."""
    value = raw.strip().lower()
    if name == "threshold":
        try:
            number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            raise _problem("threshold", value=raw) from None
        if not (0 < number <= 1) or math.isnan(number):
            raise _problem("threshold", value=raw)
        return "threshold", round(number, 3)
    if name == "cooldown":
        duration = parse_duration(value)
        if not MIN_COOLDOWN <= duration <= MAX_COOLDOWN:
            raise BadArgument(
                "duration_range",
                value=raw,
                minimum=format_duration(MIN_COOLDOWN),
                maximum=format_duration(MAX_COOLDOWN),
            )
        return "cooldown_minutes", max(1, int(duration.total_seconds() // 60))
    if value not in _SWITCH:
        raise _problem("switch", name=name, value=raw)
    return ("answer_managers" if name == "managers" else "enabled"), _SWITCH[value]


@router.command(
    "faq settings",
    params=[
        Param("name", Choice(SETTING_NAMES, label="|".join(SETTING_NAMES)), required=False),
        Param("value", Word(label="value", max_length=20), required=False),
    ],
    min_role=Role.MANAGER,
)
async def settings(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Show the auto-answer settings, or change one: threshold, cooldown, managers, auto."""
    name, raw = ctx.args.name, ctx.args.value
    changed: str | None = None
    if name is not None:
        if raw is None:
            raise _problem("setting_needs_value", name=name)
        key, value = _setting(name, raw)
        community_settings = dict(ctx.community.settings or {})
        own = community_settings.get(SETTINGS_KEY)
        own = dict(own) if isinstance(own, dict) else {}
        own[key] = value
        community_settings[SETTINGS_KEY] = own
        # A new dict, so the JSON column is saved; caches reload once this commits.
        ctx.community.settings = community_settings
        store.mark_changed(ctx.session, ctx.community.id)
        changed = name
    current: FaqDefaults = faq_settings(ctx.services.features, ctx.community.settings)
    return ctx.render(
        "faq/settings.j2",
        settings=current,
        changed=changed,
        entries=await store.count(ctx.session, ctx.community.id),
    )
