"""Members' privacy rights in storage: what names a member, their export, forgetting, opt-outs.

`REFERENCES` says, table by table, which columns name a member (a `members.id`, or a
platform user id with the display name stored next to it) and how a row belongs to a
community; `export_rows` and `forget` both walk it, and the tests check it against
`Base.metadata`, so a new table or column that names members can't be missed silently.

What `forget` does, table by table (all in the caller's transaction: all of it or none):

- `memberships`, `member_days`, `activity_events`: repointed to a fresh tombstone member
  (`forgotten-<random>`, "forgotten member"), so `community_days`, active-member counts,
  new-member counts, hourly activity and a recount of the raw events all stay as they were.
  Raw events get new event keys (platform keys may hold the user id). The tombstone's
  membership is opted out, so it is never named in a list.
- `members`: deleted when no other community has a membership of the account (otherwise it
  is theirs there); with it goes the bot's private chat with them (a community whose
  platform id is the member's own and that has no group chat).
- `points_ledger`: the member's rows deleted (a balance is theirs, not a community total).
- `giveaway_entries`, `giveaway_winners`: drawn and cancelled giveaways keep the rows under
  the tombstone, so the entry count, the frozen entrant list, its digest and the winners
  stay verifiable (the entrant pseudonym is kept: it is part of the published draw). Open
  giveaways: the entry is withdrawn (`entry_count` goes down): the account could otherwise
  enter again and hold two entries, and a tombstone can't receive a prize.
- `poll_votes`: closed polls keep the vote under the tombstone (results as published); in
  open polls it is withdrawn, for the same reason (a second vote would count twice).
- `quiz_answers`: closed quizzes keep the answer under the tombstone (answer counts, right
  answers, ranks as published); in open ones it is withdrawn: `correct_count` goes down and
  the later right answers move up one rank.
- `qa_questions`: open questions are withdrawn (deleted with their votes); answered and
  dismissed ones stay under the tombstone with their text replaced by `REDACTED` (the
  host's answer, the votes and the recap figures stay).
- `qa_votes`: deleted; the question's `votes` counter keeps the total, except on questions
  still open, where it goes down too (a vote from the same account would count twice).
- `faq_replies`: deleted (the entry's `hits` counter keeps the total).
- Columns naming the member as a manager who acted (created, closed, approved, hosted,
  answered, gave points, rerolled: `giveaways.rounds[].by`): repointed to the tombstone.
- `occurrences`: the member's privacy-notice marker (a keyed hash, see `notice_marker`)
  deleted. `communities`, `chats`, `community_days`, `community_hours`, `alerts` and
  `install_secrets` name no member (`NO_MEMBER_DATA`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    and_,
    cast,
    delete,
    false,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.activity import ActivityKind
from storage.db import dialect_insert
from storage.models import (
    Base,
    Chat,
    Community,
    InstallSecret,
    Member,
    Membership,
    Occurrence,
)
from storage.secrets import install_secret

TABLES = Base.metadata.tables
MEMBERS = Member.__table__
MEMBERSHIPS = Membership.__table__
COMMUNITIES = Community.__table__
CHATS = Chat.__table__
OCCURRENCES = Occurrence.__table__
SECRETS = InstallSecret.__table__

TOMBSTONE_PREFIX = "forgotten-"
TOMBSTONE_NAME = "forgotten member"
# What an answered AMA question of a forgotten member says instead of their words.
REDACTED = "[removed]"


@dataclass(frozen=True, slots=True)
class Refs:
    """The columns of one table that name a member, and how its rows belong to a community.

    `member_ids` hold `members.id`; `users` pair a platform user id column with the display
    name stored beside it (or None). A table without `community_id` belongs to one through
    `parent` (its column, the parent table). `export` limits what an export shows (None: all
    but `secret`). `delete` lists the user columns whose rows `forget` deletes; the other
    columns are repointed to the tombstone. `json_users` names user ids inside JSON lists of
    objects: (column, key of each item).
    """

    member_ids: tuple[str, ...] = ()
    users: tuple[tuple[str, str | None], ...] = ()
    json_users: tuple[tuple[str, str], ...] = ()
    parent: tuple[str, str] | None = None
    export: tuple[str, ...] | None = None
    secret: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()


REFERENCES: dict[str, Refs] = {
    "members": Refs(member_ids=("id",)),
    "memberships": Refs(member_ids=("member_id",)),
    "member_days": Refs(member_ids=("member_id",)),
    # Raw activity: when and what kind only (its keys are platform internals).
    "activity_events": Refs(
        member_ids=("member_id",), export=("occurred_at", "kind", "content", "is_reply")
    ),
    "points_ledger": Refs(
        users=(("user_id", "display_name"), ("actor_id", None)), delete=("user_id",)
    ),
    # An open giveaway's seed is its secret until the draw: never in an export.
    "giveaways": Refs(
        users=(("created_by", None),), json_users=(("rounds", "by"),), secret=("seed",)
    ),
    "giveaway_entries": Refs(
        users=(("user_id", "display_name"),), parent=("giveaway_id", "giveaways")
    ),
    "giveaway_winners": Refs(users=(("user_id", None),), parent=("giveaway_id", "giveaways")),
    "posts": Refs(
        users=(("created_by", "created_by_name"), ("edited_by", None), ("approved_by", None))
    ),
    "post_templates": Refs(users=(("saved_by", None),)),
    "post_audit": Refs(users=(("actor_id", "actor_name"),)),
    "polls": Refs(users=(("created_by", "created_by_name"), ("closed_by", None))),
    "poll_votes": Refs(users=(("user_id", "display_name"),), parent=("poll_id", "polls")),
    "quiz_sets": Refs(users=(("created_by", None),)),
    "quizzes": Refs(users=(("created_by", None),)),
    "quiz_answers": Refs(users=(("user_id", "display_name"),), parent=("quiz_id", "quizzes")),
    "faq_entries": Refs(users=(("created_by", None),)),
    "faq_replies": Refs(
        users=(("user_id", None),), parent=("faq_id", "faq_entries"), delete=("user_id",)
    ),
    "qa_sessions": Refs(users=(("host_id", "host_name"),)),
    "qa_questions": Refs(users=(("asker_id", "asker_name"), ("answered_by", None))),
    "qa_votes": Refs(
        users=(("user_id", None),), parent=("question_id", "qa_questions"), delete=("user_id",)
    ),
}

# Tables that name no member, and why (the tests require every table to be in one of the two).
NO_MEMBER_DATA: dict[str, str] = {
    "communities": "groups and servers; a member's private chat with the bot goes with them",
    "chats": "chats of a community",
    "community_days": "anonymous day totals",
    "community_hours": "anonymous hour totals",
    # Watched words and activity levels. If an alert's `detail` ever names members, it
    # belongs in REFERENCES instead.
    "alerts": "alerts about words and activity levels, not about members",
    "occurrences": "timer claims; the privacy-notice marker is a keyed hash, deleted by forget",
    "install_secrets": "the install's random keys",
}


def _scope(table: Table, refs: Refs, community_id: int) -> ColumnElement[bool]:
    """Rows of `table` that belong to the community."""
    if "community_id" in table.c:
        return table.c.community_id == community_id
    assert refs.parent is not None, f"{table.name}: no community_id and no parent"
    column, parent_name = refs.parent
    parent = TABLES[parent_name]
    return table.c[column].in_(select(parent.c.id).where(parent.c.community_id == community_id))


@dataclass(frozen=True, slots=True)
class Subject:
    """The member whose rows are wanted: their account (if the bot has one) in a community."""

    community_id: int
    platform: str
    user_id: str
    member_id: int | None


async def subject(session: AsyncSession, community: Community, user_id: str) -> Subject:
    member_id = await session.scalar(
        select(MEMBERS.c.id).where(
            MEMBERS.c.platform == community.platform, MEMBERS.c.external_id == user_id
        )
    )
    return Subject(community.id, community.platform, user_id, member_id)


def _naming(table: Table, refs: Refs, who: Subject) -> ColumnElement[bool]:
    """Rows of `table` that name the member in any of its member columns (JSON lists are
    checked in Python: `_named_in_json`)."""
    conditions = [table.c[c] == who.user_id for c, _ in refs.users]
    if who.member_id is not None:
        conditions += [table.c[c] == who.member_id for c in refs.member_ids]
    conditions += [table.c[c].is_not(None) for c, _ in refs.json_users]
    return or_(*conditions) if conditions else false()


def _named_in_json(items: Any, key: str, user_id: str) -> bool:
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get(key) == user_id for item in items
    )


def _names(table: Table, refs: Refs, who: Subject, row: Any) -> bool:
    """Whether a row found by `_naming` really names the member."""
    values = row._mapping
    if any(values[table.c[c]] == who.user_id for c, _ in refs.users):
        return True
    if who.member_id is not None and any(
        values[table.c[c]] == who.member_id for c in refs.member_ids
    ):
        return True
    return any(_named_in_json(values[table.c[c]], k, who.user_id) for c, k in refs.json_users)


# --- export ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _exported(table: Table, refs: Refs, row: Any) -> dict[str, Any]:
    names = refs.export or tuple(c.name for c in table.c if c.name not in refs.secret)
    out = {name: _jsonable(row._mapping[table.c[name]]) for name in names}
    if table.name == "activity_events":
        out["kind"] = _kind_name(out["kind"])
    return out


def _kind_name(kind: int) -> str | int:
    """`message`, `reaction`, `join`, `leave` (an unknown number as it is)."""
    try:
        return ActivityKind(kind).name.lower()
    except ValueError:
        return kind


async def export_rows(session: AsyncSession, who: Subject) -> dict[str, list[dict[str, Any]]]:
    """Every row naming the member in the community, by table (each table present, maybe
    empty); rows in primary-key order, values as JSON-ready types."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, refs in REFERENCES.items():
        table = TABLES[name]
        if name == "members":
            where = table.c.id == who.member_id if who.member_id is not None else false()
        else:
            where = and_(_scope(table, refs, who.community_id), _naming(table, refs, who))
        rows = await session.execute(
            select(table).where(where).order_by(*table.primary_key.columns)
        )
        found[name] = [
            _exported(table, refs, row) for row in rows.all() if _names(table, refs, who, row)
        ]
    return found


