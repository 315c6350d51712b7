"""Members' privacy rights through the dispatcher, on SQLite and PostgreSQL: a member who took
part in everything reads /privacy, gets /mydata privately, and after /forgetme (confirmed)
no table holds their id or name while every community total stays as it was."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import JSON, String, select

from handlers.core.context import Services
from handlers.core.events import ChatKind, ChatRef, Platform, Role
from handlers.core.render import Renderer
from handlers.giveaways.draw import verify
from handlers.giveaways.lifecycle import record_of
from storage import metrics, qa
from storage import polls as poll_store
from storage import privacy as store
from storage import quizzes as quiz_store
from storage.activity import ActivityWriter, CommunityDefaults
from storage.db import Database
from storage.models import (
    Base,
    Community,
    FaqEntry,
    Giveaway,
    GiveawayEntry,
    Member,
    Membership,
    Poll,
    QaQuestion,
    Quiz,
    QuizAnswer,
)
from tests.fakes import CHAT, T0, command, joined, message, press, reaction, user

BOSS = user("boss")
ANN, BEN = user("ann"), user("ben")
# Distinctive id and name: a substring search for them can't hit anything else.
ZED = user("Zed Quinlan", user_id="zed-4711")
NEEDLES = ("zed-4711", "zed quinlan")
DM = ChatRef(Platform.CONSOLE, ZED.user_id, ZED.user_id, "Zed Quinlan", ChatKind.PRIVATE)
ELSEWHERE = ChatRef(Platform.CONSOLE, "chat-9", "community-2", "Another community")
SQLITE_ONLY = pytest.mark.parametrize("any_db", ["sqlite"], indirect=True)


@pytest.fixture
async def services(any_db: Database, clock) -> AsyncIterator[Services]:
    """The shared `services`, on each backend: forgetting runs on both."""
    writer = ActivityWriter(any_db, batch_size=100, flush_interval=0.05)
    await writer.start()
    yield Services(
        db=any_db,
        activity=writer,
        renderer=Renderer(),
        clock=clock,
        defaults=CommunityDefaults("UTC", "en"),
    )
    await writer.stop()


@pytest.fixture
def bot(dispatcher, gateway, services):
    gateway.roles[BOSS.user_id] = Role.MANAGER
    services.gateways.register(gateway)
    return dispatcher


async def say(bot, gateway, who, text: str, *, chat: ChatRef = CHAT) -> list:
    """A command at the fake clock's time; what the bot sent for it (as `Sent` records)."""
    before = len(gateway.sent)
    await bot.handle(command(who, text, bot.services.clock.now(), chat=chat), gateway)
    return gateway.sent[before:]


async def push(bot, gateway, who, data: str, message_id: str = "out-1") -> list:
    before = len(gateway.sent)
    await bot.handle(press(who, data, message_id, bot.services.clock.now()), gateway)
    return gateway.sent[before:]


def text_of(sent: list) -> str:
    return "\n".join(s.text for s in sent)


async def latest(db: Database, model) -> Any:
    async with db.session() as session:
        query = select(model).order_by(*model.__table__.primary_key.columns)
        return (await session.execute(query)).scalars().all()[-1]


async def community_id(db: Database, key: str = "community-1") -> int:
    async with db.session() as session:
        return (
            await session.execute(select(Community.id).where(Community.external_id == key))
        ).scalar_one()


async def member_id(db: Database, user_id: str) -> int | None:
    async with db.session() as session:
        return (
            await session.execute(select(Member.id).where(Member.external_id == user_id))
        ).scalar_one_or_none()


