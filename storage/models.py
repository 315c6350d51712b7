"""SQLAlchemy models: communities, chats, members, memberships, activity and its rollups.

Times are stored in UTC; `day` columns are calendar days in the community's time zone.
No message text is stored: activity rows say who, where, when, what kind and how long.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (naive storage) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Community(Base):
    """A Telegram group or a Discord server: the unit settings and reports belong to."""

    __tablename__ = "communities"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(256))
    timezone: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(8))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the bot was removed (it still may come back); purged after a grace period.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Chat(Base):
    """A chat (Telegram group, Discord channel) inside a community."""

    __tablename__ = "chats"
    __table_args__ = (UniqueConstraint("community_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16))


class Member(Base):
    """A platform account seen by the bot."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(256))
    username: Mapped[str | None] = mapped_column(String(64))
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Membership(Base):
    """A member in a community: first seen, last active, joined and left."""

    __tablename__ = "memberships"

    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by `/optout`: kept out of leaderboards and named lists, still in anonymous totals.
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Local days of the first and the latest message, kept at write time: segments tell a
    # dormant member from a lurker without reading their whole `member_days` history.
    first_posted_on: Mapped[date | None] = mapped_column(Date)
    last_posted_on: Mapped[date | None] = mapped_column(Date)
    # Bit k: posted on day number `recent_posts_day - k` (k < 62); see `storage.postdays`.
    recent_posts: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    recent_posts_day: Mapped[int | None] = mapped_column(Integer)


