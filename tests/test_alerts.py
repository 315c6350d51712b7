"""Alerts on the message path: watched words and negative spikes, rate-limited, to the managers'
chat; `/watch`; the pre-filter that keeps plain messages off the database; summary lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from handlers import settings as settings_feature
from handlers.alerts import commands as alert_commands
from handlers.alerts import summary_lines
from handlers.alerts.lifecycle import refresh
from handlers.alerts.state import FLUSH_EVERY, REGISTRY
from handlers.alerts.watch import flush
from handlers.core.context import Services
from handlers.core.events import ChatKind, ChatRef, Platform, Role
from handlers.core.markup import mentioned_ids
from handlers.core.router import Dispatcher
from storage import alerts as store
from storage.models import AlertRecord, Community, Member, Membership
from tests.fakes import CHAT, T0, FakeClock, RecordingGateway, command, message, user

BOSS = user("boss")
ANN = user("ann")
BEN = user("ben")
MANAGERS = ChatRef(Platform.CONSOLE, "managers", CHAT.community_id, "Managers", ChatKind.GROUP)
OTHER = ChatRef(Platform.CONSOLE, "elsewhere", "community-2", "Elsewhere", ChatKind.GROUP)


@pytest.fixture(autouse=True)
def fresh_registry():
    """The registry is per process: each test starts and ends without one."""
    REGISTRY.clear()
    yield
    REGISTRY.clear()


@pytest.fixture
def managed(gateway: RecordingGateway, services: Services) -> RecordingGateway:
    gateway.roles[BOSS.user_id] = Role.MANAGER
    services.gateways.register(gateway)
    return gateway


class Sessions:
    """Counts the units of work opened (`Database.session` calls)."""

    def __init__(self, services: Services) -> None:
        self.opened = 0
        real = services.db.session

        @asynccontextmanager
        async def counting() -> AsyncIterator[object]:
            self.opened += 1
            async with real() as session:
                yield session

        services.db.session = counting  # type: ignore[method-assign]


async def cmd(dispatcher: Dispatcher, gateway, text: str, *, who=BOSS, chat=CHAT) -> str:
    before = len(gateway.sent)
    await dispatcher.handle(command(who, text, dispatcher.services.clock.now(), chat=chat), gateway)
    return "\n".join(gateway.texts[before:])


async def say(dispatcher: Dispatcher, gateway, text: str, who=ANN, chat=CHAT) -> list[str]:
    """A member's message at the clock's time; returns what went to the managers' chat."""
    before = len(gateway.sent)
    event = message(who, dispatcher.services.clock.now(), text=text, chat=chat)
    await dispatcher.handle(event, gateway)
    new = gateway.sent[before:]
    assert all(s.chat.chat_id == MANAGERS.chat_id for s in new), "an alert left the managers"
    return [s.text for s in new]


async def alerts(services: Services) -> list[AlertRecord]:
    async with services.db.session() as session:
        query = select(AlertRecord).order_by(AlertRecord.id)
        return list((await session.execute(query)).scalars())


async def with_managers_chat(dispatcher: Dispatcher, gateway) -> None:
    assert "Managers" in await cmd(dispatcher, gateway, "/settings managers here", chat=MANAGERS)


# --- watched words ----------------------------------------------------------------------------


