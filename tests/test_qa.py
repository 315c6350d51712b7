"""AMA sessions through the dispatcher, on SQLite and PostgreSQL: asking, upvoting, the
host's queue, answers that earn points once, dismissals, the recap, promotion to the FAQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, update

from handlers.core.context import Services
from handlers.core.events import ChatRef, Platform, Role
from handlers.core.render import LOCALES, Renderer
from handlers.points.rules import PointsRules
from handlers.qa.commands import router
from storage import faq as faq_store
from storage import qa as store
from storage.activity import ActivityWriter, CommunityDefaults
from storage.db import Database
from storage.models import Community, FaqEntry, PointsEntry, QaQuestion, QaSession, QaVote
from tests.fakes import CHAT, command, press, user

HOST = user("host")
BOSS = user("boss")
ANN, BEN, CAT, DAN = (user(name) for name in ("ann", "ben", "cat", "dan"))
OTHER_CHAT = ChatRef(Platform.CONSOLE, "chat-2", "community-1", "Side chat")
ELSEWHERE = ChatRef(Platform.CONSOLE, "chat-9", "community-2", "Another community")
# Tests of wording and routing only: one backend is enough (storage runs on both elsewhere).
SQLITE_ONLY = pytest.mark.parametrize("any_db", ["sqlite"], indirect=True)
# Races need a server that runs transactions side by side.
POSTGRES_ONLY = pytest.mark.parametrize(
    "any_db", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
async def services(any_db: Database, clock) -> AsyncIterator[Services]:
    """The shared `services`, on each backend: AMA storage runs on both."""
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
def bot(dispatcher, gateway):
    """The dispatcher with a host and a second manager known to the platform."""
    gateway.roles[HOST.user_id] = Role.MANAGER
    gateway.roles[BOSS.user_id] = Role.MANAGER
    return dispatcher


async def say(bot, gateway, who, text: str, *, chat: ChatRef = CHAT) -> str:
    """Send a command; returns everything the bot posted for it, as plain text."""
    before = len(gateway.sent)
    await bot.handle(command(who, text, bot.services.clock.now(), chat=chat), gateway)
    return "\n".join(gateway.texts[before:])


async def vote(bot, gateway, who, question_id: int, *, chat: ChatRef = CHAT) -> str:
    before = len(gateway.sent)
    await bot.handle(press(who, f"qa:up:{question_id}", chat=chat), gateway)
    assert len(gateway.sent) == before + 1, gateway.texts[before:]
    return gateway.last


async def rows(db: Database, model, **where) -> list:
    async with db.session() as session:
        return list((await session.execute(select(model).filter_by(**where))).scalars().all())


async def question(db: Database, question_id: int) -> QaQuestion:
    async with db.session() as session:
        found = await session.get(QaQuestion, question_id)
        assert found is not None
        return found


async def snapshot(db: Database) -> dict[str, list]:
    """Every AMA, FAQ and points row, to prove a refusal changed nothing."""
    out: dict[str, list] = {}
    async with db.session() as session:
        for model in (QaSession, QaQuestion, QaVote, FaqEntry, PointsEntry):
            found = (await session.execute(select(model))).scalars().all()
            out[model.__tablename__] = sorted(
                repr(sorted((c.key, getattr(r, c.key)) for c in model.__table__.columns))
                for r in found
            )
    return out


async def opened(bot, gateway, topic: str = "Roadmap 2027") -> None:
    reply = await say(bot, gateway, HOST, f"/qa open {topic}")
    assert f"AMA: {topic}" in reply, reply


async def asked(bot, gateway, who, text: str) -> QaQuestion:
    """Ask; the question is posted with its Upvote button and returned as stored."""
    before = len(gateway.sent)
    await say(bot, gateway, who, f"/ask {text}")
    assert len(gateway.sent) == before + 1, gateway.texts[before:]
    posted = gateway.sent[-1]
    [[button]] = posted.message.buttons
    question_id = int(button.data.removeprefix("qa:up:"))
    stored = await question(bot.services.db, question_id)
    assert stored.message_id is not None and stored.asker_id == who.user_id
    return stored


# --- opening -------------------------------------------------------------------------------


async def test_open_announces_how_to_ask_and_a_second_session_is_refused(bot, gateway):
    await opened(bot, gateway)
    announcement = gateway.last
    assert "/ask your question" in announcement and "Upvote" in announcement
    assert "Hosted by host" in announcement
    [session] = await rows(bot.services.db, QaSession)
    assert (session.host_id, session.status, session.chat_id) == ("host", "open", CHAT.chat_id)
    before = await snapshot(bot.services.db)

    reply = await say(bot, gateway, BOSS, "/qa open Something else")
    assert "already open in this chat" in reply and "Roadmap 2027" in reply
    assert "hosted by host" in reply
    assert await snapshot(bot.services.db) == before
    # Another chat of the same community may hold its own AMA.
    assert "AMA: Side" in await say(bot, gateway, BOSS, "/qa open Side", chat=OTHER_CHAT)
    assert len(await rows(bot.services.db, QaSession, status="open")) == 2


@SQLITE_ONLY
async def test_opening_needs_a_manager_and_a_topic(bot, gateway):
    before = await snapshot(bot.services.db)
    assert "managers" in await say(bot, gateway, ANN, "/qa open My AMA")
    assert "Missing topic" in await say(bot, gateway, HOST, "/qa open")
    assert "Give the AMA a topic" in await say(bot, gateway, HOST, '/qa open "?!"')
    assert await snapshot(bot.services.db) == before


# --- asking --------------------------------------------------------------------------------


async def test_ask_posts_the_question_with_an_upvote_button(bot, gateway):
    await opened(bot, gateway)
    q = await asked(bot, gateway, ANN, "When   is the\nnext release?")
    sent = gateway.sent[-1]
    assert "Question #1 from ann" in sent.text and "When is the next release?" in sent.text
    assert sent.message.buttons[0][0].data == f"qa:up:{q.id}"
    assert sent.message.buttons[0][0].label == "👍 Upvote"
    assert q.text == "When is the next release?" and q.votes == 0 and q.status == "open"
    assert q.message_id == "out-2" and sent.reply_to is not None
    assert "/ask" in await say(bot, gateway, ANN, "/help")


async def test_ask_refusals_change_nothing(bot, gateway):
    assert "No AMA is open in this chat" in await say(bot, gateway, ANN, "/ask Anyone?")
    await opened(bot, gateway)
    first = await asked(bot, gateway, ANN, "When is the next release?")
    before = await snapshot(bot.services.db)
    for text, expected in [
        ("/ask", "Missing question"),
        ("/ask ?? !!", "Write your question after the command"),
        ("/ask " + "x" * 501, "Your question has 501 characters; please keep it to 500"),
        ("/ask When is the next release?", "No AMA is open in this chat"),
    ]:
        chat = OTHER_CHAT if "release" in text else CHAT
        assert expected in await say(bot, gateway, BEN, text, chat=chat), text
    assert await snapshot(bot.services.db) == before

    # The same question again (case, spacing and final punctuation aside): no new row,
    # but an offer to back the one that is waiting.
    reply = await say(bot, gateway, BEN, "/ask when is the NEXT release")
    assert f"That was asked already: question #{first.id} from ann" in reply
    assert gateway.sent[-1].message.buttons[0][0].data == f"qa:up:{first.id}"
    own = await say(bot, gateway, ANN, "/ask When is the next release ？")
    assert f"You asked that already: question #{first.id}" in own
    assert gateway.sent[-1].message.buttons == ()
    assert await snapshot(bot.services.db) == before
    # Exactly the limit is fine.
    assert "Question #" in await say(bot, gateway, BEN, "/ask " + "y" * 500)


async def test_each_member_may_have_three_waiting_questions(bot, gateway):
    await opened(bot, gateway)
    mine = [await asked(bot, gateway, ANN, f"Question number {n}?") for n in range(3)]
    before = await snapshot(bot.services.db)
    assert "You have 3 questions waiting in this AMA" in await say(
        bot, gateway, ANN, "/ask One more?"
    )
    assert await snapshot(bot.services.db) == before
    # Others are not limited by ann's questions, and an answer frees one of ann's slots.
    await asked(bot, gateway, BEN, "A question of mine?")
    await say(bot, gateway, HOST, f"/qa answer {mine[0].id} Yes.")
    await asked(bot, gateway, ANN, "One more?")


# --- upvotes -------------------------------------------------------------------------------


async def test_one_upvote_per_member_never_ones_own_and_privately(bot, gateway):
    gateway.capabilities = replace(gateway.capabilities, ephemeral=True)
    await opened(bot, gateway)
    q = await asked(bot, gateway, ANN, "Will there be a mobile app?")
    assert "Upvoted question #1: 1 vote now" in await vote(bot, gateway, BEN, q.id)
    assert gateway.sent[-1].message.private
    assert "2 votes now" in await vote(bot, gateway, CAT, q.id)
    before = await snapshot(bot.services.db)
    assert "already upvoted question #1" in await vote(bot, gateway, BEN, q.id)
    assert gateway.sent[-1].message.private
    assert "your own question" in await vote(bot, gateway, ANN, q.id)
    assert gateway.sent[-1].message.private
    assert "can't find question 77" in await vote(bot, gateway, BEN, 77)
    assert await snapshot(bot.services.db) == before
    stored = await question(bot.services.db, q.id)
    votes = await rows(bot.services.db, QaVote, question_id=q.id)
    assert stored.votes == len(votes) == 2
    assert {v.user_id for v in votes} == {"ben", "cat"}


@SQLITE_ONLY
async def test_a_private_vote_answer_goes_to_the_member_where_there_is_no_ephemeral(bot, gateway):
    await opened(bot, gateway)
    q = await asked(bot, gateway, ANN, "Is it open source?")
    assert "1 vote now" in await vote(bot, gateway, BEN, q.id)
    assert gateway.sent[-1].private_to == BEN.user_id


async def test_votes_stop_when_a_question_is_settled_or_the_ama_ends(bot, gateway):
    await opened(bot, gateway)
    first = await asked(bot, gateway, ANN, "First?")
    second = await asked(bot, gateway, BEN, "Second?")
    await say(bot, gateway, HOST, f"/qa answer {first.id} Yes.")
    before = await snapshot(bot.services.db)
    assert "Question #1 was answered: no more votes" in await vote(bot, gateway, CAT, first.id)
    await say(bot, gateway, HOST, "/qa close")
    closed = await snapshot(bot.services.db)
    assert "This AMA has ended" in await vote(bot, gateway, CAT, second.id)
    assert await snapshot(bot.services.db) == closed
    assert before["qa_votes"] == closed["qa_votes"] == []


# --- the host's queue ----------------------------------------------------------------------


async def test_next_and_list_order_by_votes_then_age(bot, gateway, clock):
    await opened(bot, gateway)
    questions = []
    for who, text in [(ANN, "Oldest?"), (BEN, "Middle?"), (CAT, "Newest?"), (DAN, "Latest?")]:
        questions.append(await asked(bot, gateway, who, text))
        clock.advance(minutes=1)
    oldest, middle, newest, latest = questions
    for voter in (ANN, BEN):
        await vote(bot, gateway, voter, newest.id)
    await vote(bot, gateway, ANN, middle.id)
    await vote(bot, gateway, BEN, latest.id)

    listing = await say(bot, gateway, ANN, "/qa list")
    order = [listing.index(t) for t in ("Newest?", "Middle?", "Latest?", "Oldest?")]
    assert order == sorted(order), listing
    assert "4 questions waiting" in listing

    reply = await say(bot, gateway, HOST, "/qa next")
    assert "#3 · 👍 2 · cat" in reply and "Newest?" in reply and "(4 waiting)" in reply
    assert gateway.sent[-1].private_to == HOST.user_id
    await say(bot, gateway, HOST, f"/qa answer {newest.id} Soon.")
    # Equal votes: the older question goes first.
    assert "Middle?" in await say(bot, gateway, HOST, "/qa next")
    await say(bot, gateway, HOST, f"/qa dismiss {middle.id}")
    assert "Latest?" in await say(bot, gateway, BOSS, "/qa next")
    for q in (latest, oldest):
        await say(bot, gateway, HOST, f"/qa answer {q.id} Done.")
    assert "No questions are waiting" in await say(bot, gateway, HOST, "/qa next")
    assert "no questions waiting" in await say(bot, gateway, ANN, "/qa list")


@SQLITE_ONLY
async def test_only_the_host_or_managers_steer_the_ama(bot, gateway):
    await opened(bot, gateway)
    q = await asked(bot, gateway, ANN, "Why?")
    before = await snapshot(bot.services.db)
    for text in ("/qa next", f"/qa answer {q.id} Because.", f"/qa dismiss {q.id}", "/qa close"):
        reply = await say(bot, gateway, BEN, text)
        assert "Only the AMA's host (host) or a manager" in reply, (text, reply)
    assert await snapshot(bot.services.db) == before
    # The host keeps the right after losing the manager role; another manager has it too.
    gateway.roles.pop(HOST.user_id)
    assert "Why?" in await say(bot, gateway, HOST, "/qa next")
    assert "Why?" in await say(bot, gateway, BOSS, "/qa next")


# --- answers and points --------------------------------------------------------------------


async def test_an_answer_replies_to_the_question_mentions_the_asker_and_pays_once(bot, gateway):
    await opened(bot, gateway)
    q = await asked(bot, gateway, ANN, "Will there be a *mobile* app?")
    await vote(bot, gateway, BEN, q.id)
    before = len(gateway.sent)
    await bot.handle(command(HOST, f"/qa answer {q.id} Yes,\nin the spring."), gateway)
    [post] = gateway.sent[before:]
    assert post.reply_to == q.message_id and post.chat.chat_id == CHAT.chat_id
    assert "[ann](mention:ann)" in post.message.text
    assert "Will there be a *mobile* app?" in post.text
    assert "host: Yes,\nin the spring." in post.text
    assert "+5 points to ann" in post.text
    # The question's post loses its Upvote button.
    sent, settled = gateway.edits[-1]
    assert sent.message_id == q.message_id and settled.buttons == ()
    assert "Answered" in settled.text
    stored = await question(bot.services.db, q.id)
    assert (stored.status, stored.answer, stored.answered_by) == (
        "answered", "Yes,\nin the spring.", "host"
    )  # fmt: skip
    [entry] = await rows(bot.services.db, PointsEntry)
    assert (entry.user_id, entry.amount, entry.reason, entry.ref) == (
        "ann", 5, "qa_answered", f"qa:{q.id}"
    )  # fmt: skip

    before_again = await snapshot(bot.services.db)
    assert "has been answered already" in await say(bot, gateway, BOSS, f"/qa answer {q.id} No.")
    assert await snapshot(bot.services.db) == before_again


async def test_points_follow_the_community_rules_and_self_answers_earn_nothing(
    bot, gateway, services
):
    services.features["points"] = PointsRules(qa_answered=3)
    await opened(bot, gateway)
    async with services.db.session() as session:
        await session.execute(update(Community).values(settings={"points": {"qa_answered": 8}}))
    theirs = await asked(bot, gateway, ANN, "Ann asks?")
    own = await asked(bot, gateway, HOST, "The host asks?")
    assert "+8 points to ann" in await say(bot, gateway, HOST, f"/qa answer {theirs.id} Yes.")
    assert "points" not in await say(bot, gateway, HOST, f"/qa answer {own.id} Yes.")
    ledger = await rows(bot.services.db, PointsEntry)
    assert [(e.user_id, e.amount) for e in ledger] == [("ann", 8)]


async def test_answer_and_dismiss_refusals_change_nothing(bot, gateway):
    await opened(bot, gateway)
    q = await asked(bot, gateway, ANN, "Spam spam spam?")
    before = await snapshot(bot.services.db)
    for text, expected in [
        ("/qa answer 99 Hi", "can't find question **99**"),
        ("/qa answer abc Hi", "isn't a whole number"),
        (f"/qa answer {q.id}", "Missing answer"),
        (f"/qa answer {q.id} ...", "The answer is empty"),
        ("/qa dismiss 99", "can't find question **99**"),
    ]:
        await bot.handle(command(HOST, text), gateway)
        assert expected in gateway.sent[-1].message.text, (text, gateway.last)
    assert await snapshot(bot.services.db) == before

    assert "is dismissed" in await say(bot, gateway, HOST, f"/qa dismiss {q.id}")
    assert gateway.sent[-1].private_to == HOST.user_id
    assert gateway.edits[-1][1].buttons == () and "Dismissed" in gateway.edits[-1][1].text
    dismissed = await snapshot(bot.services.db)
    assert "was dismissed" in await say(bot, gateway, HOST, f"/qa answer {q.id} Hi")
    assert "was dismissed" in await say(bot, gateway, HOST, f"/qa dismiss {q.id}")
    assert await snapshot(bot.services.db) == dismissed
    assert await rows(bot.services.db, PointsEntry) == []


async def test_question_ids_of_another_community_are_not_found(bot, gateway):
    await opened(bot, gateway)
    q = await asked(bot, gateway, ANN, "Ours?")
    gateway.roles[DAN.user_id] = Role.MANAGER
    await say(bot, gateway, DAN, "/qa open Theirs", chat=ELSEWHERE)
    before = await snapshot(bot.services.db)
    for text in (f"/qa answer {q.id} Hi", f"/qa dismiss {q.id}", f"/qa promote {q.id} Hi"):
        assert f"can't find question {q.id}" in await say(bot, gateway, DAN, text, chat=ELSEWHERE)
    assert f"can't find question {q.id}" in await vote(bot, gateway, BEN, q.id, chat=ELSEWHERE)
    assert await snapshot(bot.services.db) == before


@SQLITE_ONLY
async def test_an_answer_given_from_another_chat_is_posted_in_the_ama(bot, gateway):
    await opened(bot, gateway)
    q = await asked(bot, gateway, ANN, "Where?")
    reply = await say(bot, gateway, BOSS, f"/qa answer {q.id} Here.", chat=OTHER_CHAT)
    assert "Answer to question #1 posted in Test *Group*" in reply
    post = next(s for s in gateway.sent if "Here." in s.text)
    assert post.chat.chat_id == CHAT.chat_id and post.reply_to == q.message_id


# --- closing and the recap -----------------------------------------------------------------


async def test_close_posts_a_recap_and_keeps_unanswered_questions(bot, gateway, clock):
    await opened(bot, gateway)
    a1 = await asked(bot, gateway, ANN, "Ann one?")
    clock.advance(minutes=1)
    a2 = await asked(bot, gateway, ANN, "Ann two?")
    b1 = await asked(bot, gateway, BEN, "Ben one?")
    b2 = await asked(bot, gateway, BEN, "Ben two?")
    clock.advance(minutes=1)
    c1 = await asked(bot, gateway, CAT, "Cat one?")
    spam = await asked(bot, gateway, DAN, "Buy coins?")
    for voter in (BEN, CAT, DAN):
        await vote(bot, gateway, voter, a2.id)
    await vote(bot, gateway, ANN, b2.id)
    for q in (a1, b1):
        await say(bot, gateway, HOST, f"/qa answer {q.id} Yes.")
    await say(bot, gateway, HOST, f"/qa dismiss {spam.id}")
    clock.advance(minutes=88)

    recap = await say(bot, gateway, HOST, "/qa close")
    assert "AMA recap: Roadmap 2027" in recap and "ran 1h30m" in recap
    assert "Questions: 5 asked, 2 answered (40%), 1 dismissed · upvotes: 4" in recap
    top = recap.split("Top askers")[1].split("Still waiting")[0]
    assert [line.split(" — ")[0] for line in top.strip().splitlines()] == [
        "1. ann", "2. ben", "3. cat"
    ]  # fmt: skip
    assert "1. ann — 2 asked, 1 answered" in top
    waiting = recap.split("Still waiting (3, most votes first)")[1]
    order = [waiting.index(t) for t in ("Ann two?", "Ben two?", "Cat one?")]
    assert order == sorted(order) and "Buy coins?" not in waiting

    [session] = await rows(bot.services.db, QaSession)
    assert session.status == "closed" and session.closed_at == clock.now()
    assert session.recap_message_id == "out-" + str(len(gateway.sent))
    # Unanswered questions stay open for the daily summary, and may still be answered.
    assert {q.status for q in await rows(bot.services.db, QaQuestion, id=c1.id)} == {"open"}
    async with bot.services.db.session() as s:
        carried = await store.unanswered(s, session.community_id, 10)
        assert await store.unanswered(s, session.community_id, 0) == []
    assert [u.question_id for u in carried] == [a2.id, b2.id, c1.id]
    assert carried[0].votes == 3 and carried[0].topic == "Roadmap 2027"
    assert not carried[0].session_open
    assert "+5 points to cat" in await say(bot, gateway, HOST, f"/qa answer {c1.id} Late, yes.")


async def test_after_close_asking_is_refused_and_a_new_ama_may_open(bot, gateway):
    await opened(bot, gateway)
    await asked(bot, gateway, ANN, "Before the end?")
    await say(bot, gateway, HOST, "/qa close")
    before = await snapshot(bot.services.db)
    assert "No AMA is open in this chat" in await say(bot, gateway, BEN, "/ask Too late?")
    assert "No AMA is open in this chat" in await say(bot, gateway, HOST, "/qa close")
    assert "No AMA is open in this chat" in await say(bot, gateway, HOST, "/qa next")
    assert await snapshot(bot.services.db) == before
    await opened(bot, gateway, "Part two")
    # The first AMA's waiting question does not count as a duplicate in the second.
    await asked(bot, gateway, ANN, "Before the end?")


@SQLITE_ONLY
async def test_an_empty_ama_recap_has_no_share(bot, gateway):
    await opened(bot, gateway)
    recap = await say(bot, gateway, HOST, "/qa close")
    assert "Questions: 0 asked, 0 answered (–)" in recap and "Top askers" not in recap


# --- the FAQ -------------------------------------------------------------------------------


async def test_promote_makes_an_answered_question_an_faq_entry_once(bot, gateway):
    await opened(bot, gateway)
    q = await asked(bot, gateway, ANN, "How do I reset my password?")
    other = await asked(bot, gateway, BEN, "Is there a dark mode?")
    before = await snapshot(bot.services.db)
    assert "hasn't been answered yet" in await say(bot, gateway, HOST, f"/qa promote {q.id}")
    assert "managers" in await say(bot, gateway, ANN, f"/qa promote {q.id}")
    assert await snapshot(bot.services.db) == before

    await say(bot, gateway, HOST, f"/qa answer {q.id} Settings, then Security.")
    community_id = (await question(bot.services.db, q.id)).community_id
    generation = faq_store.generation(community_id)
    reply = await say(bot, gateway, HOST, f"/qa promote {q.id}")
    [entry] = await rows(bot.services.db, FaqEntry)
    # The FAQ matcher's in-memory index of this community reloads with the new entry.
    assert faq_store.generation(community_id) == generation + 1
    assert f"is now FAQ entry #{entry.id}" in reply
    assert (entry.question, entry.answer, entry.source_question_id, entry.created_by) == (
        "How do I reset my password?", "Settings, then Security.", q.id, "host"
    )  # fmt: skip
    assert (await question(bot.services.db, q.id)).faq_id == entry.id

    promoted = await snapshot(bot.services.db)
    assert f"is FAQ entry #{entry.id} already" in await say(
        bot, gateway, BOSS, f"/qa promote {q.id} Other words."
    )
    assert await snapshot(bot.services.db) == promoted

    # A live answer too long for the FAQ needs a shorter wording, which a manager may give.
    await say(bot, gateway, HOST, f"/qa answer {other.id} {'Not yet. ' * 200}")
    too_long = await say(bot, gateway, BOSS, f"/qa promote {other.id}")
    assert "That answer has 1799 characters; FAQ answers may have 1500" in too_long
    assert len(await rows(bot.services.db, FaqEntry)) == 1
    assert (await question(bot.services.db, other.id)).faq_id is None
    await say(bot, gateway, BOSS, f"/qa promote {other.id} Not yet; it is planned for 2027.")
    [_, second] = sorted(await rows(bot.services.db, FaqEntry), key=lambda e: e.id)
    assert second.answer == "Not yet; it is planned for 2027." and second.created_by == "boss"


@SQLITE_ONLY
async def test_a_dismissed_question_cannot_be_promoted(bot, gateway):
    await opened(bot, gateway)
    q = await asked(bot, gateway, ANN, "Spam?")
    await say(bot, gateway, HOST, f"/qa dismiss {q.id}")
    assert "was dismissed: only answered" in await say(bot, gateway, HOST, f"/qa promote {q.id}")
    assert await rows(bot.services.db, FaqEntry) == []


# --- language ------------------------------------------------------------------------------


@SQLITE_ONLY
async def test_the_ama_speaks_chinese_in_a_chinese_community(bot, gateway):
    await say(bot, gateway, HOST, "/settings language zh")
    assert "问答会（AMA）：路线图" in await say(bot, gateway, HOST, "/qa open 路线图")
    await say(bot, gateway, ANN, "/ask 什么时候发布？")
    assert "问题 #1" in gateway.last and gateway.sent[-1].message.buttons[0][0].label == "👍 同问"
    assert "已同问问题 #1，现在共 1 票" in await vote(bot, gateway, BEN, 1)
    assert "提问者获得" not in await say(bot, gateway, HOST, "/qa answer 1 下周。")
    assert "获得 5 积分" in gateway.last
    recap = await say(bot, gateway, HOST, "/qa close")
    assert "问答会总结：路线图" in recap and "已回答 1 个（100%）" in recap


@pytest.mark.parametrize("locale", LOCALES)
def test_every_ama_command_has_help_in_every_locale(locale):
    catalog = Renderer().catalog(locale)["commands"]
    names = [spec.name for spec in router.commands]
    assert {"qa open", "ask", "qa next", "qa answer", "qa close", "qa promote"} <= set(names)
    for name in names:
        assert catalog.get(name, {}).get("help"), f"/{name} has no {locale} help"


ERROR_PROBLEMS = [
    "not_open_here", "already_open", "empty_topic", "empty_question", "too_long", "limit",
    "not_found", "not_host", "answered", "dismissed", "empty_answer", "not_answered",
    "promoted", "faq_too_long", "faq_full",
]  # fmt: skip


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("problem", ERROR_PROBLEMS)
def test_every_refusal_reads_well_in_every_locale(locale, problem):
    at = datetime(2030, 1, 1, tzinfo=UTC)
    s = SimpleNamespace(topic="Roadmap", host_name="host", opened_at=at)
    q = SimpleNamespace(id=3, status="open", faq_id=9)
    text = Renderer().render(
        "qa/errors.j2", locale, problem=problem, s=s, q=q, id=3, length=600, limit=500,
        count=3, command="qa next", tz="UTC",
    )  # fmt: skip
    assert text.startswith("⚠️ ") and len(text) > 10, text


@SQLITE_ONLY
async def test_ask_alias_and_the_bare_group_list_the_subcommands(bot, gateway):
    await opened(bot, gateway)
    await say(bot, gateway, ANN, "/qa ask Via the alias?")
    assert "Via the alias?" in gateway.last
    assert "qa close" in await say(bot, gateway, ANN, "/qa")


async def test_counts_stay_consistent_with_vote_rows(bot, gateway):
    await opened(bot, gateway)
    q = await asked(bot, gateway, ANN, "Count me?")
    voters = [user(f"v{n}") for n in range(6)]
    for voter in voters:
        await vote(bot, gateway, voter, q.id)
        await vote(bot, gateway, voter, q.id)
    async with bot.services.db.session() as session:
        counted = await session.scalar(select(func.count()).select_from(QaVote))
    assert counted == (await question(bot.services.db, q.id)).votes == len(voters)


@POSTGRES_ONLY
async def test_racing_opens_and_presses_take_effect_once(bot, gateway):
    await opened(bot, gateway, "Warm-up")  # the community row exists from here on
    await say(bot, gateway, HOST, "/qa close")
    await asyncio.gather(
        *(bot.handle(command(who, "/qa open Race"), gateway) for who in (HOST, BOSS, HOST))
    )
    assert len(await rows(bot.services.db, QaSession, status="open")) == 1
    assert sum("already open in this chat" in t for t in gateway.texts) == 2
    q = await asked(bot, gateway, ANN, "Who wins?")
    presses = [press(who, f"qa:up:{q.id}") for who in (BEN, BEN, BEN, CAT, CAT)]
    await asyncio.gather(*(bot.handle(p, gateway) for p in presses))
    assert (await question(bot.services.db, q.id)).votes == 2
    assert len(await rows(bot.services.db, QaVote, question_id=q.id)) == 2
