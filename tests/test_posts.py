"""Scheduled posts through the dispatcher and the real scheduler, driven by a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from handlers.core.context import Services
from handlers.core.events import Role
from handlers.core.gateway import GatewayRegistry
from handlers.posts import delivery
from scheduler.service import SchedulerService
from storage.models import Occurrence, PostAudit, PostTemplate, ScheduledPost
from tests.fakes import RecordingGateway, batch_commits, command, user

# In the future, so the scheduler's real-time timers never fire by themselves in a test:
# `run_due` moves them with the fake clock.
START = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)  # a Monday
BOSS = user("boss")
ANNA = user("anna")
MEMBER = user("mo")


@pytest.fixture
async def posting(services: Services, gateway: RecordingGateway):
    services.clock.set(START)
    scheduler = SchedulerService()
    services.scheduler = scheduler
    delivery.install(services, scheduler)
    await scheduler.start()
    gateway.roles[BOSS.user_id] = Role.MANAGER
    gateway.roles[ANNA.user_id] = Role.MANAGER
    services.gateways.register(gateway)
    yield scheduler
    await scheduler.stop()


async def say(dispatcher, gateway, text: str, who=BOSS) -> str:
    before = len(gateway.sent)
    await dispatcher.handle(command(who, text, at=dispatcher.services.clock.now()), gateway)
    return "\n".join(gateway.texts[before:])


async def until(services: Services, when: datetime) -> list[str]:
    """Move the clock to `when` and run every timer due by then."""
    services.clock.set(when)
    assert services.scheduler is not None
    return await services.scheduler.run_due(when)


async def rows(db, model, **where):
    async with db.session() as session:
        query = select(model).filter_by(**where)
        return list((await session.execute(query)).scalars().all())


def posted(gateway: RecordingGateway, text: str) -> int:
    return sum(1 for s in gateway.sent if s.private_to is None and s.text == text)


async def test_a_one_off_post_goes_out_once_on_time(dispatcher, gateway, posting, services):
    reply = await say(dispatcher, gateway, "/post add in 1m Hello **everyone**")
    assert "Post #1" in reply and "Preview:" in reply and "Hello everyone" in reply
    assert "2030-01-07 12:01" in reply
    assert posting.next_run("post:1") == START + timedelta(minutes=1)

    await until(services, START + timedelta(seconds=59))
    assert posted(gateway, "Hello everyone") == 0
    await until(services, START + timedelta(minutes=1))
    assert posted(gateway, "Hello everyone") == 1
    await delivery.fire(services, 1, (START + timedelta(minutes=1)).isoformat())
    await until(services, START + timedelta(hours=2))
    assert posted(gateway, "Hello everyone") == 1
    [post] = await rows(services.db, ScheduledPost)
    assert post.status == "done" and post.runs == 1 and post.last_outcome == "sent"
    [occurrence] = await rows(services.db, Occurrence)
    assert occurrence.status == "done"


async def test_a_daily_post_fills_in_variables_and_keeps_its_local_time(
    dispatcher, gateway, posting, services
):
    await say(dispatcher, gateway, "/settings timezone Europe/Berlin")
    reply = await say(
        dispatcher,
        gateway,
        "/post add every day 09:00 Good morning {{ community }}, {{ weekday }}!",
    )
    assert "Post #1" in reply
    first = datetime(2030, 1, 8, 8, 0, tzinfo=UTC)  # 09:00 CET
    assert posting.next_run("post:1") == first
    await until(services, first)
    assert gateway.sent[-1].text == "Good morning Test *Group*, Tuesday!"
    assert posting.next_run("post:1") == first + timedelta(days=1)
    [post] = await rows(services.db, ScheduledPost)
    assert post.next_run_at == first + timedelta(days=1) and post.status == "active"


async def test_timers_are_rebuilt_from_the_database_after_a_restart(
    dispatcher, gateway, posting, services
):
    await say(dispatcher, gateway, "/post add every day 13:00 Lunch!")
    await posting.stop()
    fresh = SchedulerService()
    services.scheduler = fresh
    delivery.install(services, fresh)
    await fresh.start()
    try:
        assert fresh.next_run("post:1") == START + timedelta(hours=1)
        await until(services, START + timedelta(hours=1))
        assert posted(gateway, "Lunch!") == 1
    finally:
        await fresh.stop()


async def test_two_instances_firing_the_same_run_post_it_once(any_db, clock, gateway):
    from storage.activity import ActivityWriter

    clock.set(START)
    writer = ActivityWriter(any_db, batch_size=10, flush_interval=0.05)
    await writer.start()
    from handlers.core.render import Renderer

    first = Services(db=any_db, activity=writer, renderer=Renderer(), clock=clock)
    second = Services(db=any_db, activity=writer, renderer=Renderer(), clock=clock)
    other = RecordingGateway()
    first.gateways.register(gateway)
    second.gateways.register(other)
    gateway.roles[BOSS.user_id] = Role.MANAGER
    from bot.app import build_dispatcher

    try:
        await build_dispatcher(first).handle(
            command(BOSS, "/post add every 1h Ping", at=START), gateway
        )
        [post] = await rows(any_db, ScheduledPost)
        due = post.next_run_at.isoformat()
        clock.set(post.next_run_at)
        await asyncio.gather(
            delivery.fire(first, post.id, due),
            delivery.fire(second, post.id, due),
            delivery.fire(first, post.id, due),
        )
        assert posted(gateway, "Ping") + posted(other, "Ping") == 1
        [again] = await rows(any_db, ScheduledPost)
        assert again.next_run_at == post.next_run_at + timedelta(hours=1) and again.runs == 1
    finally:
        await writer.stop()


@pytest.mark.parametrize(
    ("late", "misfire", "expected_posts", "report"),
    [
        (timedelta(minutes=5), "catch-up", 1, None),
        (timedelta(minutes=30), "catch-up", 0, "missed 1 run"),
        (timedelta(minutes=5), "skip", 0, "late runs are not posted"),
        (timedelta(hours=3, minutes=30), "merge", 1, "posted once"),
        (timedelta(hours=3, minutes=30), "catch-up", 0, "missed 4 runs"),
    ],
)
async def test_runs_missed_while_the_bot_was_away_follow_the_misfire_rule(
    dispatcher, gateway, posting, services, late, misfire, expected_posts, report
):
    await say(dispatcher, gateway, f"/post add every 1h Hourly news --misfire {misfire}")
    [post] = await rows(services.db, ScheduledPost)
    await posting.stop()  # the bot goes away before the first run
    gateway.sent.clear()
    services.clock.set(post.next_run_at + late)
    restarted = SchedulerService()
    services.scheduler = restarted
    delivery.install(services, restarted)
    await restarted.start()
    try:
        await restarted.run_due(services.clock.now() + delivery.START_SWEEP_DELAY)
        assert posted(gateway, "Hourly news") == expected_posts
        notes = [s.text for s in gateway.sent if s.private_to == BOSS.user_id]
        if report is None:
            assert notes == []
        else:
            assert len(notes) == 1 and report in notes[0]
        [after] = await rows(services.db, ScheduledPost)
        assert after.next_run_at > services.clock.now()
        # A second start-up (or a sweep) reports and posts nothing again.
        await delivery.sweep(services)
        assert posted(gateway, "Hourly news") == expected_posts
        assert len([s for s in gateway.sent if s.private_to]) == (0 if report is None else 1)
    finally:
        await restarted.stop()


async def test_quiet_hours_hold_a_post_until_they_end(dispatcher, gateway, posting, services):
    await say(dispatcher, gateway, "/settings quiet 22:00-08:00")
    reply = await say(dispatcher, gateway, "/post add every day 23:30 Night owls")
    assert "held by quiet hours until 08:00" in reply
    await until(services, datetime(2030, 1, 7, 23, 30, tzinfo=UTC))
    assert posted(gateway, "Night owls") == 0
    await until(services, datetime(2030, 1, 8, 8, 0, tzinfo=UTC))
    assert posted(gateway, "Night owls") == 1
    preview = await say(dispatcher, gateway, "/post preview 1")
    assert "falls in quiet hours" in preview and "08:00" in preview


async def test_posts_ping_everyone_only_once_managers_allow_it(
    dispatcher, gateway, posting, services
):
    await say(dispatcher, gateway, "/post add every day 13:00 Stream starts @everyone")
    await until(services, datetime(2030, 1, 7, 13, 0, tzinfo=UTC))
    assert not gateway.sent[-1].message.mass_mentions
    assert "off" in await say(dispatcher, gateway, "/settings")
    member_try = await say(dispatcher, gateway, "/settings pings on", who=MEMBER)
    assert "Only the community's managers" in member_try
    assert "may now ping @everyone" in await say(dispatcher, gateway, "/settings pings on")
    await until(services, datetime(2030, 1, 8, 13, 0, tzinfo=UTC))
    assert gateway.sent[-1].message.mass_mentions
    assert gateway.sent[-1].text == "Stream starts @everyone"
    # Replies (this one included) never carry the permission.
    assert not gateway.sent[-2].message.mass_mentions
    await say(dispatcher, gateway, "/settings pings off")
    await until(services, datetime(2030, 1, 9, 13, 0, tzinfo=UTC))
    assert not gateway.sent[-1].message.mass_mentions


async def test_banned_words_are_refused_unless_a_manager_overrides(
    dispatcher, gateway, posting, services
):
    reply = await say(dispatcher, gateway, "/post add in 1h 全网最低价，最佳选择！")
    assert "最佳" in reply and "--override" in reply
    assert await rows(services.db, ScheduledPost) == []
    reply = await say(dispatcher, gateway, "/post add in 1h The best deal in town")
    assert "best" in reply and await rows(services.db, ScheduledPost) == []

    reply = await say(dispatcher, gateway, "/post add in 1h The best deal in town --override")
    assert "Post #1" in reply and "overrode" in reply
    actions = [a.action for a in await rows(services.db, PostAudit)]
    assert actions == ["created", "override"]
    await until(services, START + timedelta(hours=1))
    assert posted(gateway, "The best deal in town") == 1


async def test_a_word_added_later_stops_the_send_and_tells_the_author(
    dispatcher, gateway, posting, services
):
    await say(dispatcher, gateway, "/post add in 1h Try our amazing offer")
    assert "Added" in await say(dispatcher, gateway, "/compliance add amazing")
    await until(services, START + timedelta(hours=1))
    assert posted(gateway, "Try our amazing offer") == 0
    note = next(s.text for s in gateway.sent if s.private_to == BOSS.user_id)
    assert "could not be posted" in note and "amazing" in note
    [occurrence] = await rows(services.db, Occurrence)
    assert occurrence.status == "failed" and occurrence.detail == "compliance"


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ community.__class__ }}",
        "{% for i in range(10) %}x{% endfor %}",
        "{{ 'x' * 1000000000 }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% include '/etc/passwd' %}",
        "{{ lipsum() }}",
        "{{ nope }}",
        "{{ unclosed",
    ],
)
async def test_template_escapes_are_refused_and_nothing_is_saved(
    dispatcher, gateway, posting, services, body
):
    reply = await say(dispatcher, gateway, f"/post add in 1h {body}")
    assert "⚠️" in reply and "Post #" not in reply
    assert await rows(services.db, ScheduledPost) == []


async def test_values_are_escaped_in_posts(dispatcher, gateway, posting, services):
    from handlers.core.events import ChatRef, Platform

    chat = ChatRef(Platform.CONSOLE, "chat-9", "community-9", "*bold* [x](http://evil)")
    await dispatcher.handle(
        command(BOSS, "/post add in 1m Hi {{ chat }}", at=START, chat=chat), gateway
    )
    await until(services, START + timedelta(minutes=1))
    assert "\\*bold\\*" in gateway.sent[-1].message.text


async def test_approval_needs_a_second_manager(dispatcher, gateway, posting, services):
    await say(dispatcher, gateway, "/settings approval on")
    reply = await say(dispatcher, gateway, "/post add in 2h Big announcement")
    assert "approval" in reply
    assert posting.next_run("post:1") is None
    assert "another manager" in await say(dispatcher, gateway, "/post approve 1")
    assert "managers" in await say(dispatcher, gateway, "/post approve 1", who=MEMBER)
    assert "approved" in await say(dispatcher, gateway, "/post approve 1", who=ANNA)
    assert posting.next_run("post:1") == START + timedelta(hours=2)
    await say(dispatcher, gateway, "/post edit 1 Bigger announcement", who=ANNA)
    assert posting.next_run("post:1") is None  # edited: approval again, by someone else
    assert "approved" in await say(dispatcher, gateway, "/post approve 1", who=BOSS)
    actions = [a.action for a in await rows(services.db, PostAudit)]
    assert actions == ["created", "approved", "edited", "approved"]


async def test_members_cannot_manage_posts(dispatcher, gateway, posting, services):
    reply = await say(dispatcher, gateway, "/post add in 1h Spam", who=MEMBER)
    assert "managers" in reply
    assert await rows(services.db, ScheduledPost) == []


async def test_pause_resume_delete_list_show_and_now(dispatcher, gateway, posting, services):
    await say(dispatcher, gateway, "/post add every mon,thu 20:30 Weekly call")
    listing = await say(dispatcher, gateway, "/post list")
    assert "#1" in listing and "active" in listing
    assert "paused" in await say(dispatcher, gateway, "/post pause 1")
    assert posting.next_run("post:1") is None
    await say(dispatcher, gateway, "/post resume 1")
    assert posting.next_run("post:1") == datetime(2030, 1, 7, 20, 30, tzinfo=UTC)
    await say(dispatcher, gateway, "/post now 1")
    assert posted(gateway, "Weekly call") == 1
    shown = await say(dispatcher, gateway, "/post show 1")
    assert "done" in shown and "paused" in shown and "posted now" in shown
    assert "/post restore 1" in await say(dispatcher, gateway, "/post delete 1")
    assert posting.next_run("post:1") is None
    assert "can't find" in await say(dispatcher, gateway, "/post show 1")
    assert "back, paused" in await say(dispatcher, gateway, "/post restore 1")
    assert "resume it first" in await say(dispatcher, gateway, "/post approve 1")
    await say(dispatcher, gateway, "/post resume 1")
    assert posting.next_run("post:1") is not None
    actions = [a.action for a in await rows(services.db, PostAudit)]
    assert actions[-3:] == ["deleted", "restored", "resumed"]


async def test_a_failed_send_is_retried_then_reported(dispatcher, gateway, posting, services):
    await say(dispatcher, gateway, "/post add every 1h Status update")
    gateway.fail_sends = True
    due = START + timedelta(hours=1)
    await until(services, due)
    [occurrence] = await rows(services.db, Occurrence)
    assert occurrence.status == "retrying"
    assert posting.next_run("post:1") == due + timedelta(hours=1)  # the schedule goes on
    gateway.fail_sends = False
    await until(services, due + delivery.RETRY_DELAYS[0])
    assert posted(gateway, "Status update") == 1
    [occurrence] = await rows(services.db, Occurrence)
    assert occurrence.status == "done"

    gateway.fail_sends = True
    await until(services, due + timedelta(hours=1))
    for delay in delivery.RETRY_DELAYS:
        await until(services, services.clock.now() + delay)
    gateway.fail_sends = False
    statuses = sorted(o.status for o in await rows(services.db, Occurrence))
    assert statuses == ["done", "failed"]
    note = next(s.text for s in gateway.sent if s.private_to == BOSS.user_id)
    assert "could not be posted" in note and "schedule goes on" in note


async def test_saved_templates_feed_posts(dispatcher, gateway, posting, services):
    assert "saved" in await say(dispatcher, gateway, "/template save hello Hello {{ chat }}!")
    await say(dispatcher, gateway, "/post add in 1m --template hello")
    assert "used by" in await say(dispatcher, gateway, "/template show hello")
    assert "#1" in await say(dispatcher, gateway, "/template delete hello")
    await say(dispatcher, gateway, "/post delete 1")
    undo = await say(dispatcher, gateway, "/template delete hello")
    assert "/template save hello Hello {{ chat }}!" in undo
    await say(dispatcher, gateway, "/template save hello Hi again {{ chat }}")
    await say(dispatcher, gateway, "/post restore 1")
    await say(dispatcher, gateway, "/post resume 1")
    await until(services, START + timedelta(minutes=1))
    assert gateway.sent[-1].text == "Hi again Test *Group*"
    refused = await say(dispatcher, gateway, "/template save bad {{ nope }}")
    assert refused.startswith("⚠️") and "nope" in refused
    assert "bad" not in await say(dispatcher, gateway, "/template list")


async def test_bad_schedules_get_a_friendly_error(dispatcher, gateway, posting, services):
    for text in ("/post add yesterday Hi", "/post add every 1m Hi", "/post add every fun 09:00 Hi"):
        reply = await say(dispatcher, gateway, text)
        assert reply.startswith("⚠️"), reply
    assert await rows(services.db, ScheduledPost) == []


async def test_a_text_that_no_longer_fits_is_reported_in_words(
    dispatcher, gateway, posting, services
):
    from dataclasses import replace

    await say(dispatcher, gateway, "/post add in 1m A perfectly ordinary announcement")
    gateway.capabilities = replace(gateway.capabilities, max_text_length=10)
    await until(services, START + timedelta(minutes=1))
    note = next(s.text for s in gateway.sent if s.private_to == BOSS.user_id)
    assert "its text no longer works" in note and "this platform takes 10" in note
    [occurrence] = await rows(services.db, Occurrence)
    assert occurrence.status == "failed" and occurrence.detail == "rendered_too_long"


async def test_a_text_problem_found_at_the_firing_is_recorded_and_reported_once(
    dispatcher, gateway, posting, services
):
    # The text is composed inside the firing's transaction now: a failure there must still
    # claim the run, record it failed and tell the author, once.
    await say(dispatcher, gateway, "/template save hello Hello {{ chat }}!")
    await say(dispatcher, gateway, "/post add in 1m --template hello")
    async with services.db.session() as session:
        await session.execute(delete(PostTemplate))
    due = START + timedelta(minutes=1)
    await until(services, due)
    await delivery.fire(services, 1, due.isoformat())  # a sweep racing the timer
    await until(services, due + timedelta(hours=1))
    assert [s for s in gateway.sent if s.reply_to is None and "Hello" in s.text] == []
    notes = [s.text for s in gateway.sent if s.private_to == BOSS.user_id]
    assert len(notes) == 1 and "could not be posted" in notes[0]
    [occurrence] = await rows(services.db, Occurrence)
    assert occurrence.status == "failed" and occurrence.detail == "template_gone"
    [post] = await rows(services.db, ScheduledPost)
    assert post.last_outcome == "failed" and post.runs == 1


async def test_a_run_fired_before_its_platform_connects_goes_out_once_it_does(
    dispatcher, gateway, posting, services
):
    await say(dispatcher, gateway, "/post add in 1m Morning all")
    services.gateways = GatewayRegistry()  # the platform is not connected (yet)
    due = START + timedelta(minutes=1)
    firing = asyncio.create_task(until(services, due))
    await asyncio.sleep(0.05)
    assert posted(gateway, "Morning all") == 0
    services.gateways.register(gateway)
    await firing
    assert posted(gateway, "Morning all") == 1
    [occurrence] = await rows(services.db, Occurrence)
    assert occurrence.status == "done"


# --- batches: the timers due together are fired in one transaction ------------------------


@dataclass
class _PickyGateway(RecordingGateway):
    """Fails the sends whose text holds `fail`; holds back those holding `hold` forever."""

    fail: str = "\x00"
    hold: str = "\x00"
    holding: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, chat, message, *, reply_to=None):
        if self.fail in message.text:
            raise ConnectionError("platform unreachable")
        if self.hold in message.text:
            self.holding.set()
            await asyncio.Event().wait()  # a send caught mid-flight
        return await super().send(chat, message, reply_to=reply_to)


async def _due_together(dispatcher, gateway, services, texts: list[str]) -> list[dict]:
    for text in texts:
        await say(dispatcher, gateway, f"/post add in 1m {text}")
    posts = await rows(services.db, ScheduledPost)
    services.clock.set(START + timedelta(minutes=1))
    return [{"post_id": p.id, "due": p.next_run_at.isoformat()} for p in posts]


async def test_posts_due_together_are_claimed_in_one_transaction_and_sent_once(
    dispatcher, gateway, posting, services
):
    items = await _due_together(dispatcher, gateway, services, [f"Batch {n}" for n in range(5)])
    commits = batch_commits(services.db)
    await asyncio.gather(*(posting.run_now(delivery.FIRE_JOB, **item) for item in items))
    # One transaction claims all five, one records the five sends.
    assert commits[0] == 2
    assert [posted(gateway, f"Batch {n}") for n in range(5)] == [1] * 5
    # The same timers again (a stale timer, a second instance): nothing more goes out.
    await asyncio.gather(*(posting.run_now(delivery.FIRE_JOB, **item) for item in items))
    await delivery.fire_many(services, items)
    assert [posted(gateway, f"Batch {n}") for n in range(5)] == [1] * 5
    occurrences = await rows(services.db, Occurrence)
    assert len(occurrences) == 5 and {o.status for o in occurrences} == {"done"}
    assert {p.last_outcome for p in await rows(services.db, ScheduledPost)} == {"sent"}


async def test_one_bad_post_in_a_batch_leaves_the_others_alone(
    dispatcher, posting, services, caplog
):
    picky = _PickyGateway()
    picky.roles[BOSS.user_id] = Role.MANAGER
    services.gateways = GatewayRegistry()
    services.gateways.register(picky)
    items = await _due_together(
        dispatcher, picky, services, ["Fine 1", "Broken send", "Bad schedule", "Fine 2"]
    )
    picky.sent.clear()
    picky.fail = "Broken"
    async with services.db.session() as session:
        bad = await session.get(ScheduledPost, 3)
        assert bad is not None
        bad.schedule = "not a schedule at all"  # cannot be worked out: fired (and fails) alone
    await asyncio.gather(*(posting.run_now(delivery.FIRE_JOB, **item) for item in items))
    assert posted(picky, "Fine 1") == posted(picky, "Fine 2") == 1
    assert posted(picky, "Broken send") == 0
    by_post = {int(o.what.split(":")[1]): o for o in await rows(services.db, Occurrence)}
    assert by_post[1].status == by_post[4].status == "done"
    assert by_post[2].status == "retrying"  # the platform failed: retried later, alone
    assert 3 not in by_post and "post 3" in caplog.text
    assert posting.next_run("post:2:retry:" + str(by_post[2].id)) is not None


async def test_stop_mid_batch_records_the_sends_that_went_out(dispatcher, posting, services):
    picky = _PickyGateway()
    picky.roles[BOSS.user_id] = Role.MANAGER
    services.gateways = GatewayRegistry()
    services.gateways.register(picky)
    items = await _due_together(dispatcher, picky, services, ["Went 1", "Stuck", "Went 2"])
    picky.sent.clear()
    picky.hold = "Stuck"
    running = [asyncio.ensure_future(posting.run_now(delivery.FIRE_JOB, **i)) for i in items]
    await asyncio.wait_for(picky.holding.wait(), 10)  # I/O wait for the claim, not timing
    for _ in range(50):  # no real time: the loop turns until the batch's other sends are out
        if posted(picky, "Went 1") and posted(picky, "Went 2"):
            break
        await asyncio.sleep(0)
    await posting.stop()
    await asyncio.gather(*running)
    by_post = {int(o.what.split(":")[1]): o.status for o in await rows(services.db, Occurrence)}
    assert by_post == {1: "done", 2: "claimed", 3: "done"}
