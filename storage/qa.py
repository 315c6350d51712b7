"""AMA (Q&A) sessions, their questions and upvotes.

Every state change that must happen once is one conditional statement, so two hosts,
two presses or two processes cannot both win: the database decides. A vote is a row
keyed by (question, member) plus a counter bump in the same transaction, so the counter
always equals the rows. Repositories take the caller's session and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import Community, QaQuestion, QaSession, QaVote
from storage.privacy import opted_out

QUESTIONS = QaQuestion.__table__
SESSIONS = QaSession.__table__
VOTES = QaVote.__table__


class SessionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class QuestionStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    DISMISSED = "dismissed"


# Most votes first, then the oldest: the order a host takes questions in.
_QUEUE_ORDER = (QaQuestion.votes.desc(), QaQuestion.asked_at, QaQuestion.id)


# --- sessions ------------------------------------------------------------------------------


async def lock_community(session: AsyncSession, community_id: int) -> None:
    """Serialize "is an AMA open here?" checks with the inserts that follow them.

    There is no unique index on open sessions per chat, so two managers opening at once
    could both see none. Locking the community row (PostgreSQL; SQLite has one writer
    anyway and ignores FOR UPDATE) makes the second wait and then see the first one.
    """
    await session.execute(
        select(Community.id).where(Community.id == community_id).with_for_update()
    )


async def open_session_in(
    session: AsyncSession, community_id: int, chat_id: str, *, lock: bool = False
) -> QaSession | None:
    """The open AMA of one chat, if any; `lock` holds its row until the caller commits,
    so a question or a close cannot interleave with the caller's checks."""
    query = (
        select(QaSession)
        .where(
            QaSession.community_id == community_id,
            QaSession.chat_id == chat_id,
            QaSession.status == SessionStatus.OPEN.value,
        )
        .order_by(QaSession.id)
        .limit(1)
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalars().first()


async def get_session(session: AsyncSession, session_id: int) -> QaSession | None:
    return await session.get(QaSession, session_id, populate_existing=True)


async def create_session(
    session: AsyncSession,
    community_id: int,
    *,
    chat_id: str,
    chat_title: str | None,
    chat_kind: str,
    topic: str,
    host_id: str,
    host_name: str,
    now: datetime,
) -> QaSession:
    """A new open AMA (flushed, so its id is known)."""
    row = QaSession(
        community_id=community_id,
        chat_id=chat_id,
        chat_title=chat_title,
        chat_kind=chat_kind,
        topic=topic[:256],
        host_id=host_id,
        host_name=host_name[:256],
        status=SessionStatus.OPEN.value,
        opened_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def close_session(session: AsyncSession, session_id: int, *, now: datetime) -> bool:
    """Close an open AMA; True for exactly one caller. Its open questions stay open."""
    closed = (
        await session.execute(
            update(SESSIONS)
            .where(SESSIONS.c.id == session_id, SESSIONS.c.status == SessionStatus.OPEN.value)
            .values(status=SessionStatus.CLOSED.value, closed_at=now)
            .returning(SESSIONS.c.id)
        )
    ).scalar_one_or_none()
    return closed is not None


# --- questions -----------------------------------------------------------------------------


async def get_question(
    session: AsyncSession, community_id: int, question_id: int
) -> QaQuestion | None:
    """A question of this community (ids of other communities are not found)."""
    found = await session.get(QaQuestion, question_id, populate_existing=True)
    return found if found is not None and found.community_id == community_id else None


async def add_question(
    session: AsyncSession,
    qa_session: QaSession,
    *,
    asker_id: str,
    asker_name: str,
    text: str,
    now: datetime,
) -> QaQuestion:
    """A member's question in an open AMA (flushed, so its id is known)."""
    row = QaQuestion(
        session_id=qa_session.id,
        community_id=qa_session.community_id,
        asker_id=asker_id,
        asker_name=asker_name[:256],
        text=text[:1000],
        votes=0,
        status=QuestionStatus.OPEN.value,
        asked_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def open_questions(
    session: AsyncSession, session_id: int, *, limit: int | None = None
) -> list[QaQuestion]:
    """An AMA's unanswered questions, most votes first, then the oldest."""
    query = (
        select(QaQuestion)
        .where(
            QaQuestion.session_id == session_id,
            QaQuestion.status == QuestionStatus.OPEN.value,
        )
        .order_by(*_QUEUE_ORDER)
    )
    if limit is not None:
        query = query.limit(limit)
    return list((await session.execute(query)).scalars().all())


async def count_open(session: AsyncSession, session_id: int, asker_id: str | None = None) -> int:
    """How many questions of an AMA wait for an answer (of one member, when given)."""
    query = select(func.count()).where(
        QUESTIONS.c.session_id == session_id, QUESTIONS.c.status == QuestionStatus.OPEN.value
    )
    if asker_id is not None:
        query = query.where(QUESTIONS.c.asker_id == asker_id)
    return int(await session.scalar(query) or 0)


async def set_message_id(session: AsyncSession, question_id: int, message_id: str) -> None:
    """Remember where a question was posted (the answer replies to it)."""
    await session.execute(
        update(QUESTIONS).where(QUESTIONS.c.id == question_id).values(message_id=message_id)
    )


async def mark_answered(
    session: AsyncSession, question_id: int, *, answer: str, by: str, now: datetime
) -> bool:
    """Move an open question to answered; True for exactly one caller."""
    done = (
        await session.execute(
            update(QUESTIONS)
            .where(QUESTIONS.c.id == question_id, QUESTIONS.c.status == QuestionStatus.OPEN.value)
            .values(
                status=QuestionStatus.ANSWERED.value, answer=answer, answered_by=by, answered_at=now
            )
            .returning(QUESTIONS.c.id)
        )
    ).scalar_one_or_none()
    return done is not None


async def dismiss(session: AsyncSession, question_id: int, *, by: str, now: datetime) -> bool:
    """Move an open question to dismissed (spam, off-topic); True for exactly one caller.
    `answered_by`/`answered_at` then say who settled it and when (there is no answer)."""
    done = (
        await session.execute(
            update(QUESTIONS)
            .where(QUESTIONS.c.id == question_id, QUESTIONS.c.status == QuestionStatus.OPEN.value)
            .values(status=QuestionStatus.DISMISSED.value, answered_by=by, answered_at=now)
            .returning(QUESTIONS.c.id)
        )
    ).scalar_one_or_none()
    return done is not None


async def link_faq(session: AsyncSession, question_id: int, faq_id: int) -> bool:
    """Record that an answered question became FAQ entry `faq_id`; False if it is not
    answered or was promoted already (the caller then rolls the new entry back)."""
    done = (
        await session.execute(
            update(QUESTIONS)
            .where(
                QUESTIONS.c.id == question_id,
                QUESTIONS.c.status == QuestionStatus.ANSWERED.value,
                QUESTIONS.c.faq_id.is_(None),
            )
            .values(faq_id=faq_id)
            .returning(QUESTIONS.c.id)
        )
    ).scalar_one_or_none()
    return done is not None


# --- votes ---------------------------------------------------------------------------------


async def upvote(
    session: AsyncSession, question_id: int, user_id: str, *, now: datetime
) -> int | None:
    """Add one member's upvote and bump the counter; returns the new count, or None when
    this member voted for it before. Both happen in the caller's transaction."""
    inserted = (
        await session.execute(
            dialect_insert(session)(VOTES)
            .values(question_id=question_id, user_id=user_id, voted_at=now)
            .on_conflict_do_nothing()
            .returning(VOTES.c.user_id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        return None
    return (
        await session.execute(
            update(QUESTIONS)
            .where(QUESTIONS.c.id == question_id)
            .values(votes=QUESTIONS.c.votes + 1)
            .returning(QUESTIONS.c.votes)
        )
    ).scalar_one()


# --- recap and carry-over ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Asker:
    """One member's part in an AMA: questions asked (dismissed ones not counted)."""

    user_id: str
    display_name: str
    asked: int
    answered: int


@dataclass(frozen=True, slots=True)
class SessionFigures:
    """What a recap says about an AMA. Dismissed questions (spam, off-topic) are counted
    apart and are not part of `asked`, so they don't lower the answered share."""

    asked: int
    answered: int
    dismissed: int
    votes: int
    top_askers: list[Asker]
    top_unanswered: list[QaQuestion]

    @property
    def unanswered(self) -> int:
        return self.asked - self.answered

    @property
    def answered_share(self) -> float | None:
        """answered / asked, or None when nothing was asked."""
        return self.answered / self.asked if self.asked else None


async def figures(
    session: AsyncSession, session_id: int, *, top_askers: int = 3, top_unanswered: int = 5
) -> SessionFigures:
    """Counts, the most active askers and the most-wanted open questions of one AMA."""
    answered = QUESTIONS.c.status == QuestionStatus.ANSWERED.value
    dismissed = QUESTIONS.c.status == QuestionStatus.DISMISSED.value
    totals = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((answered, 1), else_=0)), 0),
                func.coalesce(func.sum(case((dismissed, 1), else_=0)), 0),
                func.coalesce(func.sum(case((dismissed, 0), else_=QUESTIONS.c.votes)), 0),
            ).where(QUESTIONS.c.session_id == session_id)
        )
    ).one()
    total, n_answered, n_dismissed, votes = (int(v) for v in totals)
    asked_count = func.count().label("asked")
    first_asked = func.min(QUESTIONS.c.asked_at)
    askers = (
        await session.execute(
            select(
                QUESTIONS.c.asker_id,
                func.max(QUESTIONS.c.asker_name),
                asked_count,
                func.coalesce(func.sum(case((answered, 1), else_=0)), 0),
            )
            .where(QUESTIONS.c.session_id == session_id, ~dismissed)
            # Members who opted out are not named (their questions still count above).
            .where(~opted_out(QUESTIONS.c.community_id, QUESTIONS.c.asker_id))
            .group_by(QUESTIONS.c.asker_id)
            # Ties go to whoever asked first: they got the conversation going.
            .order_by(asked_count.desc(), first_asked, QUESTIONS.c.asker_id)
            .limit(top_askers)
        )
    ).all()
    return SessionFigures(
        asked=total - n_dismissed,
        answered=n_answered,
        dismissed=n_dismissed,
        votes=votes,
        top_askers=[Asker(r[0], r[1], int(r[2]), int(r[3])) for r in askers],
        top_unanswered=await open_questions(session, session_id, limit=top_unanswered),
    )


@dataclass(frozen=True, slots=True)
class Unanswered:
    """An open question with its AMA's topic, for reports that carry questions over."""

    question_id: int
    session_id: int
    topic: str
    session_open: bool
    asker_id: str
    asker_name: str
    text: str
    votes: int
    asked_at: datetime


async def unanswered(session: AsyncSession, community_id: int, limit: int) -> list[Unanswered]:
    """The community's questions still waiting for an answer, across all its AMAs (open
    and closed), most votes first, then the oldest; at most `limit`.

    Closing an AMA leaves its unanswered questions open on purpose: the daily summary
    lists them with this, and a host can still `/qa answer` them later. Answered and
    dismissed questions are never returned.
    """
    if limit <= 0:
        return []
    rows = (
        await session.execute(
            select(QaQuestion, QaSession.topic, QaSession.status)
            .join(QaSession, QaSession.id == QaQuestion.session_id)
            .where(
                QaQuestion.community_id == community_id,
                QaQuestion.status == QuestionStatus.OPEN.value,
            )
            .order_by(*_QUEUE_ORDER)
            .limit(limit)
        )
    ).all()
    return [
        Unanswered(
            question_id=q.id,
            session_id=q.session_id,
            topic=topic,
            session_open=status == SessionStatus.OPEN.value,
            asker_id=q.asker_id,
            asker_name=q.asker_name,
            text=q.text,
            votes=q.votes,
            asked_at=q.asked_at,
        )
        for q, topic, status in rows
    ]
