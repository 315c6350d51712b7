"""Quiz rows: one answer per member, ranks that never repeat, a close that happens once.

Every state change is one conditional statement, so two presses, two processes, or a
press racing the close cannot both win: the database decides. Quiz sets move through
their questions the same way (a conditional advance per slot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import occurrences
from storage.db import dialect_insert, transition
from storage.models import Occurrence, Quiz, QuizAnswer, QuizSet
from storage.points import Award, PointsReason, award
from storage.privacy import opted_out

QUIZZES = Quiz.__table__
ANSWERS = QuizAnswer.__table__
SETS = QuizSet.__table__
OCCURRENCES = Occurrence.__table__


class QuizStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"  # its message could not be posted


class SetStatus(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    FINISHED = "finished"


class AnswerOutcome(StrEnum):
    ANSWERED = "answered"
    ALREADY = "already"  # this member answered before
    CLOSED = "closed"  # closed (or past its closing time) before this answer counted


@dataclass(frozen=True, slots=True)
class AnswerResult:
    outcome: AnswerOutcome
    option: int | None = None  # the option chosen (the earlier one, for ALREADY)
    rank: int | None = None  # among correct answers, 1 = fastest


@dataclass(frozen=True, slots=True)
class AnswerRow:
    user_id: str
    display_name: str
    option: int
    correct: bool
    rank: int | None
    points: int
    answered_at: datetime


def result_what(quiz_id: int) -> str:
    """The occurrence that stands for posting a quiz's result (claimed by one poster)."""
    return f"quiz:{quiz_id}:result"


# --- quizzes --------------------------------------------------------------------------------


async def get(session: AsyncSession, community_id: int, quiz_id: int) -> Quiz | None:
    """A quiz of this community (ids of other communities are not found)."""
    found = await session.get(Quiz, quiz_id, populate_existing=True)
    return found if found is not None and found.community_id == community_id else None


async def by_id(session: AsyncSession, quiz_id: int) -> Quiz | None:
    return await session.get(Quiz, quiz_id, populate_existing=True)


