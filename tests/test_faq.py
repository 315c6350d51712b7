"""The FAQ through the dispatcher: entries, automatic answers with a cooldown, settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select

from bot.app import build_dispatcher, command_registry
from handlers.core.context import Services
from handlers.core.events import ChatKind, ChatRef, ContentKind, MessageEvent, Platform, Role
from handlers.core.render import Renderer
from handlers.core.router import Dispatcher
from handlers.faq import cache as faq_cache
from handlers.faq import commands as faq_commands
from handlers.faq.cache import CACHE
from handlers.faq.defaults import FaqDefaults
from storage import faq as store
from storage.activity import ActivityWriter, CommunityDefaults
from storage.models import Community, FaqEntry, FaqReply
from tests.fakes import CHAT, RecordingGateway, command, message, user

BOSS = user("boss")
ANN = user("ann")
BEN = user("ben")
PASSWORD = "/faq add How do I reset my password? | Settings → Account → Reset password."


@pytest.fixture(autouse=True)
def fresh_cache():
    """The FAQ cache is per process: each test starts and ends without one."""
    CACHE.clear()
    yield
    CACHE.clear()


@pytest.fixture
def managed(gateway: RecordingGateway) -> RecordingGateway:
    gateway.roles[BOSS.user_id] = Role.MANAGER
    return gateway


class SessionCounter:
    """Counts the units of work the dispatcher opens (`Database.session` calls)."""

    def __init__(self, services: Services) -> None:
        self.opened = 0
        real = services.db.session

        @asynccontextmanager
        async def counting() -> AsyncIterator[object]:
            self.opened += 1
            async with real() as session:
                yield session

        services.db.session = counting  # type: ignore[method-assign]


async def cmd(dispatcher: Dispatcher, gateway: RecordingGateway, text: str, who=BOSS) -> str:
    before = len(gateway.sent)
    await dispatcher.handle(command(who, text), gateway)
    return "\n".join(gateway.texts[before:])


async def say(
    dispatcher: Dispatcher, gateway: RecordingGateway, text: str | None, who=ANN, **kwargs
) -> list[str]:
    """A chat message at the fake clock's time; returns what the bot said to it."""
    before = len(gateway.sent)
    event = message(who, dispatcher.services.clock.now(), text=text, **kwargs)
    await dispatcher.handle(event, gateway)
    new = gateway.sent[before:]
    for sent in new:
        assert sent.reply_to == event.message_id
    return [s.text for s in new]


async def rows(db, model, **where) -> list:
    async with db.session() as session:
        return list((await session.execute(select(model).filter_by(**where))).scalars().all())


async def community_settings(db) -> dict:
    async with db.session() as session:
        found = await session.execute(select(Community.settings))
        return found.scalar_one()


# --- entries ---------------------------------------------------------------------------------


async def test_managers_add_list_show_and_remove_entries(dispatcher, managed):
    added = await cmd(dispatcher, managed, PASSWORD)
    assert "FAQ #1 added" in added
    assert "How do I reset my password?" in added and "Reset password." in added
    await cmd(
        dispatcher, managed, "/faq add 提现多久到账？；提现什么时候到 | 一般 1 到 3 个工作日。"
    )
    [first, second] = await rows(dispatcher.services.db, FaqEntry)
    assert (first.question, first.created_by, first.hits) == (
        "How do I reset my password?",
        BOSS.user_id,
        0,
    )
    assert second.answer == "一般 1 到 3 个工作日。"

    listed = await cmd(dispatcher, managed, "/faq list", who=ANN)
    assert "FAQ (2 entries)" in listed
    assert "#1 How do I reset my password? — answered 0×" in listed
    assert "#2 提现多久到账？ — answered 0×" in listed

    shown = await cmd(dispatcher, managed, "/faq show 2", who=ANN)
    assert "FAQ #2" in shown and "• 提现多久到账？" in shown and "• 提现什么时候到" in shown
    assert "一般 1 到 3 个工作日。" in shown and "added 2026-11-20" in shown

    removed = await cmd(dispatcher, managed, "/faq remove 1")
    assert "FAQ #1 removed: How do I reset my password?" in removed
    assert [e.id for e in await rows(dispatcher.services.db, FaqEntry)] == [2]
    assert "There is no FAQ entry #1 " in await cmd(dispatcher, managed, "/faq show 1")


