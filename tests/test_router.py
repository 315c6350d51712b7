"""The dispatcher: command matching, roles checked with the platform, friendly failures."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from handlers.core.args import Duration, Integer, Param
from handlers.core.context import HandlerContext, Services
from handlers.core.errors import NotFound, UserInputError
from handlers.core.events import ButtonPressed, ChatKind, ChatRef, CommandEvent, Platform, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Dispatcher, Router
from storage.models import ActivityEvent, Community
from tests.fakes import CHAT, T0, RecordingGateway, command, message, press, user

ALICE = user("alice")
BOSS = user("boss")


def feature_router() -> Router:
    router = Router("test-feature")

    @router.command("echo", params=[Param("times", Integer(minimum=1, maximum=3))])
    async def echo(event: CommandEvent, ctx: HandlerContext) -> list[OutgoingMessage]:
        return [OutgoingMessage(f"echo {i}") for i in range(ctx.args.times)]

    @router.command("wait", params=[Param("duration", Duration())], aliases=["pause"])
    async def wait(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
        return OutgoingMessage(f"waiting {ctx.args.duration.total_seconds():.0f}s")

    @router.command("boom")
    async def boom(event: CommandEvent, ctx: HandlerContext) -> None:
        ctx.community.title = "changed by a failing handler"
        raise RuntimeError("secret internal detail")

    @router.command("oops")
    async def oops(event: CommandEvent, ctx: HandlerContext) -> None:
        raise UserInputError("errors/user_input.j2", message="That list is empty.")

    @router.command("find")
    async def find(event: CommandEvent, ctx: HandlerContext) -> None:
        raise NotFound(what="giveaway", id="42", hint=None)

    @router.command("admin", min_role=Role.MANAGER)
    async def admin(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
        return OutgoingMessage("admin done")

    @router.command("owner-only", min_role=Role.OWNER)
    async def owner_only(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
        return OutgoingMessage("owner done")

    @router.command("group add")
    async def group_add(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
        return OutgoingMessage("added")

    @router.command("group remove")
    async def group_remove(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
        return OutgoingMessage("removed")

    @router.button("vote:")
    async def vote(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
        return OutgoingMessage(f"voted {event.data}", private=True)

    return router


@pytest.fixture
def app(services: Services) -> Dispatcher:
    from bot.app import build_dispatcher

    dispatcher = build_dispatcher(services)
    dispatcher.include(feature_router())
    return dispatcher


async def test_command_runs_with_parsed_arguments_and_replies_to_the_message(app, gateway):
    event = command(ALICE, "/echo 2")
    await app.handle(event, gateway)
    assert gateway.texts == ["echo 0", "echo 1"]
    assert all(s.reply_to == event.message_id for s in gateway.sent)


async def test_aliases_and_case_insensitive_names(app, gateway):
    await app.handle(command(ALICE, "/PAUSE 90m"), gateway)
    assert gateway.last == "waiting 5400s"


async def test_bad_argument_gets_a_specific_message_and_the_usage(app, gateway):
    await app.handle(command(ALICE, "/echo 7"), gateway)
    assert "7 is out of range: use a number from 1 to 3" in gateway.last
    assert "Usage: /echo <number>" in gateway.last


async def test_missing_argument_is_named(app, gateway):
    await app.handle(command(ALICE, "/wait"), gateway)
    assert "Missing duration" in gateway.last


async def test_unknown_command_addressed_to_the_bot_suggests_a_close_one(app, gateway):
    await app.handle(command(ALICE, "/stast"), gateway)
    assert "I don't know /stast" in gateway.last
    assert "Did you mean /stats?" in gateway.last


async def test_unknown_command_in_a_group_without_a_near_match_stays_quiet(app, gateway):
    # Another bot's command in a shared group must not get an answer from us.
    await app.handle(command(ALICE, "/ban_everyone", addressed=False), gateway)
    assert gateway.sent == []


async def test_unknown_subcommand_lists_the_group(app, gateway):
    await app.handle(command(ALICE, "/group frobnicate"), gateway)
    assert "/group needs one of" in gateway.last
    assert "/group add" in gateway.last and "/group remove" in gateway.last
    await app.handle(command(ALICE, "/group remove"), gateway)
    assert gateway.last == "removed"


async def test_manager_command_is_refused_for_a_member_and_nothing_runs(app, gateway):
    await app.handle(command(ALICE, "/admin"), gateway)
    assert gateway.last == "🔒 Only the community's managers can use /admin."
    assert gateway.role_checks == 1


async def test_manager_command_runs_for_a_manager_the_platform_confirms(app, gateway):
    gateway.roles[BOSS.user_id] = Role.MANAGER
    await app.handle(command(BOSS, "/admin"), gateway)
    assert gateway.last == "admin done"
    await app.handle(command(BOSS, "/owner-only"), gateway)
    assert "Only the community's managers" in gateway.last


async def test_member_commands_never_ask_the_platform_for_roles(app, gateway):
    await app.handle(command(ALICE, "/echo 1"), gateway)
    await app.handle(message(ALICE), gateway)
    assert gateway.role_checks == 0


async def test_manager_command_in_a_private_chat_points_to_the_group(app, gateway):
    private = ChatRef(Platform.CONSOLE, "dm-alice", "dm-alice", None, ChatKind.PRIVATE)
    gateway.roles[BOSS.user_id] = Role.MANAGER
    await app.handle(command(BOSS, "/admin", chat=private), gateway)
    assert "works in a group" in gateway.last


async def test_a_crashing_handler_gets_an_apology_with_an_id_and_changes_nothing(
    app, gateway, services, caplog
):
    caplog.set_level(logging.ERROR)
    await app.handle(command(ALICE, "/echo 1"), gateway)  # creates the community
    await app.handle(command(ALICE, "/boom"), gateway)
    reply = gateway.last
    assert reply.startswith("😵 Sorry, something went wrong on my side.")
    assert "secret internal detail" not in reply
    error_id = reply.split("error ")[1].rstrip(".")
    assert f"[error {error_id}]" in caplog.text
    assert "secret internal detail" in caplog.text
    async with services.db.session() as session:
        title = (await session.execute(select(Community.title))).scalar_one()
    assert title == CHAT.title  # the failing handler's change was rolled back
    # ...and the bot keeps working.
    await app.handle(command(ALICE, "/echo 1"), gateway)
    assert gateway.last == "echo 0"


async def test_user_errors_render_their_own_template(app, gateway):
    await app.handle(command(ALICE, "/oops"), gateway)
    assert gateway.last == "⚠️ That list is empty.\n\nUsage: /oops"
    await app.handle(command(ALICE, "/find"), gateway)
    assert gateway.last == "⚠️ I can't find giveaway 42 in this community."


async def test_replies_that_cannot_be_sent_do_not_crash(app, gateway):
    gateway.fail_sends = True
    assert await app.handle(command(ALICE, "/echo 1"), gateway) == []


async def test_bots_are_not_answered_or_recorded(app, gateway, services):
    robot = user("robot", bot=True)
    await app.handle(command(robot, "/echo 1"), gateway)
    await app.handle(message(robot), gateway)
    await services.activity.flush()
    assert gateway.sent == []
    async with services.db.session() as session:
        assert (await session.execute(select(func.count(ActivityEvent.id)))).scalar_one() == 0


async def test_commands_and_messages_are_recorded_as_activity(app, gateway, services):
    await app.handle(command(ALICE, "/echo 1"), gateway)
    await app.handle(message(ALICE), gateway)
    await services.activity.flush()
    async with services.db.session() as session:
        assert (await session.execute(select(func.count(ActivityEvent.id)))).scalar_one() == 2


async def test_private_button_reply_goes_to_the_member_or_falls_back_to_the_chat(
    app, gateway: RecordingGateway
):
    press = ButtonPressed(CHAT, ALICE, T0, "b:1", "msg-9", "vote:yes")
    await app.handle(press, gateway)
    assert gateway.sent[-1].private_to == ALICE.user_id
    assert gateway.sent[-1].reply_to is None
    gateway.no_private.add(ALICE.user_id)
    await app.handle(ButtonPressed(CHAT, ALICE, T0, "b:2", "msg-9", "vote:no"), gateway)
    assert gateway.sent[-1].private_to is None
    assert gateway.last == "voted vote:no"


async def test_buttons_of_other_features_are_ignored(app, gateway):
    await app.handle(ButtonPressed(CHAT, ALICE, T0, "b:3", "msg-9", "raffle:enter:1"), gateway)
    assert gateway.sent == []


async def test_declaring_a_command_twice_is_refused(services):
    first, second = Router("a"), Router("b")

    @first.command("same")
    async def one(event, ctx):  # pragma: no cover - never run
        return None

    @second.command("other", aliases=["same"])
    async def two(event, ctx):  # pragma: no cover - never run
        return None

    dispatcher = Dispatcher(services)
    dispatcher.include(first)
    with pytest.raises(ValueError, match="declared twice"):
        dispatcher.include(second)


async def test_importing_a_feature_registers_nothing(services):
    dispatcher = Dispatcher(services)
    assert dispatcher.commands == {}
    assert "stats" not in Dispatcher(services).commands


async def test_huge_and_hostile_command_input_is_handled(app, gateway):
    await app.handle(command(ALICE, "/echo " + "9" * 100_000), gateway)
    assert "too long" in gateway.last
    await app.handle(command(ALICE, "/echo @everyone"), gateway)
    assert "isn't a whole number" in gateway.last
    await app.handle(command(ALICE, "/" + "x" * 500), gateway)
    assert "I don't know" not in gateway.last


async def test_errors_are_shown_only_to_the_member_where_the_platform_can(app, gateway):
    from handlers.core.outgoing import Capabilities

    gateway.capabilities = Capabilities(ephemeral=True)
    await app.handle(command(ALICE, "/admin"), gateway)
    await app.handle(command(ALICE, "/boom"), gateway)
    await app.handle(command(ALICE, "/echo 1"), gateway)
    assert [s.message.private for s in gateway.sent] == [True, True, False]


async def test_an_unknown_word_after_a_group_command_lists_its_subcommands(app, gateway):
    gateway.roles[BOSS.user_id] = Role.MANAGER
    await app.handle(command(BOSS, "/settings frob"), gateway)
    assert "/settings needs one of" in gateway.last
    assert "/settings timezone <time zone>" in gateway.last
    await app.handle(command(BOSS, "/settings"), gateway)
    assert "Settings for" in gateway.last


async def test_a_freshness_check_decides_per_event_and_a_failing_one_flushes(
    services, gateway, flushes
):
    async def reads_activity(event: ButtonPressed, checked: Services) -> bool:
        assert checked is services
        if event.data.endswith(":broken"):
            raise RuntimeError("the check itself failed")
        return event.data.endswith(":counts")

    router = Router("fresh")

    @router.button("fresh:", fresh_activity=reads_activity)
    async def pressed(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
        return OutgoingMessage(f"pressed {event.data}")

    app = Dispatcher(services)
    app.include(router)
    for data, flushed in [("fresh:plain", 0), ("fresh:counts", 1), ("fresh:broken", 2)]:
        await app.handle(press(ALICE, data), gateway)
        assert gateway.last == f"pressed {data}"
        assert len(flushes) == flushed, data
