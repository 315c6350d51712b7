"""A giveaway's life after start: live entry count, the draw, the result post, rerolls.

The draw is claimed by one conditional UPDATE (open -> drawn), so it happens once across
restarts and instances; entries check the same row, so none slips in after the freeze.
Posting the result takes a short lease on the row and records the message id; a sweep
finishes anything a crash or an absent platform left undone, and says when it was late.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.chats import chat_of
from handlers.core.context import Services
from handlers.core.events import ChatRef, UserRef
from handlers.core.firing import record_together
from handlers.core.gateway import ChatGateway, GatewayError, GatewayUnavailable
from handlers.core.markup import mention
from handlers.core.outgoing import Button, OutgoingMessage, SentMessage
from handlers.giveaways.draw import DrawRecord, Entrant, draw, entrants_digest
from handlers.giveaways.requirements import Rules
from scheduler.service import SchedulerService
from storage import giveaways as store
from storage.activity import zone
from storage.models import Community, Giveaway

log = logging.getLogger(__name__)

ENTER_PREFIX = "giveaway:enter:"
# The announcement's entry count is edited at most this often, not on every entry.
COUNT_REFRESH = timedelta(seconds=5)
# A draw more than this after the end time says it was late (the bot was away).
LATE_AFTER = timedelta(minutes=1)
RESULT_LEASE = timedelta(minutes=2)
SWEEP_EVERY = timedelta(seconds=60)
# The first sweep waits for the platforms to connect (they start after the scheduler).
START_SWEEP_DELAY = timedelta(seconds=5)
# Above this many entrants the draw runs on a worker thread, so chats keep flowing.
THREAD_DRAW_FROM = 5_000


@dataclass(frozen=True, slots=True)
class Winner:
    user_id: str
    display_name: str
    entrant_id: str
    round: int

    @property
    def mention(self) -> str:
        return mention(self.user_id, self.display_name)


async def winners_of(session: AsyncSession, giveaway_id: int) -> list[Winner]:
    return [
        Winner(row.user_id, row.display_name, row.entrant_id, round_no)
        for round_no, row in await store.winners(session, giveaway_id)
    ]


async def record_of(session: AsyncSession, giveaway: Giveaway) -> DrawRecord:
    """Everything needed to check a drawn giveaway independently (also `commops` exports)."""
    rows = await store.entrants(session, giveaway.id)
    won = await winners_of(session, giveaway.id)
    rounds = giveaway.rounds or []
    by_round: list[list[str]] = [[] for _ in rounds]
    for winner in won:
        while winner.round >= len(by_round):
            by_round.append([])
        by_round[winner.round].append(winner.entrant_id)
    return DrawRecord(
        giveaway_id=giveaway.id,
        prize=giveaway.prize,
        commitment=giveaway.commitment,
        seed=giveaway.seed,
        entrants=tuple(Entrant(r.entrant_id, r.weight) for r in rows),
        entrants_digest=giveaway.entrants_digest or "",
        rounds=tuple(tuple(r) for r in by_round),
        winners_wanted=giveaway.winners,
        reroll_sizes=tuple(int(r["asked"]) for r in rounds[1:]),
    )


async def announcement(
    services: Services,
    session: AsyncSession,
    giveaway: Giveaway,
    community: Community,
    *,
    winners: list[Winner] | None = None,
    bonus: int | None = None,
) -> OutgoingMessage:
    """The announcement as it should look now: open with an Enter button, or final;
    `winners` and `bonus` (entries beyond one each) save reading them when known."""
    locale = community.locale
    is_open = giveaway.status == store.GiveawayStatus.OPEN
    buttons: tuple[tuple[Button, ...], ...] = ()
    if is_open:
        label = services.renderer.render("giveaways/button.j2", locale, which="enter")
        buttons = ((Button(label, f"{ENTER_PREFIX}{giveaway.id}"),),)
    if bonus is None:
        bonus = await store.bonus_entries(session, giveaway.id)
    if is_open:
        winners = []
    elif winners is None:
        winners = await winners_of(session, giveaway.id)
    return services.renderer.message(
        "giveaways/announcement.j2",
        locale,
        buttons=buttons,
        g=giveaway,
        rules=Rules.from_json(giveaway.requirements),
        bonus_entries=bonus,
        winners=winners,
        community=community,
        tz=zone(community.timezone),
    )


def _entrant_list(rows: list[store.EntrantRow]) -> list[Entrant]:
    return [Entrant(r.entrant_id, r.weight) for r in rows]


async def _ranked(seed: str, entrants: list[Entrant], count: int, exclude: set[str]) -> list[str]:
    if len(entrants) >= THREAD_DRAW_FROM:
        return await asyncio.to_thread(draw, seed, entrants, count, exclude=exclude)
    return draw(seed, entrants, count, exclude=exclude)


async def draw_in(
    session: AsyncSession, giveaway_id: int, *, now: datetime, early: bool = False
) -> bool:
    """Draw an open giveaway in `session` (the caller commits); False if someone else did."""
    return await _draw(session, giveaway_id, now=now, early=early) is not None


@dataclass(frozen=True, slots=True)
class Drawn:
    """A draw just made: the row, its entries and the first round's winners."""

    giveaway: Giveaway
    community: Community
    entrants: list[store.EntrantRow]
    winners: list[Winner]


