"""Rate limits: token buckets per member and per chat, checked before any unit of work."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from bot.app import build_dispatcher
from handlers.core.context import HandlerContext, Services
from handlers.core.events import ButtonPressed, ChatKind, ChatRef, Platform, Role
from handlers.core.limits import LimitSettings, RateLimiter, Verdict
from handlers.core.outgoing import Capabilities, OutgoingMessage
from handlers.core.router import Dispatcher, Router
from tests.fakes import CHAT, RecordingGateway, command, press, user

ALICE, BEN, BOSS = user("alice"), user("ben"), user("boss")
SLOW = "🐢"


class Seconds:
    """A float clock moved by hand, for the limiter on its own."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(**settings: Any) -> tuple[RateLimiter, Seconds]:
    clock = Seconds()
    return RateLimiter(LimitSettings(**settings), clock=clock), clock


# --- the buckets on their own -------------------------------------------------------------


def test_a_member_gets_six_commands_per_30_seconds_then_one_answer_then_silence():
    limits, clock = limiter()
    verdicts = [limits.check(command(ALICE, "/stats"))[0] for _ in range(6)]
    assert verdicts == [Verdict.ALLOW] * 6
    # One token comes back every 5 s (6 per 30 s): the answer says so, once.
    assert limits.check(command(ALICE, "/stats")) == (Verdict.WARN, 5)
    clock.now += 2
    assert limits.check(command(ALICE, "/stats")) == (Verdict.SILENT, 3)
    assert limits.check(command(BEN, "/stats"))[0] is Verdict.ALLOW  # others are not affected
    clock.now += 3
    assert limits.check(command(ALICE, "/stats"))[0] is Verdict.ALLOW
    # A new stretch of refusals gets a new answer.
    assert limits.check(command(ALICE, "/stats")) == (Verdict.WARN, 5)


def test_refusals_do_not_drain_the_bucket_further():
    limits, clock = limiter(member_commands=2, member_window_seconds=10)
    for _ in range(2):
        limits.check(command(ALICE, "/stats"))
    for _ in range(50):  # a flood while refused must not push the wait out
        limits.check(command(ALICE, "/stats"))
    clock.now += 5
    assert limits.check(command(ALICE, "/stats"))[0] is Verdict.ALLOW


def test_a_chat_gets_thirty_commands_per_10_seconds_whoever_sends_them():
    limits, clock = limiter()
    members = [user(f"m{i}") for i in range(31)]
    assert all(limits.check(command(m, "/stats"))[0] is Verdict.ALLOW for m in members[:30])
    verdict, wait = limits.check(command(members[30], "/stats"))
    assert verdict is Verdict.WARN and wait == 1  # 3 tokens a second come back
    other_chat = replace(CHAT, chat_id="chat-2")
    assert limits.check(command(members[30], "/stats", chat=other_chat))[0] is Verdict.ALLOW
    clock.now += 1
    assert limits.check(command(members[30], "/stats"))[0] is Verdict.ALLOW


def test_button_presses_count_for_the_member_but_not_the_chat():
    limits, _ = limiter()
    presses = [limits.check(press(ALICE, "giveaway:enter:1"))[0] for _ in range(8)]
    assert presses == [Verdict.ALLOW] * 6 + [Verdict.WARN, Verdict.SILENT]
    # A giveaway's launch: 100 members press Enter at once, all are let through.
    crowd = [limits.check(press(user(f"p{i}"), "giveaway:enter:1"))[0] for i in range(100)]
    assert set(crowd) == {Verdict.ALLOW}


def test_members_of_different_platforms_with_the_same_id_are_different_members():
    limits, _ = limiter(member_commands=1)
    discord_alice = replace(ALICE, platform=Platform.DISCORD)
    discord_chat = ChatRef(Platform.DISCORD, "chat-1", "guild-1")
    assert limits.check(command(ALICE, "/stats"))[0] is Verdict.ALLOW
    assert limits.check(command(discord_alice, "/stats", chat=discord_chat))[0] is Verdict.ALLOW