async def test_the_list_is_paged(dispatcher, managed, monkeypatch):
    monkeypatch.setattr(faq_commands, "PAGE_SIZE", 3)
    for n in range(5):
        await cmd(dispatcher, managed, f"/faq add question number{n} topic{n} | answer {n}")
    first = await cmd(dispatcher, managed, "/faq list")
    assert "5 entries, page 1 of 2" in first and "#3 question" in first
    assert "#4" not in first and "/faq list 2" in first
    second = await cmd(dispatcher, managed, "/faq list 2")
    assert "#4 question" in second and "#5 question" in second and "#3 " not in second
    assert "/faq list 3" not in second
    assert "There is no page 3: the FAQ has 2" in await cmd(dispatcher, managed, "/faq list 3")


BAD_INPUT = [
    ("/faq add How do I reset my password?", "Put a bar between the question and the answer"),
    ("/faq add | just an answer", "The question is empty"),
    ("/faq add How do I reset my password? |   ", "The answer is empty"),
    ("/faq add", "Missing question | answer"),
    (f"/faq add {'x' * 501} | answer", "at most 500 characters"),
    (f"/faq add question words | {'y' * 1501}", "at most 1,500 characters"),
    ("/faq add how do I? | answer", "has nothing to match on"),
    ("/faq add 怎么办？ | 回答", "has nothing to match on"),
    ("/faq remove 99", "There is no FAQ entry #99 "),
    ("/faq remove one", '"one" isn\'t a whole number'),
    ("/faq show 0", "out of range"),
    ("/faq list 0", "out of range"),
]


async def test_bad_input_is_refused_and_changes_nothing(dispatcher, managed):
    assert "FAQ #1 added" in await cmd(dispatcher, managed, PASSWORD)
    for text, expected in BAD_INPUT:
        answer = await cmd(dispatcher, managed, text)
        assert expected in answer, (text, answer)
    [entry] = await rows(dispatcher.services.db, FaqEntry)
    assert (entry.question, entry.hits) == ("How do I reset my password?", 0)


async def test_a_question_asked_already_is_refused_and_a_close_one_noted(dispatcher, managed):
    await cmd(dispatcher, managed, PASSWORD)
    same = await cmd(dispatcher, managed, "/faq add HOW DO I RESET MY PASSWORD | other answer")
    assert "FAQ #1 asks the same thing" in same
    close = await cmd(dispatcher, managed, "/faq add How do I reset my password on mobile? | App")
    assert "FAQ #2 added" in close and "Close to #1 (0." in close
    assert len(await rows(dispatcher.services.db, FaqEntry)) == 2


async def test_members_cannot_change_the_faq(dispatcher, managed):
    for text in (PASSWORD, "/faq remove 1", "/faq settings threshold 0.9", "/faq test hi"):
        assert "Only the community's managers" in await cmd(dispatcher, managed, text, who=ANN)
    assert await rows(dispatcher.services.db, FaqEntry) == []


async def test_the_entry_limit_holds(dispatcher, managed, monkeypatch):
    monkeypatch.setattr(store, "MAX_ENTRIES_PER_COMMUNITY", 2)
    await cmd(dispatcher, managed, PASSWORD)
    await cmd(dispatcher, managed, "/faq add Where are the docs? | docs.example.org")
    full = await cmd(dispatcher, managed, "/faq add When is the call? | Thursdays")
    assert "has 2 FAQ entries already" in full
    assert len(await rows(dispatcher.services.db, FaqEntry)) == 2