# --- opt-outs -------------------------------------------------------------------------------


def opted_out(community_id: Any, user_id: Any) -> ColumnElement[bool]:
    """SQL: the member with platform id `user_id` opted out in community `community_id`
    (either may be a column of the enclosing query, which this then correlates with)."""
    ms, m, c = (
        MEMBERSHIPS.alias("optout_ms"),
        MEMBERS.alias("optout_m"),
        COMMUNITIES.alias("optout_c"),
    )
    return (
        select(literal(1))
        .select_from(ms.join(m, m.c.id == ms.c.member_id).join(c, c.c.id == ms.c.community_id))
        .where(
            ms.c.community_id == community_id,
            ms.c.opted_out_at.is_not(None),
            m.c.platform == c.c.platform,
            m.c.external_id == user_id,
        )
        .exists()
    )


async def _membership_key(
    session: AsyncSession, community_id: int, platform: str, user_id: str
) -> int | None:
    """The member's id, if they have a membership in the community."""
    return await session.scalar(
        select(MEMBERSHIPS.c.member_id)
        .join(MEMBERS, MEMBERS.c.id == MEMBERSHIPS.c.member_id)
        .where(
            MEMBERSHIPS.c.community_id == community_id,
            MEMBERS.c.platform == platform,
            MEMBERS.c.external_id == user_id,
        )
    )


