"""The raw-JSON fast path for plain messages: the same events as python-telegram-bot + translate,
on every recorded update and on generated ones; and the adapter using it in order, through
`process_raw`, polling and webhook mode against the Bot API emulator."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from telegram import Update
from telegram.ext import ExtBot

from bot.app import build_dispatcher
from bot.telegram_adapter.adapter import TelegramAdapter, TelegramSettings, build_bot
from bot.telegram_adapter.fastpath import fast_events
from bot.telegram_adapter.intake import FastUpdates, split_updates
from bot.telegram_adapter.translate import BotIdentity, translate
from handlers.core.clock import SystemClock
from handlers.core.context import HandlerContext, Services
from handlers.core.events import ButtonPressed, ContentKind, MessageEvent
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Dispatcher, Router
from storage.models import ActivityEvent, CommunityDay
from tests.telegram_emulator.fixture import (  # noqa: F401 - the fixture is used by name
    TelegramEmulator,
    telegram_api,
)

FIXTURES = Path(__file__).parent / "fixtures" / "telegram"
ME = BotIdentity(id=7700112233, username="CommOpsBot")
# A bot as the adapter builds it: de_json must give the same with it as without one.
BOT = build_bot(TelegramSettings(token="123:abc", api_base_url="http://127.0.0.1:9/bot"))

# The recorded updates that are plain messages (everything else must go the ordinary way).
FAST_FIXTURES = {
    "animation",
    "anonymous_admin_text",
    "forum_topic_message",
    "group_text",
    "photo_caption",
    "private_text",
    "reply",
    "reply_to_bot_caption",
    "sticker",
}


def raw(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def slow(data: dict[str, Any], bot: Any = None) -> list[Any]:
    """What the ordinary path makes of an update."""
    update = Update.de_json(copy.deepcopy(data), bot)
    assert update is not None
    return translate(update, ME)


# ----------------------------------------------------------------------------- recorded updates


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_every_fixture_is_fast_and_equal_or_left_to_the_slow_path(path: Path) -> None:
    data = raw(path.stem)
    fast = fast_events(data, ME)
    if path.stem in FAST_FIXTURES:
        assert fast is not None, f"{path.stem} should take the fast path"
        assert fast == slow(data) == slow(data, BOT)
        assert all(type(e) is MessageEvent for e in fast)
    else:
        assert fast is None, f"{path.stem} must go through python-telegram-bot"


def test_the_fast_fixtures_exist() -> None:
    assert {p.stem for p in FIXTURES.glob("*.json")} >= FAST_FIXTURES


def test_fast_events_do_not_touch_the_input() -> None:
    data = raw("reply")
    before = copy.deepcopy(data)
    fast_events(data, ME)
    assert data == before


def test_details_of_recorded_plain_messages() -> None:
    (anonymous,) = fast_events(raw("anonymous_admin_text"), ME) or []
    assert anonymous.actor.user_id == "-1001987654321"  # the group, not @GroupAnonymousBot
    assert anonymous.actor.is_bot is False
    (private,) = fast_events(raw("private_text"), ME) or []
    assert private.chat.kind == "private" and private.chat.title == "Carol Ng"
    (to_bot,) = fast_events(raw("reply_to_bot_caption"), ME) or []
    assert to_bot.reply_to_user_id == str(ME.id) and to_bot.content is ContentKind.PHOTO
    (topic,) = fast_events(raw("forum_topic_message"), ME) or []
    assert topic.thread_id == "12" and topic.reply_to_user_id is None


def _with(name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = raw(name)
    change(data["message"])
    return data


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("a command without entity", lambda m: m.update(text="/stats")),
        (
            "a bot_command entity anywhere",
            lambda m: m.update(entities=[{"type": "bot_command", "offset": 5, "length": 4}]),
        ),
        ("a service field", lambda m: m.update(pinned_message={"message_id": 1, "date": 0})),
        ("a poll", lambda m: m.update(poll={"id": "1"})),
        ("an unknown field", lambda m: m.update(some_future_field=True)),
        ("a channel chat", lambda m: m["chat"].update(type="channel")),
        ("an unknown chat type", lambda m: m["chat"].update(type="secret")),
        ("no sender", lambda m: m.pop("from")),
        ("a sender without first name", lambda m: m["from"].pop("first_name")),
        ("a sender without is_bot", lambda m: m["from"].pop("is_bot")),
        ("a string user id", lambda m: m["from"].update(id="5012345678")),
        ("a float date", lambda m: m.update(date=1763870000.5)),
        ("a date out of range", lambda m: m.update(date=10**20)),
        ("a list as title", lambda m: m["chat"].update(title=["x"])),
        ("a reply without chat", lambda m: m.update(reply_to_message={"message_id": 1})),
        ("malformed entities", lambda m: m.update(entities=[{"type": "bold"}])),
    ],
)
def test_anything_unusual_takes_the_slow_path(what: str, change: Any) -> None:
    assert fast_events(_with("group_text", change), ME) is None, what


@pytest.mark.parametrize(
    "update",
    [
        {"update_id": 1},
        {"update_id": 1, "message": None},
        {"update_id": "1", "message": raw("group_text")["message"]},
        {"update_id": 1, "edited_message": raw("group_text")["message"]},
        {**raw("group_text"), "callback_query": {}},
    ],
)
def test_not_a_single_plain_message_update(update: dict[str, Any]) -> None:
    assert fast_events(update, ME) is None


def test_media_without_caption_or_with_an_empty_photo_list() -> None:
    data = raw("photo_caption")
    del data["message"]["caption"]
    (event,) = fast_events(data, ME) or []
    assert event == slow(data)[0] and event.length == 0 and event.text is None
    data["message"]["photo"] = []  # nothing left that counts: translate sees a service message
    assert slow(data) == [] and fast_events(data, ME) is None


# ----------------------------------------------------------------------------- generated updates

_ASTRAL = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)  # emoji: UTF-16 pairs
_CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
_ANY = st.characters(codec=None, exclude_categories=())  # lone surrogates too, as JSON allows
TEXT = st.text(alphabet=st.one_of(_ANY, _ASTRAL, _CJK, st.sampled_from("/@# ")), max_size=40)
NAME = st.text(alphabet=st.one_of(_ANY, _ASTRAL, _CJK), max_size=12)
IDS = st.integers(min_value=1, max_value=2**52)
DATES = st.integers(min_value=0, max_value=2**32)


def _optional(draw: st.DrawFn, data: dict[str, Any], key: str, values: st.SearchStrategy) -> None:
    """Leave `key` out, set it to null, or to a drawn value."""
    choice = draw(st.sampled_from(("absent", "null", "value")))
    if choice == "null":
        data[key] = None
    elif choice == "value":
        data[key] = draw(values)


@st.composite
def users(draw: st.DrawFn, *, is_bot: bool | None = None) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": draw(IDS),
        "is_bot": draw(st.booleans()) if is_bot is None else is_bot,
        "first_name": draw(NAME),  # may be empty: full_name is then None
    }
    _optional(draw, user, "last_name", NAME)
    _optional(draw, user, "username", st.from_regex(r"[A-Za-z][A-Za-z0-9_]{4,20}", fullmatch=True))
    if draw(st.booleans()):
        user["language_code"] = draw(st.sampled_from(["en", "zh-hans", "pt-br"]))
    if draw(st.booleans()):
        user["is_premium"] = True
    return user


@st.composite
def chats(draw: st.DrawFn, kind: str | None = None) -> dict[str, Any]:
    kind = kind or draw(st.sampled_from(["group", "supergroup", "private", "channel"]))
    chat: dict[str, Any] = {"type": kind}
    if kind == "private":
        chat["id"] = draw(IDS)
        chat["first_name"] = draw(NAME)
        _optional(draw, chat, "last_name", NAME)
    else:
        chat["id"] = -draw(IDS)
        _optional(draw, chat, "title", NAME)
        if kind == "supergroup" and draw(st.booleans()):
            chat["is_forum"] = True
    _optional(draw, chat, "username", st.from_regex(r"[a-z][a-z0-9_]{4,20}", fullmatch=True))
    return chat


FILE = {"file_id": "AgAC-x", "file_unique_id": "AQAD"}
MEDIA: dict[str, Any] = {
    "photo": [FILE | {"width": 90, "height": 67}, FILE | {"width": 1280, "height": 960}],
    "animation": FILE | {"width": 320, "height": 240, "duration": 2},
    "video": FILE | {"width": 640, "height": 480, "duration": 9},
    "video_note": FILE | {"length": 240, "duration": 5},
    "voice": FILE | {"duration": 4},
    "sticker": FILE
    | {"width": 512, "height": 512, "is_animated": False, "is_video": False, "type": "regular"},
    "audio": FILE | {"duration": 180},
    "document": FILE | {"file_name": "a.pdf"},
    "contact": {"phone_number": "+8613800000000", "first_name": "Li"},
    "dice": {"emoji": "🎲", "value": 3},
    "location": {"latitude": 31.2, "longitude": 121.5},
    "venue": {"location": {"latitude": 1.0, "longitude": 2.0}, "title": "Cafe", "address": "1 St"},
}
ENTITY_TYPES = ["mention", "hashtag", "url", "bold", "italic", "code", "spoiler", "cashtag"]


@st.composite
def entities(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Formatting, links and mentions (never a bot command: see the command test)."""
    return [
        {
            "type": draw(st.sampled_from(ENTITY_TYPES)),
            "offset": draw(st.integers(0, 40)),
            "length": draw(st.integers(1, 10)),
        }
        for _ in range(draw(st.integers(0, 3)))
    ]


