"""`/optout`: a member stays out of the leaderboard, giveaway entrant lists, AMA top askers and
quiz fastest lists, and still counts in every total; `/optout off` lists them again. On
SQLite and PostgreSQL (the opt-out check is a correlated subquery in each list's query)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from handlers.core.context import Services
from handlers.core.events import Role
from handlers.core.render import Renderer
from storage import privacy as store
from storage.activity import ActivityWriter, CommunityDefaults
from storage.db import Database
from storage.models import Community, Giveaway, Quiz
from tests.fakes import command, message, press, user

BOSS = user("boss")
ANN, BEN = user("ann"), user("ben")
ZED = user("Zed Quinlan", user_id="zed-4711")


@pytest.fixture
async def services(any_db: Database, clock) -> AsyncIterator[Services]:
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


async def say(bot, gateway, who, text: str) -> str:
    before = len(gateway.sent)
    await bot.handle(command(who, text, bot.services.clock.now()), gateway)
    return "\n".join(gateway.texts[before:])


async def push(bot, gateway, who, data: str) -> str:
    before = len(gateway.sent)
    await bot.handle(press(who, data, at=bot.services.clock.now()), gateway)
    return "\n".join(gateway.texts[before:])


async def latest(db: Database, model):
    async with db.session() as session:
        return (await session.execute(select(model).order_by(model.id.desc()))).scalars().first()


async def test_opting_out_and_back_in(bot, gateway, services):
    assert "You're opted out here:" in await say(bot, gateway, ZED, "/optout")
    assert "opted out here already" in await say(bot, gateway, ZED, "/optout on")
    assert "You're listed again:" in await say(bot, gateway, ZED, "/optout off")
    assert "you weren't opted out" in await say(bot, gateway, ZED, "/optout off")
    assert "on|off" in await say(bot, gateway, ZED, "/optout maybe")
    async with services.db.session() as session:
        community = (await session.execute(select(Community))).scalars().one()
        # Nobody the bot has never seen can be opted out (there is nothing to leave out).
        assert (
            await store.set_opted_out(
                session, community.id, "console", "nobody", out=True, now=services.clock.now()
            )
            is None
        )
        assert not await store.is_opted_out(session, community.id, "console", ZED.user_id)


async def test_the_leaderboard_leaves_out_who_opted_out(bot, gateway, services):
    for who in (ZED, ANN, BEN):
        await bot.handle(message(who, services.clock.now()), gateway)
    for who, amount in ((ZED, 30), (ANN, 20), (BEN, 10)):
        await say(bot, gateway, BOSS, f"/points give {who.user_id} {amount} for testing")
    board = await say(bot, gateway, BOSS, "/leaderboard all")
    assert "1. Zed Quinlan — 30" in board

    await say(bot, gateway, ZED, "/optout")
    board = await say(bot, gateway, BOSS, "/leaderboard all")
    assert "Zed" not in board
    assert "🥇 1. ann — 20" in board and "🥈 2. ben — 10" in board
    mine = await say(bot, gateway, ZED, "/leaderboard all")
    assert "Zed" not in mine and "You opted out, so you're not listed" in mine
    # Their points are still theirs.
    assert "30" in await say(bot, gateway, ZED, "/points")

    await say(bot, gateway, ZED, "/optout off")
    assert "🥇 1. Zed Quinlan — 30" in await say(bot, gateway, BOSS, "/leaderboard all")


async def test_giveaway_entrants_leave_out_who_opted_out(bot, gateway, services):
    await say(bot, gateway, BOSS, "/giveaway start 1h 1 a mug")
    giveaway = await latest(services.db, Giveaway)
    for who in (ZED, ANN):
        await say(bot, gateway, who, "/enter")
    await say(bot, gateway, ZED, "/optout")
    listing = await say(bot, gateway, BOSS, f"/giveaway entrants {giveaway.id}")
    assert "2 members entered" in listing  # the count includes them
    assert "Latest: ann" in listing and "Zed" not in listing


async def test_ama_recap_top_askers_leave_out_who_opted_out(bot, gateway, services):
    await say(bot, gateway, BOSS, "/qa open Roadmap")
    for text in ("Will there be an app?", "Dark mode?"):
        await say(bot, gateway, ZED, f"/ask {text}")
    await say(bot, gateway, ANN, "/ask When is the release?")
    await say(bot, gateway, ZED, "/optout")
    recap = await say(bot, gateway, BOSS, "/qa close")
    assert "Questions: 3 asked" in recap
    assert "1. ann — 1 asked" in recap and "Zed" not in recap


async def test_quiz_fastest_leaves_out_who_opted_out(bot, gateway, services):
    await say(bot, gateway, BOSS, "/quiz Capital of France? | Paris | Lyon")
    quiz = await latest(services.db, Quiz)
    for who in (ZED, ANN):
        services.clock.advance(seconds=2)
        await push(bot, gateway, who, f"quiz:answer:{quiz.id}:{quiz.correct_option}")
    await say(bot, gateway, ZED, "/optout")
    result = await say(bot, gateway, BOSS, f"/quiz close {quiz.id}")
    assert "2 answered, 2 right." in result
    assert "2. ann — " in result and "Zed" not in result