async def test_storage_add_as_the_ama_feature_calls_it(dispatcher, managed, services):
    """`storage.faq.add` (the AMA's promotion of an answered question) keeps its signature,
    and the new entry answers members at once: committing it makes caches reload."""
    assert await say(dispatcher, managed, "hello") == []  # the empty FAQ is now cached
    async with services.db.session() as session:
        community = (await session.execute(select(Community))).scalar_one()
        entry = await store.add(
            session,
            community.id,
            question="Where is the documentation?",
            answer="docs.example.org",
            created_by=BOSS.user_id,
            now=services.clock.now(),
            source_question_id=7,
        )
    assert entry.id == 1
    [reply] = await say(dispatcher, managed, "where can I find the documentation?")
    assert "docs.example.org" in reply
    assert "from AMA question #7" in await cmd(dispatcher, managed, "/faq show 1")


# --- automatic answers -----------------------------------------------------------------------


async def test_a_matching_question_is_answered_in_reply_once_per_cooldown(
    dispatcher, managed, clock
):
    await cmd(dispatcher, managed, PASSWORD)
    [reply] = await say(dispatcher, managed, "hey, I forgot my password, how can I reset it?")
    assert "How do I reset my password?" in reply and "Settings → Account" in reply
    assert "FAQ #1, answered automatically" in reply
    db = dispatcher.services.db
    [entry] = await rows(db, FaqEntry)
    assert entry.hits == 1
    [log] = await rows(db, FaqReply)
    assert (log.faq_id, log.user_id, log.answered_at) == (1, ANN.user_id, clock.now())

    clock.advance(minutes=59)
    assert await say(dispatcher, managed, "how do i reset my password") == []
    # Another member is answered; the cooldown is per member.
    assert len(await say(dispatcher, managed, "how do i reset my password", who=BEN)) == 1
    clock.advance(minutes=2)
    assert len(await say(dispatcher, managed, "password reset??")) == 1
    [entry] = await rows(db, FaqEntry)
    assert entry.hits == 3
    assert "answered 3×" in await cmd(dispatcher, managed, "/faq list")


async def test_answers_and_cooldown_on_both_databases(any_db, clock, managed):
    writer = ActivityWriter(any_db, batch_size=100, flush_interval=0.05)
    await writer.start()
    try:
        services = Services(db=any_db, activity=writer, renderer=Renderer(), clock=clock)
        dispatcher = build_dispatcher(services)
        await cmd(dispatcher, managed, "/faq add 如何重置密码？ | 设置 → 账号 → 重置密码")
        assert len(await say(dispatcher, managed, "密码怎么重置")) == 1
        assert await say(dispatcher, managed, "请问怎么重置密码呀？") == []
        clock.advance(hours=1)
        assert len(await say(dispatcher, managed, "请问怎么重置密码呀？")) == 1
        [entry] = await rows(any_db, FaqEntry)
        assert entry.hits == 2
    finally:
        await writer.stop()


async def test_the_cooldown_survives_a_restart(dispatcher, managed, services, clock):
    await cmd(dispatcher, managed, PASSWORD)
    assert len(await say(dispatcher, managed, "how do I reset my password?")) == 1

    # A new process on the same database: new services and dispatcher, no cache, no memo.
    CACHE.clear()
    writer = ActivityWriter(services.db, batch_size=100, flush_interval=0.05)
    await writer.start()
    try:
        restarted = Services(
            db=services.db,
            activity=writer,
            renderer=Renderer(),
            clock=clock,
            defaults=CommunityDefaults("UTC", "en"),
        )
        again = build_dispatcher(restarted)
        clock.advance(minutes=30)
        assert await say(again, managed, "how do I reset my password?") == []
        clock.advance(minutes=31)
        assert len(await say(again, managed, "how do I reset my password?")) == 1
    finally:
        await writer.stop()
    [entry] = await rows(services.db, FaqEntry)
    assert entry.hits == 2