@st.composite
def replied_messages(draw: st.DrawFn, chat: dict[str, Any]) -> dict[str, Any]:
    """A message replied to: by a member, the bot, an anonymous admin, a channel, or a topic."""
    replied: dict[str, Any] = {"message_id": draw(IDS), "chat": chat, "date": draw(DATES)}
    author = draw(st.sampled_from(["member", "bot", "anonymous", "channel", "topic", "nobody"]))
    if author == "member":
        replied["from"] = draw(users())
    elif author == "bot":
        replied["from"] = {"id": ME.id, "is_bot": True, "first_name": "CommOps", "username": "x"}
    elif author in ("anonymous", "channel"):
        replied["from"] = {"id": 1087968824, "is_bot": True, "first_name": "Group"}
        replied["sender_chat"] = chat if author == "anonymous" else draw(chats("channel"))
    elif author == "topic":
        replied["from"] = draw(users())
        replied["forum_topic_created"] = {"name": draw(NAME), "icon_color": 7322096}
    if draw(st.booleans()):
        replied["text"] = draw(TEXT)
    return replied


@st.composite
def plain_updates(draw: st.DrawFn) -> dict[str, Any]:
    """A plain group, supergroup or private message update, as the Bot API sends them."""
    chat = draw(chats(draw(st.sampled_from(["group", "supergroup", "private"]))))
    message: dict[str, Any] = {"message_id": draw(IDS), "chat": chat, "date": draw(DATES)}
    sender = draw(st.sampled_from(["member", "member", "bot", "anonymous", "channel"]))
    if sender in ("member", "bot"):
        message["from"] = draw(users(is_bot=sender == "bot"))
    else:
        message["from"] = {"id": 1087968824, "is_bot": True, "first_name": "Group"}
        message["sender_chat"] = chat if sender == "anonymous" else draw(chats("channel"))
        if sender == "channel":
            message["is_automatic_forward"] = draw(st.booleans())
    media = draw(st.sampled_from([None, *MEDIA]))
    if media is None:
        message["text"] = draw(TEXT)
        if draw(st.booleans()):
            message["entities"] = draw(entities())
    else:
        message[media] = MEDIA[media]
        if media == "animation":  # as Telegram sends it: the animation as a document too
            message["document"] = MEDIA["document"]
        _optional(draw, message, "caption", TEXT)
        if draw(st.booleans()):
            message["caption_entities"] = draw(entities())
        if draw(st.booleans()):
            message["media_group_id"] = "13812345678901234"
    if draw(st.booleans()):
        message["reply_to_message"] = draw(replied_messages(chat))
    _optional(draw, message, "message_thread_id", st.integers(1, 10**6))
    _optional(draw, message, "is_topic_message", st.booleans())
    for key, value in (
        ("has_protected_content", True),
        ("author_signature", "Ann"),
        ("via_bot", {"id": 42, "is_bot": True, "first_name": "gif"}),
        ("link_preview_options", {"is_disabled": True}),
        ("forward_origin", {"type": "hidden_user", "date": 1, "sender_user_name": "X"}),
    ):
        if draw(st.integers(0, 4)) == 0:
            message[key] = value
    return {"update_id": draw(IDS), "message": message}


