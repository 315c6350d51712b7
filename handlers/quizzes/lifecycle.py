"""A quiz's life after it is asked: posting it, closing it once, posting the result once,
and quiz sets played as recurring games.

The close is one conditional UPDATE (open -> closed) in the same transaction that awards
the points, so it happens once across timers, sweeps, restarts and instances, and an
answer either counts before it or is refused. Posting the result first claims an
occurrence (`quiz:<id>:result`); a failed or abandoned claim is taken again by the sweep,
so a result is posted once and never lost. Timers are rebuilt from the database at
start-up, and a sweep every minute closes and announces whatever a timer missed.

A running quiz set asks its next question when its slot comes: the slot is taken with a
conditional advance of `quiz_sets.next_position/next_run_at`, so each question is asked
exactly once, in order, across restarts. A slot missed while the bot was away asks its
question late (one at a time, never a burst) and the game goes on from then. The last
question's close finishes the game, and its result post carries the final scoreboard.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.chats import chat_of
from handlers.core.context import Services
from handlers.core.events import ChatRef
from handlers.core.firing import instance_name
from handlers.core.gateway import ChatGateway, GatewayError, GatewayUnavailable
from handlers.core.outgoing import OutgoingMessage, SentMessage
from handlers.quizzes.questions import Question, answer_buttons, arrange, letter
from scheduler.service import SchedulerService
from storage import quizzes as store
from storage.activity import zone
from storage.models import Community, Quiz, QuizSet

log = logging.getLogger(__name__)

DEFAULT_ANSWER_WINDOW = timedelta(minutes=5)
# A close more than this after the closing time says it was late (the bot was away).
LATE_AFTER = timedelta(minutes=1)
RESULT_LEASE = timedelta(minutes=2)
# A result that could not be posted for this long is given up (the chat is gone).
RESULT_GIVE_UP = timedelta(days=1)
SWEEP_EVERY = timedelta(seconds=60)
# The first sweep waits for the platforms to connect (they start after the scheduler).
START_SWEEP_DELAY = timedelta(seconds=5)
PLATFORM_WAIT = 30.0
FASTEST_SHOWN = 10
SCOREBOARD_SHOWN = 10

SETTLE_JOB = "quiz.settle"
ASK_JOB = "quizset.ask"
SWEEP_JOB = "quiz.sweep"


def close_key(quiz_id: int) -> str:
    return f"quiz:{quiz_id}:close"


def ask_key(set_id: int) -> str:
    return f"quizset:{set_id}:ask"


def new_quiz(
    community_id: int,
    chat: ChatRef,
    question: Question,
    *,
    points: int,
    reward_first: int | None,
    closes_at: datetime,
    created_by: str,
    now: datetime,
    set_id: int | None = None,
    position: int | None = None,
) -> Quiz:
    """A quiz row (not yet added) with its options shuffled by a secret seed."""
    arranged = arrange(question, secrets.randbits(64))
    return Quiz(
        community_id=community_id,
        chat_id=chat.chat_id,
        chat_title=chat.title,
        chat_kind=chat.kind.value,
        question=question.question,
        options=list(arranged.options),
        correct_option=arranged.correct,
        points=points,
        reward_first=reward_first,
        set_id=set_id,
        set_position=position,
        status=store.QuizStatus.OPEN.value,
        closes_at=closes_at,
        correct_count=0,
        created_by=created_by[:64],
        created_at=now,
    )


# --- messages -------------------------------------------------------------------------------


def _options(quiz: Quiz) -> list[dict[str, object]]:
    return [
        {"letter": letter(i), "text": text, "right": i == quiz.correct_option}
        for i, text in enumerate(quiz.options)
    ]


async def _set_of(session: AsyncSession, quiz: Quiz) -> QuizSet | None:
    return await store.set_by_id(session, quiz.set_id) if quiz.set_id is not None else None


async def quiz_message(
    services: Services, session: AsyncSession, quiz: Quiz, community: Community
) -> OutgoingMessage:
    """The quiz post as it should look now: open with answer buttons, or closed."""
    is_open = quiz.status == store.QuizStatus.OPEN
    quiz_set = await _set_of(session, quiz)
    counts = await store.option_counts(session, quiz.id, len(quiz.options)) if not is_open else []
    return services.renderer.message(
        "quizzes/question.j2",
        community.locale,
        buttons=answer_buttons(quiz.id, quiz.options) if is_open else (),
        q=quiz,
        options=_options(quiz),
        counts=counts,
        quiz_set=quiz_set,
        total=len(quiz_set.questions) if quiz_set is not None else 0,
        community=community,
        tz=zone(community.timezone),
    )


async def result_message(
    services: Services, session: AsyncSession, quiz: Quiz, community: Community
) -> OutgoingMessage:
    """The results: the right answer, how many answered and were right, the fastest members
    with their times and points, and after a game's last question its final scoreboard."""
    counts = await store.option_counts(session, quiz.id, len(quiz.options))
    fastest = [
        {
            "name": row.display_name,
            "rank": row.rank,
            "seconds": round(max((row.answered_at - quiz.created_at).total_seconds(), 0.0), 1),
            "points": row.points,
        }
        for row in await store.fastest(session, quiz.id, FASTEST_SHOWN)
    ]
    quiz_set = await _set_of(session, quiz)
    final = (
        quiz_set is not None
        and quiz_set.status == store.SetStatus.FINISHED
        and quiz.set_position == quiz_set.next_position - 1
    )
    scores = await scores_of(session, quiz_set.id) if final and quiz_set is not None else []
    assert quiz.closed_at is not None
    return services.renderer.message(
        "quizzes/result.j2",
        community.locale,
        q=quiz,
        right={"letter": letter(quiz.correct_option), "text": quiz.options[quiz.correct_option]},
        answered=sum(counts),
        correct=quiz.correct_count,
        fastest=fastest,
        late=quiz.closed_at - quiz.closes_at > LATE_AFTER,
        early=quiz.closed_at < quiz.closes_at,
        quiz_set=quiz_set,
        final=final,
        scores=scores,
        community=community,
        tz=zone(community.timezone),
    )


