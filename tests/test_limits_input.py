"""Input size limits and mention safety: oversized input is refused with a clear message before
it is parsed, errors never echo a wall of text, and replies never ping @everyone, @here, roles
or anyone a member merely typed."""

from __future__ import annotations

from typing import Any

import discord
import pytest
from sqlalchemy import func, select

from bot.discord_adapter.gateway import DiscordGateway
from handlers.core.args import MAX_ARGS_LENGTH, MAX_SHOWN, shown
from handlers.core.context import Services
from handlers.core.events import ChatRef, Platform, Role
from handlers.core.markup import escape, mention, mentioned_ids, to_html, to_plain
from handlers.core.outgoing import OutgoingMessage
from handlers.core.render import Renderer
from handlers.core.router import Dispatcher
from storage.models import Poll, QaQuestion
from tests.fakes import RecordingGateway, command, user

BOSS, ANN = user("boss"), user("ann")


@pytest.fixture
def gateway() -> RecordingGateway:
    return RecordingGateway(roles={BOSS.user_id: Role.MANAGER})


async def polls(services: Services) -> int:
    async with services.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(Poll))).scalar())


# --- sizes -----------------------------------------------------------------------------------


async def test_an_oversized_command_is_refused_before_parsing(
    dispatcher: Dispatcher, gateway: RecordingGateway, services: Services, monkeypatch
):
    parsed: list[str] = []
    import handlers.core.router as router_module

    real = router_module.parse_args

    def parse(raw: str, *rest: Any) -> Any:
        parsed.append(raw)
        return real(raw, *rest)

    monkeypatch.setattr(router_module, "parse_args", parse)
    text = "Lunch? | " + " | ".join(f"option {i}" for i in range(800))
    assert len(text) > MAX_ARGS_LENGTH
    await dispatcher.handle(command(BOSS, f"/poll {text}"), gateway)
    assert gateway.last.startswith(
        f"✂️ That is too long: {len(text):,} characters, and a command takes at most 4,096."
    )
    assert "Usage: /poll new" in gateway.last
    assert parsed == [] and await polls(services) == 0


async def test_the_size_refusal_speaks_chinese_in_a_chinese_community(
    dispatcher: Dispatcher, gateway: RecordingGateway
):
    await dispatcher.handle(command(BOSS, "/settings language zh"), gateway)
    await dispatcher.handle(command(ANN, "/ask " + "问" * 5000), gateway)
    assert gateway.last.startswith("✂️ 太长了：这条命令有 5,000 个字符，最多只能 4,096 个。")


async def test_a_member_hitting_a_manager_command_with_a_huge_text_is_just_forbidden(
    dispatcher: Dispatcher, gateway: RecordingGateway
):
    await dispatcher.handle(command(ANN, "/poll " + "x" * 10_000), gateway)
    assert gateway.last.startswith("🔒") and len(gateway.last) < 200


async def test_a_poll_with_100_options_is_refused_and_nothing_is_saved(
    dispatcher: Dispatcher, gateway: RecordingGateway, services: Services
):
    text = "Lunch? | " + " | ".join(str(i) for i in range(1, 101))
    await dispatcher.handle(command(BOSS, f"/poll {text}"), gateway)
    assert gateway.last.startswith("⚠️ A poll takes at most 10 options; you gave 100.")
    assert await polls(services) == 0


async def test_a_poll_option_too_long_is_refused_and_nothing_is_saved(
    dispatcher: Dispatcher, gateway: RecordingGateway, services: Services
):
    await dispatcher.handle(command(BOSS, f"/poll Lunch? | {'p' * 300} | Soup"), gateway)
    assert gateway.last.startswith(
        "⚠️ Option 1 is 300 characters long; polls here take at most 100 per option."
    )
    # A 4,000-character option is past the whole poll text's limit: refused as too long too.
    await dispatcher.handle(command(BOSS, f"/poll Lunch? | {'p' * 4000} | Soup"), gateway)
    assert "too long" in gateway.last and "at most 1394 characters" in gateway.last
    assert await polls(services) == 0