async def take_part_in_everything(bot, gateway) -> dict[str, int]:
    """ZED chats, joins, reacts, gets an FAQ answer, votes, answers a quiz, enters a
    giveaway, asks an AMA question others upvote, upvotes one, and earns points; ANN and
    BEN take part too. Polls, quizzes, giveaways and the AMA are closed at the end."""
    services, clock = bot.services, bot.services.clock
    await say(bot, gateway, ZED, "/privacy", chat=DM)  # the bot's private chat with ZED
    await say(bot, gateway, BOSS, "/privacy notice on")
    await bot.handle(joined(ZED, clock.now()), gateway)
    for who in (ZED, ANN, BEN):
        await bot.handle(message(who, clock.now(), text="hi all"), gateway)
    await bot.handle(reaction(ZED, "1", clock.now()), gateway)
    await say(bot, gateway, BOSS, "/faq add How do I join the giveaway? | Press the Enter button.")
    clock.advance(minutes=1)
    before = len(gateway.sent)
    await bot.handle(message(ZED, clock.now(), text="how do I join the giveaway?"), gateway)
    answered = gateway.sent[before:]
    assert "Press the Enter button" in text_of(answered)

    await say(bot, gateway, BOSS, "/poll Lunch? | Pizza | Sushi")
    poll = await latest(services.db, Poll)
    await push(bot, gateway, ZED, f"poll:vote:{poll.id}:0")
    await push(bot, gateway, ANN, f"poll:vote:{poll.id}:1")
    await say(bot, gateway, BOSS, f"/poll close {poll.id}")

    await say(bot, gateway, BOSS, "/quiz Capital of France? | Paris | Lyon | Nice --points 10")
    quiz = await latest(services.db, Quiz)
    wrong = (quiz.correct_option + 1) % len(quiz.options)
    await push(bot, gateway, ZED, f"quiz:answer:{quiz.id}:{quiz.correct_option}")
    await push(bot, gateway, ANN, f"quiz:answer:{quiz.id}:{quiz.correct_option}")
    await push(bot, gateway, BEN, f"quiz:answer:{quiz.id}:{wrong}")
    await say(bot, gateway, BOSS, f"/quiz close {quiz.id}")

    await say(bot, gateway, BOSS, "/giveaway start 1h 3 a T-shirt")
    giveaway = await latest(services.db, Giveaway)
    for who in (ZED, ANN, BEN):
        assert "You're in" in text_of(await say(bot, gateway, who, "/enter"))
    await say(bot, gateway, BOSS, f"/giveaway end {giveaway.id}")

    await say(bot, gateway, BOSS, "/qa open Roadmap 2027")
    await say(bot, gateway, ZED, "/ask Will there be a mobile app?")
    zed_question = await latest(services.db, QaQuestion)
    await say(bot, gateway, ANN, "/ask When is the next release?")
    ann_question = await latest(services.db, QaQuestion)
    for who in (ANN, BEN):
        await push(bot, gateway, who, f"qa:up:{zed_question.id}")
    await push(bot, gateway, ZED, f"qa:up:{ann_question.id}")
    await say(bot, gateway, BOSS, f"/qa answer {zed_question.id} Yes, in March.")
    await say(bot, gateway, BOSS, f"/qa answer {ann_question.id} Soon.")
    await say(bot, gateway, BOSS, "/qa close")
    await say(bot, gateway, BOSS, "/points give zed-4711 5 for helping out")
    await services.activity.flush()
    return {
        "poll": poll.id,
        "quiz": quiz.id,
        "giveaway": giveaway.id,
        "qa_session": zed_question.session_id,
        "zed_question": zed_question.id,
    }


async def totals(db: Database, ids: dict[str, int]) -> dict[str, Any]:
    """Every community total the features report, read the way they read it."""
    cid = await community_id(db)
    async with db.session() as session:
        quiz = await session.get(Quiz, ids["quiz"])
        giveaway = await session.get(Giveaway, ids["giveaway"])
        faq = (await session.execute(select(FaqEntry))).scalars().all()
        figures = await qa.figures(session, ids["qa_session"])
        record = await record_of(session, giveaway)
        return {
            "days": await metrics.stored_days(session, cid),
            "recount": await metrics.recount_from_events(session, cid, "UTC"),
            "hours": await metrics.hourly_activity(
                session, cid, since=T0 - timedelta(days=1), until=T0 + timedelta(days=1)
            ),
            "poll": sorted(await poll_store.choices(session, ids["poll"])),
            "quiz": (
                await quiz_store.option_counts(session, quiz.id, len(quiz.options)),
                quiz.correct_count,
            ),
            "giveaway": (giveaway.entry_count, giveaway.entrants_digest, record.rounds),
            "verified": verify(record).ok,
            "qa": (figures.asked, figures.answered, figures.votes),
            "faq_hits": [f.hits for f in faq],
        }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