class ActivityEvent(Base):
    """One raw activity event; `event_key` makes replays and duplicates harmless."""

    __tablename__ = "activity_events"
    __table_args__ = (
        UniqueConstraint("chat_id", "event_key"),
        Index(None, "community_id", "occurred_at"),
        # Deleting a member (`/forgetme`, retention) finds their rows without a table scan.
        Index(None, "member_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[int] = mapped_column(SmallInteger)
    content: Mapped[str | None] = mapped_column(String(16))
    length: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    is_reply: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    event_key: Mapped[str] = mapped_column(String(128))


class CommunityDay(Base):
    """Per community and local day counters, kept current by the activity writer."""

    __tablename__ = "community_days"

    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    active_members: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    joins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    leaves: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reactions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    replies: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The platform's member count, recorded when the day's figures were first summarised
    # (platforms give only the current count, so it cannot be recomputed later).
    member_count: Mapped[int | None] = mapped_column(Integer)


class CommunityHour(Base):
    """Per community, local day and local hour (0-23) counters, kept by the activity writer:
    hour-of-day charts and the best-time heat map read these, never raw events."""

    __tablename__ = "community_hours"

    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hour: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reactions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class MemberDay(Base):
    """Per community, local day and member counters (activity, contributors, retention)."""

    __tablename__ = "member_days"
    __table_args__ = (Index(None, "member_id"),)

    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    messages: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reactions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    replies: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    characters: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Occurrence(Base):
    """One scheduled firing (`what` at `due_at`), claimed before it acts so it acts once.

    Status: claimed -> done | failed; or missed (too late to act, recorded for managers).
    A failed send may wait as `retrying` and be claimed again by its retry timer.
    A `claimed` row that never finished means the process died mid-firing: it is not retried
    (at most once), and reports show it.
    """

    __tablename__ = "occurrences"
    __table_args__ = (UniqueConstraint("what", "due_at"), Index(None, "status", "due_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    what: Mapped[str] = mapped_column(String(128))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str | None] = mapped_column(String(256))


class InstallSecret(Base):
    """Random keys made once per install (e.g. for pseudonymous ids in exports)."""

    __tablename__ = "install_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Giveaway(Base):
    """A giveaway: open until `ends_at`, then drawn once (or cancelled).

    `seed` stays secret until the draw; `commitment` (its SHA-256) is published at start.
    `entry_count` is kept with the entries in one transaction, so `max_entries` holds
    under concurrent presses. `rounds` lists the draw and each reroll (asked size, who, when).
    """

    __tablename__ = "giveaways"
    __table_args__ = (Index(None, "status", "ends_at"), Index(None, "community_id", "status"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(64))
    chat_title: Mapped[str | None] = mapped_column(String(256))
    chat_kind: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str | None] = mapped_column(String(64))
    prize: Mapped[str] = mapped_column(String(256))
    winners: Mapped[int] = mapped_column(Integer)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    seed: Mapped[str] = mapped_column(String(64))
    commitment: Mapped[str] = mapped_column(String(64))
    requirements: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    max_entries: Mapped[int | None] = mapped_column(Integer)
    entry_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    count_shown: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    drawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    drawn_late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    entrants_digest: Mapped[str | None] = mapped_column(String(64))
    rounds: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    result_message_id: Mapped[str | None] = mapped_column(String(64))
    result_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GiveawayEntry(Base):
    """One member's entry; the primary key makes a second entry impossible."""

    __tablename__ = "giveaway_entries"
    __table_args__ = (UniqueConstraint("giveaway_id", "entrant_id"),)

    giveaway_id: Mapped[int] = mapped_column(
        ForeignKey("giveaways.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    entrant_id: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str] = mapped_column(String(256))
    weight: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GiveawayWinner(Base):
    """A winner: `round` 0 is the draw, 1.. are rerolls; `position` orders each round."""

    __tablename__ = "giveaway_winners"

    giveaway_id: Mapped[int] = mapped_column(
        ForeignKey("giveaways.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    round: Mapped[int] = mapped_column(SmallInteger)
    position: Mapped[int] = mapped_column(SmallInteger)
    notified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ScheduledPost(Base):
    """A post a manager planned: one-off or recurring, in the community's time zone.

    `schedule` is the canonical schedule text (`handlers.posts.schedule`); `next_run_at` is
    the next occurrence it owes (UTC), advanced only by the process that claimed the
    previous one. `body` is a sandboxed template, or `template_name` names a saved one.
    Status: pending (awaiting approval) -> active <-> paused; done (no runs left); deleted.
    """

    __tablename__ = "posts"
    __table_args__ = (Index(None, "status", "next_run_at"), Index(None, "community_id", "status"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(64))
    chat_title: Mapped[str | None] = mapped_column(String(256))
    chat_kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str | None] = mapped_column(Text)
    template_name: Mapped[str | None] = mapped_column(String(64))
    schedule: Mapped[str] = mapped_column(String(200))
    misfire: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    runs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    compliance_override: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    created_by: Mapped[str] = mapped_column(String(64))
    created_by_name: Mapped[str] = mapped_column(String(256))
    edited_by: Mapped[str | None] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PostTemplate(Base):
    """A named, reusable post text (`/template save`), shared by posts and other features."""

    __tablename__ = "post_templates"

    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    saved_by: Mapped[str] = mapped_column(String(64))
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PostAudit(Base):
    """Who created, edited, approved, overrode, paused, resumed, deleted or ran which post."""

    __tablename__ = "post_audit"
    __table_args__ = (Index(None, "post_id", "at"), Index(None, "community_id", "at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    post_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    action: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_name: Mapped[str | None] = mapped_column(String(256))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[str | None] = mapped_column(String(512))


class PointsEntry(Base):
    """One change of a member's points: balances are sums of this ledger, never stored.

    `(community_id, user_id, reason, ref)` is unique, so an award for the same thing
    (a quiz answer, a giveaway entry, one message) is written once however often it is tried.
    """

    __tablename__ = "points_ledger"
    __table_args__ = (
        UniqueConstraint("community_id", "user_id", "reason", "ref"),
        Index(None, "community_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(256))
    amount: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(128))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(256))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Poll(Base):
    """A poll: native on the platform where it exists, buttons elsewhere; closed once.

    `native_poll_id` is the platform's poll id (votes arrive by it). For anonymous native
    polls the platform reports only totals, kept in `native_totals`.
    Status: open -> closed (a conditional UPDATE, so closing happens once).
    """

    __tablename__ = "polls"
    __table_args__ = (
        Index(None, "status", "closes_at"),
        Index(None, "community_id", "status"),
        Index(None, "native_poll_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(64))
    chat_title: Mapped[str | None] = mapped_column(String(256))
    chat_kind: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str | None] = mapped_column(String(64))
    native_poll_id: Mapped[str | None] = mapped_column(String(128))
    native: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    question: Mapped[str] = mapped_column(String(300))
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    multiple: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    native_totals: Mapped[list[int] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    created_by_name: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(64))
    result_message_id: Mapped[str | None] = mapped_column(String(64))
    result_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PollVote(Base):
    """A member's current choice in a poll (a changed vote replaces it)."""

    __tablename__ = "poll_votes"

    poll_id: Mapped[int] = mapped_column(
        ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(256))
    option_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    voted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QuizSet(Base):
    """A named set of quiz questions a manager loaded, optionally running as a game.

    `questions` holds `{"question", "right", "wrong": [...]}` objects. While running, one
    question is asked every `every_minutes`, starting at `next_run_at`, at `next_position`.
    Status: idle -> running <-> paused; running -> finished after the last question.
    """

    __tablename__ = "quiz_sets"
    __table_args__ = (
        UniqueConstraint("community_id", "name"),
        Index(None, "status", "next_run_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    questions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str | None] = mapped_column(String(64))
    chat_title: Mapped[str | None] = mapped_column(String(256))
    chat_kind: Mapped[str | None] = mapped_column(String(16))
    every_minutes: Mapped[int | None] = mapped_column(Integer)
    answer_minutes: Mapped[int | None] = mapped_column(Integer)
    points: Mapped[int | None] = mapped_column(Integer)
    reward_first: Mapped[int | None] = mapped_column(Integer)
    next_position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Quiz(Base):
    """One quiz question posted with answer buttons; members answer once, it closes once.

    `options` is the order shown; `correct_option` indexes it. `reward_first` limits the
    points to the first K correct answers (None: every correct answer earns them).
    """

    __tablename__ = "quizzes"
    __table_args__ = (Index(None, "status", "closes_at"), Index(None, "community_id", "status"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(64))
    chat_title: Mapped[str | None] = mapped_column(String(256))
    chat_kind: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str | None] = mapped_column(String(64))
    question: Mapped[str] = mapped_column(String(300))
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    correct_option: Mapped[int] = mapped_column(SmallInteger)
    points: Mapped[int] = mapped_column(Integer)
    reward_first: Mapped[int | None] = mapped_column(Integer)
    set_id: Mapped[int | None] = mapped_column(ForeignKey("quiz_sets.id", ondelete="SET NULL"))
    set_position: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    correct_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result_message_id: Mapped[str | None] = mapped_column(String(64))


class QuizAnswer(Base):
    """A member's one answer to a quiz; `rank` orders the correct ones (1 = fastest)."""

    __tablename__ = "quiz_answers"

    quiz_id: Mapped[int] = mapped_column(
        ForeignKey("quizzes.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(256))
    option: Mapped[int] = mapped_column(SmallInteger)
    correct: Mapped[bool] = mapped_column(Boolean)
    rank: Mapped[int | None] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FaqEntry(Base):
    """A question the bot answers by itself when a member asks something close enough."""

    __tablename__ = "faq_entries"
    __table_args__ = (Index(None, "community_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(String(500))
    answer: Mapped[str] = mapped_column(Text)
    hits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    source_question_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite")
    )
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FaqReply(Base):
    """When the bot last answered a member with an FAQ entry (at most once an hour each)."""

    __tablename__ = "faq_replies"

    faq_id: Mapped[int] = mapped_column(
        ForeignKey("faq_entries.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QaSession(Base):
    """An AMA: open while members ask and vote, closed with a recap."""

    __tablename__ = "qa_sessions"
    __table_args__ = (Index(None, "community_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(64))
    chat_title: Mapped[str | None] = mapped_column(String(256))
    chat_kind: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str] = mapped_column(String(256))
    host_id: Mapped[str] = mapped_column(String(64))
    host_name: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recap_message_id: Mapped[str | None] = mapped_column(String(64))


class QaQuestion(Base):
    """A member's question in an AMA. Its text is stored: the member submitted it to be shown.

    Status: open -> answered | dismissed. `votes` is kept with `qa_votes` in one transaction.
    """

    __tablename__ = "qa_questions"
    __table_args__ = (Index(None, "session_id", "status"), Index(None, "community_id", "status"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("qa_sessions.id", ondelete="CASCADE"))
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    asker_id: Mapped[str] = mapped_column(String(64))
    asker_name: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(String(1000))
    votes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    message_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by: Mapped[str | None] = mapped_column(String(64))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    faq_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QaVote(Base):
    """One member's upvote of a question (the key makes a second vote impossible)."""

    __tablename__ = "qa_votes"

    question_id: Mapped[int] = mapped_column(
        ForeignKey("qa_questions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    voted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertRecord(Base):
    """An alert raised to a community's managers (a watched word, a negative spike, an activity
    drop or surge). `subject` names what it is about (the word, "activity"), so a storm of the
    same alert is one row whose `count` grows, not a hundred messages."""

    __tablename__ = "alerts"
    __table_args__ = (Index(None, "community_id", "kind", "subject", "last_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(128))
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