def _claimed_fast(data: dict[str, Any]) -> bool:
    """What fast_events promises to take: everything generated, except texts that look like a
    command (whose entities the generator leaves out: those go the slow way to be safe)."""
    text = data["message"].get("text")
    return text is None or not text.startswith("/")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_updates())
@example(raw("group_text"))
def test_generated_plain_messages_match_the_slow_path(data: dict[str, Any]) -> None:
    fast = fast_events(data, ME)
    if _claimed_fast(data):
        assert fast is not None
    if fast is not None:
        assert fast == slow(data)
        # Equal but not merely equal-ish: the same classes and the same aware UTC datetimes.
        [event] = fast
        [expected] = slow(data)
        assert type(event) is type(expected) and event.at.tzinfo == expected.at.tzinfo
        assert type(event.actor.is_bot) is bool


SPECIAL = {
    "new_chat_members": [{"id": 5, "is_bot": False, "first_name": "N"}],
    "left_chat_member": {"id": 5, "is_bot": False, "first_name": "N"},
    "migrate_to_chat_id": -1001,
    "migrate_from_chat_id": -1,
    "pinned_message": {"message_id": 1, "chat": {"id": -1, "type": "group"}, "date": 0},
    "new_chat_title": "t",
    "forum_topic_created": {"name": "n", "icon_color": 1},
    "poll": {
        "id": "1",
        "question": "q",
        "options": [],
        "total_voter_count": 0,
        "is_closed": False,
        "is_anonymous": True,
        "type": "regular",
        "allows_multiple_answers": False,
    },
    "edit_date": 1,
    "game": {"title": "g", "description": "d", "photo": []},
}