async def traces(db: Database, needles: tuple[str, ...]) -> list[str]:
    """Every string or JSON value in every table that contains one of `needles`."""
    found = []
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.c if isinstance(c.type, String | JSON)]
            if not columns:
                continue
            for row in (await session.execute(select(*columns))).all():
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    text = _text(value).lower()
                    if any(n in text for n in needles):
                        found.append(f"{table.name}.{column.name} = {text[:80]}")
    return found


async def rows_naming(db: Database, user_id: str, old_member_id: int | None) -> dict[str, int]:
    """How many rows of each table name the member, found by scanning every column (platform
    ids anywhere, `members.id` in foreign keys): independent of `storage.privacy`."""
    counts: dict[str, int] = {}
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            member_keys = {
                c.name
                for c in table.c
                if any(fk.column.table.name == "members" for fk in c.foreign_keys)
            }
            if table.name == "members":
                member_keys.add("id")
            count = 0
            for row in (await session.execute(select(table))).mappings().all():
                if any(v == user_id for v in row.values()) or (
                    old_member_id is not None and any(row[k] == old_member_id for k in member_keys)
                ):
                    count += 1
            counts[table.name] = count
    return counts


def forget_buttons(sent: list) -> tuple[str, str]:
    [[confirm, cancel]] = sent[-1].message.buttons
    assert confirm.data.startswith("privacy:forget:") and cancel.data.startswith("privacy:keep:")
    assert len(confirm.data.encode()) <= 64  # Telegram's limit for button data
    return confirm.data, cancel.data


# --- the whole story ------------------------------------------------------------------------


