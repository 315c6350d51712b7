"""A poll's life after it is made: posting it, live counts, the close and the result post.

The close is claimed by one conditional UPDATE (open -> closed), by the timer at
`closes_at`, a manager's `/poll close`, or the sweep for polls whose time passed while
the bot was away; votes check the same row, so none slips in after it. Posting the result
takes a short lease and records the message id; the sweep (every minute, and soon after
start-up) finishes whatever a crash or an absent platform left undone, and the result
says when it came late.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.chats import chat_of
from handlers.core.context import Services
from handlers.core.events import ChatRef
from handlers.core.firing import record_together
from handlers.core.gateway import ChatGateway, GatewayError, GatewayUnavailable
from handlers.core.outgoing import (
    Button,
    Capabilities,
    Image,
    OutgoingMessage,
    OutgoingPoll,
    SentMessage,
)
from handlers.polls.results import Tally, tally_of
from scheduler.service import SchedulerService
from storage import polls as store
from storage.activity import zone
from storage.db import Database
from storage.models import Community, Poll

log = logging.getLogger(__name__)

VOTE_PREFIX = "poll:vote:"
# A button poll's counts are edited at most this often, not on every vote.
REFRESH_DELAY = timedelta(seconds=5)
# A close more than this after the close time says it was late (the bot was away).
LATE_AFTER = timedelta(minutes=1)
RESULT_LEASE = timedelta(minutes=2)
SWEEP_EVERY = timedelta(seconds=60)
# The first sweep waits for the platforms to connect (they start after the scheduler).
START_SWEEP_DELAY = timedelta(seconds=5)
# Discord allows five buttons in a row and five rows: up to five options get a row each.
ONE_PER_ROW_UP_TO = 5

_SENDING = (GatewayError, GatewayUnavailable, TimeoutError, OSError)


def vote_buttons(poll: Poll) -> tuple[tuple[Button, ...], ...]:
    """One button per option, payload `poll:vote:<poll id>:<0-based option>`."""
    buttons = [Button(text, f"{VOTE_PREFIX}{poll.id}:{i}") for i, text in enumerate(poll.options)]
    per_row = 1 if len(buttons) <= ONE_PER_ROW_UP_TO else 2
    return tuple(tuple(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row))


def is_late(poll: Poll) -> bool:
    """Closed by the clock, but well after its close time (the bot was offline)."""
    return (
        poll.closed_by is None
        and poll.closes_at is not None
        and poll.closed_at is not None
        and poll.closed_at - poll.closes_at > LATE_AFTER
    )


def poll_message(
    services: Services, poll: Poll, community: Community, tally: Tally
) -> OutgoingMessage:
    """A button poll's message as it should look now: open with buttons, or final."""
    is_open = poll.status == store.PollStatus.OPEN
    return services.renderer.message(
        "polls/poll.j2",
        community.locale,
        buttons=vote_buttons(poll) if is_open else (),
        p=poll,
        tally=tally,
        is_open=is_open,
        community=community,
        tz=zone(community.timezone),
    )


async def result_message(
    services: Services,
    poll: Poll,
    community: Community,
    tally: Tally,
    capabilities: Capabilities,
) -> OutgoingMessage:
    """The result (final, or so far while open) with a bar chart where images can be shown;
    text bars stand in for it elsewhere, or when drawing failed."""
    image: Image | None = None
    if capabilities.images:
        try:
            # matplotlib takes most of a second to import: only when a chart is drawn.
            from handlers.polls.chart import render_chart

            png = await asyncio.to_thread(
                render_chart, tally, poll.question, fallback_title=f"#{poll.id}"
            )
            image = Image(png, f"poll-{poll.id}.png", alt=poll.question[:200])
        except Exception:
            log.exception("poll %s: the chart could not be drawn", poll.id)
    return services.renderer.message(
        "polls/result.j2",
        community.locale,
        image=image,
        p=poll,
        tally=tally,
        final=poll.status == store.PollStatus.CLOSED,
        late=is_late(poll),
        bars=image is None,
        community=community,
        tz=zone(community.timezone),
    )


def outgoing_poll(poll: Poll) -> OutgoingPoll:
    return OutgoingPoll(
        question=poll.question,
        options=tuple(poll.options),
        multiple=poll.multiple,
        anonymous=poll.anonymous,
        closes_at=poll.closes_at,
    )


async def publish(services: Services, gateway: ChatGateway, poll_id: int) -> None:
    """Post a saved poll (after its unit of work committed): natively or with buttons. A poll
    the platform refused is removed again and the chat is told."""
    async with services.db.session() as session:
        poll = await store.by_id(session, poll_id)
        assert poll is not None
        community = await session.get(Community, poll.community_id)
        assert community is not None
        message = None
        if not poll.native:
            message = poll_message(services, poll, community, await tally_of(session, poll))
    chat = chat_of(poll, community)
    try:
        if message is None:
            sent = await gateway.send_poll(chat, outgoing_poll(poll))
        else:
            sent = await gateway.send(chat, message)
    except Exception:
        log.exception("poll %s could not be posted", poll_id)
        async with services.db.session() as session:
            await store.discard(session, poll_id)
        await _tell(gateway, chat, services, community, problem="not_posted")
        return
    async with services.db.session() as session:
        row = await store.by_id(session, poll_id)
        assert row is not None
        row.message_id = sent.message_id
        if row.native:
            row.native_poll_id = sent.poll_id or sent.message_id
        closes_at = row.closes_at
    if closes_at is not None:
        schedule_close(services, poll_id, closes_at)


