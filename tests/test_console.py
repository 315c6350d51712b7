"""The console adapter: line translation, and whole scripts through the real pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.console_adapter.adapter import ConsoleAdapter
from bot.console_adapter.gateway import ConsoleGateway
from bot.console_adapter.translate import (
    ConsoleInputError,
    ConsoleState,
    IdentityChanged,
    Quit,
    translate,
)
from handlers.core.events import (
    ButtonPressed,
    CommandEvent,
    MemberJoined,
    MemberLeft,
    MessageEvent,
    ReactionAdded,
    Role,
)
from handlers.core.outgoing import Button, OutgoingMessage
from storage.models import ActivityEvent, CommunityDay
from tests.fakes import T0


@pytest.fixture
def state() -> ConsoleState:
    return ConsoleState(identity="you", managers={"you"})


def test_plain_text_is_a_message_from_the_current_identity(state):
    event = translate("hello there  ", state, T0)
    assert isinstance(event, MessageEvent)
    assert event.actor.display_name == "you"
    assert event.length == len("hello there")
    assert event.at == T0


def test_commands_are_addressed_and_split_into_name_and_args(state):
    event = translate("/Stats  today please", state, T0)
    assert isinstance(event, CommandEvent)
    assert (event.name, event.args, event.addressed) == ("stats", "today please", True)


def test_speaker_prefix_speaks_for_one_line_only(state):
    event = translate("alice: hi all", state, T0)
    assert isinstance(event, MessageEvent) and event.actor.display_name == "alice"
    assert translate("next", state, T0).actor.display_name == "you"


def test_manager_prefix_marks_a_manager(state):
    event = translate("@carol: /settings", state, T0)
    assert isinstance(event, CommandEvent) and event.actor.display_name == "carol"
    assert "carol" in state.managers


def test_as_switches_identity_and_role(state):
    assert translate("/as alice", state, T0) == IdentityChanged("alice", False)
    assert state.identity == "alice" and "alice" not in state.managers
    assert translate("/as @carol", state, T0) == IdentityChanged("carol", True)
    assert "carol" in state.managers
    assert translate("/as carol", state, T0) == IdentityChanged("carol", False)
    assert "carol" not in state.managers


def test_join_leave_react_reply_and_press(state):
    assert isinstance(translate("/join bob", state, T0), MemberJoined)
    assert isinstance(translate("/leave bob", state, T0), MemberLeft)
    first = translate("bob: look at this", state, T0)
    reaction = translate("/react 🎉", state, T0)
    assert isinstance(reaction, ReactionAdded)
    assert (reaction.message_id, reaction.emoji) == (first.message_id, "🎉")
    reply = translate("/reply nice", state, T0)
    assert isinstance(reply, MessageEvent) and reply.reply_to_user_id == "bob"
    state.last_buttons = [Button("Enter", "giveaway:enter:1"), Button("Skip", "x")]
    state.last_bot_message_id = "bot-1"
    press = translate("/press 1", state, T0)
    assert isinstance(press, ButtonPressed) and press.data == "giveaway:enter:1"


@pytest.mark.parametrize(
    "line, problem",
    [
        ("/as", "say who"),
        ("/as bad:name", "not a usable name"),
        ("/react", "no message to react to"),
        ("/reply hi", "no message to reply to"),
        ("/press 1", "no buttons"),
    ],
)
def test_console_mistakes_are_explained(state, line, problem):
    with pytest.raises(ConsoleInputError, match=problem):
        translate(line, state, T0)


def test_blank_lines_comments_and_quit(state):
    assert translate("   ", state, T0) is None
    assert translate("# a comment", state, T0) is None
    assert translate("/quit", state, T0) == Quit()


def test_event_keys_are_unique_across_console_runs():
    first = translate("hi", ConsoleState(), T0)
    second = translate("hi", ConsoleState(), T0)
    assert first.key != second.key  # a restarted console must not look like a replay


async def test_gateway_renders_plain_text_buttons_and_roles(state):
    lines: list[str] = []
    gateway = ConsoleGateway(state, lines.append)
    chat = translate("hi", state, T0).chat
    await gateway.send(
        chat, OutgoingMessage("**Giveaway** \\*1\\*", buttons=((Button("Enter", "g:1"),),))
    )
    shown = lines[0].splitlines()
    assert shown[0] == "commops › Giveaway *1*"
    assert "[1] Enter" in shown[1] and "/press N" in shown[1]
    assert state.last_buttons == [Button("Enter", "g:1")]
    you, alice = state.user("you"), state.user("alice")
    assert await gateway.role_of(chat, you) == Role.MANAGER
    assert await gateway.role_of(chat, alice) == Role.MEMBER


SCRIPT = """\
# a member asks for help, a manager changes settings, a member is refused
/as alice
hello everyone
/join bob
bob: hi alice
/react 👍
/help
/settings timezone Asia/Shanghai
/as @carol
/settings timezone Asia/Shanghai
/settings language zh
/stats
/quit
alice: never processed
"""


async def test_script_runs_through_the_real_pipeline(services, dispatcher, tmp_path: Path):
    script = tmp_path / "chat.txt"
    script.write_text(SCRIPT, encoding="utf-8")
    out: list[str] = []
    adapter = ConsoleAdapter(script=script, write=out.append, clock=services.clock)
    await adapter.run(dispatcher)
    transcript = "\n".join(out)
    assert "console: you are now alice, a member" in transcript
    assert "/stats — Today's and yesterday's messages" in transcript
    assert "🔒 Only the community's managers can use /settings timezone." in transcript
    assert "Time zone changed from UTC to Asia/Shanghai" in transcript
    assert "之后我在这里会用中文回复" in transcript
    # hello, hi alice, /help, two /settings timezone, /settings language, /stats
    assert "💬 消息：7" in transcript
    assert "a member asks for help" not in transcript  # comments are not echoed
    await services.activity.flush()
    async with services.db.session() as session:
        events = (await session.execute(select(func.count(ActivityEvent.id)))).scalar_one()
        day = (await session.execute(select(CommunityDay))).scalar_one()
    # 7 messages (incl. commands up to /stats), 1 join, 1 reaction; nothing after /quit.
    assert events == 9
    assert (day.messages, day.joins, day.reactions) == (7, 1, 1)
