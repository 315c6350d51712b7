"""`/quizset …`: managers load named sets of questions and run them as recurring games.

`/quizset load <name>` takes the set's TOML or CSV on the following lines of the same
message (see `loader.py`); where a message can only be one line (the console, Discord's
slash commands) the two characters `\\n` stand for line breaks. Bigger sets load with
`commops quiz load`. Problems are reported with the line of the message they are on.

`/quizset start <name> every <interval>` asks one question every interval in this chat,
each open for `--answer` (default the interval, at most 5 minutes); after the last one the
final scoreboard is posted. `/quizset stop <name>` ends a game early.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from handlers.core.args import Choice, Duration, Option, Param, Text, Word
from handlers.core.context import HandlerContext
from handlers.core.errors import UserInputError
from handlers.core.events import CommandEvent, Role
from handlers.core.gateway import GatewayError
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.points.rules import points_rules
from handlers.quizzes import lifecycle
from handlers.quizzes.loader import SetFormatError, SetProblem, parse_set, set_name
from handlers.quizzes.options import FIRST_OPTION, POINTS_OPTION
from handlers.quizzes.questions import Question
from storage import quizzes as store
from storage.models import QuizSet

router = Router("quiz-sets")

_NAME = Param("name", Word(label="set name", max_length=64))
MIN_INTERVAL = timedelta(minutes=1)
MAX_INTERVAL = timedelta(days=1)
SHOWN_QUESTIONS = 50
SHOWN_PROBLEMS = 10


def name_of(raw: str) -> str:
    """A set name as stored (lower case: letters, digits, - and _), or a friendly refusal."""
    name = set_name(raw)
    if name is None:
        raise UserInputError("quizzes/errors.j2", problem="set_name", name=raw[:64])
    return name


async def find_set(ctx: HandlerContext, raw: str) -> QuizSet:
    name = name_of(raw)
    found = await store.get_set(ctx.session, ctx.community.id, name)
    if found is None:
        raise UserInputError("quizzes/errors.j2", problem="no_set", name=name)
    return found


def set_text(args: str, body: str) -> tuple[str, int]:
    """The set's text and how many message lines come before it (to number problems by
    the line of the message they are on). A one-line message may write `\\n` for breaks."""
    if "\n" not in body and "\\n" in body:
        return body.replace("\\n", "\n"), 0
    start = args.rfind(body)
    return body, args[:start].count("\n") if start >= 0 else 0


def _shifted(problems: list[SetProblem], lines: int) -> list[SetProblem]:
    return [replace(p, line=p.line + lines) if p.line is not None else p for p in problems]


@router.command(
    "quizset load",
    params=[_NAME, Param("questions", Text(label="questions"), required=False)],
    min_role=Role.MANAGER,
)
async def load(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Create or replace a set from TOML or CSV on the message's following lines."""
    name = name_of(ctx.args.name)
    body = ctx.args.questions
    if not body:
        raise UserInputError("quizzes/errors.j2", problem="no_set_text", name=name)
    text, before = set_text(event.args, body)
    try:
        questions = parse_set(text)
    except SetFormatError as exc:
        problems = _shifted(exc.problems, before)
        raise UserInputError(
            "quizzes/set_errors.j2",
            name=name,
            problems=problems[:SHOWN_PROBLEMS],
            more=max(len(problems) - SHOWN_PROBLEMS, 0),
        ) from None
    saved = await store.save_set(
        ctx.session,
        ctx.community.id,
        name,
        [q.to_json() for q in questions],
        by=event.actor.user_id,
        now=ctx.now(),
    )
    if saved is None:
        raise UserInputError("quizzes/errors.j2", problem="set_running", name=name)
    return ctx.render("quizzes/set_saved.j2", name=name, count=len(questions), created=saved)


