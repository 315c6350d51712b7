"""Quizzes through the dispatcher: asking, answering once, first-K points, closing once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.app import build_dispatcher
from handlers.core.context import Services
from handlers.core.events import Role
from handlers.core.render import Renderer
from handlers.quizzes import lifecycle
from scheduler.service import SchedulerService
from storage.activity import ActivityWriter, CommunityDefaults
from storage.models import Occurrence, PointsEntry, Quiz, QuizAnswer
from storage.points import balance
from tests.fakes import CHAT, T0, FakeClock, RecordingGateway, command, press, user

BOSS = user("boss")
OTHER_MANAGER = user("mia")
MEMBERS = [user(name) for name in ("ann", "ben", "cat", "dan", "eve", "fay")]
QUESTION = "Capital of France? | Paris | Lyon | Marseille | Nice"


@pytest.fixture
def managed(gateway, services):
    gateway.roles[BOSS.user_id] = Role.MANAGER
    gateway.roles[OTHER_MANAGER.user_id] = Role.MANAGER
    services.gateways.register(gateway)
    return gateway


async def rows(db, model, **where):
    async with db.session() as session:
        return list((await session.execute(select(model).filter_by(**where))).scalars().all())


async def ask(dispatcher, gateway, text: str = QUESTION, **kwargs) -> Quiz:
    before = len(gateway.sent)
    await dispatcher.handle(command(BOSS, f"/quiz {text}", **kwargs), gateway)
    assert len(gateway.sent) == before + 1, gateway.texts[before:]
    async with dispatcher.services.db.session() as session:
        return (await session.execute(select(Quiz).order_by(Quiz.id.desc()))).scalars().first()


def right_of(quiz: Quiz) -> int:
    return quiz.correct_option


def wrong_of(quiz: Quiz) -> int:
    return (quiz.correct_option + 1) % len(quiz.options)


async def answer(dispatcher, gateway, who, quiz: Quiz, option: int, **kwargs) -> str:
    before = len(gateway.sent)
    await dispatcher.handle(press(who, f"quiz:answer:{quiz.id}:{option}", **kwargs), gateway)
    assert len(gateway.sent) == before + 1, gateway.texts[before:]
    return gateway.sent[-1].text


def public(gateway) -> str:
    return next(s.text for s in reversed(gateway.sent) if s.private_to is None)


async def points_of(services, who) -> int:
    async with services.db.session() as session:
        return await balance(session, 1, who.user_id)


async def test_ask_posts_shuffled_options_as_buttons(dispatcher, managed):
    quiz = await ask(dispatcher, managed)
    sent = managed.sent[-1]
    assert sorted(quiz.options) == ["Lyon", "Marseille", "Nice", "Paris"]
    assert quiz.options[quiz.correct_option] == "Paris"
    assert "Quiz #1" in sent.text and "Capital of France?" in sent.text
    assert "10 points for every right answer" in sent.text  # the points rules' default
    assert "closes **12:05**" in sent.message.text  # five minutes by default
    data = [row[0].data for row in sent.message.buttons]
    assert data == [f"quiz:answer:{quiz.id}:{i}" for i in range(4)]
    assert [row[0].label[3:] for row in sent.message.buttons] == quiz.options
    assert quiz.message_id == "out-1" and quiz.closes_at == T0 + timedelta(minutes=5)
    assert quiz.points == 10 and quiz.reward_first is None and quiz.created_by == BOSS.user_id
    # The answer is never in the post (nor which button it is).
    assert "✅" not in sent.text


async def test_options_points_first_and_closes(dispatcher, managed):
    quiz = await ask(dispatcher, managed, f"{QUESTION} --points 25 --first 2 --closes 1h")
    assert (quiz.points, quiz.reward_first) == (25, 2)
    assert quiz.closes_at == T0 + timedelta(hours=1)
    assert "25 points for the first 2 right answers" in managed.last
    quiz = await ask(dispatcher, managed, f"{QUESTION} --points 0 --closes 13:30")
    assert quiz.points == 0 and quiz.closes_at == datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
    assert "no points" in managed.last


async def test_ask_alias_and_quoted_questions_that_start_with_a_subcommand(dispatcher, managed):
    quiz = await ask(dispatcher, managed, "ask 2 + 2? | 4 | 5")
    assert quiz.question == "2 + 2?"
    quiz = await ask(dispatcher, managed, '"Close to which sea is Nice?" | Mediterranean | Baltic')
    assert quiz.question == "Close to which sea is Nice?"


async def test_refusals_explain_and_change_nothing(dispatcher, managed):
    for who, text, expected in [
        (MEMBERS[0], f"/quiz {QUESTION}", "managers"),
        (BOSS, "/quiz", "Missing question"),
        (BOSS, "/quiz Is this a question?", "separated by |"),
        (BOSS, "/quiz Q? | yes | Yes", "is there twice"),
        (BOSS, "/quiz Q? | a | " + " | ".join(f"w{i}" for i in range(10)), "at most 9"),
        (BOSS, f"/quiz {QUESTION} --first 0", "out of range"),
        (BOSS, f"/quiz {QUESTION} --points -1", "out of range"),
        (BOSS, f"/quiz {QUESTION} --closes 10s", "out of range"),
        (BOSS, f"/quiz {QUESTION} --closes 30d", "out of range"),
        (BOSS, f"/quiz {QUESTION} --colses 1h", "Unknown option"),
        (BOSS, "/quiz close 99", "can't find quiz **99**"),
    ]:
        await dispatcher.handle(command(who, text), managed)
        assert expected in managed.sent[-1].message.text, (text, managed.last)
    assert await rows(dispatcher.services.db, Quiz) == []


async def test_answers_are_acknowledged_privately_once_without_revealing(
    dispatcher, managed, services
):
    quiz = await ask(dispatcher, managed)
    ann = MEMBERS[0]
    reply = await answer(dispatcher, managed, ann, quiz, wrong_of(quiz))
    letter = "ABCD"[wrong_of(quiz)]
    assert reply == f"📝 Answer {letter} recorded for quiz #1. Results at 12:05."
    assert managed.sent[-1].private_to == ann.user_id
    again = await answer(dispatcher, managed, ann, quiz, right_of(quiz))
    assert f"You already answered quiz #1 ({letter})" in again
    [row] = await rows(services.db, QuizAnswer)
    assert (row.user_id, row.option, row.correct, row.rank) == ("ann", wrong_of(quiz), False, None)
    # The author can't answer their own question.
    assert "can't answer it" in await answer(dispatcher, managed, BOSS, quiz, right_of(quiz))
    assert len(await rows(services.db, QuizAnswer)) == 1


async def test_bad_presses_are_refused(dispatcher, managed):
    quiz = await ask(dispatcher, managed)
    for data in (f"quiz:answer:{quiz.id}:9", "quiz:answer:77:0", "quiz:answer:nope"):
        await dispatcher.handle(press(MEMBERS[0], data), managed)
        assert "can't find quiz" in managed.last
    elsewhere = replace(CHAT, chat_id="chat-9", community_id="community-9")
    await dispatcher.handle(press(MEMBERS[0], f"quiz:answer:{quiz.id}:0", chat=elsewhere), managed)
    assert "can't find quiz" in managed.last
    await dispatcher.handle(press(user("robot", bot=True), f"quiz:answer:{quiz.id}:0"), managed)
    assert await rows(dispatcher.services.db, QuizAnswer) == []


async def test_first_k_right_answers_earn_points_at_the_close(dispatcher, managed, services, clock):
    quiz = await ask(dispatcher, managed, f"{QUESTION} --points 7 --first 2")
    ann, ben, cat, dan, eve = MEMBERS[:5]
    for seconds, who, option in [
        (3, ann, wrong_of(quiz)),
        (4, ben, right_of(quiz)),
        (9, cat, right_of(quiz)),
        (12, dan, right_of(quiz)),
        (30, eve, wrong_of(quiz)),
    ]:
        clock.set(T0 + timedelta(seconds=seconds))
        await answer(dispatcher, managed, who, quiz, option)
    # Nobody earns anything before the close: a balance can't give the answer away.
    assert await rows(services.db, PointsEntry) == []
    ranks = {a.user_id: a.rank for a in await rows(services.db, QuizAnswer)}
    assert ranks == {"ann": None, "ben": 1, "cat": 2, "dan": 3, "eve": None}
    clock.set(T0 + timedelta(minutes=5))
    await lifecycle.settle(services, quiz.id)
    ledger = await rows(services.db, PointsEntry)
    assert sorted((e.user_id, e.amount, e.reason, e.ref) for e in ledger) == [
        ("ben", 7, "quiz_correct", "quiz:1"),
        ("cat", 7, "quiz_correct", "quiz:1"),
    ]
    answers = {a.user_id: a.points for a in await rows(services.db, QuizAnswer)}
    assert answers == {"ann": 0, "ben": 7, "cat": 7, "dan": 0, "eve": 0}
    result = public(managed)
    assert managed.sent[-1].reply_to == quiz.message_id
    right_letter = "ABCD"[right_of(quiz)]
    assert f"{right_letter}. Paris" in result
    assert "5 answered, 3 right." in result
    assert "1. ben — 4.0s · +7" in result and "2. cat — 9.0s · +7" in result
    assert "3. dan — 12.0s" in result and "3. dan — 12.0s ·" not in result
    assert "Only the first 2 earned points." in result
    # The quiz post loses its buttons and shows how the answers went.
    sent, final = managed.edits[-1]
    assert sent.message_id == quiz.message_id and final.buttons == ()
    assert "Closed · 5 answered, 3 right" in final.text and "✅" in final.text
    # Answers after the close don't count.
    reply = await answer(dispatcher, managed, MEMBERS[5], quiz, right_of(quiz))
    assert "is closed" in reply
    assert len(await rows(services.db, QuizAnswer)) == 5


async def test_without_first_every_right_answer_earns_and_points_add_up(
    dispatcher, managed, services, clock
):
    ann, ben = MEMBERS[:2]
    for _ in range(2):
        quiz = await ask(dispatcher, managed)
        await answer(dispatcher, managed, ann, quiz, right_of(quiz))
        await answer(dispatcher, managed, ben, quiz, right_of(quiz))
        await dispatcher.handle(command(BOSS, f"/quiz close {quiz.id}"), managed)
        assert "Closed early by a manager." in public(managed)
    assert await points_of(services, ann) == 20 and await points_of(services, ben) == 20


async def test_close_happens_once_and_the_result_is_posted_once(
    dispatcher, managed, services, clock
):
    quiz = await ask(dispatcher, managed)
    await answer(dispatcher, managed, MEMBERS[0], quiz, right_of(quiz))
    await dispatcher.handle(command(BOSS, f"/quiz close {quiz.id}"), managed)
    posted = len(managed.sent)
    assert sum("results" in s.text for s in managed.sent) == 1
    # The timer, a sweep, another instance: nothing more happens.
    clock.advance(minutes=10)
    await lifecycle.settle(services, quiz.id)
    assert await lifecycle.sweep(services) == 0
    await dispatcher.handle(command(BOSS, f"/quiz close {quiz.id}"), managed)
    assert "isn't open any more (closed)" in managed.last
    assert len(managed.sent) == posted + 1
    assert len(await rows(services.db, PointsEntry)) == 1
    [claim] = await rows(services.db, Occurrence)
    assert (claim.what, claim.status) == ("quiz:1:result", "done")


async def test_a_close_missed_while_away_happens_late_and_says_so(
    dispatcher, managed, services, clock
):
    quiz = await ask(dispatcher, managed)
    await answer(dispatcher, managed, MEMBERS[0], quiz, right_of(quiz))
    clock.advance(hours=3)  # the bot was down across the closing time
    assert await lifecycle.sweep(services) == 2  # closed, and its result posted
    assert "Closed late" in public(managed) and "1 answered, 1 right." in public(managed)
    assert await points_of(services, MEMBERS[0]) == 10


async def test_a_result_the_platform_refused_is_posted_by_the_next_sweep(
    dispatcher, managed, services, clock
):
    quiz = await ask(dispatcher, managed)
    clock.advance(minutes=5)
    managed.fail_sends = True
    await lifecycle.settle(services, quiz.id)
    [closed] = await rows(services.db, Quiz)
    assert closed.status == "closed" and closed.result_message_id is None
    [claim] = await rows(services.db, Occurrence)
    assert claim.status == "retrying"
    managed.fail_sends = False
    clock.advance(minutes=1)
    assert await lifecycle.sweep(services) == 1
    assert "Nobody answered." in public(managed)
    assert await lifecycle.sweep(services) == 0
    [done] = await rows(services.db, Quiz)
    assert done.result_message_id is not None


async def test_a_quiz_that_cannot_be_posted_is_cancelled(dispatcher, managed, services):
    managed.fail_sends = True
    await dispatcher.handle(command(BOSS, f"/quiz {QUESTION}"), managed)
    [quiz] = await rows(services.db, Quiz)
    assert quiz.status == "cancelled" and quiz.message_id is None
    managed.fail_sends = False
    assert "is closed" in await answer(dispatcher, managed, MEMBERS[0], quiz, 0)
    assert await lifecycle.sweep(services) == 0


async def test_list_shows_open_and_closed_quizzes(dispatcher, managed):
    first = await ask(dispatcher, managed)
    await ask(dispatcher, managed, "2 + 2? | 4 | 5")
    await answer(dispatcher, managed, MEMBERS[0], first, right_of(first))
    await dispatcher.handle(command(BOSS, f"/quiz close {first.id}"), managed)
    await dispatcher.handle(command(BOSS, "/quiz list"), managed)
    assert "#2 2 + 2? — open, 0 answered, closes 2026-11-20 12:05" in managed.last
    assert "#1 Capital of France? — closed 2026-11-20 12:00, 1 answered, 1 right" in managed.last
    await dispatcher.handle(command(MEMBERS[0], "/quiz list"), managed)
    assert "managers" in managed.last.lower()


async def test_chinese(dispatcher, managed, services, clock):
    await dispatcher.handle(command(BOSS, "/settings language zh"), managed)
    quiz = await ask(dispatcher, managed, "法国的首都是？｜巴黎｜里昂｜马赛")
    assert "答题 #1" in managed.last and "每位答对者得 10 积分" in managed.last
    assert "已记录" in await answer(dispatcher, managed, MEMBERS[0], quiz, right_of(quiz))
    clock.advance(minutes=5)
    await lifecycle.settle(services, quiz.id)
    assert "共 1 人作答，1 人答对" in public(managed) and "巴黎" in public(managed)
    await dispatcher.handle(command(BOSS, "/quiz 只有题目"), managed)
    assert "用 | 分隔" in managed.last


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_every_quiz_command_has_help(dispatcher, locale):
    catalog = Renderer().catalog(locale)["commands"]
    names = [s.name for s in dispatcher.visible_commands() if s.name.startswith("quiz")]
    assert len(names) == 9
    assert all(catalog.get(name, {}).get("help") for name in names)


async def test_timers_are_rebuilt_from_the_database_at_start(db):
    """A quiz asked before a restart closes on time after it, exactly once."""
    clock = FakeClock(datetime(2030, 3, 4, 8, 0, tzinfo=UTC))  # future: timers must not fire
    gateway = RecordingGateway(roles={BOSS.user_id: Role.MANAGER})

    async def start() -> tuple[Services, SchedulerService]:
        writer = ActivityWriter(db, batch_size=100, flush_interval=0.05)
        await writer.start()
        scheduler = SchedulerService()
        services = Services(
            db=db,
            activity=writer,
            renderer=Renderer(),
            clock=clock,
            defaults=CommunityDefaults("UTC", "en"),
            scheduler=scheduler,
        )
        services.gateways.register(gateway)
        lifecycle.install(services, scheduler)
        await scheduler.start()
        return services, scheduler

    services, scheduler = await start()
    try:
        dispatcher = build_dispatcher(services)
        await dispatcher.handle(command(BOSS, f"/quiz {QUESTION}", clock.now()), gateway)
        [quiz] = await rows(db, Quiz)
        assert scheduler.next_run(f"quiz:{quiz.id}:close") == quiz.closes_at
    finally:
        await scheduler.stop()
        await services.activity.stop()

    services, scheduler = await start()  # the restart
    try:
        assert scheduler.next_run(f"quiz:{quiz.id}:close") == quiz.closes_at
        assert scheduler.next_run("quiz:sweep") is not None
        clock.set(quiz.closes_at)
        ran = await scheduler.run_due(clock.now())
        assert f"quiz:{quiz.id}:close" in ran
        assert sum("results" in s.text for s in gateway.sent) == 1
        clock.advance(minutes=2)
        await scheduler.run_due(clock.now())  # the sweeps find nothing more to do
        assert sum("results" in s.text for s in gateway.sent) == 1
    finally:
        await scheduler.stop()
        await services.activity.stop()


# --- concurrency: on both backends ----------------------------------------------------------


@pytest.fixture
async def any_services(any_db, clock):
    writer = ActivityWriter(any_db, batch_size=100, flush_interval=0.05)
    await writer.start()
    yield Services(
        db=any_db, activity=writer, renderer=Renderer(), clock=clock,
        defaults=CommunityDefaults("UTC", "en"),
    )  # fmt: skip
    await writer.stop()


async def test_concurrent_presses_get_distinct_ranks_and_one_answer_each(any_services, clock):
    dispatcher = build_dispatcher(any_services)
    gateway = RecordingGateway(roles={BOSS.user_id: Role.MANAGER})
    any_services.gateways.register(gateway)
    quiz = await ask(dispatcher, gateway, f"{QUESTION} --first 5")
    right = f"quiz:answer:{quiz.id}:{quiz.correct_option}"
    wrong = f"quiz:answer:{quiz.id}:{wrong_of(quiz)}"
    # One member hammering both buttons: exactly one answer.
    await asyncio.gather(
        *(dispatcher.handle(press(MEMBERS[0], d), gateway) for d in [right, wrong] * 6)
    )
    crowd = [user(f"m{i}") for i in range(24)]
    await asyncio.gather(
        *(dispatcher.handle(press(who, right if i % 3 else wrong), gateway)
          for i, who in enumerate(crowd))
    )  # fmt: skip
    answers = await rows(any_services.db, QuizAnswer)
    assert len(answers) == 25
    ranks = sorted(a.rank for a in answers if a.correct)
    assert ranks == list(range(1, len(ranks) + 1))  # distinct, no gaps
    [row] = await rows(any_services.db, Quiz)
    assert row.correct_count == len(ranks) == 16 + answers[0].correct
    texts = [s.text for s in gateway.sent]
    assert sum("recorded" in t for t in texts) == 25 and sum("already" in t for t in texts) == 11
    await lifecycle.settle(any_services, quiz.id)  # not due yet: nothing happens
    assert await rows(any_services.db, PointsEntry) == []
    clock.advance(minutes=5)
    await asyncio.gather(*(lifecycle.settle(any_services, quiz.id) for _ in range(4)))
    ledger = await rows(any_services.db, PointsEntry)
    earned = {a.user_id for a in answers if a.correct and a.rank <= 5}
    assert {e.user_id for e in ledger} == earned and len(ledger) == 5
    assert sum("results" in s.text for s in gateway.sent) == 1


async def test_answers_racing_the_close_count_before_it_or_not_at_all(any_services, clock):
    dispatcher = build_dispatcher(any_services)
    gateway = RecordingGateway(roles={BOSS.user_id: Role.MANAGER})
    any_services.gateways.register(gateway)
    quiz = await ask(dispatcher, gateway)
    right = f"quiz:answer:{quiz.id}:{quiz.correct_option}"
    crowd = [user(f"m{i}") for i in range(12)]
    await asyncio.gather(
        dispatcher.handle(command(BOSS, f"/quiz close {quiz.id}"), gateway),
        *(dispatcher.handle(press(who, right), gateway) for who in crowd),
    )
    answers = await rows(any_services.db, QuizAnswer)
    ledger = await rows(any_services.db, PointsEntry)
    # Every answer that was kept earned its points at the close; refused ones left no row.
    assert {a.user_id for a in answers} == {e.user_id for e in ledger}
    refused = sum("is closed" in s.text for s in gateway.sent)
    assert len(answers) + refused == 12
    [row] = await rows(any_services.db, Quiz)
    assert row.correct_count == len(answers)