async def test_a_member_sees_exports_and_is_forgotten_without_a_trace(bot, gateway, services):
    ids = await take_part_in_everything(bot, gateway)
    db = services.db
    zed_member = await member_id(db, ZED.user_id)
    assert zed_member is not None

    # /privacy: what is recorded, why, how long, and the three commands.
    notice = text_of(await say(bot, gateway, ZED, "/privacy"))
    for part in ("never what your messages say", "90 days", "/mydata", "/forgetme", "/optout"):
        assert part in notice, notice

    # /mydata: a JSON file in a private message; the chat only hears that it was sent.
    sent = await say(bot, gateway, ZED, "/mydata")
    [file] = [s for s in sent if s.message.document is not None]
    assert file.private_to == ZED.user_id
    assert file.message.document.filename == "commops-mydata-community-1.json"
    assert file.message.document.mime_type == "application/json"
    [chat_reply] = [s for s in sent if s.private_to is None]
    assert "sent you your data in a private message" in chat_reply.text
    assert chat_reply.message.document is None
    export = json.loads(file.message.document.content)
    assert export["member"]["user_id"] == ZED.user_id
    assert export["retention"]["raw_activity_days"] == 90
    assert export["privacy_notice_sent_at"] is not None
    # Every table that can name a member is in the export, with every row that names ZED.
    assert set(export["tables"]) == set(store.REFERENCES)
    naming = await rows_naming(db, ZED.user_id, zed_member)
    for table, count in naming.items():
        if table in store.NO_MEMBER_DATA:
            continue
        assert len(export["tables"][table]) == count, table
    for table in (
        "members", "memberships", "member_days", "activity_events", "points_ledger",
        "giveaway_entries", "giveaway_winners", "poll_votes", "quiz_answers", "qa_questions",
        "qa_votes", "faq_replies",
    ):  # fmt: skip
        assert export["tables"][table], f"nothing exported from {table}"
    # Raw activity: times and kinds only.
    kinds = {e["kind"] for e in export["tables"]["activity_events"]}
    assert kinds == {"message", "reaction", "join"}
    assert all(
        set(e) == {"occurred_at", "kind", "content", "is_reply"}
        for e in export["tables"]["activity_events"]
    )

    # /forgetme: a question with buttons; another member can't answer it.
    confirm, _ = forget_buttons(await say(bot, gateway, ZED, "/forgetme"))
    refused = text_of(await push(bot, gateway, ANN, confirm))
    assert "Only the member who asked" in refused
    assert await member_id(db, ZED.user_id) == zed_member
    await services.activity.flush()  # the /forgetme message itself counts in the totals
    before = await totals(db, ids)
    assert before["verified"] and before["poll"] == [[0], [1]]

    done = text_of(await push(bot, gateway, ZED, confirm, message_id="out-77"))
    assert "you're forgotten here" in done
    edited, closed = gateway.edits[-1]
    assert edited.message_id == "out-77" and closed.buttons == ()

    # No table holds ZED's platform id, name or username; no row points at the old member id.
    assert await traces(db, NEEDLES) == []
    after_naming = await rows_naming(db, ZED.user_id, zed_member)
    assert sum(after_naming.values()) == 0, after_naming
    assert await member_id(db, ZED.user_id) is None
    # The community totals are what they were, and a recount of raw events still agrees.
    after = await totals(db, ids)
    assert after == before
    assert after["recount"] == after["days"]
    async with db.session() as session:
        question = await session.get(QaQuestion, ids["zed_question"])
        assert question.text == store.REDACTED and question.asker_name == store.TOMBSTONE_NAME
        assert question.votes == 2 and question.answer == "Yes, in March."

    # The activity writer forgot the id too: ZED's next message makes a new member.
    assert (ZED.platform.value, ZED.user_id) not in services.activity.cache.members
    await bot.handle(message(ZED, services.clock.now(), text="back again"), gateway)
    await services.activity.flush()
    fresh = await member_id(db, ZED.user_id)
    assert fresh is not None and fresh != zed_member
    async with db.session() as session:
        membership = await session.get(Membership, (await community_id(db), fresh))
        assert membership is not None and membership.opted_out_at is None


async def test_a_managers_export_shows_what_they_did_without_secrets(bot, gateway, services):
    await say(bot, gateway, BOSS, "/giveaway start 1h 1 a mug")
    await say(bot, gateway, BOSS, "/poll Tea? | Yes | No")
    [file] = [s for s in await say(bot, gateway, BOSS, "/mydata") if s.message.document]
    tables = json.loads(file.message.document.content)["tables"]
    [giveaway] = tables["giveaways"]
    assert giveaway["created_by"] == BOSS.user_id and "seed" not in giveaway
    assert "commitment" in giveaway
    assert [p["question"] for p in tables["polls"]] == ["Tea?"]


# --- confirmation ---------------------------------------------------------------------------


@SQLITE_ONLY
async def test_the_question_expires_after_ten_minutes_and_can_be_cancelled(
    bot, gateway, services, clock
):
    await bot.handle(message(ZED, clock.now()), gateway)
    confirm, cancel = forget_buttons(await say(bot, gateway, ZED, "/forgetme"))
    assert "within 10 minutes" in gateway.last
    await services.activity.flush()
    zed_member = await member_id(services.db, ZED.user_id)

    # Cancelled: nothing deleted, the question loses its buttons.
    assert "Nothing was deleted" in text_of(await push(bot, gateway, ZED, cancel, "out-5"))
    assert gateway.edits[-1][1].buttons == () and "Cancelled" in gateway.edits[-1][1].text
    # A made-up token is nobody's.
    assert "Only the member who asked" in text_of(
        await push(bot, gateway, ZED, "privacy:forget:zz.0123")
    )
    # Ten minutes later the buttons no longer work.
    clock.advance(minutes=10)
    assert "expired" in text_of(await push(bot, gateway, ZED, confirm))
    assert await member_id(services.db, ZED.user_id) == zed_member
    # A new question works again.
    confirm, _ = forget_buttons(await say(bot, gateway, ZED, "/forgetme"))
    clock.advance(minutes=9, seconds=59)
    assert "forgotten here" in text_of(await push(bot, gateway, ZED, confirm))
    assert await member_id(services.db, ZED.user_id) is None
    # Pressing again: there is nothing left.
    confirm, _ = forget_buttons(await say(bot, gateway, ZED, "/forgetme"))
    await services.activity.flush()
    text = text_of(await push(bot, gateway, ZED, confirm))
    assert "forgotten here" in text  # the /forgetme command itself was recorded activity