async def answer(
    session: AsyncSession,
    quiz_id: int,
    *,
    user_id: str,
    display_name: str,
    option: int,
    correct: bool,
    now: datetime,
) -> AnswerResult:
    """Record one answer unless the member answered already or the quiz is closed.

    The answer row and the quiz row's update happen in the caller's transaction; the
    update locks the quiz row (PostgreSQL) or the database (SQLite), so correct answers get
    distinct ranks in commit order, and an answer racing the close either counts before
    it or finds the quiz closed (then the caller rolls back and the row goes again).
    """
    inserted = (
        await session.execute(
            dialect_insert(session)(ANSWERS)
            .values(
                quiz_id=quiz_id,
                user_id=user_id,
                display_name=display_name[:256],
                option=option,
                correct=correct,
                rank=None,
                points=0,
                answered_at=now,
            )
            .on_conflict_do_nothing()
            .returning(ANSWERS.c.user_id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        earlier = await session.scalar(
            select(ANSWERS.c.option).where(
                ANSWERS.c.quiz_id == quiz_id, ANSWERS.c.user_id == user_id
            )
        )
        return AnswerResult(AnswerOutcome.ALREADY, option=earlier)
    # A wrong answer "updates" the count to itself: the same row lock and the same check
    # that the quiz is still open, so wrong answers can't slip in after the close either.
    bumped = (
        await session.execute(
            update(QUIZZES)
            .where(
                QUIZZES.c.id == quiz_id,
                QUIZZES.c.status == QuizStatus.OPEN.value,
                QUIZZES.c.closes_at > now,
            )
            .values(correct_count=QUIZZES.c.correct_count + (1 if correct else 0))
            .returning(QUIZZES.c.correct_count)
        )
    ).scalar_one_or_none()
    if bumped is None:
        return AnswerResult(AnswerOutcome.CLOSED, option=option)
    if not correct:
        return AnswerResult(AnswerOutcome.ANSWERED, option=option)
    await session.execute(
        update(ANSWERS)
        .where(ANSWERS.c.quiz_id == quiz_id, ANSWERS.c.user_id == user_id)
        .values(rank=bumped)
    )
    return AnswerResult(AnswerOutcome.ANSWERED, option=option, rank=bumped)


async def claim_close(
    session: AsyncSession, quiz_id: int, *, now: datetime, early: bool = False
) -> bool:
    """Move an open quiz to closed; True for exactly one caller. Answers stop here."""
    conditions = [QUIZZES.c.status == QuizStatus.OPEN.value]
    if not early:
        conditions.append(QUIZZES.c.closes_at <= now)
    return await transition(
        session, QUIZZES, quiz_id, *conditions, status=QuizStatus.CLOSED.value, closed_at=now
    )


async def reward(session: AsyncSession, quiz: Quiz, *, now: datetime) -> int:
    """Award the quiz's points to its first K correct answers (all when K is None), in the
    caller's transaction (the one that closed the quiz); returns how many were awarded."""
    if quiz.points <= 0:
        return 0
    earning = [ANSWERS.c.quiz_id == quiz.id, ANSWERS.c.correct.is_(True)]
    if quiz.reward_first is not None:
        earning.append(ANSWERS.c.rank <= quiz.reward_first)
    rows = await session.execute(
        select(ANSWERS.c.user_id, ANSWERS.c.display_name).where(*earning).order_by(ANSWERS.c.rank)
    )
    awarded = 0
    for user_id, display_name in rows.all():
        item = Award(
            user_id, display_name, quiz.points, PointsReason.QUIZ_CORRECT, f"quiz:{quiz.id}"
        )
        awarded += await award(session, quiz.community_id, item, now=now)
    await session.execute(update(ANSWERS).where(*earning).values(points=quiz.points))
    return awarded


async def cancel(session: AsyncSession, quiz_id: int) -> bool:
    """Cancel an open quiz (its message never reached the chat); False if it wasn't open."""
    done = (
        await session.execute(
            update(QUIZZES)
            .where(QUIZZES.c.id == quiz_id, QUIZZES.c.status == QuizStatus.OPEN.value)
            .values(status=QuizStatus.CANCELLED.value)
            .returning(QUIZZES.c.id)
        )
    ).scalar_one_or_none()
    return done is not None


async def option_counts(session: AsyncSession, quiz_id: int, options: int) -> list[int]:
    """How many members chose each option."""
    counts = [0] * options
    rows = await session.execute(
        select(ANSWERS.c.option, func.count())
        .where(ANSWERS.c.quiz_id == quiz_id)
        .group_by(ANSWERS.c.option)
    )
    for option, count in rows.all():
        if 0 <= option < options:
            counts[option] = int(count)
    return counts


async def fastest(session: AsyncSession, quiz_id: int, limit: int) -> list[AnswerRow]:
    """The correct answers, fastest first; members who opted out are left out (their ranks
    are not reused: the list may skip a number)."""
    rows = await session.execute(
        select(
            ANSWERS.c.user_id,
            ANSWERS.c.display_name,
            ANSWERS.c.option,
            ANSWERS.c.correct,
            ANSWERS.c.rank,
            ANSWERS.c.points,
            ANSWERS.c.answered_at,
        )
        .join(QUIZZES, QUIZZES.c.id == ANSWERS.c.quiz_id)
        .where(ANSWERS.c.quiz_id == quiz_id, ANSWERS.c.correct.is_(True))
        .where(~opted_out(QUIZZES.c.community_id, ANSWERS.c.user_id))
        .order_by(ANSWERS.c.rank)
        .limit(limit)
    )
    return [AnswerRow(*row) for row in rows.all()]


async def answer_totals(session: AsyncSession, quiz_ids: Sequence[int]) -> dict[int, int]:
    """How many members answered each quiz."""
    if not quiz_ids:
        return {}
    rows = await session.execute(
        select(ANSWERS.c.quiz_id, func.count())
        .where(ANSWERS.c.quiz_id.in_(list(quiz_ids)))
        .group_by(ANSWERS.c.quiz_id)
    )
    return {quiz_id: int(count) for quiz_id, count in rows.all()}


async def listing(session: AsyncSession, community_id: int, limit: int = 15) -> list[Quiz]:
    """Open quizzes first (soonest close first), then the latest closed ones."""
    mine = Quiz.community_id == community_id
    is_open = Quiz.status == QuizStatus.OPEN.value
    opened = await session.execute(
        select(Quiz).where(mine, is_open).order_by(Quiz.closes_at).limit(limit)
    )
    found = list(opened.scalars().all())
    closed = await session.execute(
        select(Quiz)
        .where(mine, Quiz.status == QuizStatus.CLOSED.value)
        .order_by(Quiz.closed_at.desc(), Quiz.id.desc())
        .limit(limit - len(found))
    )
    return found + list(closed.scalars().all())


async def open_quizzes(session: AsyncSession) -> list[tuple[int, datetime]]:
    """(id, closes_at) of every open quiz, to rebuild timers at start-up."""
    rows = await session.execute(
        select(QUIZZES.c.id, QUIZZES.c.closes_at).where(QUIZZES.c.status == QuizStatus.OPEN.value)
    )
    return [(row[0], row[1]) for row in rows.all()]


async def due_to_close(session: AsyncSession, *, now: datetime) -> list[int]:
    """Open quizzes past their closing time (a timer was missed: restart, downtime)."""
    rows = await session.execute(
        select(QUIZZES.c.id)
        .where(QUIZZES.c.status == QuizStatus.OPEN.value, QUIZZES.c.closes_at <= now)
        .order_by(QUIZZES.c.closes_at, QUIZZES.c.id)
    )
    return [row[0] for row in rows.all()]


async def unannounced(session: AsyncSession, *, since: datetime) -> list[int]:
    """Closed quizzes (closed from `since` on) whose result post is not recorded yet."""
    rows = await session.execute(
        select(QUIZZES.c.id)
        .where(
            QUIZZES.c.status == QuizStatus.CLOSED.value,
            QUIZZES.c.result_message_id.is_(None),
            QUIZZES.c.closed_at >= since,
        )
        .order_by(QUIZZES.c.closed_at, QUIZZES.c.id)
    )
    return [row[0] for row in rows.all()]


async def take_result_claim(
    session: AsyncSession,
    quiz: Quiz,
    *,
    now: datetime,
    lease: timedelta,
    instance: str,
) -> int | None:
    """The right to post a closed quiz's result: an occurrence id, or None if someone else
    holds it. A claim whose poster failed (`retrying`) or vanished (claimed longer than
    `lease` ago) can be taken again, so a result is never lost to one bad moment."""
    assert quiz.closed_at is not None
    what = result_what(quiz.id)
    claimed = await occurrences.claim(
        session, what, quiz.closed_at, now=now, instance=instance, grace=timedelta.max
    )
    if claimed.outcome is occurrences.ClaimOutcome.CLAIMED:
        return claimed.occurrence_id
    retaken = await session.execute(
        update(OCCURRENCES)
        .where(
            OCCURRENCES.c.what == what,
            OCCURRENCES.c.due_at == quiz.closed_at,
            or_(
                OCCURRENCES.c.status == occurrences.OccurrenceStatus.RETRYING.value,
                and_(
                    OCCURRENCES.c.status == occurrences.OccurrenceStatus.CLAIMED.value,
                    OCCURRENCES.c.claimed_at <= now - lease,
                ),
            ),
        )
        .values(
            status=occurrences.OccurrenceStatus.CLAIMED.value,
            claimed_at=now,
            claimed_by=instance[:64],
        )
        .returning(OCCURRENCES.c.id)
    )
    return retaken.scalar_one_or_none()


async def result_failed(session: AsyncSession, occurrence_id: int, detail: str) -> None:
    """The result could not be posted now: let the next sweep take the claim again."""
    await session.execute(
        update(OCCURRENCES)
        .where(OCCURRENCES.c.id == occurrence_id)
        .values(status=occurrences.OccurrenceStatus.RETRYING.value, detail=detail[:256])
    )


async def result_posted(
    session: AsyncSession, quiz_id: int, occurrence_id: int, message_id: str, *, now: datetime
) -> None:
    await session.execute(
        update(QUIZZES).where(QUIZZES.c.id == quiz_id).values(result_message_id=message_id)
    )
    await occurrences.finish(session, occurrence_id, now=now)


# --- sets -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Score:
    """A member's total over a set's quizzes."""

    user_id: str
    display_name: str
    points: int
    correct: int
    answered: int


async def get_set(session: AsyncSession, community_id: int, name: str) -> QuizSet | None:
    query = select(QuizSet).where(QuizSet.community_id == community_id, QuizSet.name == name)
    return (
        await session.execute(query.execution_options(populate_existing=True))
    ).scalar_one_or_none()


async def set_by_id(session: AsyncSession, set_id: int) -> QuizSet | None:
    return await session.get(QuizSet, set_id, populate_existing=True)


async def sets_of(session: AsyncSession, community_id: int) -> list[QuizSet]:
    query = select(QuizSet).where(QuizSet.community_id == community_id).order_by(QuizSet.name)
    return list((await session.execute(query)).scalars().all())


async def save_set(
    session: AsyncSession,
    community_id: int,
    name: str,
    questions: list[dict[str, Any]],
    *,
    by: str,
    now: datetime,
) -> bool | None:
    """Create the set, or replace the questions of an existing one that is not running.
    True: created; False: replaced; None: it is running (nothing changed)."""
    created = (
        await session.execute(
            dialect_insert(session)(SETS)
            .values(
                community_id=community_id,
                name=name,
                questions=questions,
                status=SetStatus.IDLE.value,
                next_position=0,
                created_by=by[:64],
                created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(SETS.c.id)
        )
    ).scalar_one_or_none()
    if created is not None:
        return True
    replaced = (
        await session.execute(
            update(SETS)
            .where(
                SETS.c.community_id == community_id,
                SETS.c.name == name,
                SETS.c.status != SetStatus.RUNNING.value,
            )
            .values(
                questions=questions,
                status=SetStatus.IDLE.value,
                next_position=0,
                next_run_at=None,
                created_by=by[:64],
            )
            .returning(SETS.c.id)
        )
    ).scalar_one_or_none()
    return False if replaced is not None else None


async def delete_set(session: AsyncSession, set_id: int) -> bool:
    """Delete a set that is not running; its quizzes stay, no longer part of a set (the
    foreign key sets their `set_id` to NULL)."""
    deleted = await session.execute(
        SETS.delete()
        .where(SETS.c.id == set_id, SETS.c.status != SetStatus.RUNNING.value)
        .returning(SETS.c.id)
    )
    return deleted.scalar_one_or_none() is not None


async def start_set(
    session: AsyncSession,
    set_id: int,
    *,
    chat: tuple[str, str | None, str],
    every_minutes: int,
    answer_minutes: int,
    points: int,
    reward_first: int | None,
    now: datetime,
) -> bool:
    """Start a game from the first question now; False when it is running already.
    The quizzes of an earlier game leave the set, so its scoreboard counts this game only."""
    chat_id, chat_title, chat_kind = chat
    started = (
        await session.execute(
            update(SETS)
            .where(SETS.c.id == set_id, SETS.c.status != SetStatus.RUNNING.value)
            .values(
                status=SetStatus.RUNNING.value,
                chat_id=chat_id,
                chat_title=chat_title,
                chat_kind=chat_kind,
                every_minutes=every_minutes,
                answer_minutes=answer_minutes,
                points=points,
                reward_first=reward_first,
                next_position=0,
                next_run_at=now,
            )
            .returning(SETS.c.id)
        )
    ).scalar_one_or_none()
    if started is None:
        return False
    await session.execute(update(QUIZZES).where(QUIZZES.c.set_id == set_id).values(set_id=None))
    return True


async def stop_set(session: AsyncSession, set_id: int) -> bool:
    """Stop a running game (no more questions); False when it wasn't running."""
    stopped = await session.execute(
        update(SETS)
        .where(SETS.c.id == set_id, SETS.c.status == SetStatus.RUNNING.value)
        .values(status=SetStatus.IDLE.value, next_run_at=None)
        .returning(SETS.c.id)
    )
    return stopped.scalar_one_or_none() is not None


async def advance_set(
    session: AsyncSession,
    set_id: int,
    *,
    position: int,
    due: datetime,
    next_run_at: datetime | None,
) -> bool:
    """Take the slot (`position`, `due`): True for exactly one caller, who asks that
    question. Whoever loses (a second timer, another instance) sees the position moved."""
    won = await session.execute(
        update(SETS)
        .where(
            SETS.c.id == set_id,
            SETS.c.status == SetStatus.RUNNING.value,
            SETS.c.next_position == position,
            SETS.c.next_run_at == due,
        )
        .values(next_position=position + 1, next_run_at=next_run_at)
        .returning(SETS.c.id)
    )
    return won.scalar_one_or_none() is not None


async def finish_set_if_done(session: AsyncSession, set_id: int, questions: int) -> bool:
    """Mark a running game finished once every question was asked and none is open;
    True for exactly one caller (who then shows the final scoreboard)."""
    still_open = (
        select(func.count())
        .select_from(QUIZZES)
        .where(QUIZZES.c.set_id == set_id, QUIZZES.c.status == QuizStatus.OPEN.value)
        .scalar_subquery()
    )
    finished = await session.execute(
        update(SETS)
        .where(
            SETS.c.id == set_id,
            SETS.c.status == SetStatus.RUNNING.value,
            SETS.c.next_position >= questions,
            still_open == 0,
        )
        .values(status=SetStatus.FINISHED.value, next_run_at=None)
        .returning(SETS.c.id)
    )
    return finished.scalar_one_or_none() is not None


async def running_sets(session: AsyncSession) -> list[tuple[int, datetime | None]]:
    """(id, next_run_at) of every running game, to rebuild timers at start-up."""
    rows = await session.execute(
        select(SETS.c.id, SETS.c.next_run_at).where(SETS.c.status == SetStatus.RUNNING.value)
    )
    return [(row[0], row[1]) for row in rows.all()]


async def due_sets(session: AsyncSession, *, now: datetime) -> list[int]:
    rows = await session.execute(
        select(SETS.c.id)
        .where(SETS.c.status == SetStatus.RUNNING.value, SETS.c.next_run_at <= now)
        .order_by(SETS.c.next_run_at)
    )
    return [row[0] for row in rows.all()]


async def open_in_set(session: AsyncSession, set_id: int, *, due_by: datetime) -> list[int]:
    """The set's open quizzes whose closing time has come."""
    rows = await session.execute(
        select(QUIZZES.c.id)
        .where(
            QUIZZES.c.set_id == set_id,
            QUIZZES.c.status == QuizStatus.OPEN.value,
            QUIZZES.c.closes_at <= due_by,
        )
        .order_by(QUIZZES.c.id)
    )
    return [row[0] for row in rows.all()]


async def set_progress(session: AsyncSession, set_id: int) -> tuple[int, int]:
    """(quizzes asked, of them closed) in the set's current game."""
    closed = func.sum(case((QUIZZES.c.status == QuizStatus.CLOSED.value, 1), else_=0))
    row = (
        await session.execute(
            select(func.count(), func.coalesce(closed, 0)).where(QUIZZES.c.set_id == set_id)
        )
    ).one()
    return int(row[0]), int(row[1])


async def scoreboard(session: AsyncSession, set_id: int, limit: int = 10) -> list[Score]:
    """Members by points over the set's closed quizzes, then by right answers."""
    points = func.sum(ANSWERS.c.points)
    correct = func.sum(case((ANSWERS.c.correct.is_(True), 1), else_=0))
    rows = await session.execute(
        select(
            ANSWERS.c.user_id,
            func.max(ANSWERS.c.display_name),
            points,
            correct,
            func.count(),
        )
        .join(QUIZZES, QUIZZES.c.id == ANSWERS.c.quiz_id)
        .where(QUIZZES.c.set_id == set_id, QUIZZES.c.status == QuizStatus.CLOSED.value)
        .group_by(ANSWERS.c.user_id)
        .order_by(points.desc(), correct.desc(), ANSWERS.c.user_id)
        .limit(limit)
    )
    return [Score(r[0], r[1], int(r[2] or 0), int(r[3] or 0), int(r[4])) for r in rows.all()]