async def test_a_watched_word_is_one_alert_per_cooldown_with_its_count_growing(
    dispatcher, managed, services, clock: FakeClock
):
    await with_managers_chat(dispatcher, managed)
    reply = await cmd(dispatcher, managed, "/watch add scam, 退款")
    assert "Now watching “scam”, “退款”" in reply and "Alerts go to Managers." in reply

    [alert] = await say(dispatcher, managed, "honestly this looks like a SCAM to me")
    assert alert == "🚨 Watched word “scam”: 1 message with it, in Test *Group*, from @ann."
    assert "honestly" not in alert  # never the message text
    # Width and case folded; more hits within the cooldown add up without a message.
    for who in (BEN, ANN, BEN):
        clock.advance(minutes=1)
        assert await say(dispatcher, managed, "ｓｃａｍ!!", who=who) == []
    [row] = await alerts(services)
    assert (row.kind, row.subject, row.count) == ("word", "scam", 4)
    assert row.notified_at == T0 and row.last_at == T0 + timedelta(minutes=3)
    assert row.detail["chats"] == [{"id": "chat-1", "title": "Test *Group*"}]
    assert "ann" not in str(row.detail)  # who is named only in the message sent

    # An hour after the alert, the next hit sends one "still going" note...
    clock.set(T0 + timedelta(minutes=61))
    [note] = await say(dispatcher, managed, "scam scam scam", who=BEN)
    assert note == (
        "🚨 Still going: “scam” in 4 more messages since 12:00 (5 since 12:00), "
        "the latest from @ben."
    )
    clock.advance(minutes=1)
    assert await say(dispatcher, managed, "scam") == []
    [row] = await alerts(services)
    assert row.count == 6

    # ...and after an hour of quiet, a new hit is a new alert. Chinese matches across spaces.
    clock.advance(hours=2)
    [again] = await say(dispatcher, managed, "我要 退 款")
    assert again == "🚨 Watched word “退款”: 1 message with it, in Test *Group*, from @ann."
    assert [(a.subject, a.count) for a in await alerts(services)] == [("scam", 6), ("退款", 1)]


async def test_plain_messages_never_open_a_unit_of_work(managed, services, clock):
    # Only this feature's router (and /settings): other features' pre-filters (the FAQ
    # loads a community's entries on its first message) are theirs to count.
    dispatcher = Dispatcher(services)
    dispatcher.include(settings_feature.router)
    dispatcher.include(alert_commands.router)
    await with_managers_chat(dispatcher, managed)
    await cmd(dispatcher, managed, "/watch add scam")
    counter = Sessions(services)
    chatter = ["hello everyone", "good morning", "晚安", "see you at the meetup", "nice!"]
    for text in chatter * 40:
        assert await say(dispatcher, managed, text) == []
    # Another community, watched by nobody: not even a sentiment score.
    for text in ("scam", "terrible awful scam", "垃圾骗子"):
        await dispatcher.handle(message(ANN, clock.now(), text=text, chat=OTHER), managed)
    assert counter.opened == 0

    assert len(await say(dispatcher, managed, "is this a scam?")) == 1
    assert counter.opened == 1
    # A storm within seconds: counted in memory, written by the next let-through message.
    for _ in range(50):
        assert await say(dispatcher, managed, "scam", who=BEN) == []
    assert counter.opened == 1
    clock.advance(FLUSH_EVERY)
    assert await say(dispatcher, managed, "scam") == []
    assert counter.opened == 2
    [row] = await alerts(services)
    assert row.count == 52


async def test_a_storm_that_stops_is_written_by_the_periodic_flush(
    dispatcher, managed, services, clock
):
    await with_managers_chat(dispatcher, managed)
    await cmd(dispatcher, managed, "/watch add airdrop")
    await say(dispatcher, managed, "airdrop?")
    for _ in range(9):  # (a word that reads neutral: no negative spike lets one through)
        await say(dispatcher, managed, "where is the airdrop", who=BEN)
    assert (await alerts(services))[0].count == 1
    assert await flush(services) == 0  # written; nothing new to tell within the cooldown
    [row] = await alerts(services)
    assert row.count == 10 and row.detail["window"] == 10
    assert await flush(services) == 0  # nothing pending any more
    assert (await alerts(services))[0].count == 10


async def test_messages_in_the_managers_chat_and_commands_raise_nothing(
    dispatcher, managed, services
):
    await with_managers_chat(dispatcher, managed)
    await cmd(dispatcher, managed, "/watch add scam")
    assert await say(dispatcher, managed, "did you see that scam?", chat=MANAGERS) == []
    assert await say(dispatcher, managed, "/scam report") == []
    assert await say(dispatcher, managed, "scam", who=user("helper", bot=True)) == []
    assert await alerts(services) == []


async def test_members_who_opted_out_are_counted_not_named(dispatcher, managed, services, clock):
    await with_managers_chat(dispatcher, managed)
    await cmd(dispatcher, managed, "/watch add refund")
    await say(dispatcher, managed, "hi", who=BEN)
    await services.activity.flush()
    async with services.db.session() as session:
        ben = (await session.execute(select(Member.id).where(Member.external_id == "ben"))).scalar()
        await session.execute(
            update(Membership).where(Membership.member_id == ben).values(opted_out_at=T0)
        )
    [alert] = await say(dispatcher, managed, "I want a refund", who=BEN)
    assert alert.endswith("from 1 member who opted out of being named.")
    assert "ben" not in alert.lower()