async def test_open_things_are_withdrawn_so_nothing_counts_twice(bot, gateway, services):
    db = services.db
    await say(bot, gateway, BOSS, "/giveaway start 1h 1 a hoodie")
    giveaway = await latest(db, Giveaway)
    await say(bot, gateway, BOSS, "/poll Dinner? | Pasta | Curry")
    poll = await latest(db, Poll)
    await say(bot, gateway, BOSS, "/quiz 2 + 2? | 4 | 5 | 22")
    quiz = await latest(db, Quiz)
    await say(bot, gateway, BOSS, "/qa open Open house")
    for who in (ZED, ANN):
        await say(bot, gateway, who, "/enter")
        await push(bot, gateway, who, f"poll:vote:{poll.id}:0")
        await push(bot, gateway, who, f"quiz:answer:{quiz.id}:{quiz.correct_option}")
    await say(bot, gateway, ZED, "/ask Is the roof open?")
    zed_question = await latest(db, QaQuestion)
    await say(bot, gateway, ANN, "/ask Is there coffee?")
    ann_question = await latest(db, QaQuestion)
    await push(bot, gateway, ANN, f"qa:up:{zed_question.id}")
    await push(bot, gateway, ZED, f"qa:up:{ann_question.id}")

    confirm, _ = forget_buttons(await say(bot, gateway, ZED, "/forgetme"))
    await push(bot, gateway, ZED, confirm)
    async with db.session() as session:
        entered = await session.get(Giveaway, giveaway.id, populate_existing=True)
        assert entered.entry_count == 1
        entries = (await session.execute(select(GiveawayEntry.user_id))).scalars().all()
        assert entries == [ANN.user_id]
        assert await poll_store.choices(session, poll.id) == [[0]]
        answered = await session.get(Quiz, quiz.id, populate_existing=True)
        assert answered.correct_count == 1
        [(who, rank)] = (await session.execute(select(QuizAnswer.user_id, QuizAnswer.rank))).all()
        assert (who, rank) == (ANN.user_id, 1)  # moved up: ranks stay 1..n
        assert await session.get(QaQuestion, zed_question.id) is None
        coffee = await session.get(QaQuestion, ann_question.id, populate_existing=True)
        assert coffee.votes == 0
    assert await traces(db, NEEDLES) == []
    # Back under their own account, they take part once, as anyone else.
    assert "You're in" in text_of(await say(bot, gateway, ZED, "/enter"))
    async with db.session() as session:
        assert (await session.get(Giveaway, giveaway.id, populate_existing=True)).entry_count == 2


@SQLITE_ONLY
async def test_an_account_known_elsewhere_is_kept_there(bot, gateway, services):
    db = services.db
    await bot.handle(message(ZED, services.clock.now()), gateway)
    await bot.handle(message(ZED, services.clock.now(), chat=ELSEWHERE), gateway)
    await services.activity.flush()
    zed_member = await member_id(db, ZED.user_id)
    confirm, _ = forget_buttons(await say(bot, gateway, ZED, "/forgetme"))
    await push(bot, gateway, ZED, confirm)
    assert await member_id(db, ZED.user_id) == zed_member
    async with db.session() as session:
        here = await session.get(Membership, (await community_id(db), zed_member))
        there = await session.get(Membership, (await community_id(db, "community-2"), zed_member))
    assert here is None and there is not None
    naming = await rows_naming(db, ZED.user_id, zed_member)
    assert naming["memberships"] == 1 and naming["activity_events"] == 1  # community-2's


