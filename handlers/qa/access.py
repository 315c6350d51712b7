"""Finding an AMA or a question for a command, and who may steer an AMA."""

from __future__ import annotations

from handlers.core.context import HandlerContext
from handlers.core.errors import NotFound, PermissionDenied, UserInputError
from handlers.core.events import Role
from storage import qa as store
from storage.models import QaQuestion, QaSession


async def open_here(ctx: HandlerContext, *, lock: bool = False) -> QaSession:
    """The AMA open in the event's chat, or a friendly "none is open here"."""
    found = await store.open_session_in(
        ctx.session, ctx.community.id, ctx.event.chat.chat_id, lock=lock
    )
    if found is None:
        raise UserInputError("qa/errors.j2", problem="not_open_here")
    return found


async def find_question(ctx: HandlerContext, question_id: int) -> QaQuestion:
    """A question of this community; ids of other communities are "not found" too."""
    found = await store.get_question(ctx.session, ctx.community.id, question_id)
    if found is None:
        raise NotFound("qa/errors.j2", problem="not_found", id=question_id)
    return found


async def session_of(ctx: HandlerContext, question: QaQuestion) -> QaSession:
    found = await store.get_session(ctx.session, question.session_id)
    assert found is not None, "qa_questions.session_id is a foreign key"
    return found


async def require_host(ctx: HandlerContext, qa_session: QaSession) -> None:
    """The AMA's host or a manager (asked of the platform, never taken from the text)."""
    if ctx.event.actor.user_id == qa_session.host_id:
        return
    if await ctx.actor_role() >= Role.MANAGER:
        return
    command = ctx.command.name if ctx.command else "qa"
    raise PermissionDenied("qa/errors.j2", problem="not_host", s=qa_session, command=command)