async def test_without_a_managers_chat_alerts_are_recorded_then_sent_once_there_is_one(
    dispatcher, managed, services, clock
):
    reply = await cmd(dispatcher, managed, "/watch add scam")
    assert "Alerts need a managers' chat" in reply and "/settings managers here" in reply
    assert await say(dispatcher, managed, "scam!") == []
    [row] = await alerts(services)
    assert (row.count, row.notified_at) == (1, None)
    listing = await cmd(dispatcher, managed, "/watch")
    assert "Latest alerts" in listing and "watched word “scam”: 1 message" in listing

    await with_managers_chat(dispatcher, managed)
    await refresh(services)  # what the periodic reload does for `/settings managers here`
    clock.advance(minutes=5)
    [alert] = await say(dispatcher, managed, "another scam", who=BEN)
    assert alert.startswith("🚨 Watched word “scam”: 2 messages with it")
    assert "from @ben" in alert


async def test_an_alert_that_cannot_be_sent_is_tried_again(dispatcher, managed, services, clock):
    await with_managers_chat(dispatcher, managed)
    await cmd(dispatcher, managed, "/watch add scam")
    managed.fail_sends = True
    assert await say(dispatcher, managed, "scam") == []
    [row] = await alerts(services)
    assert row.notified_at is None  # the claim was given back
    managed.fail_sends = False
    clock.advance(FLUSH_EVERY)
    [alert] = await say(dispatcher, managed, "scam", who=BEN)
    assert alert.startswith("🚨 Watched word “scam”: 2 messages with it")


# --- negative spikes --------------------------------------------------------------------------


async def test_a_spike_of_negative_messages_raises_one_alert(dispatcher, managed, services, clock):
    await with_managers_chat(dispatcher, managed)
    await refresh(services)
    for text in ["hello", "when is the AMA?", "good morning", "新功能很好用", "thanks!"] * 2:
        assert await say(dispatcher, managed, text) == []
        clock.advance(seconds=20)
    complaints = [
        "this update is terrible",
        "客服根本不回消息，太失望了",
        "the app keeps crashing, so annoying",
        "又卡又慢，烦死了",
    ]
    for text in complaints:
        assert await say(dispatcher, managed, text, who=BEN) == []  # 4 of 14: not yet
    [alert] = await say(dispatcher, managed, "I want a refund, this is a scam")
    assert alert == (
        "😟 Negative messages are piling up: 5 of the last 15 messages in 10 minutes (33%) "
        "read as negative, most in Test *Group*."
    )
    for text in ["worst support ever", "not good at all"]:
        clock.advance(seconds=20)
        assert await say(dispatcher, managed, text) == []
    await flush(services)
    [row] = await alerts(services)
    assert (row.kind, row.count, row.detail["negative"]) == ("negative", 7, 7)

    # The spike ends when the window moves on; a later spike within the hour adds to it.
    clock.advance(minutes=11)
    for text in ["hi", "ok"]:
        await say(dispatcher, managed, text)
    assert REGISTRY.get(("console", CHAT.community_id)).in_spike is False


async def test_negative_messages_spread_out_or_diluted_are_no_spike(
    dispatcher, managed, services, clock
):
    await with_managers_chat(dispatcher, managed)
    await refresh(services)
    for _ in range(8):  # one complaint every 3 minutes: never 5 within 10 minutes
        assert await say(dispatcher, managed, "this is terrible") == []
        clock.advance(minutes=3)
    clock.advance(minutes=10)  # those left the window
    for _ in range(20):
        await say(dispatcher, managed, "hello there")
    for _ in range(6):  # 6 of 30: 20%, under the share
        assert await say(dispatcher, managed, "so annoying") == []
    assert await alerts(services) == []


# --- /watch -----------------------------------------------------------------------------------


