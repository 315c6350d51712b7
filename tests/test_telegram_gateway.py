"""The Telegram gateway against an in-process fake `Bot` (the HTTP end-to-end suite is separate)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from telegram import Chat, ChatMember, ChatMemberAdministrator, ChatMemberOwner, Message, Poll
from telegram.error import BadRequest, Forbidden, RetryAfter, TimedOut

from bot.telegram_adapter.gateway import TelegramGateway, split_for_telegram
from handlers.core.events import ChatKind, ChatRef, Platform, Role, UserRef
from handlers.core.gateway import GatewayError, PrivateMessageUnavailable
from handlers.core.markup import escape
from handlers.core.outgoing import Button, Image, OutgoingMessage, OutgoingPoll, SentMessage

GROUP = ChatRef(Platform.TELEGRAM, "-1001234", "-1001234", "Pixel Club", ChatKind.GROUP)
ALICE = UserRef(Platform.TELEGRAM, "11", "Alice", "alice")
BOSS = UserRef(Platform.TELEGRAM, "22", "Boss", "boss")
OWNER = UserRef(Platform.TELEGRAM, "33", "Owner", None)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class FakeBot:
    """Records Bot API calls; `fail` maps a method name to exceptions to raise in turn."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, list[Exception]] = {}
        self.admins: list[Any] = []
        self._ids = iter(range(100, 10_000))

    def _record(self, method: str, **kwargs: Any) -> None:
        self.calls.append((method, kwargs))
        pending = self.fail.get(method)
        if pending:
            raise pending.pop(0)

    def _message(self, chat_id: Any, **extra: Any) -> Message:
        chat = Chat(int(chat_id), Chat.SUPERGROUP)
        return Message(next(self._ids), NOW, chat, **extra)

    async def send_message(self, chat_id: Any, text: str, **kwargs: Any) -> Message:
        self._record("sendMessage", chat_id=chat_id, text=text, **kwargs)
        return self._message(chat_id)

    async def send_photo(self, chat_id: Any, photo: bytes, **kwargs: Any) -> Message:
        self._record("sendPhoto", chat_id=chat_id, photo=photo, **kwargs)
        return self._message(chat_id)

    async def edit_message_text(self, text: str, **kwargs: Any) -> Any:
        self._record("editMessageText", text=text, **kwargs)
        return True

    async def edit_message_caption(self, **kwargs: Any) -> Any:
        self._record("editMessageCaption", **kwargs)
        return True

    async def send_poll(self, chat_id: Any, question: str, options: list[str], **kw: Any) -> Any:
        self._record("sendPoll", chat_id=chat_id, question=question, options=options, **kw)
        # Built from JSON as the Bot API sends it, so PTB's own parsing is exercised.
        poll = Poll.de_json(
            {
                "id": "poll-1",
                "question": question,
                "options": [
                    {"text": o, "voter_count": 0, "persistent_id": str(i)}
                    for i, o in enumerate(options)
                ],
                "total_voter_count": 0,
                "is_closed": False,
                "is_anonymous": bool(kw.get("is_anonymous")),
                "type": "regular",
                "allows_multiple_answers": bool(kw.get("allows_multiple_answers")),
                "allows_revoting": True,
                "members_only": False,
            },
            None,
        )
        return self._message(chat_id, poll=poll)

    async def stop_poll(self, chat_id: Any, message_id: int) -> Any:
        self._record("stopPoll", chat_id=chat_id, message_id=message_id)

    async def get_chat_administrators(self, chat_id: Any) -> list[Any]:
        self._record("getChatAdministrators", chat_id=chat_id)
        return self.admins

    async def get_chat_member_count(self, chat_id: Any) -> int:
        self._record("getChatMemberCount", chat_id=chat_id)
        return 42


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def bot() -> FakeBot:
    return FakeBot()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway(bot: FakeBot, clock: Clock) -> TelegramGateway:
    return TelegramGateway(bot, backoff=0, monotonic=clock)  # type: ignore[arg-type]


def _admin(user: UserRef, owner: bool = False) -> Any:
    """A chat member as `getChatAdministrators` returns it."""
    member = {"user": {"id": int(user.user_id), "is_bot": False, "first_name": user.display_name}}
    if owner:
        return ChatMember.de_json({**member, "status": "creator", "is_anonymous": False}, None)
    rights = dict.fromkeys(
        [
            "can_be_edited",
            "is_anonymous",
            "can_manage_chat",
            "can_delete_messages",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_promote_members",
            "can_change_info",
            "can_invite_users",
            "can_post_stories",
            "can_edit_stories",
            "can_delete_stories",
        ],
        False,
    )
    return ChatMember.de_json({**member, "status": "administrator", **rights}, None)