# --- /mydata delivery -----------------------------------------------------------------------


@SQLITE_ONLY
async def test_no_private_message_means_no_data_anywhere(bot, gateway, services):
    await bot.handle(message(ZED, services.clock.now()), gateway)
    gateway.no_private.add(ZED.user_id)
    sent = await say(bot, gateway, ZED, "/mydata")
    assert [s.message.document for s in sent] == [None]
    assert sent[0].private_to is None and "can't send you a private message" in sent[0].text
    # A platform without private messages: the same.
    gateway.no_private.clear()
    gateway.capabilities = replace(gateway.capabilities, private_messages=False)
    sent = await say(bot, gateway, ZED, "/mydata")
    assert [s.message.document for s in sent] == [None]
    assert "Open your direct messages" in sent[0].text
    # The platform fails: the chat hears to try later, and still gets no file.
    gateway.capabilities = replace(gateway.capabilities, private_messages=True)

    async def broken(user, message):
        raise ConnectionError("platform unreachable")

    gateway.send_private = broken
    sent = await say(bot, gateway, ZED, "/mydata")
    assert [s.message.document for s in sent] == [None]
    assert "couldn't send your data just now" in sent[0].text


@SQLITE_ONLY
async def test_data_commands_need_the_group(bot, gateway):
    for name in ("mydata", "forgetme", "optout"):
        sent = await say(bot, gateway, ZED, f"/{name}", chat=DM)
        assert f"Send /{name} in the group" in text_of(sent)
        assert all(s.message.document is None and not s.message.buttons for s in sent)


# --- the notice -----------------------------------------------------------------------------


@SQLITE_ONLY
async def test_joining_members_get_the_notice_once_when_managers_want_it(
    bot, gateway, services, clock
):
    await bot.handle(joined(ANN, clock.now()), gateway)
    assert gateway.sent == []  # off by default
    assert (
        "only the community's managers"
        in text_of(await say(bot, gateway, ANN, "/privacy notice on")).lower()
    )
    assert "Members who join get the privacy notice" in text_of(
        await say(bot, gateway, BOSS, "/privacy notice on")
    )
    assert "New members get this notice" in text_of(await say(bot, gateway, ANN, "/privacy"))

    before = len(gateway.sent)
    await bot.handle(joined(ZED, clock.now()), gateway)
    [notice] = gateway.sent[before:]
    assert notice.private_to == ZED.user_id and "What I record" in notice.text
    # Joining again, or after a restart (a new dispatcher): no second notice.
    await bot.handle(joined(ZED, clock.advance(hours=1)), gateway)
    from bot.app import build_dispatcher

    await build_dispatcher(services).handle(joined(ZED, clock.advance(hours=1)), gateway)
    assert len(gateway.sent) == before + 1

    # Closed DMs: in the chat, naming the member.
    gateway.no_private.add(BEN.user_id)
    await bot.handle(joined(BEN, clock.now()), gateway)
    assert gateway.sent[-1].private_to is None and gateway.sent[-1].chat == CHAT
    assert gateway.sent[-1].text.startswith("👋 Welcome, @ben!")

    await say(bot, gateway, BOSS, "/privacy notice off")
    before = len(gateway.sent)
    await bot.handle(joined(user("cat"), clock.now()), gateway)
    assert len(gateway.sent) == before


@SQLITE_ONLY
async def test_the_notice_in_chinese_and_with_the_configured_retention(bot, gateway, services):
    services.features["privacy"] = {"retention_days": 45}
    assert "45 days" in text_of(await say(bot, gateway, ANN, "/privacy"))
    await say(bot, gateway, BOSS, "/settings language zh")
    text = text_of(await say(bot, gateway, ANN, "/privacy"))
    assert "隐私说明" in text and "45 天" in text and "/forgetme" in text
    services.features["privacy"] = {"retention_days": 0}
    assert "长期保存" in text_of(await say(bot, gateway, ANN, "/privacy"))


# --- coverage of the schema -----------------------------------------------------------------