def test_a_clock_going_backwards_neither_refills_nor_crashes():
    limits, clock = limiter(member_commands=1)
    assert limits.check(command(ALICE, "/stats"))[0] is Verdict.ALLOW
    clock.now -= 3600
    assert limits.check(command(ALICE, "/stats"))[0] is Verdict.WARN


def test_disabled_limits_allow_everything():
    limits, _ = limiter(enabled=False, member_commands=1)
    assert {limits.check(command(ALICE, "/stats"))[0] for _ in range(50)} == {Verdict.ALLOW}


def test_memory_stays_bounded_under_a_raid_of_fresh_accounts():
    limits = RateLimiter(LimitSettings(), clock=Seconds(), max_tracked=1000)
    for i in range(10_000):
        limits.check(press(user(f"raider{i}"), "x:"))
    assert limits.tracked <= 1001


def test_idle_buckets_are_dropped_first():
    limits, clock = limiter(member_commands=1)
    limits.max_tracked = 3
    limits.check(command(ALICE, "/stats"))  # ALICE's bucket is empty and she was answered
    limits.check(command(ALICE, "/stats"))
    clock.now += 100  # everyone's bucket is full again
    for name in ("a", "b", "c"):
        limits.check(press(user(name), "x:"))
    assert limits.tracked <= 4


def test_a_check_costs_next_to_nothing():
    limits = RateLimiter(LimitSettings(member_commands=10_000, chat_commands=100_000))
    events = [command(user(f"u{i % 500}"), "/stats") for i in range(2_000)]
    start = time.perf_counter()
    for _ in range(25):
        for event in events:
            limits.check(event)
    per_call = (time.perf_counter() - start) / 50_000
    assert per_call < 20e-6, f"{per_call * 1e6:.1f} µs per check"


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError):
        LimitSettings(member_commands=0)
    with pytest.raises(ValueError):
        LimitSettings(chat_window_seconds=0)


# --- in the dispatcher ------------------------------------------------------------------------

calls: list[str] = []