async def test_text_is_sent_as_escaped_html_with_keyboard_and_reply(gateway, bot):
    text = f"**Giveaway** for {escape('<b>Bob</b> & *co*')}"
    message = OutgoingMessage(text, buttons=((Button("Enter", "giveaway:enter:1"),),))
    sent = await gateway.send(GROUP, message, reply_to="77")
    method, call = bot.calls[0]
    assert method == "sendMessage"
    assert call["text"] == "<b>Giveaway</b> for &lt;b&gt;Bob&lt;/b&gt; &amp; *co*"
    assert call["parse_mode"] == "HTML"
    assert call["reply_parameters"].message_id == 77
    assert call["reply_markup"].inline_keyboard[0][0].callback_data == "giveaway:enter:1"
    assert sent == SentMessage(GROUP, "100")


async def test_long_text_is_split_at_line_breaks_never_trimmed(gateway, bot):
    lines = [f"line {i} " + "x" * 90 for i in range(120)]
    await gateway.send(GROUP, OutgoingMessage("\n".join(lines), buttons=((Button("Ok", "k"),),)))
    texts = [c["text"] for m, c in bot.calls]
    assert len(texts) > 1 and all(len(t) <= 4096 for t in texts)
    assert "\n".join(texts).split("\n") == lines
    markups = [c["reply_markup"] for _, c in bot.calls]
    assert markups[:-1] == [None] * (len(markups) - 1) and markups[-1] is not None


def test_a_single_overlong_line_is_cut_into_pieces_that_fit():
    pieces = split_for_telegram("&" * 5000)  # each & becomes &amp; in HTML
    assert "".join(pieces) == "&" * 5000
    assert all(len(p.replace("&", "&amp;")) <= 4096 for p in pieces)


async def test_chart_is_a_photo_with_caption_or_photo_then_text(gateway, bot):
    png = b"\x89PNG fake"
    await gateway.send(GROUP, OutgoingMessage("**Daily** summary", image=Image(png)))
    assert bot.calls[0][0] == "sendPhoto"
    assert bot.calls[0][1]["caption"] == "<b>Daily</b> summary"
    bot.calls.clear()
    await gateway.send(GROUP, OutgoingMessage("y" * 2000, image=Image(png)))
    assert [m for m, _ in bot.calls] == ["sendPhoto", "sendMessage"]
    assert bot.calls[0][1]["caption"] is None


async def test_network_errors_are_retried_then_reported(gateway, bot):
    bot.fail["sendMessage"] = [TimedOut(), TimedOut()]
    await gateway.send(GROUP, OutgoingMessage("hi"))
    assert len(bot.calls) == 3
    bot.calls.clear()
    bot.fail["sendMessage"] = [TimedOut()] * 4
    with pytest.raises(GatewayError, match="sendMessage"):
        await gateway.send(GROUP, OutgoingMessage("hi"))
    assert len(bot.calls) == 4  # the first try and three retries


async def test_bad_requests_are_not_retried(gateway, bot):
    bot.fail["sendMessage"] = [BadRequest("Chat not found")]
    with pytest.raises(GatewayError, match="Chat not found"):
        await gateway.send(GROUP, OutgoingMessage("hi"))
    assert len(bot.calls) == 1


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_retry_after_is_honoured(gateway, bot):
    bot.fail["sendMessage"] = [RetryAfter(0)]
    await gateway.send(GROUP, OutgoingMessage("hi"))
    assert len(bot.calls) == 2


async def test_private_message_to_a_member_who_never_started_the_bot(gateway, bot):
    bot.fail["sendMessage"] = [Forbidden("Forbidden: bot can't initiate conversation")]
    with pytest.raises(PrivateMessageUnavailable):
        await gateway.send_private(ALICE, OutgoingMessage("You're in"))
    await gateway.send_private(ALICE, OutgoingMessage("You're in"))
    assert bot.calls[-1][1]["chat_id"] == "11"