async def is_opted_out(
    session: AsyncSession, community_id: int, platform: str, user_id: str
) -> bool:
    found = await session.scalar(
        select(MEMBERSHIPS.c.opted_out_at)
        .join(MEMBERS, MEMBERS.c.id == MEMBERSHIPS.c.member_id)
        .where(
            MEMBERSHIPS.c.community_id == community_id,
            MEMBERS.c.platform == platform,
            MEMBERS.c.external_id == user_id,
        )
    )
    return found is not None


async def set_opted_out(
    session: AsyncSession,
    community_id: int,
    platform: str,
    user_id: str,
    *,
    out: bool,
    now: datetime,
) -> bool | None:
    """Opt the member out (or back in). Returns whether anything changed, or None when the
    bot has no membership of them here (it knows nothing to leave out)."""
    member_id = await _membership_key(session, community_id, platform, user_id)
    if member_id is None:
        return None
    current = MEMBERSHIPS.c.opted_out_at
    changed = await session.execute(
        update(MEMBERSHIPS)
        .where(
            MEMBERSHIPS.c.community_id == community_id,
            MEMBERSHIPS.c.member_id == member_id,
            current.is_(None) if out else current.is_not(None),
        )
        .values(opted_out_at=now if out else None)
    )
    return bool(changed.rowcount)


# --- the privacy-notice marker --------------------------------------------------------------

NOTICE_SECRET = "privacy-markers"
NOTICE_PREFIX = "privacy-notice:"
# Markers are occurrences with one fixed due time: the unique (what, due_at) makes a second
# notice for the same member impossible, across restarts and instances.
NOTICE_DUE = datetime(1970, 1, 1, tzinfo=UTC)


