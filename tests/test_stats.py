"""`/stats` end to end: events through the dispatcher, rollups, both locales, escaping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from handlers.core.events import ChatKind, ChatRef, Platform, Role
from tests.fakes import command, joined, left, message, reaction, user

ALICE, BOB, CAROL, BOSS = user("alice"), user("bob"), user("carol"), user("boss")
NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
YESTERDAY = NOW - timedelta(days=1)


async def _feed(dispatcher, gateway, events) -> None:
    for event in events:
        await dispatcher.handle(event, gateway)


async def _history(dispatcher, gateway) -> None:
    first = message(ALICE, YESTERDAY)
    await _feed(
        dispatcher,
        gateway,
        [
            first,
            message(BOB, YESTERDAY, reply_to=ALICE),
            reaction(CAROL, first.message_id, YESTERDAY),
            left(CAROL, YESTERDAY),
            joined(BOB, NOW - timedelta(hours=3)),
            message(ALICE, NOW - timedelta(hours=2)),
            message(ALICE, NOW - timedelta(hours=1)),
            message(BOB, NOW - timedelta(minutes=5), reply_to=ALICE),
        ],
    )


async def test_stats_counts_today_and_yesterday_from_the_rollups(dispatcher, gateway, clock):
    clock.set(NOW)
    await _history(dispatcher, gateway)
    await dispatcher.handle(command(ALICE, "/stats", NOW), gateway)
    text = gateway.last
    assert "Test *Group* — activity" in text  # the title's markup is shown literally
    assert "until 15:30 (UTC)" in text
    # Today: 3 messages + the /stats command itself, sent a moment ago (flushed first).
    assert "💬 Messages: 4 · yesterday 2 (+2)" in text
    assert "🙋 Active members: 2 · yesterday 2 (±0)" in text
    assert "➕ Joined: 1 · yesterday 0 (+1)" in text
    assert "➖ Left: 0 · yesterday 1 (−1)" in text
    assert "↩️ Replies: 1 · yesterday 1 (±0)" in text
    assert "👍 Reactions: 0 · yesterday 1 (−1)" in text
    assert "Net growth today: +1" in text


async def test_stats_in_chinese_after_a_manager_switches_language(dispatcher, gateway, clock):
    clock.set(NOW)
    await _history(dispatcher, gateway)
    gateway.roles[BOSS.user_id] = Role.MANAGER
    await dispatcher.handle(command(BOSS, "/settings language zh", NOW), gateway)
    assert gateway.last == "✅ 之后我在这里会用中文回复。"
    await dispatcher.handle(command(ALICE, "/stats", NOW), gateway)
    text = gateway.last
    assert "Test *Group* — 活跃数据" in text
    assert "💬 消息：5 · 昨天 2（+3）" in text
    assert "今日净增长：+1" in text


async def test_days_follow_the_community_time_zone(dispatcher, gateway, clock):
    # 23:30 UTC on the 19th is already the 20th in Shanghai.
    clock.set(NOW)
    gateway.roles[BOSS.user_id] = Role.MANAGER
    await dispatcher.handle(command(BOSS, "/settings timezone Asia/Shanghai", NOW), gateway)
    await dispatcher.handle(message(ALICE, datetime(2026, 11, 19, 23, 30, tzinfo=UTC)), gateway)
    await dispatcher.handle(command(ALICE, "/stats", NOW), gateway)
    text = gateway.last
    assert "until 23:30 (Asia/Shanghai)" in text
    # /settings was written before the zone changed (15:30 UTC is the 20th in both zones).
    assert "💬 Messages: 3 · yesterday 0 (+3)" in text


async def test_member_names_and_titles_cannot_inject_markup(dispatcher, gateway, clock):
    clock.set(NOW)
    chat = ChatRef(
        Platform.CONSOLE,
        "c-evil",
        "evil",
        "**Free** [money](https://x.example) @everyone",
        ChatKind.GROUP,
    )
    await dispatcher.handle(command(user("*mallory*"), "/stats", NOW, chat=chat), gateway)
    sent = gateway.sent[-1].message.text
    assert "\\*\\*Free\\*\\* \\[money\\]\\(https://x.example\\) @everyone" in sent
    assert "**Free** [money](https://x.example) @everyone — activity" in gateway.last


async def test_stats_for_a_new_community_shows_zeros(dispatcher, gateway, clock):
    clock.set(NOW)
    chat = ChatRef(Platform.CONSOLE, "c-new", "new", None, ChatKind.GROUP)
    await dispatcher.handle(command(ALICE, "/stats", NOW, chat=chat), gateway)
    assert "Community — activity" in gateway.last
    assert "💬 Messages: 1 · yesterday 0 (+1)" in gateway.last


async def test_a_community_is_named_after_the_server_not_the_channel(dispatcher, gateway, clock):
    clock.set(NOW)
    channel = ChatRef(
        Platform.DISCORD,
        "chan-1",
        "guild-1",
        "general",
        ChatKind.GROUP,
        community_title="Pixel Club",
    )
    await dispatcher.handle(message(ALICE, NOW, chat=channel), gateway)
    await dispatcher.handle(command(ALICE, "/stats", NOW, chat=channel), gateway)
    assert "Pixel Club — activity" in gateway.last


async def test_managers_choose_the_announcements_and_managers_chats(dispatcher, gateway, clock):
    clock.set(NOW)
    gateway.roles[BOSS.user_id] = Role.MANAGER
    staff = ChatRef(Platform.CONSOLE, "chat-staff", "community-1", "Staff room", ChatKind.GROUP)
    await dispatcher.handle(command(BOSS, "/settings managers here", NOW, chat=staff), gateway)
    assert gateway.last.startswith("✅ Managers' reports and alerts will be sent here, to Staff")
    await dispatcher.handle(command(BOSS, "/settings announcements here", NOW), gateway)
    assert "posted here, in Test *Group*" in gateway.last
    await dispatcher.handle(command(BOSS, "/settings", NOW), gateway)
    assert "Announcements: Test *Group*" in gateway.last
    assert "Managers' chat: Staff room" in gateway.last
    await dispatcher.handle(command(ALICE, "/settings announcements off", NOW), gateway)
    assert "Only the community's managers" in gateway.last
    await dispatcher.handle(command(BOSS, "/settings announcements off", NOW), gateway)
    await dispatcher.handle(command(BOSS, "/settings", NOW), gateway)
    assert "Announcements: where each post is planned" in gateway.last
    await dispatcher.handle(command(BOSS, "/settings managers elsewhere", NOW), gateway)
    assert '"elsewhere" isn\'t one of: here, off.' in gateway.last