_USER_COLUMN = re.compile(r"(^|_)(user_id|actor_id|host_id|asker_id|by)$")
# A person's name stored beside their id (not a chat's, template's or set's name).
_NAME_COLUMN = re.compile(r"^(display_name|\w+_by_name|(actor|host|asker)_name)$")


def test_every_table_is_classified_and_every_member_column_is_known():
    tables = set(Base.metadata.tables)
    assert set(store.REFERENCES) | set(store.NO_MEMBER_DATA) == tables
    assert not set(store.REFERENCES) & set(store.NO_MEMBER_DATA)
    for table in Base.metadata.sorted_tables:
        refs = store.REFERENCES.get(table.name, store.Refs())
        users = {c for c, _ in refs.users}
        names = {n for _, n in refs.users if n}
        for column in table.c:
            if any(fk.column.table.name == "members" for fk in column.foreign_keys):
                assert column.name in refs.member_ids, f"{table.name}.{column.name}"
            if _USER_COLUMN.search(column.name) and table.name != "occurrences":
                assert column.name in users, f"{table.name}.{column.name} names a member"
            if _NAME_COLUMN.search(column.name) and table.name != "members":
                assert column.name in names, f"{table.name}.{column.name} holds a name"
        for column in (*refs.member_ids, *users, *names, *(c for c, _ in refs.json_users)):
            assert column in table.c, f"{table.name}.{column} does not exist"
        if refs.parent is not None:
            assert "community_id" not in table.c
            assert "community_id" in Base.metadata.tables[refs.parent[1]].c
        elif table.name not in ("members",) and table.name in store.REFERENCES:
            assert "community_id" in table.c, table.name


async def test_a_manager_is_forgotten_in_everything_they_did(bot, gateway, services):
    mia = user("Mia Kowalczyk", user_id="mia-9090")
    gateway.roles[mia.user_id] = Role.MANAGER
    db = services.db
    await bot.handle(message(mia, services.clock.now()), gateway)
    await say(bot, gateway, mia, "/giveaway start 1h 1 a cap")
    giveaway = await latest(db, Giveaway)
    await say(bot, gateway, ANN, "/enter")
    await say(bot, gateway, mia, f"/giveaway end {giveaway.id}")
    await say(bot, gateway, mia, f"/giveaway reroll {giveaway.id}")  # `rounds[].by` names her
    await say(bot, gateway, mia, "/poll Snacks? | Chips | Fruit")
    await say(bot, gateway, mia, f"/poll close {(await latest(db, Poll)).id}")
    await say(bot, gateway, mia, "/quiz 1 + 1? | 2 | 3")
    await say(bot, gateway, mia, "/faq add Where are the rules? | In the pinned post.")
    await say(bot, gateway, mia, "/qa open Office hours")
    await say(bot, gateway, ANN, "/ask Is there cake?")
    await say(bot, gateway, mia, f"/qa answer {(await latest(db, QaQuestion)).id} Always.")
    await say(bot, gateway, mia, "/points give ann 5 for asking")
    await say(bot, gateway, mia, "/template save hello Hello everyone!")
    await say(bot, gateway, mia, "/post add in 1h Hello **everyone**")
    await services.activity.flush()
    assert len(await traces(db, ("mia-9090", "mia kowalczyk"))) > 10

    confirm, _ = forget_buttons(await say(bot, gateway, mia, "/forgetme"))
    assert "forgotten here" in text_of(await push(bot, gateway, mia, confirm))
    assert await traces(db, ("mia-9090", "mia kowalczyk")) == []
    async with db.session() as session:
        drawn = await session.get(Giveaway, giveaway.id)
        assert drawn.created_by.startswith(store.TOMBSTONE_PREFIX)
        assert drawn.rounds[1]["by"] == drawn.created_by  # one tombstone for all she did
        assert verify(await record_of(session, drawn)).ok
    # What she did stays on record for the others, by nobody in particular.
    history = text_of(await say(bot, gateway, ANN, "/points history"))
    assert "for asking" in history and "forgotten member" in history