async def scores_of(session: AsyncSession, set_id: int) -> list[dict[str, object]]:
    """The set's scoreboard, ready for a template: equal scores share a place (1, 2, 2, 4).
    Names are shown, not mentions, so a game doesn't ping its players after every question."""
    rows: list[dict[str, object]] = []
    for index, score in enumerate(await store.scoreboard(session, set_id, SCOREBOARD_SHOWN)):
        tied = rows and (rows[-1]["points"], rows[-1]["correct"]) == (score.points, score.correct)
        rows.append(
            {
                "place": rows[-1]["place"] if tied else index + 1,
                "name": score.display_name,
                "points": score.points,
                "correct": score.correct,
                "answered": score.answered,
            }
        )
    return rows


# --- posting and closing --------------------------------------------------------------------


async def _gateway(services: Services, chat: ChatRef, given: ChatGateway | None) -> ChatGateway:
    if given is not None:
        return given
    return await services.gateways.wait(chat.platform, within=PLATFORM_WAIT)


async def publish(services: Services, quiz_id: int, gateway: ChatGateway | None = None) -> bool:
    """Post a saved quiz with its buttons and arm its close; a quiz that can't be posted is
    cancelled (nobody could answer it)."""
    async with services.db.session() as session:
        quiz = await store.by_id(session, quiz_id)
        if quiz is None or quiz.status != store.QuizStatus.OPEN:
            return False
        community = await session.get(Community, quiz.community_id)
        assert community is not None
        message = await quiz_message(services, session, quiz, community)
    chat = chat_of(quiz, community)
    try:
        target = await _gateway(services, chat, gateway)
        sent = await target.send(chat, message)
    except (GatewayError, GatewayUnavailable, TimeoutError, OSError):
        log.warning("quiz %s could not be posted; cancelled", quiz_id, exc_info=True)
        async with services.db.session() as session:
            await store.cancel(session, quiz_id)
            if quiz.set_id is not None:
                quiz_set = await store.set_by_id(session, quiz.set_id)
                if quiz_set is not None:
                    await store.finish_set_if_done(session, quiz_set.id, len(quiz_set.questions))
        return False
    async with services.db.session() as session:
        row = await store.by_id(session, quiz_id)
        assert row is not None
        row.message_id = sent.message_id
        closes_at = row.closes_at
    schedule_close(services, quiz_id, closes_at)
    return True


