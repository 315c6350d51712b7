"""`/quiz …`: managers ask a quiz question with answer buttons, close it early, list quizzes.

`/quiz <question> | <right answer> | <wrong> | <wrong>…` asks (also spelled `/quiz ask …`,
the form Discord's slash menu shows). The options are shown shuffled; members answer once
with the buttons; the first K right answers (all by default) earn the points when the quiz
closes, and the result post reveals the right answer and the fastest members.

This router also carries the answer buttons (`answer.py`) and `/quizset` (`sets.py`), so
the feature is wired in `bot/app.py` with one router.
"""

from __future__ import annotations

import re
from datetime import timedelta

from handlers.core.args import Deadline, Integer, Option, Param, Text, tokenize
from handlers.core.context import HandlerContext
from handlers.core.errors import BadArgument, UserInputError
from handlers.core.events import CommandEvent, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.points.rules import points_rules
from handlers.quizzes import answer, lifecycle, sets
from handlers.quizzes.options import FIRST_OPTION, POINTS_OPTION
from handlers.quizzes.questions import QuestionProblem, parse_inline
from storage import quizzes as store
from storage.models import Quiz

router = Router("quizzes")

MIN_OPEN = timedelta(seconds=30)
MAX_OPEN = timedelta(days=7)
_ID = Param("id", Integer(label="quiz id", minimum=1, maximum=2**62))


async def find(ctx: HandlerContext, quiz_id: int) -> Quiz:
    """A quiz of this community, or a friendly "not found"."""
    found = await store.get(ctx.session, ctx.community.id, quiz_id)
    if found is None:
        raise UserInputError("quizzes/errors.j2", problem="no_quiz", id=quiz_id)
    return found


def question_error(problem: QuestionProblem) -> UserInputError:
    """A question that breaks a rule, as the reply that explains the rule."""
    return UserInputError("quizzes/errors.j2", problem=problem.code, v=problem.values)


def _refuse_stray_options(text: str) -> None:
    """`--colses 1h` in the text is a mistyped option, not part of an answer (quote an
    answer that really starts with two dashes)."""
    for token in tokenize(text):
        if not token.quoted and re.match(r"--[A-Za-z]", token.value):
            known = ", ".join(f"--{o.name}" for o in ASK_OPTIONS)
            raise BadArgument("unknown_option", value=token.value, known=known)


ASK_OPTIONS = (
    POINTS_OPTION,
    FIRST_OPTION,
    Option("closes", Deadline(label="duration|time", minimum=MIN_OPEN, maximum=MAX_OPEN)),
)


@router.command(
    "quiz ask",
    params=[Param("quiz", Text(label="question | right answer | wrong", max_length=2000))],
    options=ASK_OPTIONS,
    aliases=["quiz"],
    min_role=Role.MANAGER,
)
async def ask(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage | None:
    """Ask a question here; members answer with the buttons until it closes."""
    _refuse_stray_options(ctx.args.quiz)
    try:
        question = parse_inline(ctx.args.quiz)
    except QuestionProblem as problem:
        raise question_error(problem) from None
    now = ctx.now()
    points = ctx.args.points
    if points is None:
        points = points_rules(ctx.services.features, ctx.community.settings).quiz_correct
    quiz = lifecycle.new_quiz(
        ctx.community.id,
        event.chat,
        question,
        points=points,
        reward_first=ctx.args.first,
        closes_at=ctx.args.closes or now + lifecycle.DEFAULT_ANSWER_WINDOW,
        created_by=event.actor.user_id,
        now=now,
    )
    ctx.session.add(quiz)
    await ctx.session.flush()
    services, gateway, quiz_id = ctx.services, ctx.gateway, quiz.id

    async def post() -> None:
        # After commit: a button must never point at a quiz that isn't saved.
        await lifecycle.publish(services, quiz_id, gateway)

    ctx.then(post)
    return None


@router.command("quiz close", params=[_ID], min_role=Role.MANAGER)
async def close(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage | None:
    """Close a quiz now: answers stop, points are awarded and the result is posted."""
    quiz = await find(ctx, ctx.args.id)
    if quiz.status != store.QuizStatus.OPEN:
        raise UserInputError("quizzes/errors.j2", problem="not_open", q=quiz)
    if not await lifecycle.close_in(ctx.session, quiz.id, now=ctx.now(), early=True):
        raise UserInputError("quizzes/errors.j2", problem="not_open", q=quiz)
    services, gateway, quiz_id = ctx.services, ctx.gateway, quiz.id

    async def post_result() -> None:
        lifecycle.cancel_close(services, quiz_id)
        await lifecycle.announce(services, quiz_id, gateway)

    ctx.then(post_result)
    return None


@router.command("quiz list", min_role=Role.MANAGER)
async def list_quizzes(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Open quizzes and the latest closed ones, with how many answered."""
    found = await store.listing(ctx.session, ctx.community.id)
    answered = await store.answer_totals(ctx.session, [q.id for q in found])
    return ctx.render("quizzes/list.j2", quizzes=found, answered=answered)


for _part in (answer.router, sets.router):
    router.commands.extend(_part.commands)
    router.handlers.extend(_part.handlers)