async def test_two_messages_at_once_get_one_answer(dispatcher, managed, clock):
    await cmd(dispatcher, managed, PASSWORD)
    assert await say(dispatcher, managed, "hello") == []  # warm the cache
    before = len(managed.sent)
    events = [message(ANN, clock.now(), text="how do I reset my password?") for _ in range(4)]
    await asyncio.gather(*(dispatcher.handle(e, managed) for e in events))
    assert len(managed.sent) - before == 1
    [entry] = await rows(dispatcher.services.db, FaqEntry)
    assert entry.hits == 1


async def test_managers_are_not_answered_unless_the_setting_says_so(dispatcher, managed):
    await cmd(dispatcher, managed, PASSWORD)
    assert await say(dispatcher, managed, "how do I reset my password?", who=BOSS) == []
    checks = managed.role_checks
    # Known as a manager now: the pre-filter drops the next one without asking the platform.
    assert await say(dispatcher, managed, "how do I reset my password?", who=BOSS) == []
    assert managed.role_checks == checks
    assert "Answer managers: yes" in await cmd(dispatcher, managed, "/faq settings managers on")
    assert len(await say(dispatcher, managed, "how do I reset my password?", who=BOSS)) == 1


async def test_bots_commands_private_chats_and_other_content_are_never_answered(
    dispatcher, managed, clock
):
    await cmd(dispatcher, managed, PASSWORD)
    question = "how do I reset my password?"
    bot = user("helperbot", bot=True)
    assert await say(dispatcher, managed, question, who=bot) == []
    assert await say(dispatcher, managed, f"/{question}") == []
    assert await say(dispatcher, managed, f"!{question}") == []
    private = ChatRef(Platform.CONSOLE, "ann", "ann", kind=ChatKind.PRIVATE)
    assert await say(dispatcher, managed, question, chat=private) == []
    channel = ChatRef(Platform.CONSOLE, "news", CHAT.community_id, kind=ChatKind.CHANNEL)
    assert await say(dispatcher, managed, question, chat=channel) == []
    # A Telegram command for another bot arrives as a message with COMMAND content.
    foreign = MessageEvent(
        CHAT, ANN, clock.now(), "m:foreign", "foreign", ContentKind.COMMAND, 30, question
    )
    await dispatcher.handle(foreign, managed)
    assert await say(dispatcher, managed, None) == []
    assert await say(dispatcher, managed, "reset " * 80 + "password") == []  # too long
    assert managed.sent[-1].text.startswith("✅ FAQ #1 added")
    # The same question as a plain member message is answered: the cases above were skipped.
    assert len(await say(dispatcher, managed, question)) == 1


async def test_auto_answers_can_be_switched_off(dispatcher, managed):
    await cmd(dispatcher, managed, PASSWORD)
    assert "Automatic answers: off" in await cmd(dispatcher, managed, "/faq settings auto off")
    assert await say(dispatcher, managed, "how do I reset my password?") == []
    assert "Automatic answers are off here" in await cmd(dispatcher, managed, "/faq list")
    await cmd(dispatcher, managed, "/faq settings auto on")
    assert len(await say(dispatcher, managed, "how do I reset my password?")) == 1


async def test_each_community_has_its_own_faq(dispatcher, managed):
    await cmd(dispatcher, managed, PASSWORD)
    other = ChatRef(Platform.CONSOLE, "chat-9", "community-9", "Other", ChatKind.GROUP)
    assert await say(dispatcher, managed, "how do I reset my password?", chat=other) == []
    assert len(await say(dispatcher, managed, "how do I reset my password?")) == 1
    before = len(managed.sent)
    await dispatcher.handle(command(BOSS, "/faq show 1", chat=other), managed)
    assert "There is no FAQ entry #1 " in managed.texts[before]