async def close_in(
    session: AsyncSession, quiz_id: int, *, now: datetime, early: bool = False
) -> bool:
    """Close an open quiz and award its points in `session` (the caller commits); False when
    someone else closed it. A game's last close also finishes the game."""
    if not await store.claim_close(session, quiz_id, now=now, early=early):
        return False
    quiz = await store.by_id(session, quiz_id)
    assert quiz is not None
    await store.reward(session, quiz, now=now)
    if quiz.set_id is not None:
        quiz_set = await store.set_by_id(session, quiz.set_id)
        if quiz_set is not None:
            await store.finish_set_if_done(session, quiz_set.id, len(quiz_set.questions))
    return True


async def settle(services: Services, quiz_id: int) -> None:
    """Timer and sweep entry point: close when due, then make sure the result is posted."""
    async with services.db.session() as session:
        await close_in(session, quiz_id, now=services.clock.now())
    await announce(services, quiz_id)


async def announce(services: Services, quiz_id: int, gateway: ChatGateway | None = None) -> bool:
    """Post a closed quiz's result once, and take the buttons off the quiz post."""
    now = services.clock.now()
    async with services.db.session() as session:
        quiz = await store.by_id(session, quiz_id)
        if (
            quiz is None
            or quiz.status != store.QuizStatus.CLOSED
            or quiz.result_message_id is not None
        ):
            return False
        claim = await store.take_result_claim(
            session, quiz, now=now, lease=RESULT_LEASE, instance=instance_name()
        )
    if claim is None:
        return False
    async with services.db.session() as session:
        quiz = await store.by_id(session, quiz_id)
        assert quiz is not None
        community = await session.get(Community, quiz.community_id)
        assert community is not None
        result = await result_message(services, session, quiz, community)
        final = await quiz_message(services, session, quiz, community)
    chat = chat_of(quiz, community)
    try:
        target = await _gateway(services, chat, gateway)
        sent = await target.send(chat, result, reply_to=quiz.message_id)
    except (GatewayError, GatewayUnavailable, TimeoutError, OSError) as exc:
        # The claim waits as `retrying`; the next sweep tries again.
        log.warning("quiz %s: result could not be posted yet", quiz_id, exc_info=True)
        async with services.db.session() as session:
            await store.result_failed(session, claim, type(exc).__name__)
        return False
    async with services.db.session() as session:
        await store.result_posted(session, quiz_id, claim, sent.message_id, now=now)
    if quiz.message_id is not None:
        try:
            await target.edit(SentMessage(chat, quiz.message_id), final)
        except Exception:
            log.warning("quiz %s: its post could not be edited", quiz_id, exc_info=True)
    return True


# --- quiz sets as games ---------------------------------------------------------------------


def _following(due: datetime, every: timedelta, now: datetime) -> datetime:
    """The slot after `due`; after downtime the game goes on from now, never in a burst."""
    following = due + every
    return following if following > now else now + every


async def ask_next(
    services: Services, set_id: int, gateway: ChatGateway | None = None
) -> int | None:
    """Ask a running game's next question if its slot has come; the quiz id, or None."""
    now = services.clock.now()
    async with services.db.session() as session:
        quiz_set = await store.set_by_id(session, set_id)
        if (
            quiz_set is None
            or quiz_set.status != store.SetStatus.RUNNING
            or quiz_set.next_run_at is None
        ):
            return None
        if quiz_set.next_run_at > now:
            schedule_ask(services, set_id, quiz_set.next_run_at)  # a timer fired early
            return None
        earlier = await store.open_in_set(session, set_id, due_by=now)
    # The previous question closes (and shows its result) before the next one is asked.
    for quiz_id in earlier:
        await settle(services, quiz_id)
    async with services.db.session() as session:
        quiz_set = await store.set_by_id(session, set_id)
        if (
            quiz_set is None
            or quiz_set.status != store.SetStatus.RUNNING
            or quiz_set.next_run_at is None
            or quiz_set.next_run_at > now
        ):
            return None
        position, due = quiz_set.next_position, quiz_set.next_run_at
        questions = quiz_set.questions
        if position >= len(questions):
            return None
        assert quiz_set.every_minutes and quiz_set.answer_minutes and quiz_set.chat_id
        every = timedelta(minutes=quiz_set.every_minutes)
        last = position + 1 >= len(questions)
        following = None if last else _following(due, every, now)
        if not await store.advance_set(
            session, set_id, position=position, due=due, next_run_at=following
        ):
            return None
        community = await session.get(Community, quiz_set.community_id)
        assert community is not None
        chat = chat_of(quiz_set, community)  # type: ignore[arg-type]
        quiz = new_quiz(
            community.id,
            chat,
            Question.from_json(questions[position]),
            points=quiz_set.points or 0,
            reward_first=quiz_set.reward_first,
            closes_at=now + timedelta(minutes=quiz_set.answer_minutes),
            created_by=quiz_set.created_by,
            now=now,
            set_id=set_id,
            position=position,
        )
        session.add(quiz)
        await session.flush()
        quiz_id = quiz.id
    await publish(services, quiz_id, gateway)
    if following is not None:
        schedule_ask(services, set_id, following)
    return quiz_id


