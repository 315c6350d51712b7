"""Quiz sets: loading them in chat and with the CLI, and playing them as recurring games."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from telegram import Update

from bot.app import CommopsApp, build_dispatcher
from bot.config import load_config
from bot.telegram_adapter.translate import BotIdentity, translate
from handlers.core.context import Services
from handlers.core.events import Role
from handlers.core.outgoing import Capabilities
from handlers.core.render import Renderer
from handlers.quizzes import lifecycle
from scheduler.service import SchedulerService
from storage.activity import ActivityWriter, CommunityDefaults
from storage.communities import ensure_community
from storage.db import Database
from storage.models import PointsEntry, Quiz, QuizAnswer, QuizSet
from tests.fakes import T0, FakeClock, RecordingGateway, command, press, user

BOSS = user("boss")
MEMBERS = [user(name) for name in ("ann", "ben", "cat")]

CAPITALS = """\
[[question]]
question = "Capital of France?"
right = "Paris"
wrong = ["Lyon", "Marseille"]

[[question]]
question = "Capital of Japan?"
right = "Tokyo"
wrong = ["Osaka", "Kyoto"]

[[question]]
question = "Capital of Italy?"
right = "Rome"
wrong = ["Milan"]
"""


@pytest.fixture
def managed(gateway, services):
    gateway.roles[BOSS.user_id] = Role.MANAGER
    services.gateways.register(gateway)
    return gateway


async def rows(db, model, **where):
    async with db.session() as session:
        query = select(model).filter_by(**where)
        if hasattr(model, "id"):
            query = query.order_by(model.id)
        return list((await session.execute(query)).scalars().all())


async def say(dispatcher, gateway, text: str, who=BOSS) -> str:
    await dispatcher.handle(command(who, text), gateway)
    return gateway.last


async def load(dispatcher, gateway, name: str = "capitals", text: str = CAPITALS) -> str:
    return await say(dispatcher, gateway, f"/quizset load {name}\n{text}")


def public(gateway) -> list[str]:
    return [s.text for s in gateway.sent if s.private_to is None]


async def test_load_list_show_and_delete(dispatcher, managed, services):
    reply = await load(dispatcher, managed, "Capitals")
    assert "Quiz set capitals saved: 3 questions" in reply
    [saved] = await rows(services.db, QuizSet)
    assert saved.name == "capitals" and saved.status == "idle" and saved.created_by == "boss"
    assert saved.questions[2] == {"question": "Capital of Italy?", "right": "Rome",
                                  "wrong": ["Milan"]}  # fmt: skip
    csv = "Q1?,yes,no\nQ2?,yes,no,maybe"
    assert "replaced: 2 questions" in await load(dispatcher, managed, "capitals", csv)
    await load(dispatcher, managed)
    assert "capitals — 3 questions" in await say(dispatcher, managed, "/quizset list")
    # Shown with its answers only privately; the chat is told where it went.
    reply = await say(dispatcher, managed, "/quizset show capitals")
    assert "sent you quiz set capitals with its answers privately" in reply
    private = next(s for s in managed.sent if s.private_to == BOSS.user_id)
    assert "1. Capital of France? — ✅ Paris; ✗ Lyon; Marseille" in private.text
    managed.no_private.add(BOSS.user_id)
    reply = await say(dispatcher, managed, "/quizset show capitals")
    assert "1. Capital of France? (3 answers)" in reply and "Paris" not in reply
    assert "not shown in the chat" in reply
    managed.capabilities = Capabilities(buttons=True, ephemeral=True)  # e.g. a slash command
    await say(dispatcher, managed, "/quizset show capitals")
    assert managed.sent[-1].message.private and "✅ Paris" in managed.last
    assert "deleted" in await say(dispatcher, managed, "/quizset delete capitals")
    assert await rows(services.db, QuizSet) == []
    assert "None yet" in await say(dispatcher, managed, "/quizset list")
    assert "There is no quiz set capitals here" in await say(
        dispatcher, managed, "/quizset show capitals"
    )


async def test_problems_name_the_line_of_the_message_and_save_nothing(
    dispatcher, managed, services
):
    text = "Q1?,yes,no\nQ2?,yes\n\nQ4?,same,Same"
    reply = await say(dispatcher, managed, f"/quizset load bad\n{text}")
    assert "Quiz set bad wasn't saved" in reply
    # The command is line 1 of the message, so the set's first row is line 2.
    assert "line 3 (question 2): a row needs the question, the right answer" in reply
    assert "line 5 (question 3): “Same” is there twice" in reply
    reply = await say(dispatcher, managed, '/quizset load bad\n[[question]]\nquestion "x"\n')
    assert "line 3: this isn't valid TOML: Expected '=' after a key" in reply
    assert "Put the questions on the lines after" in await say(
        dispatcher, managed, "/quizset load bad"
    )
    assert "can't be a set name" in await say(dispatcher, managed, "/quizset load a/b\nQ,R,W")
    assert "managers" in (await say(dispatcher, managed, f"/quizset load x\n{CAPITALS}",
                                    who=MEMBERS[0])).lower()  # fmt: skip
    assert await rows(services.db, QuizSet) == []


async def test_a_one_line_message_may_write_backslash_n(dispatcher, managed):
    reply = await say(dispatcher, managed, r"/quizset load quick Q1?,yes,no\nQ2?,yes,no,maybe")
    assert "saved: 2 questions" in reply
    reply = await say(dispatcher, managed, r"/quizset load quick Q1?,yes,no\nQ2?,yes")
    assert "line 2 (question 2)" in reply


async def test_start_refusals_change_nothing(dispatcher, managed, services):
    await load(dispatcher, managed)
    for text, expected in [
        ("/quizset start nope every 10m", "no quiz set **nope**"),
        ("/quizset start capitals 10m", "isn't one of: every"),
        ("/quizset start capitals every 90s", "whole minutes"),
        ("/quizset start capitals every 30s", "out of range"),
        ("/quizset start capitals every 10m --answer 15m", "can't be longer than the interval"),
        ("/quizset start capitals every 10m --first 0", "out of range"),
        ("/quizset stop capitals", "isn't being played"),
    ]:
        await dispatcher.handle(command(BOSS, text), managed)
        assert expected in managed.sent[-1].message.text, (text, managed.last)
    [idle] = await rows(services.db, QuizSet)
    assert idle.status == "idle" and idle.next_run_at is None
    assert await rows(services.db, Quiz) == []


async def _game_services(db: Database, clock: FakeClock, gateway: RecordingGateway):
    writer = ActivityWriter(db, batch_size=100, flush_interval=0.05)
    await writer.start()
    scheduler = SchedulerService()
    services = Services(db=db, activity=writer, renderer=Renderer(), clock=clock,
                        defaults=CommunityDefaults("UTC", "en"), scheduler=scheduler)  # fmt: skip
    services.gateways.register(gateway)
    lifecycle.install(services, scheduler)
    await scheduler.start()
    return services, scheduler


async def test_a_game_asks_each_question_once_in_order_across_a_restart(db):
    start = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)  # the future: real timers must not fire
    clock = FakeClock(start)
    gateway = RecordingGateway(roles={BOSS.user_id: Role.MANAGER})
    ann, ben = MEMBERS[:2]

    async def answer_latest(who, right: bool) -> None:
        [*_, quiz] = await rows(db, Quiz)
        option = quiz.correct_option if right else (quiz.correct_option + 1) % len(quiz.options)
        await dispatcher.handle(press(who, f"quiz:answer:{quiz.id}:{option}", at=clock.now()),
                                gateway)  # fmt: skip

    services, scheduler = await _game_services(db, clock, gateway)
    try:
        dispatcher = build_dispatcher(services)
        await dispatcher.handle(command(BOSS, f"/quizset load capitals\n{CAPITALS}"), gateway)
        await dispatcher.handle(
            command(BOSS, "/quizset start capitals every 10m --answer 3m --first 1", clock.now()),
            gateway,
        )
        started = gateway.sent[-2].text
        assert "Quiz game capitals starts now: 3 questions, one every 10m, 3m to answer" in started
        assert "10 points for the first 1 right answer" in started
        assert "Capital of France?" in gateway.last and "capitals 1/3" in gateway.last
        assert scheduler.next_run("quizset:1:ask") == start + timedelta(minutes=10)
        await answer_latest(ann, right=True)
        await answer_latest(ben, right=True)
        clock.set(start + timedelta(minutes=3))
        await scheduler.run_due(clock.now())
        assert "Quiz #1: results" in gateway.last and "+10" in gateway.last
    finally:
        await scheduler.stop()
        await services.activity.stop()

    # The bot is away across the second slot (08:10) and comes back at 08:14.
    clock.set(start + timedelta(minutes=14))
    services, scheduler = await _game_services(db, clock, gateway)
    try:
        dispatcher = build_dispatcher(services)
        assert scheduler.next_run("quizset:1:ask") == start + timedelta(minutes=10)
        await scheduler.run_due(clock.now())  # the ask timer and the start-up sweep, together
        asked = [q.set_position for q in await rows(db, Quiz)]
        assert asked == [0, 1]  # question 2 asked once, late; never twice
        assert "Capital of Japan?" in gateway.last
        # One late question, never a burst; the next one keeps to the schedule.
        assert scheduler.next_run("quizset:1:ask") == start + timedelta(minutes=20)
        await answer_latest(ben, right=True)
        await answer_latest(ann, right=False)
        for minutes in (17, 24, 27, 40):
            clock.set(start + timedelta(minutes=minutes))
            await scheduler.run_due(clock.now())
        quizzes = await rows(db, Quiz)
        assert [q.set_position for q in quizzes] == [0, 1, 2]
        assert [q.status for q in quizzes] == ["closed"] * 3
        texts = public(gateway)
        for question in ("Capital of France?", "Capital of Japan?", "Capital of Italy?"):
            assert sum(t.startswith("❓") and question in t for t in texts) == 1
        [final] = [t for t in texts if "Final scoreboard" in t]
        assert "Quiz #3: results" in final
        # Equal points: more right answers first (ann was fastest on question 1, ben alone
        # right on question 2; nobody answered question 3).
        assert "1. ben — 10 points (2 of 2 right)\n2. ann — 10 points (1 of 2 right)" in final
        assert "Nobody answered." in final
        assert sum("Final scoreboard" in t for t in texts) == 1
        [game] = await rows(db, QuizSet)
        assert game.status == "finished" and game.next_run_at is None
        assert scheduler.next_run("quizset:1:ask") is None
        ledger = await rows(db, PointsEntry)
        assert sorted((e.user_id, e.ref) for e in ledger) == [("ann", "quiz:1"), ("ben", "quiz:2")]
    finally:
        await scheduler.stop()
        await services.activity.stop()


async def test_two_instances_taking_the_same_slot_ask_once(db):
    clock = FakeClock(T0)
    gateway = RecordingGateway(roles={BOSS.user_id: Role.MANAGER})
    writer = ActivityWriter(db, batch_size=100, flush_interval=0.05)
    await writer.start()
    services = Services(db=db, activity=writer, renderer=Renderer(), clock=clock,
                        defaults=CommunityDefaults("UTC", "en"))  # fmt: skip
    services.gateways.register(gateway)
    try:
        dispatcher = build_dispatcher(services)
        await dispatcher.handle(command(BOSS, f"/quizset load capitals\n{CAPITALS}"), gateway)
        await dispatcher.handle(command(BOSS, "/quizset start capitals every 5m"), gateway)
        assert [q.set_position for q in await rows(db, Quiz)] == [0]
        clock.advance(minutes=5)
        asked = await asyncio.gather(*(lifecycle.ask_next(services, 1) for _ in range(4)))
        assert sum(a is not None for a in asked) == 1
        assert [q.set_position for q in await rows(db, Quiz)] == [0, 1]
        # Asking closed the first question (its window was the whole interval) first.
        [first, second] = await rows(db, Quiz)
        assert first.status == "closed" and second.status == "open"
    finally:
        await writer.stop()


async def test_stop_ends_the_game_with_the_standings(dispatcher, managed, services, clock):
    await load(dispatcher, managed)
    await say(dispatcher, managed, "/quizset start capitals every 10m --points 3")
    [quiz] = await rows(services.db, Quiz)
    assert quiz.points == 3 and quiz.created_by == "boss"
    right = f"quiz:answer:{quiz.id}:{quiz.correct_option}"
    await dispatcher.handle(press(MEMBERS[0], right), managed)
    assert "is being played" in await say(dispatcher, managed, "/quizset start capitals every 5m")
    assert "is being played" in await load(dispatcher, managed)
    assert "is being played" in await say(dispatcher, managed, "/quizset delete capitals")
    assert "playing in Test *Group*: 1 asked" in await say(dispatcher, managed, "/quizset list")
    reply = await say(dispatcher, managed, "/quizset stop capitals")
    assert "stopped after 1 of 3 questions. The open question still closes as planned." in reply
    clock.advance(minutes=10)
    assert await lifecycle.ask_next(services, 1) is None  # no more questions
    await lifecycle.sweep(services)
    assert [q.status for q in await rows(services.db, Quiz)] == ["closed"]
    assert "Final scoreboard" not in "\n".join(public(managed))
    # Played again later, the scoreboard counts the new game only.
    await say(dispatcher, managed, "/quizset start capitals every 10m")
    [old, new] = await rows(services.db, Quiz)
    assert old.set_id is None and new.set_id == 1 and new.set_position == 0


async def test_chinese_game_messages(dispatcher, managed, services, clock):
    await say(dispatcher, managed, "/settings language zh")
    reply = await say(dispatcher, managed, "/quizset load 地理\n法国的首都？,巴黎,里昂")
    assert "题库 地理 已保存：共 1 题" in reply
    reply = await say(dispatcher, managed, "/quizset start 地理 每 5m")
    assert "答题游戏" in managed.sent[-2].text and "第 1/1 题" in reply
    clock.advance(minutes=5)
    await lifecycle.sweep(services)
    assert "最终排行榜" in public(managed)[-1]


# --- the console, end to end ----------------------------------------------------------------

CONSOLE_SCRIPT = r"""/quizset load mini Q1?,yes,no\nQ2?,yes,no
/quizset start mini every 1m
alice: hello
/as alice
/press 1
/press 2
"""


@pytest.mark.usefixtures("cli_sandbox")  # the console saves images in the working directory
async def test_console_game_with_a_one_line_set(tmp_path: Path):
    clock = FakeClock(datetime(2030, 3, 4, 8, 0, tzinfo=UTC))
    (tmp_path / "chat.txt").write_text(CONSOLE_SCRIPT, encoding="utf-8")
    config = load_config(env={"COMMOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}"})
    out: list[str] = []
    app = CommopsApp(config, clock=clock, console_script=tmp_path / "chat.txt", write=out.append)
    await app.start()
    try:
        await app.run()
        transcript = "\n".join(out)
        assert "Quiz set mini saved: 2 questions" in transcript
        assert "[1] A. " in transcript and "(/press N)" in transcript
        assert "commops → alice (private) › 📝 Answer A recorded for quiz #1" in transcript
        assert "You already answered quiz #1 (A)" in transcript
        assert app.services is not None and app.services.scheduler is not None
        for minute in (1, 2):
            clock.set(datetime(2030, 3, 4, 8, minute, tzinfo=UTC))
            await app.services.scheduler.run_due(clock.now())
        transcript = "\n".join(out)
        assert transcript.count("Final scoreboard: mini") == 1
        assert "Q2?" in transcript
        async with app.services.db.session() as session:
            [answer] = (await session.execute(select(QuizAnswer))).scalars().all()
        expected = "10 points (1 of 1 right)" if answer.correct else "0 points (0 of 1 right)"
        assert f"1. alice — {expected}" in transcript
    finally:
        await app.stop()


# --- the CLI --------------------------------------------------------------------------------


def test_cli_loads_a_set_file_into_a_community(tmp_path, monkeypatch, capsys):
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("COMMOPS_DATABASE_URL", url)

    async def prepare() -> None:
        db = Database(url)
        await db.migrate()
        async with db.session() as session:
            await ensure_community(session, platform="telegram", external_id="-100123",
                                   title="Group", defaults=CommunityDefaults("UTC", "en"),
                                   now=T0)  # fmt: skip
        await db.dispose()

    asyncio.run(prepare())
    good = tmp_path / "capitals.toml"
    good.write_text(CAPITALS, encoding="utf-8")
    args = ["quiz", "load", "--community", "telegram:-100123", "--name", "Capitals"]
    assert main([*args, str(good)]) == 0
    assert "quiz set 'capitals' saved in telegram:-100123: 3 questions" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("Q1,R,W\nQ2,R\nQ3,R,R\n", encoding="utf-8")
    assert main([*args, str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 2 (question 2)" in err and "line 3 (question 3)" in err and "**" not in err
    assert main([*args[:3], "telegram:-999", *args[4:], str(good)]) == 2
    assert "no community telegram:-999" in capsys.readouterr().err
    assert main([*args[:3], "irc:x", *args[4:], str(good)]) == 2
    assert main([*args, str(tmp_path / "missing.toml")]) == 2
    assert "cannot read quiz set" in capsys.readouterr().err

    async def saved() -> list[QuizSet]:
        db = Database(url)
        try:
            return await rows(db, QuizSet)
        finally:
            await db.dispose()

    [only] = asyncio.run(saved())
    assert only.name == "capitals" and len(only.questions) == 3 and only.created_by == "cli"


# --- a multi-line set as Telegram delivers it ------------------------------------------------


async def test_a_telegram_message_keeps_the_lines_of_the_set(dispatcher, managed, services):
    fixture = Path(__file__).parent / "fixtures" / "telegram" / "command.json"
    data = json.loads(fixture.read_text(encoding="utf-8"))
    text = "/quizset load capitals\nCapital of France?,Paris,Lyon\nCapital of Japan?,Tokyo,Osaka"
    data["message"]["text"] = text
    data["message"]["entities"][0]["length"] = len("/quizset")
    update = Update.de_json(data, None)
    assert update is not None
    [event] = translate(update, BotIdentity(id=1, username="CommOpsBot"), poll_chats={}, now=T0)
    assert event.args.count("\n") == 2  # the adapter keeps the message's line breaks
    managed.roles[event.actor.user_id] = Role.MANAGER
    await dispatcher.handle(event, managed)
    assert "Quiz set capitals saved: 2 questions" in managed.last
    [saved] = await rows(services.db, QuizSet)
    assert [q["right"] for q in saved.questions] == ["Paris", "Tokyo"]