async def test_changes_by_another_process_are_seen_after_the_ttl(
    dispatcher, managed, services, monkeypatch
):
    """Another process adds or removes rows: this one has no change signal, so it trusts
    its copy until the TTL, and never answers from an entry that is gone."""
    now = [1000.0]
    monkeypatch.setattr(CACHE, "clock", lambda: now[0])
    await cmd(dispatcher, managed, PASSWORD)
    assert await say(dispatcher, managed, "hello") == []  # loads the FAQ after the change
    async with services.db.session() as session:  # raw SQL: no in-process change signal
        community_id = (await session.execute(select(Community.id))).scalar_one()
        await session.execute(
            insert(FaqEntry).values(
                community_id=community_id,
                question="Where is the documentation?",
                answer="docs.example.org",
                hits=0,
                created_by="other-process",
                created_at=services.clock.now(),
            )
        )
    question = "where is the documentation"
    assert await say(dispatcher, managed, question) == []
    now[0] += faq_cache.TTL
    assert len(await say(dispatcher, managed, question)) == 1

    async with services.db.session() as session:
        await session.execute(delete(FaqEntry).where(FaqEntry.id == 1))
    counter = SessionCounter(services)
    assert await say(dispatcher, managed, "how do I reset my password?") == []
    assert counter.opened == 1  # the stale copy let it through; the entry was gone
    assert await say(dispatcher, managed, "how do I reset my password?") == []
    assert counter.opened == 2  # this one reloaded the FAQ
    assert await say(dispatcher, managed, "how do I reset my password?") == []
    assert counter.opened == 2


# --- the pre-filter: no unit of work for most messages -----------------------------------------


async def test_most_messages_never_open_a_unit_of_work(dispatcher, managed, services, monkeypatch):
    monkeypatch.setattr(CACHE, "clock", lambda: 1000.0)  # no TTL reload, however slow we run
    counter = SessionCounter(services)
    # A community without an FAQ: the first message looks, the rest are dropped in memory.
    for text in ("hi all", "how do I reset my password?", "good morning"):
        assert await say(dispatcher, managed, text) == []
    assert counter.opened == 1
    assert await say(dispatcher, managed, None) == []
    assert counter.opened == 1

    await cmd(dispatcher, managed, PASSWORD)
    assert counter.opened == 2
    # The FAQ changed: the next message reloads it (and is not a question).
    assert await say(dispatcher, managed, "good morning everyone") == []
    assert counter.opened == 3
    chatter = ["lol", "see you at the meetup", "my password manager keeps crashing", "晚安"]
    for text in chatter * 25:
        assert await say(dispatcher, managed, text) == []
    assert counter.opened == 3
    assert len(await say(dispatcher, managed, "how do I reset my password?")) == 1
    assert counter.opened == 4
    # Asking again within the cooldown: the memo drops it before any I/O.
    assert await say(dispatcher, managed, "how do I reset my password?") == []
    assert counter.opened == 4


