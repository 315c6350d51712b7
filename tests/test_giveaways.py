"""Giveaways through the dispatcher: start, entry rules, the draw, rerolls, verification."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from handlers.core.events import Role
from handlers.core.gateway import MemberProfile
from handlers.core.outgoing import Capabilities
from handlers.giveaways import lifecycle
from handlers.giveaways.draw import commitment, verify
from handlers.giveaways.lifecycle import record_of
from storage.models import Giveaway, GiveawayEntry, GiveawayWinner
from tests.fakes import T0, batch_commits, command, message, press, user

BOSS = user("boss")
MEMBERS = [user(name) for name in ("ann", "ben", "cat", "dan", "eve", "fay")]


@pytest.fixture
def managed(gateway, services):
    gateway.roles[BOSS.user_id] = Role.MANAGER
    services.gateways.register(gateway)
    return gateway


async def start(dispatcher, gateway, text: str = "2h 2 a T-shirt", **kwargs) -> Giveaway:
    before = len(gateway.sent)
    await dispatcher.handle(command(BOSS, f"/giveaway start {text}", **kwargs), gateway)
    assert len(gateway.sent) == before + 1, gateway.texts[before:]
    async with dispatcher.services.db.session() as session:
        return (
            (await session.execute(select(Giveaway).order_by(Giveaway.id.desc()))).scalars().first()
        )


async def enter(dispatcher, gateway, who, giveaway: Giveaway) -> str:
    before = len(gateway.sent)
    await dispatcher.handle(press(who, f"giveaway:enter:{giveaway.id}"), gateway)
    assert len(gateway.sent) == before + 1
    return gateway.sent[-1].text


def public(gateway) -> str:
    """The last message posted in the chat (not a private note)."""
    return next(s.text for s in reversed(gateway.sent) if s.private_to is None)


async def rows(db, model, **where):
    async with db.session() as session:
        query = select(model).filter_by(**where)
        return list((await session.execute(query)).scalars().all())


async def test_start_posts_an_announcement_with_button_count_and_commitment(
    dispatcher, managed, services
):
    giveaway = await start(dispatcher, managed)
    sent = managed.sent[-1]
    assert "Giveaway #1: a T-shirt" in sent.text
    assert "2 winners" in sent.text and "Entries so far: 0" in sent.text
    assert giveaway.commitment in sent.text and giveaway.seed not in sent.text
    assert commitment(giveaway.seed) == giveaway.commitment
    assert sent.message.buttons[0][0].data == f"giveaway:enter:{giveaway.id}"
    assert giveaway.message_id == "out-1"
    assert giveaway.ends_at == T0 + timedelta(hours=2)


async def test_members_cannot_start_giveaways(dispatcher, managed):
    await dispatcher.handle(command(MEMBERS[0], "/giveaway start 2h 1 prize"), managed)
    assert "managers" in managed.last.lower()
    assert await rows(dispatcher.services.db, Giveaway) == []


async def test_bad_start_arguments_are_explained_and_change_nothing(dispatcher, managed):
    for text, expected in [
        ("/giveaway start soon 1 prize", "can't read"),
        ("/giveaway start 2h 0 prize", "out of range"),
        ("/giveaway start 2h 1", "Missing prize"),
        ("/giveaway start 2h 1 prize --bonus vip=99", "bonus rule"),
        ("/giveaway start 200d 1 prize", "out of range"),
        ("/giveaway start 2h 1 prize --role vip", "no roles"),
    ]:
        await dispatcher.handle(command(BOSS, text), managed)
        assert expected in managed.last, (text, managed.last)
    assert await rows(dispatcher.services.db, Giveaway) == []


async def test_entering_once_privately_and_the_second_press_says_already(dispatcher, managed):
    giveaway = await start(dispatcher, managed)
    reply = await enter(dispatcher, managed, MEMBERS[0], giveaway)
    assert "You're in giveaway #1" in reply
    assert managed.sent[-1].private_to == MEMBERS[0].user_id
    again = await enter(dispatcher, managed, MEMBERS[0], giveaway)
    assert "already in giveaway #1" in again
    entries = await rows(dispatcher.services.db, GiveawayEntry)
    assert len(entries) == 1 and len(entries[0].entrant_id) == 16
    async with dispatcher.services.db.session() as session:
        assert (await session.get(Giveaway, giveaway.id)).entry_count == 1


async def test_enter_command_finds_the_only_open_giveaway(dispatcher, managed):
    await dispatcher.handle(command(MEMBERS[0], "/enter"), managed)
    assert "No giveaway is open" in managed.last
    giveaway = await start(dispatcher, managed)
    await dispatcher.handle(command(MEMBERS[0], "/enter"), managed)
    assert "You're in giveaway #1" in managed.last
    await start(dispatcher, managed, "3h 1 a mug")
    await dispatcher.handle(command(MEMBERS[1], "/enter"), managed)
    assert "which one" in managed.last and "/enter 2" in managed.last
    await dispatcher.handle(command(MEMBERS[1], f"/enter {giveaway.id}"), managed)
    assert "You're in giveaway #1" in managed.last
    await dispatcher.handle(command(MEMBERS[1], "/enter 99"), managed)
    assert "can't find giveaway 99" in managed.last


async def test_min_messages_counts_recent_messages(dispatcher, managed, services, clock):
    giveaway = await start(dispatcher, managed, "2h 1 prize --min-messages 3")
    ann = MEMBERS[0]
    await dispatcher.handle(message(ann, clock.now() - timedelta(days=40)), managed)
    await dispatcher.handle(message(ann, clock.now()), managed)
    refused = await enter(dispatcher, managed, ann, giveaway)
    assert "needs 3 messages here in the last 30 days; you have 1" in refused
    for _ in range(2):
        await dispatcher.handle(message(ann, clock.now()), managed)
    # The press flushes the activity writer first, so messages sent a moment ago count.
    assert "You're in" in await enter(dispatcher, managed, ann, giveaway)


async def test_a_press_waits_for_the_activity_writer_only_when_the_rules_count_activity(
    dispatcher, managed, flushes
):
    plain = await start(dispatcher, managed, "2h 1 a mug")
    assert "You're in" in await enter(dispatcher, managed, MEMBERS[0], plain)
    assert flushes == []  # nothing in its rules reads messages or first sightings
    for rule in ("--min-messages 1", "--member-for 1h"):
        ruled = await start(dispatcher, managed, f"2h 1 a mug {rule}")
        before = len(flushes)
        await enter(dispatcher, managed, MEMBERS[1], ruled)
        assert len(flushes) == before + 1, rule
    before = len(flushes)
    await dispatcher.handle(press(MEMBERS[2], "giveaway:enter:x9"), managed)
    await dispatcher.handle(press(MEMBERS[2], "giveaway:enter:999"), managed)
    assert "can't find giveaway 999" in managed.last
    assert len(flushes) == before


async def test_member_for_uses_the_platform_join_date_or_first_sighting(dispatcher, managed, clock):
    giveaway = await start(dispatcher, managed, "2h 1 prize --member-for 7d")
    ann, ben, cat = MEMBERS[:3]
    refused = await enter(dispatcher, managed, ann, giveaway)
    assert "at least 1w" in refused and "haven't seen you here" in refused
    managed.profiles[ben.user_id] = MemberProfile(joined_at=clock.now() - timedelta(days=2))
    assert "you've been here 2d" in await enter(dispatcher, managed, ben, giveaway)
    managed.profiles[cat.user_id] = MemberProfile(joined_at=clock.now() - timedelta(days=30))
    assert "You're in" in await enter(dispatcher, managed, cat, giveaway)


async def test_roles_bonus_and_manager_exclusion(dispatcher, managed, clock):
    managed.capabilities = Capabilities(buttons=True, private_messages=True, roles=True)
    giveaway = await start(
        dispatcher, managed, "2h 1 prize --role Member --bonus vip=3 --exclude-managers"
    )
    assert (
        "the role Member" in managed.sent[-1].text and "vip gets 3 entries" in managed.sent[-1].text
    )
    ann, ben = MEMBERS[:2]
    managed.profiles[ann.user_id] = MemberProfile(roles=frozenset({"member", "vip"}))
    managed.profiles[ben.user_id] = MemberProfile(roles=frozenset({"guest"}))
    managed.profiles[BOSS.user_id] = MemberProfile(roles=frozenset({"member"}))
    assert "with 3 entries" in await enter(dispatcher, managed, ann, giveaway)
    assert "needs the role Member" in await enter(dispatcher, managed, ben, giveaway)
    assert "managers can't enter" in await enter(dispatcher, managed, BOSS, giveaway)
    [entry] = await rows(dispatcher.services.db, GiveawayEntry)
    assert entry.weight == 3


async def test_max_entries_and_the_end_time_close_entries(dispatcher, managed, clock):
    giveaway = await start(dispatcher, managed, "2h 1 prize --max-entries 2")
    ann, ben, cat, dan = MEMBERS[:4]
    for who in (ann, ben):
        assert "You're in" in await enter(dispatcher, managed, who, giveaway)
    assert "is full" in await enter(dispatcher, managed, cat, giveaway)
    assert len(await rows(dispatcher.services.db, GiveawayEntry)) == 2
    clock.advance(hours=2)
    assert "is closed" in await enter(dispatcher, managed, dan, giveaway)


async def test_bots_never_enter(dispatcher, managed):
    giveaway = await start(dispatcher, managed)
    await dispatcher.handle(
        press(user("robot", bot=True), f"giveaway:enter:{giveaway.id}"), managed
    )
    assert await rows(dispatcher.services.db, GiveawayEntry) == []


async def test_the_draw_posts_winners_reveals_the_seed_and_verifies(
    dispatcher, managed, services, clock
):
    giveaway = await start(dispatcher, managed, "2h 2 a T-shirt")
    for who in MEMBERS[:5]:
        await enter(dispatcher, managed, who, giveaway)
    clock.advance(hours=2)
    await lifecycle.settle(services, giveaway.id)
    result = next(s for s in managed.sent if "Seed:" in s.text)
    assert giveaway.seed in result.text and "@" in result.text
    assert result.reply_to == giveaway.message_id
    assert "late" not in result.text
    winners = await rows(services.db, GiveawayWinner)
    assert len(winners) == 2
    # Winners are told privately, and the announcement loses its button.
    told = {s.private_to for s in managed.sent if "You won" in s.text}
    assert told == {w.user_id for w in winners}
    final = managed.edits[-1][1]
    assert final.buttons == () and "Ended" in final.text
    # Settling again (a second timer, another instance) posts nothing new.
    count = len(managed.sent)
    await lifecycle.settle(services, giveaway.id)
    assert await lifecycle.sweep(services) == 0
    assert len(managed.sent) == count
    await dispatcher.handle(command(MEMBERS[0], f"/giveaway verify {giveaway.id}"), managed)
    assert "verified" in managed.last and "Your entrant id" in managed.last


async def test_a_draw_missed_while_away_happens_late_and_says_so(
    dispatcher, managed, services, clock
):
    giveaway = await start(dispatcher, managed, "1h 2 prize")
    await enter(dispatcher, managed, MEMBERS[0], giveaway)
    clock.advance(hours=5)  # the bot was down across the end time
    assert await lifecycle.sweep(services) == 1
    assert "Drawn late" in public(managed) and "every entrant wins" in public(managed)


async def test_nobody_entered(dispatcher, managed, services, clock):
    giveaway = await start(dispatcher, managed, "1h 3 prize")
    clock.advance(hours=1)
    await lifecycle.settle(services, giveaway.id)
    assert "Nobody entered" in public(managed)


async def test_the_result_waits_for_the_platform_and_the_sweep_posts_it(
    dispatcher, managed, services, clock
):
    giveaway = await start(dispatcher, managed, "1h 1 prize")
    await enter(dispatcher, managed, MEMBERS[0], giveaway)
    clock.advance(hours=1)
    managed.fail_sends = True
    await lifecycle.settle(services, giveaway.id)
    [drawn] = await rows(services.db, Giveaway)
    assert drawn.status == "drawn" and drawn.result_message_id is None
    managed.fail_sends = False
    assert await lifecycle.sweep(services) == 0  # the lease is still held
    clock.advance(lifecycle.RESULT_LEASE)
    assert await lifecycle.sweep(services) == 1
    assert "Seed:" in public(managed)
    [posted] = await rows(services.db, Giveaway)
    assert posted.result_message_id is not None


async def test_end_now_and_reroll_never_repeat_a_winner(dispatcher, managed, services):
    giveaway = await start(dispatcher, managed, "2h 2 prize")
    for who in MEMBERS[:4]:
        await enter(dispatcher, managed, who, giveaway)
    await dispatcher.handle(command(BOSS, f"/giveaway end {giveaway.id}"), managed)
    assert "Seed:" in public(managed)
    await dispatcher.handle(command(BOSS, f"/giveaway reroll {giveaway.id}"), managed)
    assert "New winner" in public(managed)
    await dispatcher.handle(command(BOSS, f"/giveaway reroll {giveaway.id} 5"), managed)
    assert "Only 1 of the 5" in public(managed)
    await dispatcher.handle(command(BOSS, f"/giveaway reroll {giveaway.id}"), managed)
    assert "nobody left" in managed.last
    winners = await rows(services.db, GiveawayWinner)
    assert sorted(w.round for w in winners) == [0, 0, 1, 2]
    assert len({w.user_id for w in winners}) == 4
    async with services.db.session() as session:
        record = await record_of(session, await session.get(Giveaway, giveaway.id))
    assert verify(record).ok, verify(record).problems
    await dispatcher.handle(command(MEMBERS[0], f"/giveaway verify {giveaway.id}"), managed)
    assert "verified" in managed.last and "4 rounds" in managed.last


async def test_tampering_with_the_entrant_list_fails_verification(dispatcher, managed, services):
    giveaway = await start(dispatcher, managed, "2h 1 prize")
    for who in MEMBERS[:3]:
        await enter(dispatcher, managed, who, giveaway)
    await dispatcher.handle(command(BOSS, f"/giveaway end {giveaway.id}"), managed)
    async with services.db.session() as session:
        await session.execute(
            update(GiveawayEntry).where(GiveawayEntry.user_id == "ann").values(weight=5)
        )
    await dispatcher.handle(command(MEMBERS[1], f"/giveaway verify {giveaway.id}"), managed)
    assert "does NOT verify" in managed.last


async def test_cancel_asks_first_then_closes_entries_and_never_draws(
    dispatcher, managed, services, clock
):
    giveaway = await start(dispatcher, managed, "2h 1 prize")
    await enter(dispatcher, managed, MEMBERS[0], giveaway)
    await dispatcher.handle(command(BOSS, f"/giveaway cancel {giveaway.id}"), managed)
    prompt = managed.sent[-1]
    assert "Cancel giveaway #1 (prize)? 1 member has entered" in prompt.text
    assert "can't be undone" in prompt.text
    cancel_button, keep_button = prompt.message.buttons[0]
    assert (cancel_button.data, keep_button.data) == ("giveaway:cancel:1", "giveaway:keep:1")
    # Nothing changes until a manager confirms; a member's press is refused.
    for button in (keep_button, cancel_button):
        await dispatcher.handle(press(MEMBERS[1], button.data), managed)
        assert "managers" in managed.last.lower()
    await dispatcher.handle(press(BOSS, keep_button.data), managed)
    assert "goes on as planned" in managed.last
    [still_open] = await rows(services.db, Giveaway)
    assert still_open.status == "open" and managed.edits == []
    await dispatcher.handle(press(BOSS, cancel_button.data), managed)
    assert "cancelled" in managed.last
    assert "Cancelled" in managed.edits[-1][1].text and managed.edits[-1][1].buttons == ()
    assert "is closed" in await enter(dispatcher, managed, MEMBERS[1], giveaway)
    clock.advance(hours=3)
    assert await lifecycle.sweep(services) == 0
    await dispatcher.handle(press(BOSS, cancel_button.data), managed)
    assert "isn't open any more" in managed.last
    await dispatcher.handle(command(BOSS, f"/giveaway cancel {giveaway.id}"), managed)
    assert "isn't open any more" in managed.last


async def test_cancel_with_yes_skips_the_question(dispatcher, managed, services):
    giveaway = await start(dispatcher, managed, "2h 1 prize")
    await dispatcher.handle(command(BOSS, f"/giveaway cancel {giveaway.id} --yes"), managed)
    assert "is cancelled" in managed.last
    [row] = await rows(services.db, Giveaway)
    assert row.status == "cancelled"


async def test_list_and_entrants_for_managers(dispatcher, managed):
    giveaway = await start(dispatcher, managed, "2h 1 a T-shirt")
    await start(dispatcher, managed, "3h 1 a mug")
    await enter(dispatcher, managed, MEMBERS[0], giveaway)
    await dispatcher.handle(command(BOSS, "/giveaway list"), managed)
    assert "#1 a T-shirt — open, 1 entry" in managed.last and "#2 a mug" in managed.last
    await dispatcher.handle(command(BOSS, f"/giveaway entrants {giveaway.id}"), managed)
    assert "1 member entered" in managed.last and "ann" in managed.last
    await dispatcher.handle(command(MEMBERS[0], f"/giveaway entrants {giveaway.id}"), managed)
    assert "managers" in managed.last.lower()


async def test_giveaways_of_another_community_are_not_found(dispatcher, managed):
    from dataclasses import replace

    from tests.fakes import CHAT

    giveaway = await start(dispatcher, managed)
    elsewhere = replace(CHAT, chat_id="chat-9", community_id="community-9")
    await dispatcher.handle(
        press(MEMBERS[0], f"giveaway:enter:{giveaway.id}", chat=elsewhere), managed
    )
    assert "can't find giveaway" in managed.last


async def test_zh_templates_render(dispatcher, managed, services, clock):
    await dispatcher.handle(command(BOSS, "/settings language zh"), managed)
    giveaway = await start(dispatcher, managed, "1h 1 奖品")
    assert "抽奖" in managed.last
    assert "成功" in await enter(dispatcher, managed, MEMBERS[0], giveaway)
    clock.advance(hours=1)
    await lifecycle.settle(services, giveaway.id)
    assert "开奖" in public(managed)


# --- concurrency: on both backends ----------------------------------------------------------


@pytest.fixture
async def any_services(any_db, clock):
    from handlers.core.context import Services
    from handlers.core.render import Renderer
    from storage.activity import ActivityWriter, CommunityDefaults

    writer = ActivityWriter(any_db, batch_size=100, flush_interval=0.05)
    await writer.start()
    yield Services(
        db=any_db, activity=writer, renderer=Renderer(), clock=clock,
        defaults=CommunityDefaults("UTC", "en"),
    )  # fmt: skip
    await writer.stop()


async def test_concurrent_presses_enter_once_and_respect_max_entries(any_services):
    import asyncio

    from bot.app import build_dispatcher
    from tests.fakes import RecordingGateway

    dispatcher = build_dispatcher(any_services)
    gateway = RecordingGateway(roles={BOSS.user_id: Role.MANAGER})
    any_services.gateways.register(gateway)
    giveaway = await start(dispatcher, gateway, "2h 1 prize --max-entries 10")
    data = f"giveaway:enter:{giveaway.id}"
    # One member hammering the button: exactly one entry.
    await asyncio.gather(*(dispatcher.handle(press(MEMBERS[0], data), gateway) for _ in range(15)))
    # Thirty members at once for the nine places left.
    crowd = [user(f"m{i}") for i in range(30)]
    await asyncio.gather(*(dispatcher.handle(press(who, data), gateway) for who in crowd))
    entries = await rows(any_services.db, GiveawayEntry)
    assert len(entries) == 10
    assert sum(1 for e in entries if e.user_id == MEMBERS[0].user_id) == 1
    [row] = await rows(any_services.db, Giveaway)
    assert row.entry_count == 10
    texts = [s.text for s in gateway.sent]
    assert sum("You're in" in t for t in texts) == 10
    assert sum("already in" in t for t in texts) == 14
    assert sum("is full" in t for t in texts) == 21


async def test_two_instances_settling_at_once_draw_and_post_once(any_services, clock):
    import asyncio

    from bot.app import build_dispatcher
    from tests.fakes import RecordingGateway

    dispatcher = build_dispatcher(any_services)
    gateway = RecordingGateway(roles={BOSS.user_id: Role.MANAGER})
    any_services.gateways.register(gateway)
    giveaway = await start(dispatcher, gateway, "1h 2 prize")
    for who in MEMBERS:
        await dispatcher.handle(press(who, f"giveaway:enter:{giveaway.id}"), gateway)
    clock.advance(hours=1)
    await asyncio.gather(*(lifecycle.settle(any_services, giveaway.id) for _ in range(4)))
    assert sum("Seed:" in s.text for s in gateway.sent) == 1
    assert len(await rows(any_services.db, GiveawayWinner)) == 2


async def test_the_entry_count_is_edited_in_batches_not_per_entry(dispatcher, managed, services):
    giveaway = await start(dispatcher, managed)
    for who in MEMBERS[:3]:
        await enter(dispatcher, managed, who, giveaway)
    assert managed.edits == []  # no scheduler here: entries alone never edit
    await lifecycle.refresh_count(services, giveaway.id)
    [(sent, edited)] = managed.edits
    assert sent.message_id == giveaway.message_id and "Entries so far: **3**" in edited.text
    await lifecycle.refresh_count(services, giveaway.id)
    assert len(managed.edits) == 1  # nothing changed, nothing edited


async def test_timers_are_rebuilt_from_the_database_at_start(dispatcher, managed, services):
    from scheduler.service import SchedulerService

    giveaway = await start(dispatcher, managed, "3h 1 prize")
    scheduler = SchedulerService()
    services.scheduler = scheduler
    lifecycle.install(services, scheduler)
    await scheduler.start()
    try:
        assert scheduler.next_run(f"giveaway:{giveaway.id}:draw") == giveaway.ends_at
        assert scheduler.next_run("giveaway:sweep") is not None
        await enter(dispatcher, managed, MEMBERS[0], giveaway)
        await enter(dispatcher, managed, MEMBERS[1], giveaway)
        # One edit is queued for a few seconds later, however many members enter.
        timers = scheduler.keys()
        assert [k for k in timers if k.endswith(":count")] == [f"giveaway:{giveaway.id}:count"]
    finally:
        scheduler.shutdown()


# --- batches: draws due together are made in one transaction ------------------------------


async def _batch_scheduler(services):
    from scheduler.service import SchedulerService

    scheduler = SchedulerService()
    lifecycle.install(services, scheduler)
    return scheduler


async def test_draws_due_together_are_made_in_one_transaction_and_posted_once(
    dispatcher, managed, services, clock
):
    import asyncio

    giveaways = [await start(dispatcher, managed, f"2h 1 prize {n}") for n in range(4)]
    for giveaway in giveaways:
        await enter(dispatcher, managed, MEMBERS[0], giveaway)
    clock.advance(hours=2)
    scheduler = await _batch_scheduler(services)
    commits = batch_commits(services.db)
    settle = lifecycle.SETTLE_JOB
    await asyncio.gather(*(scheduler.run_now(settle, giveaway_id=g.id) for g in giveaways))
    assert commits[0] == 2  # the draws and renders; the result message ids
    await asyncio.gather(*(scheduler.run_now(settle, giveaway_id=g.id) for g in giveaways))
    results = [s for s in managed.sent if "Seed:" in s.text]
    assert sorted(s.reply_to for s in results) == sorted(g.message_id for g in giveaways)
    done = await rows(services.db, Giveaway)
    assert all(g.status == "drawn" and g.result_message_id for g in done)


async def test_one_draw_failing_in_a_batch_leaves_the_others_drawn(
    dispatcher, managed, services, clock, monkeypatch, caplog
):
    import asyncio

    giveaways = [await start(dispatcher, managed, f"2h 1 prize {n}") for n in range(3)]
    for giveaway in giveaways:
        await enter(dispatcher, managed, MEMBERS[0], giveaway)
    clock.advance(hours=2)
    real = lifecycle._result
    bad = giveaways[1].id

    async def breaks_one(services, session, giveaway, *args, **kwargs):
        if giveaway.id == bad:
            raise RuntimeError("template broke")
        return await real(services, session, giveaway, *args, **kwargs)

    monkeypatch.setattr(lifecycle, "_result", breaks_one)
    scheduler = await _batch_scheduler(services)
    settle = lifecycle.SETTLE_JOB
    await asyncio.gather(*(scheduler.run_now(settle, giveaway_id=g.id) for g in giveaways))
    status = {g.id: (g.status, g.result_message_id) for g in await rows(services.db, Giveaway)}
    assert status[bad] == ("open", None)  # rolled back: the sweep tries again
    assert all(s == "drawn" and m for i, (s, m) in status.items() if i != bad)
    assert f"giveaway {bad} could not be settled" in caplog.text