# --- timers ---------------------------------------------------------------------------------


def _running(services: Services) -> SchedulerService | None:
    scheduler = services.scheduler
    return scheduler if scheduler is not None and scheduler.running else None


def schedule_close(services: Services, quiz_id: int, closes_at: datetime) -> None:
    scheduler = _running(services)
    if scheduler is not None:
        scheduler.schedule(close_key(quiz_id), SETTLE_JOB, closes_at, quiz_id=quiz_id)


def schedule_ask(services: Services, set_id: int, when: datetime) -> None:
    scheduler = _running(services)
    if scheduler is not None:
        scheduler.schedule(ask_key(set_id), ASK_JOB, when, set_id=set_id)


def cancel_close(services: Services, quiz_id: int) -> None:
    if services.scheduler is not None:
        services.scheduler.cancel(close_key(quiz_id))


def cancel_ask(services: Services, set_id: int) -> None:
    if services.scheduler is not None:
        services.scheduler.cancel(ask_key(set_id))


async def sweep(services: Services) -> int:
    """Close overdue quizzes, post results nobody posted, ask questions whose slot passed;
    returns how many things it did."""
    now = services.clock.now()
    async with services.db.session() as session:
        overdue = await store.due_to_close(session, now=now)
    done = 0
    for quiz_id in overdue:
        try:
            async with services.db.session() as session:
                done += await close_in(session, quiz_id, now=now)
        except Exception:
            log.exception("quiz %s could not be closed", quiz_id)
    async with services.db.session() as session:
        waiting = await store.unannounced(session, since=now - RESULT_GIVE_UP)
        games = await store.due_sets(session, now=now)
    for quiz_id in waiting:
        try:
            done += await announce(services, quiz_id)
        except Exception:
            log.exception("quiz %s: result could not be announced", quiz_id)
    for set_id in games:
        try:
            done += await ask_next(services, set_id) is not None
        except Exception:
            log.exception("quiz set %s: the next question could not be asked", set_id)
    return done


async def _ask(services: Services, set_id: int) -> None:
    await ask_next(services, set_id)


async def _rebuild_timers(services: Services, scheduler: SchedulerService) -> None:
    async with services.db.session() as session:
        open_ones = await store.open_quizzes(session)
        games = await store.running_sets(session)
    for quiz_id, closes_at in open_ones:
        scheduler.schedule(close_key(quiz_id), SETTLE_JOB, closes_at, quiz_id=quiz_id)
    for set_id, next_run_at in games:
        if next_run_at is not None:
            scheduler.schedule(ask_key(set_id), ASK_JOB, next_run_at, set_id=set_id)
    # Closes, results and questions missed while the bot was away.
    scheduler.schedule_sweep(
        "quiz", SWEEP_JOB,
        now=services.clock.now(), every=SWEEP_EVERY, first_after=START_SWEEP_DELAY,
    )  # fmt: skip


def install(services: Services, scheduler: SchedulerService) -> None:
    """Register the quiz jobs and the start-up reconciler on the scheduler."""
    scheduler.register(SETTLE_JOB, partial(settle, services))
    scheduler.register(ASK_JOB, partial(_ask, services))
    scheduler.register(SWEEP_JOB, partial(sweep, services))
    scheduler.on_start(partial(_rebuild_timers, services))