async def test_a_reload_lets_one_message_through_not_all(dispatcher, managed, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(CACHE, "clock", lambda: now[0])
    claims = [CACHE.claim_load(("console", "community-1")) for _ in range(3)]
    assert claims == [True, False, False]
    now[0] += faq_cache.LOAD_GRACE
    assert CACHE.claim_load(("console", "community-1")) is True


# --- /faq test and /faq settings --------------------------------------------------------------


async def test_faq_test_shows_the_best_three_with_scores_and_the_verdict(dispatcher, managed):
    assert "The FAQ is empty" in await cmd(dispatcher, managed, "/faq test reset my password")
    await cmd(dispatcher, managed, PASSWORD)
    await cmd(dispatcher, managed, "/faq add How do I reset my 2FA device? | Contact support.")
    await cmd(dispatcher, managed, "/faq add How do I report a bug? | GitHub issues.")
    await cmd(dispatcher, managed, "/faq add Where is the documentation? | docs.example.org")
    out = await cmd(dispatcher, managed, "/faq test how can I reset my password")
    lines = out.splitlines()
    assert lines[0] == "🔎 FAQ test (threshold 0.55)"
    assert lines[1].startswith("1. #1 How do I reset my password? — 1.00 ✅ would be answered")
    assert lines[2].startswith("2. #2 How do I reset my 2FA device? — 0.")
    assert lines[2].endswith("❌ below the threshold")
    # Three at most: the documentation entry shares nothing with the text at all.
    assert [line[:6] for line in lines[1:4]] == ["1. #1 ", "2. #2 ", "3. #3 "]
    assert "#4" not in out
    assert "Managers' own messages are not answered" in out

    out = await cmd(dispatcher, managed, "/faq test good morning")
    assert "No entry shares a word with that text" in out
    await cmd(dispatcher, managed, "/faq settings threshold 0.2")
    out = await cmd(dispatcher, managed, "/faq test reset password 2FA")
    assert "✅ would be answered" in out and "➖ above the threshold, but #" in out


async def test_settings_are_shown_changed_and_stored_per_community(dispatcher, managed):
    shown = await cmd(dispatcher, managed, "/faq settings")
    for line in (
        "Automatic answers: on",
        "Threshold: 0.55",
        "Cooldown: 1h before",
        "Answer managers: no",
        "Entries: 0",
    ):
        assert line in shown
    assert "Threshold: 0.70" in await cmd(dispatcher, managed, "/faq settings threshold 0.7")
    assert "Threshold: 0.65" in await cmd(dispatcher, managed, "/faq settings threshold 65%")
    assert "Cooldown: 2h30m" in await cmd(dispatcher, managed, "/faq settings cooldown 2h30m")
    await cmd(dispatcher, managed, "/faq settings managers on")
    await cmd(dispatcher, managed, "/faq settings auto off")
    stored = (await community_settings(dispatcher.services.db))["faq"]
    assert stored == {
        "threshold": 0.65,
        "cooldown_minutes": 150,
        "answer_managers": True,
        "enabled": False,
    }


BAD_SETTINGS = [
    ("/faq settings threshold 0", "isn't a threshold"),
    ("/faq settings threshold 1.5", "isn't a threshold"),
    ("/faq settings threshold nan", "isn't a threshold"),
    ("/faq settings threshold high", "isn't a threshold"),
    ("/faq settings cooldown 30s", "out of range"),
    ("/faq settings cooldown 8d", "out of range"),
    ("/faq settings cooldown soon", "isn't a duration"),
    ("/faq settings managers maybe", "isn't on or off"),
    ("/faq settings auto", "auto needs a value"),
    ("/faq settings colour blue", "isn't one of: threshold, cooldown, managers, auto"),
]


async def test_bad_settings_are_refused_and_change_nothing(dispatcher, managed):
    assert "Threshold: 0.55" in await cmd(dispatcher, managed, "/faq settings")
    for text, expected in BAD_SETTINGS:
        answer = await cmd(dispatcher, managed, text)
        assert expected in answer, (text, answer)
    assert "faq" not in await community_settings(dispatcher.services.db)


async def test_a_stricter_threshold_and_a_shorter_cooldown_apply_at_once(
    dispatcher, managed, clock
):
    await cmd(dispatcher, managed, PASSWORD)
    await cmd(dispatcher, managed, "/faq settings threshold 0.95")
    assert await say(dispatcher, managed, "hey, I forgot my password, how can I reset it?") == []
    await cmd(dispatcher, managed, "/faq settings threshold 0.5")
    await cmd(dispatcher, managed, "/faq settings cooldown 5m")
    assert len(await say(dispatcher, managed, "I forgot my password, how can I reset it?")) == 1
    clock.advance(minutes=5)
    assert len(await say(dispatcher, managed, "how do I reset my password?")) == 1


async def test_config_defaults_apply_until_a_community_overrides_them(
    dispatcher, managed, services
):
    services.features["faq"] = FaqDefaults(threshold=0.9, cooldown_minutes=10)
    shown = await cmd(dispatcher, managed, "/faq settings")
    assert "Threshold: 0.90" in shown and "Cooldown: 10m" in shown
    await cmd(dispatcher, managed, "/faq settings threshold 0.4")
    shown = await cmd(dispatcher, managed, "/faq settings")
    assert "Threshold: 0.40" in shown and "Cooldown: 10m" in shown


def test_hand_edited_settings_fall_back_to_the_defaults_one_key_at_a_time():
    base = FaqDefaults()
    mixed = base.with_overrides(
        {"threshold": 7, "cooldown_minutes": 5, "colour": "blue", "enabled": "maybe"}
    )
    assert (mixed.threshold, mixed.cooldown_minutes, mixed.enabled) == (0.55, 5, True)
    assert base.with_overrides("nonsense") == base


async def test_zh_replies(dispatcher, managed):
    await cmd(dispatcher, managed, "/settings language zh")
    added = await cmd(
        dispatcher, managed, "/faq add 如何重置密码？ | 打开 设置 → 账号 → 重置密码。"
    )
    assert "已添加常见问题 #1" in added
    [reply] = await say(dispatcher, managed, "请问怎么重置密码呀？")
    assert "设置 → 账号 → 重置密码。" in reply and "自动回复" in reply
    assert "已自动回复 1 次" in await cmd(dispatcher, managed, "/faq list")
    assert "会自动回复" in await cmd(dispatcher, managed, "/faq test 密码怎么重置")
    assert "请用竖线把问题和回答隔开" in await cmd(dispatcher, managed, "/faq add 没有回答")
    assert "阈值：0.55" in await cmd(dispatcher, managed, "/faq settings")


def test_every_faq_command_has_help_in_both_locales():
    renderer = Renderer()
    names = [s.name for s in command_registry() if s.name.startswith("faq ")]
    assert len(names) == 6
    for locale in ("en", "zh"):
        catalog = renderer.catalog(locale)["commands"]
        assert all(catalog.get(n, {}).get("help") for n in names), locale


def test_members_see_faq_in_the_telegram_menu():
    """Telegram's menu has one entry per group, made from its first subcommand: `list`."""
    from bot.telegram_adapter.adapter import command_menu

    members, _ = command_menu(command_registry(), Renderer(), "en")
    [faq] = [c for c in members if c.command == "faq"]
    assert faq.description.startswith("The FAQ: questions the bot answers by itself")


# --- storage: the conditional upsert on both databases ------------------------------------------


async def test_claim_reply_is_conditional_on_both_databases(any_db, clock):
    async with any_db.session() as session:
        session.add(
            Community(
                platform="console",
                external_id="c",
                timezone="UTC",
                locale="en",
                settings={},
                created_at=clock.now(),
            )
        )
        await session.flush()
        community_id = (await session.execute(select(Community.id))).scalar_one()
        entry = await store.add(
            session, community_id, question="q", answer="a", created_by="x", now=clock.now()
        )
    hour = timedelta(hours=1)
    t0 = clock.now()
    for at, expected in [
        (t0, True),
        (t0 + timedelta(minutes=59), False),
        (t0 + hour, True),
        (t0 + hour + timedelta(seconds=1), False),
    ]:
        async with any_db.session() as session:
            assert await store.claim_reply(session, entry.id, "u", now=at, cooldown=hour) is (
                expected
            ), at
    async with any_db.session() as session:
        assert await store.last_answered(session, entry.id, "u") == t0 + hour
        assert await store.remove(session, community_id, entry.id) is True
        assert await store.remove(session, community_id, entry.id) is False
        assert await store.last_answered(session, entry.id, "u") is None
