"""Upvotes: one per member per question, never on one's own, only while it can be answered.

The answer goes only to the presser where the platform allows (a toast, an ephemeral
reply). The vote row and the counter bump share the unit of work, and refusals raise,
so a refused press leaves nothing behind.
"""

from __future__ import annotations

from handlers.core.context import HandlerContext
from handlers.core.errors import UserInputError
from handlers.core.events import ButtonPressed
from handlers.core.outgoing import OutgoingMessage
from handlers.qa.access import find_question, session_of
from handlers.qa.questions import UPVOTE_PREFIX
from storage import qa as store


class VoteRefused(UserInputError):
    """The press can't count; the reply (only for the presser) says why."""

    template = "qa/vote.j2"


async def press_upvote(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
    """A member pressed a question's Upvote button."""
    raw = event.data.removeprefix(UPVOTE_PREFIX)
    if not raw.isdigit() or len(raw) > 18:
        raise VoteRefused(outcome="gone")
    question = await find_question(ctx, int(raw))
    qa_session = await session_of(ctx, question)
    if qa_session.status != store.SessionStatus.OPEN:
        raise VoteRefused(outcome="session_closed", q=question)
    if question.status != store.QuestionStatus.OPEN:
        raise VoteRefused(outcome="settled", q=question)
    if question.asker_id == event.actor.user_id:
        raise VoteRefused(outcome="own", q=question)
    votes = await store.upvote(ctx.session, question.id, event.actor.user_id, now=ctx.now())
    if votes is None:
        raise VoteRefused(outcome="already", q=question)
    return ctx.render("qa/vote.j2", outcome="voted", q=question, votes=votes, private=True)