def _marker(key: bytes, community_id: int, user_id: str) -> str:
    """A keyed hash, so the marker holds no user id (names no one without the install key)."""
    digest = hmac.new(key, f"{community_id}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"{NOTICE_PREFIX}{community_id}:{digest[:32]}"


async def _existing_key(session: AsyncSession) -> bytes | None:
    value = await session.scalar(select(SECRETS.c.value).where(SECRETS.c.name == NOTICE_SECRET))
    return bytes.fromhex(value) if value else None


async def claim_notice(
    session: AsyncSession, community_id: int, user_id: str, *, now: datetime
) -> bool:
    """True once per member and community: the caller then sends the notice."""
    key = await install_secret(session, NOTICE_SECRET, now=now)
    inserted = await session.execute(
        dialect_insert(session)(OCCURRENCES)
        .values(
            what=_marker(key, community_id, user_id),
            due_at=NOTICE_DUE,
            status="done",
            claimed_by="privacy-notice",
            claimed_at=now,
            finished_at=now,
        )
        .on_conflict_do_nothing()
        .returning(OCCURRENCES.c.id)
    )
    return inserted.scalar_one_or_none() is not None


async def notice_sent_at(session: AsyncSession, community_id: int, user_id: str) -> datetime | None:
    key = await _existing_key(session)
    if key is None:
        return None
    return await session.scalar(
        select(OCCURRENCES.c.claimed_at).where(
            OCCURRENCES.c.what == _marker(key, community_id, user_id),
            OCCURRENCES.c.due_at == NOTICE_DUE,
        )
    )


# --- forgetting -----------------------------------------------------------------------------


@dataclass
class Forgotten:
    """What `forget` did: rows deleted and repointed per table, and follow-ups for features
    (open giveaways and polls whose counts on their posts changed)."""

    tombstone: str
    deleted: Counter[str] = field(default_factory=Counter)
    repointed: Counter[str] = field(default_factory=Counter)
    account_deleted: bool = False
    giveaways_changed: list[int] = field(default_factory=list)
    polls_changed: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.deleted.values()) + sum(self.repointed.values())


def _count(result: Any) -> int:
    return max(int(result.rowcount or 0), 0)


async def _column(session: AsyncSession, query: Any) -> list[Any]:
    return list((await session.execute(query)).scalars().all())


async def _withdraw_entries(session: AsyncSession, who: Subject, done: Forgotten) -> None:
    """Entries in open giveaways: the count goes down with the row."""
    giveaways, entries = TABLES["giveaways"], TABLES["giveaway_entries"]
    open_ones = await _column(
        session,
        select(entries.c.giveaway_id)
        .join(giveaways, giveaways.c.id == entries.c.giveaway_id)
        .where(giveaways.c.community_id == who.community_id, giveaways.c.status == "open")
        .where(entries.c.user_id == who.user_id),
    )
    for giveaway_id in open_ones:
        gone = await session.execute(
            delete(entries).where(
                entries.c.giveaway_id == giveaway_id, entries.c.user_id == who.user_id
            )
        )
        done.deleted["giveaway_entries"] += _count(gone)
        await session.execute(
            update(giveaways)
            .where(giveaways.c.id == giveaway_id, giveaways.c.entry_count > 0)
            .values(entry_count=giveaways.c.entry_count - 1)
        )
        done.giveaways_changed.append(giveaway_id)


async def _withdraw_votes(session: AsyncSession, who: Subject, done: Forgotten) -> None:
    """Votes in open polls (the results are counted from these rows)."""
    polls, votes = TABLES["polls"], TABLES["poll_votes"]
    open_ones = await _column(
        session,
        select(votes.c.poll_id)
        .join(polls, polls.c.id == votes.c.poll_id)
        .where(polls.c.community_id == who.community_id, polls.c.status == "open")
        .where(votes.c.user_id == who.user_id),
    )
    for poll_id in open_ones:
        gone = await session.execute(
            delete(votes).where(votes.c.poll_id == poll_id, votes.c.user_id == who.user_id)
        )
        done.deleted["poll_votes"] += _count(gone)
        done.polls_changed.append(poll_id)


