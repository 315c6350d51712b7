"""Answering members' questions from the FAQ by itself, at most once per cooldown.

Every chat message passes through here, so the work is split in two. `worth_a_look` is
the dispatcher's pre-filter: synchronous, in memory, microseconds; it drops messages
without text, commands, private chats, communities without an FAQ (or with auto-answers
off) and, the bulk of it, messages that match no entry closely enough. Only what is left
gets a unit of work: `answer` checks the member's rank with the platform, claims the
(entry, member) reply row and counts the hit, and its reply goes under the message.
"""

from __future__ import annotations

from handlers.core.context import HandlerContext
from handlers.core.events import ChatKind, ContentKind, MessageEvent, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.faq.cache import CACHE, CommunityFaq
from handlers.faq.defaults import faq_settings
from handlers.faq.matcher import phrasings
from storage import faq as store

# A longer message is a discussion, not a quick question (and costs more to score).
MAX_QUESTION_CHARS = 400
# Text commands of other bots (`/start@OtherBot`, `!rank`): never answered.
COMMAND_PREFIXES = ("/", "!")


def _answerable(event: MessageEvent) -> bool:
    """A member's text message in a group chat, not a command."""
    text = event.text
    return bool(
        text
        and len(text) <= MAX_QUESTION_CHARS
        and event.chat.kind is ChatKind.GROUP
        and not event.actor.is_bot
        and event.content is not ContentKind.COMMAND
        and not text.lstrip().startswith(COMMAND_PREFIXES)
    )


def _candidate(state: CommunityFaq, event: MessageEvent, now: float) -> int | None:
    """The entry this message would be answered from, as far as memory can tell."""
    if state.answers_nothing:
        return None
    settings = state.settings
    user_id = event.actor.user_id
    if not settings.answer_managers and state.known_manager(user_id, now):
        return None
    assert event.text is not None
    match = state.index.best(event.text)
    if match is None or match.score < settings.threshold:
        return None
    if state.answered_recently(match.faq_id, user_id, event.at):
        return None
    return match.faq_id


def worth_a_look(event: MessageEvent) -> bool:
    """The pre-filter: may this message get an FAQ answer? No I/O; true for the first
    message of a community whose FAQ this process has not loaded (or must reload)."""
    key = event.chat.community_key
    now = CACHE.clock()
    state = CACHE.get(key)
    if state is not None and state.answers_nothing and not state.stale(now):
        return False  # the commonest verdict, and cheaper than looking at the text
    if not _answerable(event):
        return False
    if state is None or state.stale(now):
        if CACHE.claim_load(key):
            return True
        if state is None:
            return False  # another message is loading it; this one goes unanswered
    return _candidate(state, event, now) is not None


async def answer(event: MessageEvent, ctx: HandlerContext) -> OutgoingMessage | None:
    """Answer the message from the closest FAQ entry, if the member may have it now."""
    key = event.chat.community_key
    settings = faq_settings(ctx.services.features, ctx.community.settings)
    state = await CACHE.load(ctx.session, key, ctx.community.id, settings)
    if not _answerable(event):
        return None
    faq_id = _candidate(state, event, CACHE.clock())
    if faq_id is None:
        return None
    user_id = event.actor.user_id
    if not settings.answer_managers and await ctx.actor_role() >= Role.MANAGER:
        state.remember_manager(user_id, CACHE.clock())
        return None
    entry = await store.get(ctx.session, ctx.community.id, faq_id)
    if entry is None:  # removed by another process since our copy was made
        CACHE.forget(key)
        return None
    now = ctx.now()
    claimed = await store.claim_reply(
        ctx.session, entry.id, user_id, now=now, cooldown=settings.cooldown
    )
    if not claimed:
        last = await store.last_answered(ctx.session, entry.id, user_id)
        state.remember_answer(entry.id, user_id, last or now)
        return None
    await store.count_hit(ctx.session, entry.id)
    faq_id = entry.id

    async def remember() -> None:
        # Only once the claim is committed: a rolled-back one must not silence the member.
        state.remember_answer(faq_id, user_id, now)

    ctx.then(remember)
    return ctx.render("faq/answer.j2", entry=entry, title=phrasings(entry.question)[0])