async def _tell(
    gateway: ChatGateway, chat: ChatRef, services: Services, community: Community, **values: object
) -> None:
    try:
        await gateway.send(chat, services.renderer.message("polls/errors.j2", community.locale,
                                                           **values))  # fmt: skip
    except Exception:
        log.warning("could not tell chat %s about a poll problem", chat.chat_id, exc_info=True)


async def settle(services: Services, poll_id: int) -> None:
    """Timer and sweep entry point: close when due, then make sure the result is posted."""
    now = services.clock.now()
    async with services.db.writing() as session:
        # One transaction closes, takes the result lease and loads what the result shows.
        closed = await store.claim_close(session, poll_id, now=now, lease=RESULT_LEASE)
        if closed:
            loaded = await _load(session, poll_id)
    if closed:
        await _post_result(services, *loaded)
    else:
        await announce(services, poll_id)  # closed before: post the result if still owed


SETTLE_JOB = "poll.settle"
# Results of one batch posted at once (as many as jobs ran at once before batching).
BATCH_SENDS = 8


async def settle_many(services: Services, items: list[dict[str, Any]]) -> None:
    """Batched timer job: settle every queued poll together. One transaction closes each
    (with the result lease); their tallies are read after it commits, outside SQLite's write
    gate, since a closed poll takes no more votes; the results go out, then one transaction
    records their message ids. A batch whose transaction fails is settled one by one
    (`settle`), as its timers would have been; a poll closed before is announced alone."""
    ids = list(dict.fromkeys(int(item["poll_id"]) for item in items))
    now = services.clock.now()
    closed: list[int] = []
    closed_before: list[int] = []
    try:
        async with services.db.writing() as session:
            for poll_id in sorted(ids):  # instances closing the same ones lock rows alike
                if await store.claim_close(session, poll_id, now=now, lease=RESULT_LEASE):
                    closed.append(poll_id)
                else:
                    closed_before.append(poll_id)
    except Exception:
        log.warning("a batch of %d poll closes is settled one by one", len(ids), exc_info=True)
        for poll_id in ids:
            try:
                await settle(services, poll_id)
            except Exception:
                log.exception("poll %s could not be settled", poll_id)
        return
    # The write gate is the scheduler's queue on SQLite (bench/README.md, scheduler finding
    # 8): reading the tallies while holding it cost every other writer ~1.8 ms per poll.
    loaded: list[tuple[Poll, Community, Tally]] = []
    if closed:
        try:
            async with services.db.session() as session:
                loaded = [await _load(session, poll_id) for poll_id in closed]
        except Exception:
            # Closed, with the lease: when it runs out, the sweep posts these results.
            log.warning("tallies of %d closed polls not read", len(closed), exc_info=True)
    posted: list[tuple[int, str]] = []
    slots = asyncio.Semaphore(BATCH_SENDS)

    async def post(poll: Poll, community: Community, tally: Tally) -> None:
        async with slots:
            try:
                await _post_result(services, poll, community, tally, posted=posted)
            except Exception:
                log.exception("poll %s: result could not be posted", poll.id)

    try:
        await asyncio.gather(*(post(*one) for one in loaded))
    finally:
        await _record_results(services, posted)  # also when stopped mid-batch
    for poll_id, _ in posted:
        cancel_timers(services, poll_id)
    for poll_id in closed_before:
        try:
            await announce(services, poll_id)  # closed before: post the result if owed
        except Exception:
            log.exception("poll %s could not be announced", poll_id)


async def _record_results(services: Services, posted: list[tuple[int, str]]) -> None:
    """Record posted results in one transaction (each alone if that fails)."""
    await record_together(
        services.db,
        posted,
        store.record_results,
        lambda session, one: store.record_result(session, *one),
        what="poll results",
        label=lambda one: f"poll {one[0]}",
    )


async def _load(session: AsyncSession, poll_id: int) -> tuple[Poll, Community, Tally]:
    """A closed poll, its community and its final tally."""
    found = await store.with_community(session, poll_id)
    assert found is not None
    poll, community = found
    return poll, community, await tally_of(session, poll)


async def announce(services: Services, poll_id: int) -> bool:
    """Stop a closed poll on the platform and post its result, once."""
    now = services.clock.now()
    async with services.db.writing() as session:
        if not await store.take_result_lease(session, poll_id, now=now, lease=RESULT_LEASE):
            return False
        loaded = await _load(session, poll_id)
    return await _post_result(services, *loaded)