async def _withdraw_answers(session: AsyncSession, who: Subject, done: Forgotten) -> None:
    """Answers to open quizzes: a right one gives back its place in the count and ranks."""
    quizzes, answers = TABLES["quizzes"], TABLES["quiz_answers"]
    open_ones = (
        await session.execute(
            select(answers.c.quiz_id, answers.c.correct, answers.c.rank)
            .join(quizzes, quizzes.c.id == answers.c.quiz_id)
            .where(quizzes.c.community_id == who.community_id, quizzes.c.status == "open")
            .where(answers.c.user_id == who.user_id)
        )
    ).all()
    for quiz_id, correct, rank in open_ones:
        gone = await session.execute(
            delete(answers).where(answers.c.quiz_id == quiz_id, answers.c.user_id == who.user_id)
        )
        done.deleted["quiz_answers"] += _count(gone)
        if correct:
            await session.execute(
                update(quizzes)
                .where(quizzes.c.id == quiz_id, quizzes.c.correct_count > 0)
                .values(correct_count=quizzes.c.correct_count - 1)
            )
        if rank is not None:
            # Ranks stay 1..n without a gap: the next right answer gets rank correct_count.
            await session.execute(
                update(answers)
                .where(answers.c.quiz_id == quiz_id, answers.c.rank > rank)
                .values(rank=answers.c.rank - 1)
            )


async def _withdraw_questions(session: AsyncSession, who: Subject, done: Forgotten) -> None:
    """Upvotes on open questions (the counter goes down), the member's open questions (with
    the votes they got), and their words in the questions that stay."""
    questions, votes = TABLES["qa_questions"], TABLES["qa_votes"]
    uid = who.user_id
    in_community = questions.c.community_id == who.community_id
    still_open = and_(in_community, questions.c.status == "open")
    voted = await _column(
        session,
        select(votes.c.question_id)
        .join(questions, questions.c.id == votes.c.question_id)
        .where(still_open, votes.c.user_id == uid),
    )
    for question_id in voted:
        gone = await session.execute(
            delete(votes).where(votes.c.question_id == question_id, votes.c.user_id == uid)
        )
        done.deleted["qa_votes"] += _count(gone)
        await session.execute(
            update(questions)
            .where(questions.c.id == question_id, questions.c.votes > 0)
            .values(votes=questions.c.votes - 1)
        )
    mine = select(questions.c.id).where(still_open, questions.c.asker_id == uid)
    gone = await session.execute(delete(votes).where(votes.c.question_id.in_(mine)))
    done.deleted["qa_votes"] += _count(gone)
    gone = await session.execute(delete(questions).where(still_open, questions.c.asker_id == uid))
    done.deleted["qa_questions"] += _count(gone)
    await session.execute(
        update(questions).where(in_community, questions.c.asker_id == uid).values(text=REDACTED)
    )


async def _repoint_json(
    session: AsyncSession, who: Subject, tombstone: str, done: Forgotten
) -> None:
    """User ids inside JSON lists (who rerolled a giveaway), rewritten in Python."""
    for name, refs in REFERENCES.items():
        table = TABLES[name]
        for column, key in refs.json_users:
            rows = await session.execute(
                select(table.c.id, table.c[column]).where(
                    _scope(table, refs, who.community_id), table.c[column].is_not(None)
                )
            )
            for row_id, items in rows.all():
                if not _named_in_json(items, key, who.user_id):
                    continue
                fixed = [
                    {**item, key: tombstone}
                    if isinstance(item, dict) and item.get(key) == who.user_id
                    else item
                    for item in items
                ]
                await session.execute(
                    update(table).where(table.c.id == row_id).values({column: fixed})
                )
                done.repointed[name] += 1


async def _tombstone_member(
    session: AsyncSession, who: Subject, tombstone: str, now: datetime
) -> int:
    first_seen = await session.scalar(
        select(MEMBERSHIPS.c.first_seen_at).where(
            MEMBERSHIPS.c.community_id == who.community_id,
            MEMBERSHIPS.c.member_id == who.member_id,
        )
    )
    inserted = await session.execute(
        MEMBERS.insert()
        .values(
            platform=who.platform,
            external_id=tombstone,
            display_name=TOMBSTONE_NAME,
            username=None,
            is_bot=False,
            first_seen_at=first_seen or now,
        )
        .returning(MEMBERS.c.id)
    )
    return int(inserted.scalar_one())