async def test_watch_lists_adds_and_removes_words(dispatcher, managed, services):
    shown = await cmd(dispatcher, managed, "/watch")
    assert shown.startswith("👀 Watch list\nWatch words (0): none yet")
    assert "spikes of negative messages (at least 5, and 30% of all messages" in shown
    assert "No alerts in the last 7 days." in shown

    added = await cmd(dispatcher, managed, "/watch add Rug Pull, ＳＣＡＭ、退款")
    assert added.startswith(
        "👀 Now watching “rug pull”, “scam”, “退款”: a member's message with one"
    )
    again = await cmd(dispatcher, managed, "/watch add scam")
    assert again.startswith("👀 Already watched: “scam”.")
    removed = await cmd(dispatcher, managed, "/watch remove SCAM")
    assert removed.startswith("👀 No longer watching “scam”.")
    assert "Watch words (2): “rug pull”, “退款”" in removed
    async with services.db.session() as session:
        settings = (await session.execute(select(Community.settings))).scalar_one()
    assert settings["watch"] == ["rug pull", "退款"]

    assert (await cmd(dispatcher, managed, "/watch remove nope")).startswith(
        "⚠️ Not watched here: “nope”."
    )
    assert (await cmd(dispatcher, managed, "/watch add !!!")).startswith(
        '⚠️ "!!!" can\'t be watched'
    )
    assert "Only the community's managers" in await cmd(
        dispatcher, managed, "/watch add x", who=ANN
    )
    # Nothing above changed the words by mistake, and the registry follows the settings.
    assert REGISTRY.get(("console", CHAT.community_id)).words == ("rug pull", "退款")
    await cmd(dispatcher, managed, "/watch remove rug pull, 退款")
    assert REGISTRY.get(("console", CHAT.community_id)) is None  # nothing left to watch


async def test_watch_and_alerts_in_chinese(dispatcher, managed, services, clock):
    await with_managers_chat(dispatcher, managed)
    await cmd(dispatcher, managed, "/settings language zh")
    added = await cmd(dispatcher, managed, "/watch add 骗子")
    assert added.startswith("👀 已开始监控 “骗子”：成员消息中出现该词时会发出预警。")
    assert "预警会发送到 Managers。" in added
    [alert] = await say(dispatcher, managed, "这人是骗子吧")
    assert alert == "🚨 监控词 “骗子”：出现在 1 条消息中，位置：Test *Group*，发送者：@ann。"
    shown = await cmd(dispatcher, managed, "/watch")
    assert "👀 舆情监控" in shown and "最近的预警" in shown and "监控词 “骗子”：1 条消息" in shown


# --- storage: the rate limit itself, on both databases -----------------------------------------


async def test_record_claims_one_notice_per_cooldown(any_db):
    async with any_db.session() as session:
        session.add(
            Community(
                platform="console", external_id="c", timezone="UTC", locale="en",
                settings={}, created_at=T0,
            )
        )  # fmt: skip
    hour = timedelta(hours=1)

    async def hit(minutes: float, notify: bool = True, **kw) -> store.Recorded | None:
        async with any_db.session() as session:
            return await store.record(
                session, 1, "word", "scam", now=T0 + timedelta(minutes=minutes), count=1,
                detail={"chats": [{"id": "c", "title": "C"}]}, cooldown=hour, notify=notify, **kw,
            )  # fmt: skip

    first = await hit(0)
    assert first is not None and (first.notice, first.more) == (store.Notice.FIRST, 1)
    assert [(await hit(m)).notice for m in (10, 30, 59)] == [None, None, None]
    again = await hit(61)
    assert (again.notice, again.more, again.alert.count) == (store.Notice.AGAIN, 4, 5)
    assert (await hit(62)).notice is None
    fresh = await hit(200)  # after an hour of quiet: a new alert row
    assert fresh.notice is store.Notice.FIRST and fresh.alert.id != first.alert.id
    # Nobody to tell: recorded without a claim, so the next hit with someone to tell tells.
    silent = await hit(500, notify=False)
    assert silent.notice is None and silent.alert.notified_at is None
    told = await hit(501)
    assert (told.notice, told.more) == (store.Notice.FIRST, 2)
    # A claim given back is claimed again by the next hit.
    async with any_db.session() as session:
        await store.unclaim(session, told.alert.id, notified_at=None, noticed=0)
    assert (await hit(502)).notice is store.Notice.FIRST
    # Hits that must count once (an hour checked twice) do.
    assert (await hit(600, once_key="h13")) is not None
    assert await hit(601, once_key="h13") is None
    async with any_db.session() as session:
        rows = await store.between(session, 1, T0, T0 + timedelta(days=1))
    assert [r.count for r in rows] == [6, 1, 3, 1]