@router.command("quizset list", min_role=Role.MANAGER)
async def list_sets(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """This community's quiz sets: size, and where and how far each game is."""
    return ctx.render("quizzes/sets.j2", sets=await store.sets_of(ctx.session, ctx.community.id))


@router.command("quizset show", params=[_NAME], min_role=Role.MANAGER)
async def show(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """A set's questions. The right answers only where no member can see them: an
    ephemeral reply, or a private message; in the chat they stay hidden."""
    quiz_set = await find_set(ctx, ctx.args.name)
    questions = [Question.from_json(q) for q in quiz_set.questions]

    def listing(answers: bool, private: bool = False) -> OutgoingMessage:
        return ctx.render(
            "quizzes/set_show.j2",
            s=quiz_set,
            questions=questions[:SHOWN_QUESTIONS],
            more=max(len(questions) - SHOWN_QUESTIONS, 0),
            answers=answers,
            private=private,
        )

    capabilities = ctx.gateway.capabilities
    if capabilities.ephemeral:
        return listing(answers=True, private=True)
    if capabilities.private_messages:
        try:
            await ctx.gateway.send_private(event.actor, listing(answers=True))
        except (GatewayError, OSError):
            pass  # no private channel to this manager: the chat gets the list without answers
        else:
            return ctx.render("quizzes/set_sent.j2", name=quiz_set.name)
    return listing(answers=False)


@router.command("quizset delete", params=[_NAME], min_role=Role.MANAGER)
async def delete(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Delete a set (not while its game runs); quizzes already asked stay."""
    quiz_set = await find_set(ctx, ctx.args.name)
    if not await store.delete_set(ctx.session, quiz_set.id):
        raise UserInputError("quizzes/errors.j2", problem="set_running", name=quiz_set.name)
    return ctx.render("quizzes/set_deleted.j2", name=quiz_set.name)


def _minutes(value: timedelta, label: str) -> int:
    if value.total_seconds() % 60:
        raise UserInputError("quizzes/errors.j2", problem="whole_minutes", what=label)
    return int(value.total_seconds() // 60)


@router.command(
    "quizset start",
    params=[
        _NAME,
        Param("every", Choice(("every", "每"), label="every")),
        Param("interval", Duration(label="interval", minimum=MIN_INTERVAL, maximum=MAX_INTERVAL)),
    ],
    options=[
        Option("answer", Duration(label="duration", minimum=MIN_INTERVAL, maximum=MAX_INTERVAL)),
        POINTS_OPTION,
        FIRST_OPTION,
    ],
    min_role=Role.MANAGER,
)
async def start(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Play a set here: one question every interval, then the final scoreboard."""
    quiz_set = await find_set(ctx, ctx.args.name)
    if quiz_set.status == store.SetStatus.RUNNING:
        raise UserInputError("quizzes/errors.j2", problem="set_running", name=quiz_set.name)
    every = _minutes(ctx.args.interval, "interval")
    window = ctx.args.answer or min(ctx.args.interval, lifecycle.DEFAULT_ANSWER_WINDOW)
    answer = _minutes(window, "answer")
    if answer > every:
        # The next question would arrive while this one is still open.
        raise UserInputError("quizzes/errors.j2", problem="answer_too_long")
    points = ctx.args.points
    if points is None:
        points = points_rules(ctx.services.features, ctx.community.settings).quiz_correct
    chat = event.chat
    if not await store.start_set(
        ctx.session,
        quiz_set.id,
        chat=(chat.chat_id, chat.title, chat.kind.value),
        every_minutes=every,
        answer_minutes=answer,
        points=points,
        reward_first=ctx.args.first,
        now=ctx.now(),
    ):
        raise UserInputError("quizzes/errors.j2", problem="set_running", name=quiz_set.name)
    services, gateway, set_id = ctx.services, ctx.gateway, quiz_set.id

    async def first_question() -> None:
        await lifecycle.ask_next(services, set_id, gateway)

    ctx.then(first_question)
    return ctx.render(
        "quizzes/set_started.j2",
        name=quiz_set.name,
        count=len(quiz_set.questions),
        every=timedelta(minutes=every),
        answer=timedelta(minutes=answer),
        points=points,
        first=ctx.args.first,
    )


@router.command("quizset stop", params=[_NAME], min_role=Role.MANAGER)
async def stop(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """End a game early: no more questions; the open one still closes as planned."""
    quiz_set = await find_set(ctx, ctx.args.name)
    if not await store.stop_set(ctx.session, quiz_set.id):
        raise UserInputError("quizzes/errors.j2", problem="set_not_running", name=quiz_set.name)
    asked, closed = await store.set_progress(ctx.session, quiz_set.id)
    services, set_id = ctx.services, quiz_set.id

    async def forget_timer() -> None:
        lifecycle.cancel_ask(services, set_id)

    ctx.then(forget_timer)
    return ctx.render(
        "quizzes/set_stopped.j2",
        name=quiz_set.name,
        asked=asked,
        closed=closed,
        count=len(quiz_set.questions),
        scores=await lifecycle.scores_of(ctx.session, quiz_set.id),
    )