async def _post_result(
    services: Services,
    poll: Poll,
    community: Community,
    tally: Tally,
    *,
    posted: list[tuple[int, str]] | None = None,
) -> bool:
    """Under a held lease: stop the poll on the platform, post the result, record it.
    With `posted` (a batch), the result's message id is noted there for the batch to
    record with the others (and cancel the poll's timers) instead."""
    chat = chat_of(poll, community)
    try:
        gateway = await services.gateways.wait(chat.platform)
    except GatewayUnavailable:
        # The lease runs out and the sweep tries again.
        log.warning("poll %s: no %s connection to post the result", poll.id, chat.platform)
        return False
    await _stop(services, gateway, chat, poll, community, tally)
    result = await result_message(services, poll, community, tally, gateway.capabilities)
    try:
        sent = await gateway.send(chat, result, reply_to=poll.message_id)
    except _SENDING:
        log.warning("poll %s: result could not be posted yet", poll.id, exc_info=True)
        return False
    if posted is not None:
        posted.append((poll.id, sent.message_id))
        return True
    async with services.db.writing() as session:
        await store.record_result(session, poll.id, sent.message_id)
    cancel_timers(services, poll.id)
    return True


async def _stop(
    services: Services,
    gateway: ChatGateway,
    chat: ChatRef,
    poll: Poll,
    community: Community,
    tally: Tally,
) -> None:
    """No more votes on the platform: stop the native poll, or show the button poll closed."""
    if poll.message_id is None:
        return
    sent = SentMessage(chat, poll.message_id, poll.native_poll_id)
    try:
        if poll.native:
            await gateway.close_poll(sent)
        else:
            await gateway.edit(sent, poll_message(services, poll, community, tally))
    except Exception:
        # Already stopped (a retry, or the platform closed it itself): the result still goes out.
        log.info("poll %s: could not stop it on the platform", poll.id, exc_info=True)


async def refresh(services: Services, poll_id: int) -> None:
    """Edit a button poll's message to show the current counts."""
    async with services.db.session() as session:
        poll = await store.by_id(session, poll_id)
        if (
            poll is None
            or poll.native
            or poll.status != store.PollStatus.OPEN
            or poll.message_id is None
        ):
            return
        community = await session.get(Community, poll.community_id)
        assert community is not None
        message = poll_message(services, poll, community, await tally_of(session, poll))
    chat = chat_of(poll, community)
    gateway = services.gateways.get(chat.platform)
    if gateway is None:
        return
    try:
        await gateway.edit(SentMessage(chat, poll.message_id), message)
    except Exception:
        log.warning("poll %s: counts could not be edited", poll_id, exc_info=True)


def request_refresh(services: Services, poll_id: int) -> None:
    """Ask for a count edit in a few seconds unless one is already waiting."""
    scheduler = services.scheduler
    if scheduler is None or not scheduler.running:
        return
    key = f"poll:{poll_id}:refresh"
    if scheduler.next_run(key) is None:
        scheduler.schedule(key, "poll.refresh", services.clock.now() + REFRESH_DELAY,
                           poll_id=poll_id)  # fmt: skip


def schedule_close(services: Services, poll_id: int, closes_at: datetime) -> None:
    if services.scheduler is not None and services.scheduler.running:
        _close_timer(services.scheduler, poll_id, closes_at)


def _close_timer(scheduler: SchedulerService, poll_id: int, closes_at: datetime) -> None:
    scheduler.schedule(f"poll:{poll_id}:close", SETTLE_JOB, closes_at, poll_id=poll_id)


def cancel_timers(services: Services, poll_id: int) -> None:
    if services.scheduler is not None:
        services.scheduler.cancel(f"poll:{poll_id}:close")
        services.scheduler.cancel(f"poll:{poll_id}:refresh")


async def sweep(services: Services) -> int:
    """Settle every poll past its close time, and post results a crash left unposted."""
    async with services.db.session() as session:
        due = await store.needing_attention(session, now=services.clock.now())
    for poll_id in due:
        try:
            await settle(services, poll_id)
        except Exception:
            log.exception("poll %s could not be settled", poll_id)
    return len(due)


async def _rebuild_timers(services: Services, scheduler: SchedulerService) -> None:
    async with services.db.session() as session:
        timed = await store.timed_open_polls(session)
    for poll_id, closes_at in timed:
        _close_timer(scheduler, poll_id, closes_at)
    # Closes missed while the bot was away, and results never posted.
    scheduler.schedule_sweep(
        "poll", "poll.sweep",
        now=services.clock.now(), every=SWEEP_EVERY, first_after=START_SWEEP_DELAY,
    )  # fmt: skip


async def native_poll_chat(db: Database, platform: str, native_poll_id: str) -> ChatRef | None:
    """The chat of a native poll the bot posted, from the database: for an adapter whose
    platform reports votes without a chat (Telegram) after a restart emptied its memory."""
    async with db.session() as session:
        found = await store.native_chat(session, platform, native_poll_id)
    return chat_of(found[0], found[1]) if found is not None else None


def install(services: Services, scheduler: SchedulerService) -> None:
    """Register the poll jobs and the start-up reconciler on the scheduler."""
    scheduler.register_batch(SETTLE_JOB, partial(settle_many, services))
    scheduler.register("poll.refresh", partial(refresh, services))
    scheduler.register("poll.sweep", partial(sweep, services))
    scheduler.on_start(partial(_rebuild_timers, services))