async def _draw(
    session: AsyncSession,
    giveaway_id: int,
    *,
    now: datetime,
    early: bool = False,
    lease: timedelta | None = None,
) -> Drawn | None:
    """`draw_in`, keeping what it read; with `lease` the result lease is taken too."""
    if not await store.claim_draw(session, giveaway_id, now=now, early=early, lease=lease):
        return None
    found = await store.with_community(session, giveaway_id)
    assert found is not None
    giveaway, community = found
    rows = await store.entrants(session, giveaway_id)
    entrants = _entrant_list(rows)
    chosen = await _ranked(giveaway.seed, entrants, giveaway.winners, set())
    by_entrant = {r.entrant_id: r for r in rows}
    await store.add_winners(session, giveaway_id, 0, [by_entrant[e].user_id for e in chosen])
    giveaway.entrants_digest = entrants_digest(entrants)
    giveaway.drawn_late = not early and now - giveaway.ends_at > LATE_AFTER
    giveaway.rounds = [{"asked": giveaway.winners, "at": now.isoformat(), "by": None}]
    won = [Winner(by_entrant[e].user_id, by_entrant[e].display_name, e, 0) for e in chosen]
    return Drawn(giveaway, community, rows, won)


async def reroll_in(
    session: AsyncSession, giveaway: Giveaway, count: int, *, now: datetime, by: str
) -> list[Winner]:
    """Draw `count` replacement winners, never anyone who won before (caller commits)."""
    rows = await store.entrants(session, giveaway.id)
    earlier = {w.entrant_id for w in await winners_of(session, giveaway.id)}
    chosen = await _ranked(giveaway.seed, _entrant_list(rows), count, earlier)
    round_no = len(giveaway.rounds or [])
    by_entrant = {r.entrant_id: r for r in rows}
    await store.add_winners(session, giveaway.id, round_no, [by_entrant[e].user_id for e in chosen])
    giveaway.rounds = [*(giveaway.rounds or []), {"asked": count, "at": now.isoformat(), "by": by}]
    return [Winner(by_entrant[e].user_id, by_entrant[e].display_name, e, round_no) for e in chosen]


async def settle(services: Services, giveaway_id: int) -> None:
    """Timer and sweep entry point: draw when due, then make sure the result is posted."""
    now = services.clock.now()
    async with services.db.writing() as session:
        # One transaction draws, takes the result lease and renders the result.
        drawn = await _draw(session, giveaway_id, now=now, lease=RESULT_LEASE)
        if drawn is not None:
            bonus = sum(r.weight - 1 for r in drawn.entrants)
            ready = await _result(
                services, session, drawn.giveaway, drawn.community, drawn.winners, bonus
            )
    if drawn is None:
        await announce(services, giveaway_id)  # drawn before: post the result if still owed
    else:
        await _post_result(services, ready)


SETTLE_JOB = "giveaway.settle"
# Results of one batch posted at once (as many as jobs ran at once before batching).
BATCH_SENDS = 8


async def settle_many(services: Services, items: list[dict[str, Any]]) -> None:
    """Batched timer job: settle every queued giveaway together. One transaction draws each
    (claim with the result lease, entrants, winners) and renders each result; the results
    go out, then one transaction records their message ids. A batch whose transaction
    fails is settled one by one (`settle`), as its timers would have been; a giveaway
    drawn before (nothing to draw here) is announced alone, as `settle` does."""
    ids = list(dict.fromkeys(int(item["giveaway_id"]) for item in items))
    now = services.clock.now()
    ready: list[Result] = []
    drawn_before: list[int] = []
    try:
        async with services.db.writing() as session:
            for giveaway_id in sorted(ids):  # instances drawing the same ones lock rows alike
                drawn = await _draw(session, giveaway_id, now=now, lease=RESULT_LEASE)
                if drawn is None:
                    drawn_before.append(giveaway_id)
                    continue
                bonus = sum(r.weight - 1 for r in drawn.entrants)
                ready.append(
                    await _result(
                        services, session, drawn.giveaway, drawn.community, drawn.winners, bonus
                    )
                )
    except Exception:
        log.warning("a batch of %d giveaway draws is settled one by one", len(ids), exc_info=True)
        for giveaway_id in ids:
            try:
                await settle(services, giveaway_id)
            except Exception:
                log.exception("giveaway %s could not be settled", giveaway_id)
        return
    await _post_results(services, ready)
    for giveaway_id in drawn_before:
        try:
            await announce(services, giveaway_id)  # drawn before: post the result if owed
        except Exception:
            log.exception("giveaway %s could not be announced", giveaway_id)


