"""`Router.on(..., when=...)`: a cheap pre-filter that runs before any unit of work."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from handlers.core.context import HandlerContext, Services
from handlers.core.events import Event, MemberJoined, MessageEvent
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Dispatcher, Router
from tests.fakes import joined, message, user

ANN = user("ann")


@pytest.fixture
def sessions(services: Services) -> list[int]:
    """Counts the units of work opened (`Database.session` calls) while the test runs."""
    opened = [0]
    real = services.db.session

    @asynccontextmanager
    async def counting() -> AsyncIterator[object]:
        opened[0] += 1
        async with real() as session:
            yield session

    services.db.session = counting  # type: ignore[method-assign]
    return opened


def _dispatcher(services: Services, *routers: Router) -> Dispatcher:
    dispatcher = Dispatcher(services)
    for router in routers:
        dispatcher.include(router)
    return dispatcher


async def test_a_false_prefilter_skips_the_handler_and_the_unit_of_work(
    services, gateway, sessions
):
    seen: list[Event] = []
    ran: list[str] = []

    def questions_only(event: MessageEvent) -> bool:
        seen.append(event)
        return bool(event.text and event.text.endswith("?"))

    router = Router("test")

    @router.on(MessageEvent, when=questions_only)
    async def on_question(event: MessageEvent, ctx: HandlerContext) -> OutgoingMessage:
        ran.append(event.text or "")
        return OutgoingMessage(f"{ctx.community.external_id}: you asked")

    dispatcher = _dispatcher(services, router)
    chatter = message(ANN, text="hello")
    assert await dispatcher.handle(chatter, gateway) == []
    assert seen == [chatter]  # the predicate gets the event itself
    assert (ran, sessions[0]) == ([], 0)

    question = message(ANN, text="anyone there?")
    [reply] = await dispatcher.handle(question, gateway)
    assert reply.text == "community-1: you asked"
    assert gateway.sent[-1].reply_to == question.message_id
    assert (ran, sessions[0]) == (["anyone there?"], 1)


async def test_without_a_prefilter_every_event_is_handled_as_before(services, gateway, sessions):
    ran: list[str] = []
    router = Router("test")

    @router.on(MessageEvent)
    async def on_message(event: MessageEvent, ctx: HandlerContext) -> None:
        ran.append(event.text or "")

    dispatcher = _dispatcher(services, router)
    for text in ("a", "b", None):
        await dispatcher.handle(message(ANN, text=text), gateway)
    assert ran == ["a", "b", ""]
    assert sessions[0] == 3


async def test_the_prefilter_is_per_handler_and_per_event_type(services, gateway, sessions):
    ran: list[str] = []
    first, second = Router("first"), Router("second")

    @first.on(MessageEvent, when=lambda event: False)
    async def never(event: Event, ctx: HandlerContext) -> None:
        ran.append("never")

    @second.on(MessageEvent)
    async def always(event: Event, ctx: HandlerContext) -> None:
        ran.append("always")

    @second.on(MemberJoined, when=lambda event: event.actor.user_id == "ann")
    async def welcome(event: Event, ctx: HandlerContext) -> None:
        ran.append(f"welcome {event.actor.user_id}")

    dispatcher = _dispatcher(services, first, second)
    await dispatcher.handle(message(ANN), gateway)
    await dispatcher.handle(joined(ANN), gateway)
    await dispatcher.handle(joined(user("bob")), gateway)
    assert ran == ["always", "welcome ann"]
    assert sessions[0] == 2


async def test_a_failing_prefilter_is_logged_and_skips_only_its_handler(
    services, gateway, sessions, caplog
):
    ran: list[str] = []
    router = Router("test")

    def broken(event: Event) -> bool:
        raise ZeroDivisionError("bug in a pre-filter")

    @router.on(MessageEvent, when=broken)
    async def skipped(event: Event, ctx: HandlerContext) -> None:
        ran.append("skipped")

    @router.on(MessageEvent)
    async def other(event: Event, ctx: HandlerContext) -> None:
        ran.append("other")

    dispatcher = _dispatcher(services, router)
    with caplog.at_level(logging.ERROR, logger="handlers.core.router"):
        await dispatcher.handle(message(ANN), gateway)
    assert ran == ["other"]
    assert sessions[0] == 1
    assert "pre-filter of test failed" in caplog.text
    assert gateway.sent == []  # no apology to the chat: nothing was asked of the bot


async def test_the_prefilter_runs_after_activity_is_recorded(services, gateway):
    """Skipping a handler never skips the activity log: it is recorded before handlers."""
    router = Router("test")

    @router.on(MessageEvent, when=lambda event: False)
    async def never(event: Event, ctx: HandlerContext) -> None:
        raise AssertionError("not reached")

    dispatcher = _dispatcher(services, router)
    await dispatcher.handle(message(ANN, key="m:counted"), gateway)
    await services.activity.flush()
    assert services.activity.stats.written == 1