def counting_router() -> Router:
    router = Router("limits-test")

    @router.button("count:")
    async def pressed(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
        calls.append(event.actor.user_id)
        return OutgoingMessage("counted", private=True)

    return router


@pytest.fixture
def limited(services: Services) -> Dispatcher:
    calls.clear()
    services.features["limits"] = LimitSettings()
    dispatcher = build_dispatcher(services)
    dispatcher.include(counting_router())
    return dispatcher


@asynccontextmanager
async def counting_sessions(services: Services) -> AsyncIterator[list[int]]:
    """Counts the units of work opened while inside."""
    opened: list[int] = []
    original = services.db.session

    def session() -> Any:
        opened.append(1)
        return original()

    services.db.session = session  # type: ignore[method-assign]
    try:
        yield opened
    finally:
        services.db.session = original  # type: ignore[method-assign]


async def test_a_flooding_member_gets_one_polite_answer_and_no_unit_of_work(
    limited: Dispatcher, services: Services, gateway: RecordingGateway, clock
):
    for _ in range(6):
        await limited.handle(command(ALICE, "/stats"), gateway)
    assert len(gateway.sent) == 6 and SLOW not in "".join(gateway.texts)
    async with counting_sessions(services) as opened:
        answered = await limited.handle(command(ALICE, "/stats"), gateway)
        for _ in range(10):
            assert await limited.handle(command(ALICE, "/stats"), gateway) == []
    assert opened == []
    assert len(answered) == 1 and gateway.last == "🐢 Slow down a little, please: try again in 5 s."
    assert len(gateway.sent) == 7
    assert gateway.role_checks == 1  # asked once whether ALICE is exempt: she is not
    clock.advance(seconds=5)
    await limited.handle(command(ALICE, "/stats"), gateway)
    assert "activity" in gateway.last


async def test_managers_are_exempt_and_asked_about_once(
    limited: Dispatcher, gateway: RecordingGateway
):
    gateway.roles[BOSS.user_id] = Role.MANAGER
    for _ in range(20):
        await limited.handle(command(BOSS, "/stats"), gateway)
    assert len(gateway.sent) == 20 and not any(SLOW in t for t in gateway.texts)
    assert gateway.role_checks == 1


async def test_a_flood_of_button_presses_reaches_the_handler_six_times(
    limited: Dispatcher, gateway: RecordingGateway
):
    for _ in range(30):
        await limited.handle(press(ALICE, "count:1"), gateway)
    assert calls == ["alice"] * 6
    assert [t for t in gateway.texts if SLOW in t] == [
        "🐢 Slow down a little, please: try again in 5 s."
    ]
    # Other members' presses in the same chat go through.
    await limited.handle(press(BEN, "count:1"), gateway)
    assert calls[-1] == "ben"


async def test_a_crowded_chat_is_slowed_down_for_members(
    limited: Dispatcher, gateway: RecordingGateway
):
    for i in range(30):
        await limited.handle(command(user(f"m{i}"), "/help"), gateway)
    replies = await limited.handle(command(user("late"), "/help"), gateway)
    assert [r.text for r in replies] == ["🐢 Slow down a little, please: try again in 1 s."]
    gateway.roles["boss"] = Role.MANAGER
    await limited.handle(command(BOSS, "/help"), gateway)
    assert SLOW not in gateway.last  # a manager still gets through


async def test_the_answer_speaks_the_communitys_language(
    limited: Dispatcher, gateway: RecordingGateway
):
    gateway.roles[BOSS.user_id] = Role.MANAGER
    await limited.handle(command(BOSS, "/settings language zh"), gateway)
    for _ in range(7):
        await limited.handle(command(ALICE, "/stats"), gateway)
    assert gateway.last == "🐢 请慢一点：5 秒后再试。"


async def test_the_answer_is_only_for_the_member_where_the_platform_can(services: Services):
    services.features["limits"] = LimitSettings(member_commands=1)
    dispatcher = build_dispatcher(services)
    gateway = RecordingGateway(capabilities=Capabilities(buttons=True, ephemeral=True))
    await dispatcher.handle(command(ALICE, "/stats"), gateway)
    [answer] = await dispatcher.handle(command(ALICE, "/stats"), gateway)
    assert answer.private


async def test_private_chats_are_limited_without_asking_for_ranks(services: Services):
    services.features["limits"] = LimitSettings(member_commands=1)
    dispatcher = build_dispatcher(services)
    gateway = RecordingGateway()
    dm = ChatRef(Platform.CONSOLE, "alice", "alice", kind=ChatKind.PRIVATE)
    await dispatcher.handle(command(ALICE, "/help", chat=dm), gateway)
    [answer] = await dispatcher.handle(command(ALICE, "/help", chat=dm), gateway)
    assert SLOW in answer.text and gateway.role_checks == 0


async def test_a_failing_rank_check_keeps_the_limit(services: Services):
    services.features["limits"] = LimitSettings(member_commands=1)
    dispatcher = build_dispatcher(services)

    class Broken(RecordingGateway):
        async def role_of(self, chat: ChatRef, who: Any) -> Role:
            raise ConnectionError("platform away")

    gateway = Broken()
    await dispatcher.handle(command(ALICE, "/stats"), gateway)
    [answer] = await dispatcher.handle(command(ALICE, "/stats"), gateway)
    assert SLOW in answer.text


async def test_without_a_limits_section_nothing_is_limited(
    dispatcher: Dispatcher, gateway: RecordingGateway
):
    for _ in range(20):
        await dispatcher.handle(command(ALICE, "/help"), gateway)
    assert len(gateway.sent) == 20 and not any(SLOW in t for t in gateway.texts)


async def test_new_settings_take_effect(limited: Dispatcher, services: Services):
    first = limited.limiter()
    services.features["limits"] = LimitSettings(enabled=False)
    assert limited.limiter() is None
    services.features["limits"] = LimitSettings(member_commands=2)
    second = limited.limiter()
    assert second is not None and second is not first
    assert second.settings.member_commands == 2