@settings(max_examples=150, deadline=None)
@given(plain_updates(), st.sampled_from(sorted(SPECIAL)))
def test_generated_special_messages_take_the_slow_path(data: dict[str, Any], key: str) -> None:
    data["message"][key] = SPECIAL[key]
    assert fast_events(data, ME) is None


@settings(max_examples=100, deadline=None)
@given(plain_updates())
def test_generated_commands_take_the_slow_path(data: dict[str, Any]) -> None:
    message = data["message"]
    message.pop("caption", None)
    message["text"] = "/stats 7d"
    message["entities"] = [{"type": "bot_command", "offset": 0, "length": 6}]
    assert fast_events(data, ME) is None


# ----------------------------------------------------------------------------- split


def test_split_keeps_order_and_groups_runs_of_plain_messages() -> None:
    batch = [
        raw("group_text"),
        raw("reply"),
        raw("command"),
        raw("sticker"),
        raw("chat_member_join"),
        raw("photo_caption"),
    ]
    items = split_updates(batch, BOT, ME)
    assert [type(i).__name__ for i in items] == [
        "FastUpdates",
        "Update",
        "FastUpdates",
        "Update",
        "FastUpdates",
    ]
    assert [i.update_id for i in items] == [
        batch[1]["update_id"],
        batch[2]["update_id"],
        batch[3]["update_id"],
        batch[4]["update_id"],
        batch[5]["update_id"],
    ]
    first = items[0]
    assert isinstance(first, FastUpdates)
    assert [e.key for e in first.events] == ["m:4410", "m:4412"]
    # Without knowing the bot yet, nothing is taken fast.
    assert all(isinstance(i, Update) for i in split_updates(batch, BOT, None))


