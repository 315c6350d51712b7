"""Answering a quiz: a press of one of its buttons.

The member is told privately (a toast, an ephemeral reply, a private message) that their
answer is recorded, and which option they chose, but not whether it is right: the result
post at the close reveals that for everyone at once. Telling each member at once would let
the first to answer pass the right option on while the quiz is still open, and points
are awarded at the close, so a member's balance can't give it away either.
"""

from __future__ import annotations

from handlers.core.context import HandlerContext
from handlers.core.errors import UserInputError
from handlers.core.events import ButtonPressed
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.quizzes.questions import ANSWER_PREFIX, letter, parse_answer_data
from storage import quizzes as store

router = Router("quiz-answers")


class AnswerRefused(UserInputError):
    """The answer can't count; the reply says why (and the unit of work is rolled back)."""

    template = "quizzes/answer.j2"


@router.button(ANSWER_PREFIX)
async def press_answer(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
    """A member pressed one of a quiz's answer buttons."""
    parsed = parse_answer_data(event.data)
    quiz = await store.get(ctx.session, ctx.community.id, parsed[0]) if parsed else None
    if parsed is None or quiz is None or not 0 <= parsed[1] < len(quiz.options):
        raise UserInputError("quizzes/errors.j2", problem="no_quiz", id=(parsed or ("?",))[0])
    option = parsed[1]
    now = ctx.now()
    if quiz.status != store.QuizStatus.OPEN or quiz.closes_at <= now:
        raise AnswerRefused(outcome="closed", q=quiz)
    if event.actor.user_id == quiz.created_by:
        raise AnswerRefused(outcome="author", q=quiz)
    result = await store.answer(
        ctx.session,
        quiz.id,
        user_id=event.actor.user_id,
        display_name=event.actor.display_name,
        option=option,
        correct=option == quiz.correct_option,
        now=now,
    )
    if result.outcome is store.AnswerOutcome.ALREADY:
        chosen = letter(result.option) if result.option is not None else "?"
        raise AnswerRefused(outcome="already", q=quiz, letter=chosen)
    if result.outcome is store.AnswerOutcome.CLOSED:
        # Raising rolls the unit of work back, so the late answer leaves no row behind.
        raise AnswerRefused(outcome="closed", q=quiz)
    return ctx.render(
        "quizzes/answer.j2",
        outcome="recorded",
        q=quiz,
        letter=letter(option),
        text=quiz.options[option],
        private=True,
    )
