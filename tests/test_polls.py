"""Polls through the dispatcher: making them, votes by button and natively, closing once."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from handlers.core.events import PollTotals, PollVote, Role, VoteChange
from handlers.core.markup import to_plain
from handlers.core.outgoing import Capabilities, SentMessage
from handlers.polls import lifecycle
from storage.models import PointsEntry, Poll
from storage.models import PollVote as VoteRow
from tests.fakes import CHAT, T0, RecordingGateway, batch_commits, command, press, user

BOSS = user("boss")
ANN, BEN, CAT, DAN = (user(name) for name in ("ann", "ben", "cat", "dan"))
PNG = b"\x89PNG\r\n\x1a\n"
_keys = itertools.count(1)


@dataclass
class NativeGateway(RecordingGateway):
    """A platform with native polls (like Telegram): records polls sent and stopped."""

    capabilities: Capabilities = field(
        default_factory=lambda: Capabilities(
            native_polls=True,
            buttons=True,
            images=True,
            private_messages=True,
            anonymous_polls=True,
        )
    )
    stopped: list[SentMessage] = field(default_factory=list)

    async def close_poll(self, sent: SentMessage) -> None:
        self.stopped.append(sent)


def discord_like() -> Capabilities:
    return Capabilities(
        native_polls=True,
        buttons=True,
        images=True,
        private_messages=True,
        anonymous_polls=False,
        max_poll_duration=timedelta(days=32),
        max_poll_option_length=55,
    )


@pytest.fixture
def managed(gateway, services):
    gateway.roles[BOSS.user_id] = Role.MANAGER
    services.gateways.register(gateway)
    return gateway


@pytest.fixture
def native(services):
    gateway = NativeGateway(roles={BOSS.user_id: Role.MANAGER})
    services.gateways.register(gateway)
    return gateway


async def make(dispatcher, gateway, text: str = "Lunch? | Pizza | Sushi | Ramen") -> Poll:
    await dispatcher.handle(command(BOSS, f"/poll {text}"), gateway)
    found = await rows(dispatcher.services.db, Poll)
    assert found, gateway.texts[-1:]
    return found[-1]


async def rows(db, model, **where):
    async with db.session() as session:
        query = select(model).filter_by(**where)
        return list((await session.execute(query)).scalars().all())


async def poll_row(db, poll_id: int) -> Poll:
    [found] = await rows(db, Poll, id=poll_id)
    return found


async def vote(dispatcher, gateway, who, poll: Poll, option: int) -> str:
    before = len(gateway.sent)
    await dispatcher.handle(press(who, f"poll:vote:{poll.id}:{option}"), gateway)
    assert len(gateway.sent) == before + 1
    return gateway.sent[-1].text


def native_vote(who, poll: Poll, options=(), change=VoteChange.SET) -> PollVote:
    n = next(_keys)
    return PollVote(CHAT, who, T0, f"v:{n}", poll.native_poll_id, tuple(options), change)


def results_posted(gateway) -> list[str]:
    return [s.text for s in gateway.sent if s.text.startswith("📊 Result")]


async def choices(db, poll: Poll) -> dict[str, list[int]]:
    return {v.user_id: v.option_ids for v in await rows(db, VoteRow, poll_id=poll.id)}


# --- making a poll -----------------------------------------------------------------------


async def test_a_button_poll_has_one_button_per_option(dispatcher, managed):
    poll = await make(dispatcher, managed)
    sent = managed.sent[-1]
    assert sent.text.startswith("🗳 Poll #1: Lunch?")
    assert "1. Pizza — 0" in sent.text and "Choose one" in sent.text
    assert [[b.label for b in row] for row in sent.message.buttons] == [
        ["Pizza"], ["Sushi"], ["Ramen"]
    ]  # fmt: skip
    assert sent.message.buttons[2][0].data == "poll:vote:1:2"
    assert (poll.native, poll.status, poll.message_id) == (False, "open", "out-1")
    assert poll.options == ["Pizza", "Sushi", "Ramen"] and poll.closes_at is None
    assert managed.polls == []


async def test_options_flags_and_a_close_time(dispatcher, managed, clock):
    poll = await make(
        dispatcher, managed, "Which days?｜Mon|Tue | Wed --multi --anonymous --closes 2h"
    )
    assert poll.question == "Which days?" and poll.options == ["Mon", "Tue", "Wed"]
    assert poll.multiple and poll.anonymous and poll.closes_at == clock.now() + timedelta(hours=2)
    assert "Choose one or more" in managed.last and "anonymous" in managed.last
    assert "closes **2026-11-20 14:00** (UTC)" in managed.sent[-1].message.text


async def test_ten_options_take_two_per_row(dispatcher, managed):
    options = " | ".join(f"o{i}" for i in range(10))
    await make(dispatcher, managed, f"Pick | {options}")
    assert [len(row) for row in managed.sent[-1].message.buttons] == [2, 2, 2, 2, 2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Lunch?", "found no options"),
        ("Lunch? | Pizza", "at least 2 options; I found 1"),
        ("| Pizza | Sushi", "Start with the question"),
        ("Lunch? | Pizza || Sushi", "Option 2 is empty"),
        ("Lunch? | Pizza | Sushi |", "Option 3 is empty"),
        ("Lunch? | Pizza | pizza", "Options 1 and 2 are the same (Pizza)"),
        ("Q | " + " | ".join(str(i) for i in range(11)), "at most 10 options; you gave 11"),
        ("Q" * 301 + " | a | b", "301 characters long; polls take at most 300"),
        ("Q | a | " + "b" * 101, "Option 2 is 101 characters long; polls here take at most 100"),
        ("Lunch? | a | b --closes yesterday", "can't read"),
        ("Lunch? | a | b --closes 2020-01-01", "in the past"),
        ("Lunch? | a | b --closes 200d", "out of range"),
        ("Lunch? | a | b --colses 2h", "--colses"),
    ],
)
async def test_bad_polls_are_explained_and_change_nothing(dispatcher, managed, text, expected):
    await dispatcher.handle(command(BOSS, f"/poll {text}"), managed)
    assert expected in managed.last, managed.last
    assert await rows(dispatcher.services.db, Poll) == []


async def test_members_cannot_make_or_close_polls(dispatcher, managed):
    await dispatcher.handle(command(ANN, "/poll Lunch? | a | b"), managed)
    assert "managers" in managed.last.lower()
    assert await rows(dispatcher.services.db, Poll) == []
    poll = await make(dispatcher, managed)
    for text in (f"/poll close {poll.id}", f"/poll results {poll.id}"):
        await dispatcher.handle(command(ANN, text), managed)
        assert "managers" in managed.last.lower()
    assert (await poll_row(dispatcher.services.db, poll.id)).status == "open"


async def test_a_poll_the_platform_refuses_is_removed_and_the_chat_told(dispatcher, services):
    @dataclass
    class NoPolls(NativeGateway):
        async def send_poll(self, chat, poll):
            raise ConnectionError("not allowed to send polls")

    gateway = NoPolls(roles={BOSS.user_id: Role.MANAGER})
    services.gateways.register(gateway)
    await dispatcher.handle(command(BOSS, "/poll Lunch? | a | b"), gateway)
    assert "could not be posted" in gateway.last
    assert await rows(dispatcher.services.db, Poll) == []


# --- voting with buttons -----------------------------------------------------------------


async def test_one_vote_per_member_a_new_vote_replaces_it_and_points_come_once(
    dispatcher, managed, services
):
    poll = await make(dispatcher, managed)
    assert "You voted Pizza in poll #1. +2 points" in await vote(dispatcher, managed, ANN, poll, 0)
    assert managed.sent[-1].private_to == ANN.user_id
    assert "You already voted Pizza" in await vote(dispatcher, managed, ANN, poll, 0)
    changed = await vote(dispatcher, managed, ANN, poll, 2)
    assert "You voted Ramen" in changed and "points" not in changed
    await vote(dispatcher, managed, BEN, poll, 2)
    assert await choices(services.db, poll) == {"ann": [2], "ben": [2]}
    ledger = await rows(services.db, PointsEntry)
    assert sorted((e.user_id, e.amount, e.reason, e.ref) for e in ledger) == [
        ("ann", 2, "poll_vote", "poll:1"),
        ("ben", 2, "poll_vote", "poll:1"),
    ]


async def test_multiple_choice_keeps_a_set_and_a_second_press_takes_one_back(
    dispatcher, managed, services
):
    poll = await make(dispatcher, managed, "Days? | Mon | Tue | Wed --multi")
    await vote(dispatcher, managed, ANN, poll, 0)
    assert "Your choices in poll #1: Mon, Wed" in await vote(dispatcher, managed, ANN, poll, 2)
    assert "Your choices in poll #1: Wed." in await vote(dispatcher, managed, ANN, poll, 0)
    assert await choices(services.db, poll) == {"ann": [2]}
    assert "taken back" in await vote(dispatcher, managed, ANN, poll, 2)
    assert await choices(services.db, poll) == {}
    # Taking a vote back and voting again earns nothing more.
    await vote(dispatcher, managed, ANN, poll, 1)
    assert [e.amount for e in await rows(services.db, PointsEntry)] == [2]


async def test_presses_for_unknown_polls_or_options_are_refused(dispatcher, managed, services):
    poll = await make(dispatcher, managed)
    for data in ("poll:vote:99:0", f"poll:vote:{poll.id}:7", "poll:vote:x:1"):
        await dispatcher.handle(press(ANN, data), managed)
        assert "can't find poll" in managed.last
    elsewhere = replace(CHAT, chat_id="chat-9", community_id="community-9")
    await dispatcher.handle(press(ANN, f"poll:vote:{poll.id}:0", chat=elsewhere), managed)
    assert "can't find poll" in managed.last
    assert await choices(services.db, poll) == {}


async def test_counts_on_the_message_are_edited_later_not_per_vote(dispatcher, managed, services):
    poll = await make(dispatcher, managed)
    for who in (ANN, BEN, CAT):
        await vote(dispatcher, managed, who, poll, 1)
    assert managed.edits == []  # no scheduler here: votes alone never edit
    await lifecycle.refresh(services, poll.id)
    [(sent, edited)] = managed.edits
    assert sent.message_id == poll.message_id and "2. Sushi — 3" in to_plain(edited.text)
    assert "3 members have voted" in edited.text and edited.buttons


# --- closing -----------------------------------------------------------------------------


async def test_closing_posts_counts_shares_and_the_winner_once(dispatcher, managed, services):
    poll = await make(dispatcher, managed)
    for who, option in ((ANN, 0), (BEN, 1), (CAT, 1), (DAN, 2)):
        await vote(dispatcher, managed, who, poll, option)
    await dispatcher.handle(command(BOSS, f"/poll close {poll.id}"), managed)
    [result] = results_posted(managed)
    assert "1. Pizza — 1 vote (25%)" in result and "2. Sushi — 2 votes (50%) 🏆" in result
    assert "4 members voted." in result and "Winner: Sushi" in result
    assert "█████░░░░░" in result  # no images here: text bars instead
    posted = managed.sent[-1]
    assert posted.reply_to == poll.message_id and posted.message.image is None
    # The poll message shows the final counts, without buttons.
    final = managed.edits[-1][1]
    assert "Closed" in final.text and final.buttons == ()
    row = await poll_row(services.db, poll.id)
    assert (row.status, row.closed_by, row.result_message_id) == ("closed", "boss", "out-6")
    await dispatcher.handle(command(BOSS, f"/poll close {poll.id}"), managed)
    assert "already closed" in managed.last
    assert "closed" in await vote(dispatcher, managed, ANN, poll, 2)
    assert await choices(services.db, poll) == {"ann": [0], "ben": [1], "cat": [1], "dan": [2]}
    assert await lifecycle.sweep(services) == 0
    assert len(results_posted(managed)) == 1


async def test_a_tie_and_a_poll_nobody_voted_in(dispatcher, managed):
    poll = await make(dispatcher, managed)
    await vote(dispatcher, managed, ANN, poll, 0)
    await vote(dispatcher, managed, BEN, poll, 2)
    await dispatcher.handle(command(BOSS, f"/poll close {poll.id}"), managed)
    assert "A tie between Pizza and Ramen" in results_posted(managed)[-1]
    empty = await make(dispatcher, managed, "Anyone? | yes | no")
    await dispatcher.handle(command(BOSS, f"/poll close {empty.id}"), managed)
    assert "Nobody voted." in results_posted(managed)[-1]


async def test_timed_close_through_the_scheduler(dispatcher, managed, services, clock):
    from scheduler.service import SchedulerService

    clock.set(T0.replace(year=2030))
    scheduler = SchedulerService()
    services.scheduler = scheduler
    lifecycle.install(services, scheduler)
    await scheduler.start()
    try:
        poll = await make(dispatcher, managed, "Lunch? | a | b --closes 30m")
        assert scheduler.next_run(f"poll:{poll.id}:close") == poll.closes_at
        await vote(dispatcher, managed, ANN, poll, 1)
        await vote(dispatcher, managed, BEN, poll, 1)
        # One count edit waits a few seconds, however many members vote.
        timers = scheduler.keys()
        assert [k for k in timers if k.endswith(":refresh")] == ["poll:1:refresh"]
        await scheduler.run_due(clock.advance(seconds=5))
        assert "2. b — 2" in to_plain(managed.edits[-1][1].text)
        await scheduler.run_due(clock.advance(minutes=10))
        assert results_posted(managed) == []
        await scheduler.run_due(clock.advance(minutes=20))
        [result] = results_posted(managed)
        assert "Winner: b" in result and "late" not in result
        assert scheduler.next_run(f"poll:{poll.id}:close") is None
    finally:
        scheduler.shutdown()


async def test_timers_are_rebuilt_at_start_and_a_missed_close_is_late(
    dispatcher, managed, services, clock
):
    from scheduler.service import SchedulerService

    poll = await make(dispatcher, managed, "Lunch? | a | b --closes 1h")
    untimed = await make(dispatcher, managed, "Dinner? | a | b")
    scheduler = SchedulerService()
    services.scheduler = scheduler
    lifecycle.install(services, scheduler)
    await scheduler.start()
    try:
        assert scheduler.next_run(f"poll:{poll.id}:close") == poll.closes_at
        assert scheduler.next_run(f"poll:{untimed.id}:close") is None
        assert {"poll:sweep", "poll:sweep:start"} <= set(scheduler.keys())
    finally:
        scheduler.shutdown()
    # The bot was away when it was due: the sweep closes it, and says so.
    clock.advance(hours=3)
    assert await lifecycle.sweep(services) == 1
    [result] = results_posted(managed)
    assert "Closed late, at 2026-11-20 15:00" in result and "due at 2026-11-20 13:00" in result
    assert (await poll_row(services.db, untimed.id)).status == "open"


async def test_a_crash_between_the_claim_and_the_post_is_finished_by_the_sweep(
    dispatcher, managed, services, clock
):
    from storage import polls as store

    poll = await make(dispatcher, managed, "Lunch? | a | b --closes 1h")
    await vote(dispatcher, managed, ANN, poll, 0)
    clock.advance(hours=1)
    # The timer claimed the close, then the process died before posting anything.
    async with services.db.session() as session:
        assert await store.claim_close(session, poll.id, now=clock.now())
    assert results_posted(managed) == []
    # A restarted process: the platform is not back yet, so the sweep's post waits.
    managed.fail_sends = True
    assert await lifecycle.sweep(services) == 1
    managed.fail_sends = False
    assert await lifecycle.sweep(services) == 0  # the lease is still held
    clock.advance(minutes=3)
    assert await lifecycle.sweep(services) == 1
    [result] = results_posted(managed)
    assert "Winner: a" in result
    clock.advance(minutes=10)
    assert await lifecycle.sweep(services) == 0
    assert len(results_posted(managed)) == 1


# --- native polls -------------------------------------------------------------------------


async def test_a_native_poll_counts_platform_votes_and_retractions(dispatcher, native, services):
    poll = await make(dispatcher, native, "Lunch? | Pizza | Sushi --closes 1h")
    [sent] = native.polls
    assert (sent.question, sent.options, sent.multiple, sent.anonymous) == (
        "Lunch?", ("Pizza", "Sushi"), False, False,
    )  # fmt: skip
    assert sent.closes_at == poll.closes_at
    assert (poll.native, poll.native_poll_id) == (True, "poll-1")
    note = native.sent[-1]
    assert note.private_to == BOSS.user_id and "/poll close 1" in note.text
    await dispatcher.handle(native_vote(ANN, poll, [0]), native)
    await dispatcher.handle(native_vote(BEN, poll, [1]), native)
    await dispatcher.handle(native_vote(BEN, poll, [0]), native)  # changed their mind
    await dispatcher.handle(native_vote(CAT, poll, [1]), native)
    await dispatcher.handle(native_vote(CAT, poll, []), native)  # retracted
    await dispatcher.handle(native_vote(DAN, poll, [5]), native)  # no such option: ignored
    assert await choices(services.db, poll) == {"ann": [0], "ben": [0]}
    assert len(native.sent) == 1  # the platform shows votes itself: no replies
    ledger = await rows(services.db, PointsEntry)
    assert sorted(e.user_id for e in ledger) == ["ann", "ben", "cat"]
    await dispatcher.handle(command(BOSS, f"/poll close {poll.id}"), native)
    [stopped] = native.stopped
    assert (stopped.message_id, stopped.poll_id) == (poll.message_id, "poll-1")
    result = native.sent[-1]
    assert "Winner: Pizza" in result.text and "█" not in result.text
    assert result.message.image is not None and result.message.image.content.startswith(PNG)
    # A vote arriving after the close is not counted.
    await dispatcher.handle(native_vote(DAN, poll, [1]), native)
    assert await choices(services.db, poll) == {"ann": [0], "ben": [0]}


async def test_a_chart_that_fails_to_draw_leaves_text_bars(dispatcher, native, monkeypatch):
    from handlers.polls import chart

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts at all")

    monkeypatch.setattr(chart, "render_chart", broken)
    poll = await make(dispatcher, native)
    await dispatcher.handle(native_vote(ANN, poll, [2]), native)
    await dispatcher.handle(command(BOSS, f"/poll close {poll.id}"), native)
    result = native.sent[-1]
    assert result.message.image is None and "██████████" in result.text
    assert "Winner: Ramen" in result.text


async def test_votes_for_unknown_native_polls_are_ignored(dispatcher, native, services):
    poll = await make(dispatcher, native)
    stray = PollVote(CHAT, ANN, T0, "v:x", "someone-elses-poll", (0,))
    await dispatcher.handle(stray, native)
    assert await choices(services.db, poll) == {}
    assert len(native.sent) == 1


async def test_an_anonymous_native_poll_keeps_the_platform_totals(dispatcher, native, services):
    poll = await make(dispatcher, native, "Secret? | yes | no | maybe --anonymous --multi")
    assert native.polls[0].anonymous and native.polls[0].multiple
    chat_actor = user("chat", user_id=CHAT.chat_id)
    for n, (totals, voters) in enumerate((((1, 0, 0), 1), ((3, 1, 2), 4))):
        await dispatcher.handle(
            PollTotals(CHAT, chat_actor, T0, f"p:{n}", poll.native_poll_id, totals, voters),
            native,
        )
    await dispatcher.handle(  # a malformed report (wrong option count) changes nothing
        PollTotals(CHAT, chat_actor, T0, "p:x", poll.native_poll_id, (9, 9), 9), native
    )
    assert (await poll_row(services.db, poll.id)).native_totals == [3, 1, 2, 4]
    await dispatcher.handle(command(BOSS, "/poll list"), native)
    assert "#1 Secret? — open, 4 voted" in native.last
    await dispatcher.handle(command(BOSS, f"/poll close {poll.id}"), native)
    result = native.sent[-1].text
    assert "1. yes — 3 votes (50%) 🏆" in result and "3. maybe — 2 votes (33%)" in result
    assert "4 members voted (6 votes in all)." in result
    # Totals after the close do not change the result.
    await dispatcher.handle(
        PollTotals(CHAT, chat_actor, T0, "p:9", poll.native_poll_id, (0, 9, 0), 9), native
    )
    assert (await poll_row(services.db, poll.id)).native_totals == [3, 1, 2, 4]


async def test_discord_limits_buttons_for_anonymous_and_at_most_32_days(
    dispatcher, native, services, clock
):
    native.capabilities = discord_like()
    await dispatcher.handle(command(BOSS, "/poll Q | a | b --closes 40d"), native)
    assert "at most 32 days" in native.last
    await dispatcher.handle(command(BOSS, f"/poll Q | a | {'b' * 56}"), native)
    assert "at most 55 per option" in native.last
    assert await rows(services.db, Poll) == []
    # Without a close time it closes when Discord would end it anyway.
    poll = await make(dispatcher, native, "Q | a | b --multi")
    assert poll.native and poll.closes_at == clock.now() + timedelta(days=32)
    # Discord polls can't hide voters: an anonymous poll falls back to buttons.
    anonymous = await make(dispatcher, native, "Secret? | a | b --anonymous")
    assert not anonymous.native and native.sent[-1].message.buttons
    # Discord reports one answer at a time, added or removed.
    for options, change in (([0], VoteChange.ADD), ([1], VoteChange.ADD), ([0], VoteChange.REMOVE)):
        await dispatcher.handle(native_vote(ANN, poll, options, change), native)
    assert await choices(services.db, poll) == {"ann": [1]}
    await dispatcher.handle(native_vote(ANN, poll, [1], VoteChange.REMOVE), native)
    assert await choices(services.db, poll) == {}


async def test_single_choice_native_adds_replace_the_choice(dispatcher, native, services):
    poll = await make(dispatcher, native)
    await dispatcher.handle(native_vote(ANN, poll, [0], VoteChange.ADD), native)
    await dispatcher.handle(native_vote(ANN, poll, [2], VoteChange.ADD), native)
    await dispatcher.handle(native_vote(ANN, poll, [0], VoteChange.REMOVE), native)
    assert await choices(services.db, poll) == {"ann": [2]}


# --- results and listing ----------------------------------------------------------------


async def test_results_any_time_for_managers_with_a_chart(dispatcher, native, services):
    poll = await make(dispatcher, native)
    await dispatcher.handle(native_vote(ANN, poll, [1]), native)
    await dispatcher.handle(command(BOSS, f"/poll results {poll.id}"), native)
    sofar = native.sent[-1]
    assert sofar.text.startswith("📊 Votes so far — poll #1: Lunch?")
    assert "Leading: Sushi" in sofar.text and sofar.message.image.content.startswith(PNG)
    assert (await poll_row(services.db, poll.id)).status == "open"
    await dispatcher.handle(command(BOSS, "/poll results 42"), native)
    assert "can't find poll 42" in native.last


async def test_list_shows_open_then_closed_polls(dispatcher, managed, clock):
    await dispatcher.handle(command(ANN, "/poll list"), managed)
    assert "No polls yet" in managed.last
    first = await make(dispatcher, managed, "First? | a | b")
    await make(dispatcher, managed, "Second? | a | b --closes 2h")
    await vote(dispatcher, managed, ANN, first, 0)
    await dispatcher.handle(command(BOSS, f"/poll close {first.id}"), managed)
    await dispatcher.handle(command(ANN, "/poll list"), managed)
    listing = managed.last
    assert "#2 Second? — open, 0 voted, closes 2026-11-20 14:00" in listing
    assert "#1 First? — closed 2026-11-20 12:00, 1 voted" in listing
    assert listing.index("#2") < listing.index("#1")


async def test_zh_templates_render(dispatcher, managed, services):
    await dispatcher.handle(command(BOSS, "/settings language zh"), managed)
    poll = await make(dispatcher, managed, "周五吃什么？｜火锅｜烧烤")
    assert "投票 #1" in managed.last
    assert "你投给了 火锅" in await vote(dispatcher, managed, ANN, poll, 0)
    await dispatcher.handle(command(BOSS, f"/poll close {poll.id}"), managed)
    assert "胜出：火锅" in managed.last
    await dispatcher.handle(command(BOSS, "/poll 只有问题"), managed)
    assert "没有找到选项" in managed.last


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


async def test_two_processes_closing_at_once_close_and_post_once(any_services, any_db, clock):
    import asyncio

    from bot.app import build_dispatcher
    from handlers.core.context import Services

    dispatcher = build_dispatcher(any_services)
    gateway = RecordingGateway(roles={BOSS.user_id: Role.MANAGER})
    any_services.gateways.register(gateway)
    poll = await make(dispatcher, gateway, "Lunch? | a | b --closes 1h")
    crowd = [user(f"m{i}") for i in range(12)]
    votes = [press(w, f"poll:vote:{poll.id}:{i % 2}") for i, w in enumerate(crowd)]
    await asyncio.gather(*(dispatcher.handle(event, gateway) for event in votes))
    # A second process on the same database, with its own connection to the platform.
    other = Services(
        db=any_db, activity=any_services.activity, renderer=any_services.renderer, clock=clock
    )
    other.gateways.register(gateway)
    clock.advance(hours=1)
    await asyncio.gather(
        *(lifecycle.settle(s, poll.id) for s in (any_services, other, any_services, other)),
        lifecycle.sweep(other),
    )
    [result] = results_posted(gateway)
    assert "12 members voted" in result and "A tie between a and b" in result
    assert len(await rows(any_db, PointsEntry)) == 12


async def test_votes_racing_the_close_are_counted_whole_or_refused(any_services, any_db):
    import asyncio

    from bot.app import build_dispatcher

    dispatcher = build_dispatcher(any_services)
    gateway = RecordingGateway(roles={BOSS.user_id: Role.MANAGER})
    any_services.gateways.register(gateway)
    poll = await make(dispatcher, gateway)
    crowd = [user(f"m{i}") for i in range(20)]
    presses = [dispatcher.handle(press(who, f"poll:vote:{poll.id}:0"), gateway) for who in crowd]
    closing = dispatcher.handle(command(BOSS, f"/poll close {poll.id}"), gateway)
    await asyncio.gather(*presses[:10], closing, *presses[10:])
    [result] = results_posted(gateway)
    counted = len(await choices(any_db, poll))
    accepted = sum("You voted" in s.text for s in gateway.sent)
    refused = sum("is closed" in s.text for s in gateway.sent)
    assert counted == accepted and accepted + refused == 20
    assert (f"{counted} member" if counted else "Nobody voted") in result


async def test_storage_refuses_votes_after_the_close(any_db, clock):
    from storage import polls as store
    from storage.activity import CommunityDefaults
    from storage.communities import ensure_community

    now = clock.now()
    async with any_db.session() as session:
        community = await ensure_community(
            session, platform="console", external_id="c", title=None,
            defaults=CommunityDefaults(), now=now,
        )  # fmt: skip
        poll = Poll(
            community_id=community.id, chat_id="x", chat_kind="group", question="Q",
            options=["a", "b"], status="open", created_by="boss", created_by_name="Boss",
            created_at=now, closes_at=now,
        )  # fmt: skip
        session.add(poll)
        await session.flush()
        poll_id = poll.id
    async with any_db.session() as session:
        assert await store.hold_open(session, poll_id)
        for options in ([1, 0], [1]):
            await store.set_vote(
                session, poll_id, user_id="u", display_name="U", option_ids=options, now=now
            )
    async with any_db.session() as session:
        assert await store.claim_close(session, poll_id, now=now)
        assert not await store.claim_close(session, poll_id, now=now, early=True)
        assert not await store.hold_open(session, poll_id)
        lease = timedelta(minutes=2)
        assert await store.take_result_lease(session, poll_id, now=now, lease=lease)
        assert not await store.take_result_lease(session, poll_id, now=now, lease=lease)
        assert await store.needing_attention(session, now=now) == []
        later = now + lease
        assert await store.needing_attention(session, now=later) == [poll_id]
        assert await store.take_result_lease(session, poll_id, now=later, lease=lease)
        await store.record_result(session, poll_id, "m-1")
        much_later = later + timedelta(days=9)
        assert not await store.take_result_lease(session, poll_id, now=much_later, lease=lease)
        assert await store.needing_attention(session, now=much_later) == []
        assert await store.choices(session, poll_id) == [[1]]


async def test_closes_due_together_are_made_in_one_transaction_and_posted_once(
    dispatcher, managed, services, clock
):
    import asyncio

    from scheduler.service import SchedulerService

    clock.set(T0.replace(year=2030))
    scheduler = SchedulerService()
    services.scheduler = scheduler
    lifecycle.install(services, scheduler)
    await scheduler.start()
    try:
        polls = [await make(dispatcher, managed, f"Q{n}? | a | b --closes 30m") for n in range(4)]
        clock.advance(minutes=30)
        commits = batch_commits(services.db)
        job = lifecycle.SETTLE_JOB
        await asyncio.gather(*(scheduler.run_now(job, poll_id=p.id) for p in polls))
        # The closes; the tallies, read after them; the result message ids.
        assert commits[0] == 3
        await asyncio.gather(*(scheduler.run_now(job, poll_id=p.id) for p in polls))
        assert len(results_posted(managed)) == 4
        for p in polls:
            row = await poll_row(services.db, p.id)
            assert row.result_message_id is not None
            assert scheduler.next_run(f"poll:{p.id}:close") is None
    finally:
        await scheduler.stop()


async def test_a_result_failing_to_post_in_a_batch_leaves_the_others_posted(
    dispatcher, managed, services, clock, monkeypatch
):
    import asyncio

    from scheduler.service import SchedulerService

    polls = [await make(dispatcher, managed, f"Q{n}? | a | b --closes 30m") for n in range(3)]
    clock.advance(minutes=30)
    real = lifecycle.result_message

    async def breaks_one(services, poll, *args, **kwargs):
        if poll.id == polls[1].id:
            raise RuntimeError("template broke")
        return await real(services, poll, *args, **kwargs)

    monkeypatch.setattr(lifecycle, "result_message", breaks_one)
    scheduler = SchedulerService()
    lifecycle.install(services, scheduler)
    job = lifecycle.SETTLE_JOB
    await asyncio.gather(*(scheduler.run_now(job, poll_id=p.id) for p in polls))
    posted = {p.id: (await poll_row(services.db, p.id)).result_message_id for p in polls}
    assert posted[polls[0].id] and posted[polls[2].id]
    assert posted[polls[1].id] is None  # its lease runs out and the sweep tries again
    assert len(results_posted(managed)) == 2


async def test_tallies_that_cannot_be_read_after_a_batch_close_are_posted_by_the_sweep(
    dispatcher, managed, services, clock, monkeypatch
):
    import asyncio

    from scheduler.service import SchedulerService

    polls = [await make(dispatcher, managed, f"Q{n}? | a | b --closes 30m") for n in range(2)]
    clock.advance(minutes=30)
    real = lifecycle._load

    async def unreadable(*args, **kwargs):
        raise RuntimeError("database gone for a moment")

    monkeypatch.setattr(lifecycle, "_load", unreadable)
    scheduler = SchedulerService()
    lifecycle.install(services, scheduler)
    job = lifecycle.SETTLE_JOB
    await asyncio.gather(*(scheduler.run_now(job, poll_id=p.id) for p in polls))
    for p in polls:
        row = await poll_row(services.db, p.id)
        assert row.status == "closed" and row.result_message_id is None
    assert results_posted(managed) == []
    monkeypatch.setattr(lifecycle, "_load", real)
    assert await lifecycle.sweep(services) == 0  # the batch's lease still holds
    clock.advance(minutes=3)
    assert await lifecycle.sweep(services) == 2
    assert len(results_posted(managed)) == 2
    for p in polls:
        assert (await poll_row(services.db, p.id)).result_message_id is not None