async def _repoint_member_rows(
    session: AsyncSession, who: Subject, tombstone: str, now: datetime, done: Forgotten
) -> None:
    """Activity, its rollups and the membership move to a tombstone member."""
    assert who.member_id is not None
    cid, old = who.community_id, who.member_id
    tables = [
        TABLES[name] for name, refs in REFERENCES.items() if refs.member_ids and name != "members"
    ]
    exists = False
    for table in tables:
        hit = await session.scalar(
            select(func.count())
            .select_from(table)
            .where(table.c.community_id == cid, table.c.member_id == old)
        )
        exists = exists or bool(hit)
    if not exists:
        return
    new = await _tombstone_member(session, who, tombstone, now)
    for table in tables:
        values: dict[str, Any] = {"member_id": new}
        if table.name == "activity_events":
            # Platform event keys may hold the user id (joins, reactions): new unique keys.
            values["event_key"] = literal(f"{tombstone}:") + cast(table.c.id, String)
        if table.name == "memberships":
            # The tombstone names nobody: kept out of every named list.
            values["opted_out_at"] = now
        result = await session.execute(
            update(table)
            .where(table.c.community_id == cid, table.c.member_id == old)
            .values(**values)
        )
        done.repointed[table.name] += _count(result)


async def _drop_account(session: AsyncSession, who: Subject, done: Forgotten) -> None:
    """The account row, when no other community knows the member, with their private chat."""
    assert who.member_id is not None
    elsewhere = await session.scalar(
        select(func.count())
        .select_from(MEMBERSHIPS)
        .where(MEMBERSHIPS.c.member_id == who.member_id)
    )
    if elsewhere:
        return
    events, days = TABLES["activity_events"], TABLES["member_days"]
    for table in (events, days):
        if await session.scalar(
            select(func.count()).select_from(table).where(table.c.member_id == who.member_id)
        ):
            return  # still counted somewhere: keep the account those rows point at
    gone = await session.execute(delete(MEMBERS).where(MEMBERS.c.id == who.member_id))
    done.deleted["members"] += _count(gone)
    done.account_deleted = bool(gone.rowcount)
    group_chats = select(CHATS.c.id).where(
        CHATS.c.community_id == COMMUNITIES.c.id, CHATS.c.kind != "private"
    )
    private = await session.execute(
        delete(COMMUNITIES).where(
            COMMUNITIES.c.platform == who.platform,
            COMMUNITIES.c.external_id == who.user_id,
            COMMUNITIES.c.id != who.community_id,
            ~group_chats.exists(),
        )
    )
    done.deleted["communities"] += _count(private)


async def _repoint_users(session: AsyncSession, who: Subject, done: Forgotten) -> None:
    """Every platform-id column: its rows deleted (`Refs.delete`) or repointed to the
    tombstone, the display name beside it with them."""
    for name, refs in REFERENCES.items():
        table = TABLES[name]
        scope = _scope(table, refs, who.community_id) if refs.users else None
        for column, name_column in refs.users:
            matches = and_(scope, table.c[column] == who.user_id)
            if column in refs.delete:
                result = await session.execute(delete(table).where(matches))
                done.deleted[name] += _count(result)
                continue
            values: dict[str, Any] = {column: done.tombstone}
            if name_column is not None:
                values[name_column] = TOMBSTONE_NAME
            result = await session.execute(update(table).where(matches).values(**values))
            done.repointed[name] += _count(result)


async def _delete_marker(session: AsyncSession, who: Subject, done: Forgotten) -> None:
    key = await _existing_key(session)
    if key is not None:
        marker = await session.execute(
            delete(OCCURRENCES).where(
                OCCURRENCES.c.what == _marker(key, who.community_id, who.user_id),
                OCCURRENCES.c.due_at == NOTICE_DUE,
            )
        )
        done.deleted["occurrences"] += _count(marker)


async def forget(
    session: AsyncSession, community: Community, user_id: str, *, now: datetime
) -> Forgotten:
    """Forget a member in one community (see the module docstring for each table)."""
    who = await subject(session, community, user_id)
    done = Forgotten(tombstone=f"{TOMBSTONE_PREFIX}{secrets.token_hex(8)}")
    # What is still open first: there the member's part is taken back, not kept.
    for withdraw in (_withdraw_entries, _withdraw_votes, _withdraw_answers, _withdraw_questions):
        await withdraw(session, who, done)
    if who.member_id is not None:
        await _repoint_member_rows(session, who, done.tombstone, now, done)
    await _repoint_users(session, who, done)
    await _repoint_json(session, who, done.tombstone, done)
    await _delete_marker(session, who, done)
    if who.member_id is not None:
        await _drop_account(session, who, done)
    return done
