"""Files (`OutgoingMessage.document`, a member's data export) through the Telegram gateway
(sendDocument, against an in-process fake `Bot`) and the console (saved like images), and
the privacy commands end to end in a console script."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from telegram import Chat, Message
from telegram.error import Forbidden

from bot.cli import main
from bot.console_adapter.gateway import ConsoleGateway
from bot.console_adapter.translate import CONSOLE_CHAT, ConsoleState
from bot.telegram_adapter.gateway import CallbackGateway, TelegramGateway
from handlers.core.events import ChatKind, ChatRef, Platform, UserRef
from handlers.core.gateway import PrivateMessageUnavailable
from handlers.core.outgoing import Document, Image, OutgoingMessage, SentMessage

GROUP = ChatRef(Platform.TELEGRAM, "-1001234", "-1001234", "Pixel Club", ChatKind.GROUP)
ALICE = UserRef(Platform.TELEGRAM, "11", "Alice", "alice")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EXPORT = Document(b'{"format": "commops-mydata/1"}\n', "commops-mydata-1.json", "application/json")


class FakeBot:
    """Records Bot API calls; `forbidden` lists chat ids that refuse messages."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.forbidden: set[str] = set()
        self._ids = iter(range(100, 10_000))

    def _record(self, method: str, chat_id: Any = None, **kwargs: Any) -> Message:
        if str(chat_id) in self.forbidden:
            raise Forbidden("Forbidden: bot can't initiate conversation with a user")
        self.calls.append((method, {"chat_id": chat_id, **kwargs}))
        return Message(next(self._ids), NOW, Chat(int(chat_id or 0), Chat.SUPERGROUP))

    async def send_document(self, chat_id: Any, document: Any, **kwargs: Any) -> Message:
        return self._record("sendDocument", chat_id, document=document, **kwargs)

    async def send_photo(self, chat_id: Any, photo: Any, **kwargs: Any) -> Message:
        return self._record("sendPhoto", chat_id, photo=photo, **kwargs)

    async def send_message(self, chat_id: Any, text: str, **kwargs: Any) -> Message:
        return self._record("sendMessage", chat_id, text=text, **kwargs)

    async def edit_message_caption(self, **kwargs: Any) -> bool:
        self._record("editMessageCaption", **kwargs)
        return True

    async def answer_callback_query(self, callback_query_id: str, **kwargs: Any) -> bool:
        self.calls.append(("answerCallbackQuery", {"id": callback_query_id, **kwargs}))
        return True


@pytest.fixture
def bot() -> FakeBot:
    return FakeBot()


@pytest.fixture
def telegram(bot: FakeBot) -> TelegramGateway:
    return TelegramGateway(bot, backoff=0)  # type: ignore[arg-type]


def methods(bot: FakeBot) -> list[str]:
    return [name for name, _ in bot.calls]


async def test_a_document_goes_as_send_document_with_the_text_as_caption(bot, telegram):
    sent = await telegram.send(
        GROUP, OutgoingMessage("**Your data** in *Pixel Club*", document=EXPORT), reply_to="7"
    )
    [(method, call)] = bot.calls
    assert method == "sendDocument"
    assert call["chat_id"] == GROUP.chat_id
    assert call["document"] == EXPORT.content and call["filename"] == EXPORT.filename
    assert call["caption"] == "<b>Your data</b> in <i>Pixel Club</i>"
    assert call["parse_mode"] == "HTML" and call["reply_parameters"].message_id == 7
    assert sent.message_id == "100"


async def test_a_long_text_follows_the_file_and_an_image_keeps_its_caption(bot, telegram):
    long_text = "\n".join(f"line {i} " + "x" * 60 for i in range(40))  # over 1024 characters
    await telegram.send(GROUP, OutgoingMessage(long_text, document=EXPORT), reply_to="7")
    assert methods(bot) == ["sendDocument", "sendMessage"]
    document, text = bot.calls[0][1], bot.calls[1][1]
    assert document["caption"] is None and document["reply_parameters"].message_id == 7
    assert text["reply_parameters"] is None and text["text"].startswith("line 0")

    bot.calls.clear()
    chart = Image(b"\x89PNG", "chart.png")
    await telegram.send(GROUP, OutgoingMessage("Results", image=chart, document=EXPORT))
    assert methods(bot) == ["sendDocument", "sendPhoto"]
    assert bot.calls[0][1]["caption"] is None and bot.calls[1][1]["caption"] == "Results"