async def test_edit_ignores_unchanged_content(gateway, bot):
    sent = SentMessage(GROUP, "100")
    bot.fail["editMessageText"] = [BadRequest("Message is not modified")]
    await gateway.edit(sent, OutgoingMessage("same"))
    await gateway.edit(sent, OutgoingMessage("**new**"))
    assert bot.calls[-1][1]["text"] == "<b>new</b>"


async def test_native_polls_and_their_limits(gateway, bot):
    sent = await gateway.send_poll(GROUP, OutgoingPoll("Lunch?", ("Pizza", "Sushi"), True))
    assert sent.poll_id == "poll-1"
    assert bot.calls[0][1]["allows_multiple_answers"] is True
    await gateway.close_poll(sent)
    assert bot.calls[-1] == ("stopPoll", {"chat_id": GROUP.chat_id, "message_id": 100})
    with pytest.raises(GatewayError, match="2 to 12 options"):
        await gateway.send_poll(GROUP, OutgoingPoll("?", tuple(str(i) for i in range(13))))


async def test_roles_come_from_administrators_cached_then_refreshed(gateway, bot, clock):
    bot.admins = [_admin(OWNER, owner=True), _admin(BOSS)]
    assert isinstance(bot.admins[0], ChatMemberOwner)
    assert isinstance(bot.admins[1], ChatMemberAdministrator)
    assert await gateway.role_of(GROUP, OWNER) == Role.OWNER
    assert await gateway.role_of(GROUP, BOSS) == Role.MANAGER
    assert await gateway.role_of(GROUP, ALICE) == Role.MEMBER
    assert [m for m, _ in bot.calls] == ["getChatAdministrators"]  # one call, cached
    bot.admins = [_admin(OWNER, owner=True)]
    gateway.forget_admins(GROUP.chat_id)  # a chat_member update demoted Boss
    assert await gateway.role_of(GROUP, BOSS) == Role.MEMBER
    bot.admins = [_admin(OWNER, owner=True), _admin(ALICE)]
    clock.now += 301  # the cache expires on its own too
    assert await gateway.role_of(GROUP, ALICE) == Role.MANAGER
    assert len(bot.calls) == 3


async def test_private_chats_and_anonymous_admins(gateway, bot):
    dm = ChatRef(Platform.TELEGRAM, "11", "11", None, ChatKind.PRIVATE)
    assert await gateway.role_of(dm, ALICE) == Role.MEMBER
    as_group = UserRef(Platform.TELEGRAM, GROUP.chat_id, "Pixel Club", None)
    assert await gateway.role_of(GROUP, as_group) == Role.MANAGER
    assert bot.calls == []


async def test_oversized_button_data_is_refused(gateway):
    with pytest.raises(GatewayError, match="64 bytes"):
        await gateway.send(GROUP, OutgoingMessage("x", buttons=((Button("b", "é" * 40),),)))


async def test_member_count(gateway):
    assert await gateway.member_count(GROUP) == 42


class CallbackBot(FakeBot):
    async def answer_callback_query(self, callback_query_id: str, **kwargs: Any) -> bool:
        self._record("answerCallbackQuery", callback_query_id=callback_query_id, **kwargs)
        return True


async def test_a_private_reply_to_a_press_is_the_press_answer(clock):
    from bot.telegram_adapter.gateway import CallbackGateway

    bot = CallbackBot()
    base = TelegramGateway(bot, backoff=0, monotonic=clock)  # type: ignore[arg-type]
    press = CallbackGateway(base, "cb-1", ALICE)
    assert press.capabilities.ephemeral
    await press.send(GROUP, OutgoingMessage("✅ You're **in**!", private=True))
    assert bot.calls[-1] == (
        "answerCallbackQuery",
        {"callback_query_id": "cb-1", "text": "✅ You're in!", "show_alert": False},
    )
    assert press.answered
    # A second private reply can't be another answer: it goes to the member privately...
    await press.send(GROUP, OutgoingMessage("Details follow", private=True))
    assert bot.calls[-1][0] == "sendMessage" and bot.calls[-1][1]["chat_id"] == ALICE.user_id
    # ...or to the chat when the member never started the bot.
    bot.fail["sendMessage"] = [Forbidden("bot can't initiate conversation")]
    await press.send(GROUP, OutgoingMessage("x" * 300, private=True))
    assert bot.calls[-1][1]["chat_id"] == GROUP.chat_id
    # Public replies are unchanged.
    await press.send(GROUP, OutgoingMessage("Everyone sees this"))
    assert bot.calls[-1][1]["text"] == "Everyone sees this"