async def test_the_registry_loads_watched_communities_from_the_database(any_db):
    settings = {
        "words": {"watch": ["scam"]},
        "managers": {"managers_chat": {"id": "m", "title": "Managers"}},
        "neither": {"posts_words": {"added": ["watch"]}},
        "empty": {},
    }
    async with any_db.session() as session:
        for name, value in settings.items():
            session.add(
                Community(
                    platform="console", external_id=name, timezone="UTC", locale="en",
                    settings=value, created_at=T0,
                )
            )  # fmt: skip
        session.add(
            Community(
                platform="console", external_id="removed", timezone="UTC", locale="en",
                settings={"watch": ["x"]}, created_at=T0, removed_at=T0,
            )
        )  # fmt: skip
    services = Services(db=any_db, activity=None, renderer=None, clock=FakeClock())  # type: ignore[arg-type]
    assert await refresh(services) == 2
    assert REGISTRY.get(("console", "words")).words == ("scam",)
    assert REGISTRY.get(("console", "managers")).managers_chat == "m"
    assert REGISTRY.get(("console", "neither")) is None  # "watch" in a value is not the key


# --- the daily summary ------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_summary_lines_list_the_days_alerts(db, locale):
    async with db.session() as session:
        community = Community(
            platform="console", external_id="c", timezone="Europe/Berlin", locale=locale,
            settings={}, created_at=T0,
        )  # fmt: skip
        session.add(community)
        await session.flush()
        day = T0.date()
        for kind, subject, minutes, count, detail in [
            ("word", "scam", 0, 14, {}),
            ("negative", "messages", 30, 9, {}),
            ("surge", "activity", 120, 2, {"hour": 14, "messages": 180, "baseline": 40.0}),
            ("word", "old", -60 * 24, 3, {}),
        ]:
            at = T0 + timedelta(minutes=minutes)
            session.add(
                AlertRecord(
                    community_id=community.id, kind=kind, subject=subject, first_at=at,
                    last_at=at + timedelta(minutes=5), count=count, detail=detail,
                )
            )  # fmt: skip
        await session.flush()
        lines = await summary_lines(session, community, day, locale)
        none = await summary_lines(session, community, day + timedelta(days=3), locale)
    expected = {
        "en": [
            "🚨 Watched word “scam”: 14 messages, 13:00–13:05",
            "😟 Negative messages piled up: 9, 13:30–13:35",
            "📈 Activity surge: 2 unusual hours, the latest 14:00–15:00 with 180 messages "
            "(usually 40)",
        ],
        "zh": [
            "🚨 监控词 “scam”：14 条消息，13:00–13:05",
            "😟 负面消息激增：9 条，13:30–13:35",
            "📈 活跃度激增：2 个小时异常，最近的 14:00–15:00 共 180 条（平时 40 条）",
        ],
    }[locale]
    assert lines == expected
    assert none == []


def test_templates_and_help_exist_in_both_locales():
    from handlers.core.render import Renderer, templates_root

    root = templates_root()
    names = {loc: sorted(p.name for p in (root / loc / "alerts").iterdir()) for loc in ("en", "zh")}
    assert names["en"] == names["zh"] and "alert.j2" in names["en"]
    for locale in ("en", "zh"):
        catalog = Renderer().catalog(locale)["commands"]
        assert all(catalog[name]["help"] for name in ("watch", "watch add", "watch remove"))


@pytest.mark.parametrize(
    "args",
    [
        "",
        "[x](mention:1)",
        "<@123>",
        "{{ 7*7 }}",
        "\u200b",
        "x" * 300,
        "a, " * 300,
        '"unclosed',
        "--yes",
        "🙂" * 50,
        "**b**, _i_",
    ],
)
async def test_hostile_watch_and_segment_arguments_are_handled(
    dispatcher, managed, services, caplog, args
):
    for name in ("watch add", "watch remove", "segments"):
        before = len(managed.sent)
        await dispatcher.handle(command(BOSS, f"/{name} {args}".rstrip(), T0), managed)
        replies = managed.sent[before:]
        assert replies, name
        for sent in replies:
            assert len(sent.message.text) <= 700, (name, args)
            assert not (set(mentioned_ids(sent.message.text)) - {BOSS.user_id}), (name, args)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