async def test_errors_quote_what_was_typed_briefly(
    dispatcher: Dispatcher, gateway: RecordingGateway
):
    await dispatcher.handle(command(BOSS, "/settings timezone " + "Zone/" * 200), gateway)
    assert "isn't a time zone I know" in gateway.last
    assert "…" in gateway.last and len(gateway.last) < 300
    await dispatcher.handle(command(BOSS, "/settings " + "w" * 3000), gateway)
    assert len(gateway.last) < 800 and "w" * (MAX_SHOWN + 1) not in gateway.last
    await dispatcher.handle(command(BOSS, "/giveaway end " + "9" * 3000), gateway)
    assert "isn't a whole number" in gateway.last and len(gateway.last) < 300
    # Features' own converters too: the dispatcher shortens what any error quotes.
    await dispatcher.handle(command(BOSS, "/settings quiet " + "🙂" * 1000), gateway)
    assert "isn't a quiet-hours range" in gateway.last and len(gateway.last) < 300
    await dispatcher.handle(command(BOSS, "/post add every " + "x" * 2000 + " hello"), gateway)
    assert "x" * (MAX_SHOWN + 1) not in gateway.last and len(gateway.last) < 800


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
async def test_characters_no_database_can_store_are_refused(
    dispatcher: Dispatcher, gateway: RecordingGateway, services: Services, bad: str
):
    await dispatcher.handle(command(ANN, f"/ask Is this{bad} fine?"), gateway)
    code = f"U+{ord(bad):04X}"
    assert gateway.last.startswith(f"🚫 That contains a character I cannot keep ({code}).")
    async with services.db.session() as session:
        questions = (await session.execute(select(func.count()).select_from(QaQuestion))).scalar()
    assert questions == 0


async def test_a_deadline_centuries_away_is_out_of_range_not_a_crash(
    dispatcher: Dispatcher, gateway: RecordingGateway
):
    await dispatcher.handle(command(BOSS, "/giveaway start 9999999w 1 A book"), gateway)
    assert gateway.last.startswith('⚠️ "9999999w" is out of range: use something between 1m and')


def test_shown_cuts_long_text_only():
    assert shown("short") == "short"
    assert shown("x" * MAX_SHOWN) == "x" * MAX_SHOWN
    cut = shown("x" * 5000)
    assert len(cut) == MAX_SHOWN and cut.endswith("…")


# --- mentions --------------------------------------------------------------------------------


def test_a_name_cannot_forge_a_mention_of_someone_else():
    forged = mention("42", "x](mention:999) [y")
    assert mentioned_ids(forged) == ["42"]
    html = to_html(forged)
    assert html.count("<a ") == 1 and 'href="tg://user?id=42"' in html and "id=999" not in html


def test_typed_markup_is_never_a_mention():
    renderer = Renderer()
    hostile = "[boss](mention:1) @everyone @here <@123> <@&456>"
    message = renderer.message(
        "errors/bad_argument.j2", "en", problem="unexpected", value=hostile, usage=""
    )
    assert mentioned_ids(message.text) == []
    assert escape("[a](mention:1)") == r"\[a\]\(mention:1\)"
    # Telegram has no @everyone; the text stays text, with no link in it.
    assert "<a " not in to_html(message.text) and "@everyone" in to_plain(message.text)


class _Sent:
    id = 1234


class _Channel:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def send(self, **kwargs: Any) -> _Sent:
        self.calls.append(kwargs)
        return _Sent()


class _Client:
    def __init__(self, channel: _Channel) -> None:
        self.channel = channel

    def get_channel(self, channel_id: int) -> _Channel:
        return self.channel


async def test_discord_replies_never_ping_everyone_here_or_roles():
    channel = _Channel()
    gateway = DiscordGateway(_Client(channel))  # type: ignore[arg-type]
    chat = ChatRef(Platform.DISCORD, "1180000000000000101", "1180000000000000001")
    text = f"@everyone @here <@&456> <@789> {mention('300000000000000001', '@everyone')} wins!"
    await gateway.send(chat, OutgoingMessage(text))
    await gateway.send(chat, OutgoingMessage("@everyone look, no mention at all"))
    assert channel.calls
    for call in channel.calls:
        allowed: discord.AllowedMentions = call["allowed_mentions"]
        assert allowed.everyone is False and allowed.roles is False
        users = allowed.users if isinstance(allowed.users, list) else []
        assert {u.id for u in users} <= {300000000000000001}
    first = channel.calls[0]["allowed_mentions"]
    assert [u.id for u in first.users] == [300000000000000001]