async def _post_results(services: Services, readies: list[Result]) -> None:
    """`_post_result` for a batch: the sends, one transaction recording them (also when
    stopped mid-batch), then the announcements' edits and the winners' notes."""
    sent: list[tuple[Result, ChatGateway, ChatRef, str]] = []
    slots = asyncio.Semaphore(BATCH_SENDS)

    async def send(ready: Result) -> None:
        chat = chat_of(ready.giveaway, ready.community)
        async with slots:
            try:
                gateway = await services.gateways.wait(chat.platform)
                message = await gateway.send(chat, ready.result, reply_to=ready.giveaway.message_id)
            except (GatewayError, GatewayUnavailable, TimeoutError, OSError):
                # The lease runs out and the sweep tries again.
                log.warning(
                    "giveaway %s: result could not be posted yet", ready.giveaway.id, exc_info=True
                )
                return
            except Exception:
                log.exception("giveaway %s: result could not be posted", ready.giveaway.id)
                return
        sent.append((ready, gateway, chat, message.message_id))

    try:
        await asyncio.gather(*(send(ready) for ready in readies))
    finally:
        await _record_results(services, [(r.giveaway.id, m) for r, _, _, m in sent])
    for ready, gateway, chat, _ in sent:
        try:
            await edit_announcement(gateway, chat, ready.giveaway, ready.final)
            await notify_winners(gateway, chat, ready.winners, ready.note)
        except Exception:
            log.exception("giveaway %s: winners could not be told", ready.giveaway.id)


async def _record_results(services: Services, posted: list[tuple[int, str]]) -> None:
    """Record posted results in one transaction (each alone if that fails)."""
    await record_together(
        services.db,
        posted,
        store.record_results,
        lambda session, one: store.record_result(session, *one),
        what="giveaway results",
        label=lambda one: f"giveaway {one[0]}",
    )


@dataclass(frozen=True, slots=True)
class Result:
    """A drawn giveaway's result, rendered, with what posting it needs."""

    giveaway: Giveaway
    community: Community
    winners: list[Winner]  # the first round's
    result: OutgoingMessage
    final: OutgoingMessage
    note: OutgoingMessage


async def _result(
    services: Services,
    session: AsyncSession,
    giveaway: Giveaway,
    community: Community,
    winners: list[Winner] | None = None,
    bonus: int | None = None,
) -> Result:
    """Render the result post, the closed announcement and the winners' note."""
    if winners is None:
        winners = await winners_of(session, giveaway.id)
    first_round = [w for w in winners if w.round == 0]
    result = services.renderer.message(
        "giveaways/result.j2",
        community.locale,
        g=giveaway,
        winners=first_round,
        tz=zone(community.timezone),
    )
    final = await announcement(services, session, giveaway, community, winners=winners, bonus=bonus)
    note = services.renderer.message(
        "giveaways/winner_note.j2", community.locale, g=giveaway, private=True
    )
    return Result(giveaway, community, first_round, result, final, note)


async def announce(services: Services, giveaway_id: int) -> bool:
    """Post a drawn giveaway's result once, close its announcement and tell the winners."""
    now = services.clock.now()
    async with services.db.writing() as session:
        if not await store.take_result_lease(session, giveaway_id, now=now, lease=RESULT_LEASE):
            return False
        found = await store.with_community(session, giveaway_id)
        assert found is not None
        ready = await _result(services, session, *found)
    return await _post_result(services, ready)


async def _post_result(services: Services, ready: Result) -> bool:
    """Post a rendered result under a held lease and record its message id."""
    giveaway = ready.giveaway
    chat = chat_of(giveaway, ready.community)
    try:
        gateway = await services.gateways.wait(chat.platform)
        sent = await gateway.send(chat, ready.result, reply_to=giveaway.message_id)
    except (GatewayError, GatewayUnavailable, TimeoutError, OSError):
        # The lease runs out and the sweep tries again.
        log.warning("giveaway %s: result could not be posted yet", giveaway.id, exc_info=True)
        return False
    async with services.db.writing() as session:
        await store.record_result(session, giveaway.id, sent.message_id)
    await edit_announcement(gateway, chat, giveaway, ready.final)
    await notify_winners(gateway, chat, ready.winners, ready.note)
    return True