async def test_a_private_document_to_a_member_who_never_started_the_bot(bot, telegram):
    await telegram.send_private(ALICE, OutgoingMessage("Your data", document=EXPORT))
    assert bot.calls[-1][0] == "sendDocument" and bot.calls[-1][1]["chat_id"] == ALICE.user_id
    bot.forbidden.add(ALICE.user_id)
    with pytest.raises(PrivateMessageUnavailable):
        await telegram.send_private(ALICE, OutgoingMessage("Your data", document=EXPORT))


async def test_editing_a_message_with_a_file_edits_its_caption(bot, telegram):
    await telegram.edit(SentMessage(GROUP, "55"), OutgoingMessage("Updated", document=EXPORT))
    [(method, call)] = bot.calls
    assert method == "editMessageCaption" and call["caption"] == "Updated"


async def test_a_private_file_from_a_button_press_is_never_a_toast(bot, telegram):
    gateway = CallbackGateway(telegram, "cb-1", ALICE)
    await gateway.send(GROUP, OutgoingMessage("Here", document=EXPORT, private=True))
    assert methods(bot) == ["sendDocument"] and bot.calls[0][1]["chat_id"] == ALICE.user_id


# --- the console ----------------------------------------------------------------------------


async def test_the_console_saves_files_like_images(tmp_path: Path):
    lines: list[str] = []
    state = ConsoleState(identity="you", managers={"you"})
    gateway = ConsoleGateway(state, lines.append, images_dir=tmp_path / "out")
    await gateway.send_private(state.user("alice"), OutgoingMessage("Your data", document=EXPORT))
    saved = tmp_path / "out" / "bot-1-commops-mydata-1.json"
    assert saved.read_bytes() == EXPORT.content
    assert lines[0].splitlines()[-1].strip() == f"[file saved: {saved}]"
    assert gateway.shown[0].private_to == "alice"

    plain = ConsoleGateway(state, lines.append)
    await plain.send(CONSOLE_CHAT, OutgoingMessage("Here", document=EXPORT))
    assert lines[-1].splitlines()[-1].strip() == (
        f"[file: {EXPORT.filename}, {len(EXPORT.content)} bytes, not saved]"
    )


SCRIPT = """\
alice: hello, I'm new here
alice: /privacy
alice: /optout
alice: /mydata
alice: /forgetme
bob: /press 1
alice: /press 1
"""


@pytest.mark.usefixtures("cli_sandbox")
def test_privacy_commands_in_a_console_script(tmp_path: Path, capsys):
    (tmp_path / "chat.txt").write_text(SCRIPT, encoding="utf-8")
    assert main(["run", "--script", "chat.txt"]) == 0
    out = capsys.readouterr().out
    assert "never what your messages say" in out
    assert "You're opted out here" in out
    # The export went to alice privately and was saved where the console keeps files.
    [file] = list((tmp_path / "commops-images").glob("*-commops-mydata-console.json"))
    export = json.loads(file.read_text(encoding="utf-8"))
    assert export["member"]["user_id"] == "alice" and export["opted_out"] is True
    assert export["tables"]["memberships"][0]["opted_out_at"] is not None
    assert f"[file saved: {Path('commops-images') / file.name}]" in out
    assert "I sent you your data in a private message." in out
    # bob can't answer alice's question; alice can.
    assert "Only the member who asked can answer this." in out
    assert "Done: you're forgotten here" in out
    with sqlite3.connect(tmp_path / "commops.db") as db:
        names = [row[0] for row in db.execute("SELECT display_name FROM members")]
    assert "alice" not in names and "forgotten member" in names