class RecordedPost:
    """Stands in for `Bot._post`: records what getUpdates would send, answers a fixed batch."""

    def __init__(self, answer: list[dict[str, Any]]) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, ...]] = []

    async def __call__(self, bot: Any, endpoint: str, data: Any = None, **kwargs: Any) -> Any:
        self.calls.append((endpoint, data, sorted(kwargs.items(), key=lambda kv: kv[0])))
        return copy.deepcopy(self.answer)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"timeout": 10, "offset": 7, "allowed_updates": ["message", "chat_member"]},
        {"timeout": timedelta(seconds=5), "read_timeout": 2.5},
        {"timeout": 3, "read_timeout": None},
        {"limit": 10, "write_timeout": 1, "connect_timeout": 2, "pool_timeout": 3},
        {"api_kwargs": {"extra": 1}},
    ],
)
async def test_get_updates_asks_exactly_what_bot_get_updates_asks(
    kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = [raw("group_text"), raw("command"), raw("reply"), raw("reaction_add")]
    post = RecordedPost(batch)
    monkeypatch.setattr(ExtBot, "_post", lambda self, *a, **k: post(self, *a, **k))
    settings = TelegramSettings(token="123:abc", api_base_url="http://127.0.0.1:9/bot")
    ordinary = ExtBot("123:abc", base_url="http://127.0.0.1:9/bot")
    fast = build_bot(settings)
    fast.enable_fast_path(ME)
    expected = await ordinary.get_updates(**kwargs)
    got = await fast.get_updates(**kwargs)
    reference, ours = post.calls
    assert ours[:2] == reference[:2]  # endpoint and body
    # The read timeout is the long-poll timeout on top of the request's own, as in PTB.
    assert dict(ours[2]) == dict(reference[2])
    assert [type(i).__name__ for i in got] == ["FastUpdates", "Update", "FastUpdates", "Update"]
    assert [i.update_id for i in got] == [u.update_id for u in expected]
    assert got[1] == expected[1] and got[3] == expected[3]


# ----------------------------------------------------------------------------- the adapter

GROUP = -1001234
ALICE = TelegramEmulator.user(101, "Alice", "alice")
BOB = TelegramEmulator.user(102, "Bob", "bob")
CAROL = TelegramEmulator.user(103, "Carol")
DAVE = TelegramEmulator.user(104, "Dave")
pressed: list[ButtonPressed] = []


@pytest.fixture
def clock() -> SystemClock:
    """Updates are stamped with the real time, so /stats must read the real clock."""
    return SystemClock()


def fast_router() -> Router:
    router = Router("fastpath-test")

    @router.button("fp:")
    async def on_press(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
        pressed.append(event)
        return OutgoingMessage(f"{event.actor.display_name} pressed {event.data}")

    return router


@pytest.fixture
def dispatcher_fp(services: Services) -> Dispatcher:
    pressed.clear()
    dispatcher = build_dispatcher(services)
    dispatcher.include(fast_router())
    return dispatcher


def _settings(api: TelegramEmulator, **kwargs: Any) -> TelegramSettings:
    return TelegramSettings(
        token=api.token,
        api_base_url=api.base_url,
        api_base_file_url=api.base_file_url,
        poll_timeout=1,
        **kwargs,
    )


class PathSpy:
    """Which way each update went through the adapter, and what the dispatcher saw, in order."""

    def __init__(self, adapter: TelegramAdapter, dispatcher: Dispatcher) -> None:
        self.fast: list[str] = []
        self.slow: list[int] = []
        self.handled: list[tuple[str, str]] = []
        dispatch_fast, dispatch, handle = (
            adapter._dispatch_fast,
            adapter._dispatch,
            dispatcher.handle,
        )

        async def spy_fast(batch: FastUpdates) -> None:
            self.fast += [e.key for e in batch.events]
            await dispatch_fast(batch)

        async def spy_slow(update: Update) -> None:
            self.slow.append(update.update_id)
            await dispatch(update)

        async def spy_handle(event: Any, gateway: Any) -> Any:
            self.handled.append((type(event).__name__, event.key))
            return await handle(event, gateway)

        adapter._dispatch_fast = spy_fast  # type: ignore[method-assign]
        adapter._dispatch = spy_slow  # type: ignore[method-assign]
        dispatcher.handle = spy_handle  # type: ignore[method-assign]


def _message(message_id: int, user: dict[str, Any], text: str, **more: Any) -> dict[str, Any]:
    chat = TelegramEmulator.chat(GROUP)
    return {
        "message_id": message_id,
        "from": user,
        "chat": chat,
        "date": int(time.time()),
        "text": text,
    } | more


async def wait_for(check: Callable[[], Awaitable[Any]], what: str, limit: float = 10) -> Any:
    """Poll the emulator until `check` returns something truthy (I/O wait, not a timing test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _replies(api: TelegramEmulator, count: int) -> list[Any]:
    async def enough() -> list[Any] | None:
        found = await api.sent_messages(GROUP)
        return found if len(found) >= count else None

    return await wait_for(enough, f"{count} replies in the group")


async def test_process_raw_handles_a_mixed_batch_in_order(
    telegram_api: TelegramEmulator,  # noqa: F811
    dispatcher_fp: Dispatcher,
    services: Services,
) -> None:
    adapter = TelegramAdapter(_settings(telegram_api))
    # No getMe, no polling: the identity is given, and replies go to the emulator.
    adapter.attach(dispatcher_fp, BotIdentity(telegram_api.bot_id, telegram_api.bot_username))
    spy = PathSpy(adapter, dispatcher_fp)
    bot_message = _message(900, {"id": telegram_api.bot_id, "is_bot": True, "first_name": "B"}, "?")
    now = int(time.time())
    batch = [
        {"update_id": 1, "message": _message(1, ALICE, "hello 🦀")},
        {
            "update_id": 2,
            "message": _message(2, BOB, "hi", reply_to_message=_message(1, ALICE, "x")),
        },
        {
            "update_id": 3,
            "chat_member": {
                "chat": TelegramEmulator.chat(GROUP),
                "from": DAVE,
                "date": now,
                "old_chat_member": {"status": "left", "user": DAVE},
                "new_chat_member": {"status": "member", "user": DAVE},
            },
        },
        {"update_id": 4, "message": _message(3, CAROL, "我也是")},
        {
            "update_id": 5,
            "callback_query": {
                "id": "777",
                "from": BOB,
                "message": bot_message,
                "chat_instance": "1",
                "data": "fp:cat",
            },
        },
        {
            "update_id": 6,
            "message": _message(
                4, CAROL, "/stats", entities=[{"type": "bot_command", "offset": 0, "length": 6}]
            ),
        },
        {"update_id": 7, "message": _message(5, ALICE, "after the stats")},
    ]
    try:
        await adapter.process_raw(batch)
        assert spy.fast == ["m:1", "m:2", "m:3", "m:5"]
        assert spy.slow == [3, 5, 6]
        assert spy.handled == [
            ("MessageEvent", "m:1"),
            ("MessageEvent", "m:2"),
            ("MemberJoined", spy.handled[2][1]),
            ("MessageEvent", "m:3"),
            ("ButtonPressed", "b:777"),
            ("CommandEvent", "m:4"),
            ("MessageEvent", "m:5"),
        ]
        [press] = pressed
        assert press.actor.display_name == "Bob" and press.data == "fp:cat"
        [button_reply, stats] = await _replies(telegram_api, 2)
        assert button_reply.message["text"] == "Bob pressed fp:cat"
        # Processed in order: the stats count what came before the command, and the command.
        assert "💬 Messages: 4" in stats.message["text"]
        assert "➕ Joined: 1" in stats.message["text"]
        await services.activity.flush()
        async with services.db.session() as session:
            keys = (await session.execute(select(ActivityEvent.event_key))).scalars().all()
            replies = (
                await session.execute(select(ActivityEvent.event_key).where(ActivityEvent.is_reply))
            ).scalars()
            day = (await session.execute(select(CommunityDay))).scalar_one()
        assert {"m:1", "m:2", "m:3", "m:4", "m:5"} <= set(keys)
        assert list(replies) == ["m:2"]
        assert day.messages == 5 and day.joins == 1
    finally:
        await adapter.shutdown()


async def test_process_raw_with_plain_messages_needs_no_network(
    dispatcher_fp: Dispatcher, services: Services
) -> None:
    # Port 9 (discard) on 127.0.0.1: any call to the Bot API would fail loudly.
    adapter = TelegramAdapter(TelegramSettings(token="1:x", api_base_url="http://127.0.0.1:9/bot"))
    adapter.attach(dispatcher_fp, ME)
    spy = PathSpy(adapter, dispatcher_fp)
    await adapter.process_raw([raw(name) for name in sorted(FAST_FIXTURES)])
    assert len(spy.fast) == len(FAST_FIXTURES) and spy.slow == []
    await services.activity.flush()
    async with services.db.session() as session:
        rows = (await session.execute(select(func.count(ActivityEvent.id)))).scalar_one()
    # The private message is not community activity; every group message is recorded.
    assert rows == len(FAST_FIXTURES) - 1


@pytest.fixture
async def polling_bot(
    telegram_api: TelegramEmulator,  # noqa: F811
    dispatcher_fp: Dispatcher,
) -> AsyncIterator[tuple[TelegramAdapter, PathSpy]]:
    adapter = TelegramAdapter(_settings(telegram_api))
    spy = PathSpy(adapter, dispatcher_fp)
    await adapter.start(dispatcher_fp)
    try:
        yield adapter, spy
    finally:
        await adapter.shutdown()


async def test_polling_takes_the_fast_path_for_plain_messages(
    polling_bot: tuple[TelegramAdapter, PathSpy],
    telegram_api: TelegramEmulator,  # noqa: F811
) -> None:
    _, spy = polling_bot
    await telegram_api.send_text(ALICE, "hello everyone")
    await telegram_api.send_text(BOB, "hi 👋", reply_to=_message(1, ALICE, "hello everyone"))
    await telegram_api.send_command(CAROL, "stats")
    [stats] = await _replies(telegram_api, 1)
    assert "💬 Messages: 3" in stats.message["text"]
    assert len(spy.fast) == 2 and len(spy.slow) == 1
    assert [kind for kind, _ in spy.handled] == ["MessageEvent", "MessageEvent", "CommandEvent"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_webhook_mode_takes_the_fast_path_for_plain_messages(
    telegram_api: TelegramEmulator,  # noqa: F811
    dispatcher_fp: Dispatcher,
) -> None:
    port = _free_port()
    settings = _settings(
        telegram_api,
        mode="webhook",
        webhook_url=f"http://127.0.0.1:{port}/hook",
        listen="127.0.0.1",
        port=port,
        secret_token="s3cret-token",
    )
    adapter = TelegramAdapter(settings)
    spy = PathSpy(adapter, dispatcher_fp)
    await adapter.start(dispatcher_fp)
    try:
        hook = await telegram_api.webhook()
        assert hook is not None and hook["url"] == f"http://127.0.0.1:{port}/hook"
        wrong = await telegram_api.send_text(ALICE, "intruder", secret_token="nope")
        assert wrong["delivery"]["status"] == 403
        async with httpx.AsyncClient() as client:
            url, token = hook["url"], {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}
            garbage = await client.post(
                url, content=b"{not json", headers=token | {"Content-Type": "application/json"}
            )
            assert garbage.status_code == 400
            not_json = await client.post(url, content=b"{}", headers=token)
            assert not_json.status_code == 403  # the content type must say JSON, as in PTB
        for text in ("one", "two"):
            sent = await telegram_api.send_text(ALICE, text)
            assert sent["delivery"]["status"] == 200
        await telegram_api.send_command(BOB, "stats")
        [stats] = await _replies(telegram_api, 1)
        assert "💬 Messages: 3" in stats.message["text"]
        assert len(spy.fast) == 2 and len(spy.slow) == 1
    finally:
        await adapter.shutdown()