async def edit_announcement(
    gateway: ChatGateway, chat: ChatRef, giveaway: Giveaway, message: OutgoingMessage
) -> None:
    if giveaway.message_id is None:
        return
    try:
        await gateway.edit(SentMessage(chat, giveaway.message_id), message)
    except Exception:
        log.warning("giveaway %s: announcement could not be edited", giveaway.id, exc_info=True)


async def notify_winners(
    gateway: ChatGateway, chat: ChatRef, winners: list[Winner], note: OutgoingMessage
) -> None:
    """Tell each winner privately where the platform allows it; the chat post stays the
    record, so a closed inbox costs nothing."""
    if not gateway.capabilities.private_messages:
        return
    for winner in winners:
        user = UserRef(chat.platform, winner.user_id, winner.display_name)
        try:
            await gateway.send_private(user, note)
        except Exception:
            log.info("giveaway winner %s could not be told privately", winner.user_id)


async def refresh_count(services: Services, giveaway_id: int) -> None:
    """Edit the announcement's entry count if it changed since it was last shown."""
    async with services.db.session() as session:
        giveaway = await store.by_id(session, giveaway_id)
        if (
            giveaway is None
            or giveaway.status != store.GiveawayStatus.OPEN
            or giveaway.message_id is None
            or giveaway.entry_count == giveaway.count_shown
        ):
            return
        community = await session.get(Community, giveaway.community_id)
        assert community is not None
        giveaway.count_shown = giveaway.entry_count
        message = await announcement(services, session, giveaway, community)
    chat = chat_of(giveaway, community)
    gateway = services.gateways.get(chat.platform)
    if gateway is not None:
        await edit_announcement(gateway, chat, giveaway, message)


def request_count_refresh(services: Services, giveaway_id: int) -> None:
    """Ask for a count edit in a few seconds unless one is already waiting."""
    scheduler = services.scheduler
    if scheduler is None or not scheduler.running:
        return
    key = f"giveaway:{giveaway_id}:count"
    if scheduler.next_run(key) is None:
        scheduler.schedule(
            key, "giveaway.refresh", services.clock.now() + COUNT_REFRESH, giveaway_id=giveaway_id
        )


def schedule_draw(services: Services, giveaway_id: int, ends_at: datetime) -> None:
    if services.scheduler is not None and services.scheduler.running:
        _draw_timer(services.scheduler, giveaway_id, ends_at)


def _draw_timer(scheduler: SchedulerService, giveaway_id: int, ends_at: datetime) -> None:
    scheduler.schedule(f"giveaway:{giveaway_id}:draw", SETTLE_JOB, ends_at, giveaway_id=giveaway_id)


def cancel_timers(services: Services, giveaway_id: int) -> None:
    if services.scheduler is not None:
        services.scheduler.cancel(f"giveaway:{giveaway_id}:draw")
        services.scheduler.cancel(f"giveaway:{giveaway_id}:count")


async def sweep(services: Services) -> int:
    """Settle every giveaway past its end that is not finished; returns how many."""
    async with services.db.session() as session:
        due = await store.needing_attention(session, now=services.clock.now())
    for giveaway_id in due:
        try:
            await settle(services, giveaway_id)
        except Exception:
            log.exception("giveaway %s could not be settled", giveaway_id)
    return len(due)


async def _rebuild_timers(services: Services, scheduler: SchedulerService) -> None:
    async with services.db.session() as session:
        open_ones = await store.open_giveaways(session)
    for giveaway_id, ends_at in open_ones:
        _draw_timer(scheduler, giveaway_id, ends_at)
    # Draws missed while the bot was away, and results never posted.
    scheduler.schedule_sweep(
        "giveaway", "giveaway.sweep",
        now=services.clock.now(), every=SWEEP_EVERY, first_after=START_SWEEP_DELAY,
    )  # fmt: skip


def install(services: Services, scheduler: SchedulerService) -> None:
    """Register the giveaway jobs and the start-up reconciler on the scheduler."""
    scheduler.register_batch(SETTLE_JOB, partial(settle_many, services))
    scheduler.register("giveaway.refresh", partial(refresh_count, services))
    scheduler.register("giveaway.sweep", partial(sweep, services))
    scheduler.on_start(partial(_rebuild_timers, services))
