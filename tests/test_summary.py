"""`/summary` end to end: events through the dispatcher, both locales, the chart, the extras."""

from __future__ import annotations

import sys
import types
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from handlers.core.charts import PNG_SIGNATURE
from handlers.core.events import ChatRef, Role
from handlers.core.outgoing import Capabilities
from storage.models import Community, CommunityDay, Member, Membership
from tests.fakes import RecordingGateway, command, joined, message, reaction, user

BOSS, ANN, BEN, CAT, DAN = user("Boss"), user("Ann"), user("Ben"), user("Cat"), user("Dan")
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # Friday 11:00 in Berlin
YESTERDAY = date(2026, 11, 19)
Y = datetime(2026, 11, 19, tzinfo=UTC)  # 01:00 in Berlin: still the 19th there


class CountingGateway(RecordingGateway):
    """A gateway whose platform shows images and says how many members the chat has."""

    def __init__(self, members: int | None = 40) -> None:
        super().__init__(capabilities=Capabilities(buttons=True, images=True))
        self.members = members

    async def member_count(self, chat: ChatRef) -> int | None:
        return self.members


async def say(dispatcher, gateway, text: str, who=BOSS, at: datetime = NOW) -> str:
    before = len(gateway.sent)
    await dispatcher.handle(command(who, text, at), gateway)
    return "\n".join(gateway.texts[before:])


async def history(dispatcher, gateway, clock) -> None:
    """The day before yesterday: boss sets the zone (one message). Yesterday: Ann joins and
    writes twice, Ben replies, Cat writes twice, Dan reacts."""
    gateway.roles[BOSS.user_id] = Role.MANAGER
    clock.set(Y - timedelta(days=1, hours=-9))
    await say(dispatcher, gateway, "/settings timezone Europe/Berlin", at=clock.now())
    first = message(ANN, Y + timedelta(hours=9))
    for event in [
        joined(ANN, Y + timedelta(hours=8)),
        first,
        message(ANN, Y + timedelta(hours=9, minutes=10)),
        message(BEN, Y + timedelta(hours=12), reply_to=ANN),
        reaction(DAN, first.message_id, Y + timedelta(hours=12, minutes=1)),
        message(CAT, Y + timedelta(hours=20)),
        message(CAT, Y + timedelta(hours=20, minutes=5)),
    ]:
        await dispatcher.handle(event, gateway)
    await dispatcher.services.activity.flush()
    clock.set(NOW)


async def opt_out(db, who: str) -> None:
    async with db.session() as s:
        member = (await s.execute(select(Member.id).where(Member.external_id == who))).scalar_one()
        await s.execute(
            update(Membership).where(Membership.member_id == member).values(opted_out_at=NOW)
        )


async def test_the_daily_summary_in_english_with_a_chart(dispatcher, clock, services):
    gateway = CountingGateway()
    await history(dispatcher, gateway, clock)
    await opt_out(services.db, "cat")
    await dispatcher.handle(command(BOSS, "/summary", NOW), gateway)
    sent = gateway.sent[-1]
    text = sent.text
    assert "📈 Daily summary — Test *Group*" in text
    assert "Thursday 2026-11-19 (Europe/Berlin)" in text and "so far" not in text
    # 5 messages against 1 the day before (boss's /settings) and 1/7 on average.
    assert "💬 Messages: 5 ▲ +4 (+400%) vs the day before · ▲ +3,400% vs the 7-day average" in text
    assert "🙋 Active members: 3 ▲ +2 (+200%)" in text
    assert "👋 Joined 1 · left 0 · net growth +1 (the day before: ±0)" in text
    assert "💞 Interactions: 2 (1 reply, 1 reaction)" in text
    assert "👥 Members: 40 · engagement 7.5% of members active" in text
    assert "📅 DAU 3 · WAU 4 · MAU 4 · stickiness (DAU/MAU) 75%" in text
    assert "🕒 Busiest hour: 10:00–11:00 (2 messages)" in text  # Ann at 09:00 UTC = 10:00 CET
    # Cat wrote as much as Ann but opted out: left out of the names, still in the totals.
    assert "1. Ann — 2 messages\n2. Ben — 1 message\n\n" in text and "Cat" not in text
    assert "No posts, polls, quizzes, giveaways or AMA questions that day." in text
    assert "Nobody joined 1, 7 or 30 days before: no one to follow yet." in text
    assert "📊 Messages," not in text  # the chart shows it
    image = sent.message.image
    assert image is not None and image.content.startswith(PNG_SIGNATURE)
    assert image.filename == "summary-2026-11-19.png" and "Daily summary" in image.alt
    # The platform's count was recorded for yesterday, once its unit of work committed.
    async with services.db.session() as s:
        row = await s.get(CommunityDay, (await _community_id(services.db), YESTERDAY))
    assert row is not None and row.member_count == 40


async def _community_id(db) -> int:
    async with db.session() as s:
        return (await s.execute(select(Community.id))).scalar_one()


async def test_the_daily_summary_in_chinese(dispatcher, clock, services):
    gateway = CountingGateway(members=None)
    await history(dispatcher, gateway, clock)
    await say(dispatcher, gateway, "/settings language zh")
    await dispatcher.handle(command(BOSS, "/summary", NOW), gateway)
    sent = gateway.sent[-1]
    text = sent.text
    assert "📈 每日总结 — Test *Group*" in text
    assert "2026-11-19 星期四（Europe/Berlin）" in text
    assert "💬 消息：5 较前一天 ▲ +4（+400%）" in text
    assert "👥 成员：暂未获取 · 参与率 –" in text
    assert "1. Ann — 2 条消息" in text and "🔁 留存" in text
    assert sent.message.image is not None and sent.message.image.content.startswith(PNG_SIGNATURE)


async def test_today_weekly_and_text_sparklines_without_images(dispatcher, gateway, clock):
    await history(dispatcher, gateway, clock)
    text = await say(dispatcher, gateway, "/summary today")
    assert "Friday 2026-11-20 (Europe/Berlin) · so far, until 11:00" in text
    assert "⏳ The day isn't over" in text
    # Today so far: only this command (a message).
    assert "💬 Messages: 1 ▼ −4 (−80%) vs the day before" in text
    # Ann joined yesterday and hasn't written today (yet).
    assert "D1: 0% (0 of 1) · D7: – (nobody joined 7 days before) · D30: –" in text
    assert gateway.sent[-1].message.image is None
    assert "📊 Messages, 11-07 → 11-20:" in text and "🕒 By hour, 00 → 23:" in text
    weekly = await say(dispatcher, gateway, "/summary weekly")
    assert "📈 Weekly digest — Test *Group*" in weekly
    assert "2026-11-13 to 2026-11-19 (Europe/Berlin)" in weekly
    assert "💬 Messages: 6 ▲ +6 vs the week before" in weekly  # boss's message + 5
    assert "vs the 4-week average" in weekly
    dated = await say(dispatcher, gateway, "/summary 11-18")
    assert "Wednesday 2026-11-18" in dated and "💬 Messages: 1 " in dated


async def test_unanswered_ama_questions_are_carried_over(dispatcher, gateway, clock):
    await history(dispatcher, gateway, clock)
    clock.set(NOW - timedelta(days=1))  # yesterday, 11:00 in Berlin
    await say(dispatcher, gateway, "/qa open Roadmap", at=clock.now())
    await say(dispatcher, gateway, "/ask Will there be an *app*?", ANN, clock.now())
    clock.set(NOW)
    text = await say(dispatcher, gateway, "/summary")
    assert "❓ Still unanswered (AMA)" in text
    assert "#1 · 👍 0 · Will there be an *app*? — Ann, Roadmap" in text
    assert "🎤 AMA: 1 question from 1 member" in text
    assert "🙌 1 member took part" in text


async def test_segments_and_anomalies_come_from_their_features(
    dispatcher, gateway, clock, monkeypatch
):
    await history(dispatcher, gateway, clock)
    calls = []

    async def segments(session, community, day, locale):
        calls.append((community.title, day, locale))
        return ["👥 **3** core members", ""]

    def anomalies(session, community, day, locale):  # a plain function works too
        return ["🚨 Messages fell by half"]

    monkeypatch.setitem(sys.modules, "handlers.segments", _module(segments))
    monkeypatch.setitem(sys.modules, "handlers.alerts", _module(anomalies))
    text = await say(dispatcher, gateway, "/summary")
    assert "🧭 Segments movement\n👥 3 core members" in text  # already Markdown: kept bold
    assert "🚨 Anomalies\n🚨 Messages fell by half" in text
    assert calls == [("Test *Group*", YESTERDAY, "en")]

    def broken(session, community, day, locale):
        raise RuntimeError("segments are down")

    monkeypatch.setitem(sys.modules, "handlers.segments", _module(broken))
    monkeypatch.setitem(sys.modules, "handlers.alerts", _module(lambda *args: []))
    text = await say(dispatcher, gateway, "/summary")
    assert "📈 Daily summary" in text and "Segments" not in text
    assert "🚨 Anomalies\n✅ No alerts that day.\n" in text
    # A feature that isn't installed (or has no summary lines) leaves its block out.
    monkeypatch.setitem(sys.modules, "handlers.alerts", types.ModuleType("handlers.alerts"))
    text = await say(dispatcher, gateway, "/summary weekly")
    assert "📈 Weekly digest" in text and "Anomalies" not in text


def _module(summary_lines) -> types.ModuleType:
    module = types.ModuleType("contributor")
    module.summary_lines = summary_lines  # type: ignore[attr-defined]
    return module


async def test_only_managers_and_clear_errors_for_bad_days(dispatcher, gateway, clock):
    await history(dispatcher, gateway, clock)
    assert "Only the community's managers" in await say(dispatcher, gateway, "/summary", ANN)
    assert 'can\'t read "someday" as a day' in await say(dispatcher, gateway, "/summary someday")
    future = await say(dispatcher, gateway, "/summary 2026-11-21")
    assert "2026-11-21 hasn't happened yet (today is 2026-11-20 in Europe/Berlin)" in future
    assert "Usage: /summary" in future
    assert "too long ago" in await say(dispatcher, gateway, "/summary 2020-01-01")
    assert "can't read" in await say(dispatcher, gateway, "/summary 2026-02-30")
    assert "hasn't happened yet" in await say(dispatcher, gateway, "/summary weekly 2027-01-01")


async def test_settings_summary_time(dispatcher, gateway, clock, services):
    await history(dispatcher, gateway, clock)
    reply = await say(dispatcher, gateway, "/settings summary 7:30")
    assert "posted every day at 07:30 (Europe/Berlin), in this group" in reply
    async with services.db.session() as s:
        assert (await s.execute(select(Community.settings))).scalar_one()["summary_time"] == "07:30"
    assert "isn't a time of day" in await say(dispatcher, gateway, "/settings summary 25:00")
    assert "Daily summary: 07:30, in this group" in await say(dispatcher, gateway, "/settings")
    await say(dispatcher, gateway, "/settings managers here")
    assert "to the managers' chat, Test *Group*" in await say(dispatcher, gateway, "/settings")
    assert "No daily summary will be posted" in await say(
        dispatcher, gateway, "/settings summary off"
    )
    assert "Daily summary: off" in await say(dispatcher, gateway, "/settings")
    assert "Only the community's managers" in await say(
        dispatcher, gateway, "/settings summary 09:00", ANN
    )


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_every_summary_command_has_help(locale):
    from bot.app import command_registry
    from handlers.core.render import Renderer

    catalog = Renderer().catalog(locale)["commands"]
    names = [s.name for s in command_registry() if s.router == "analytics"] + ["settings summary"]
    assert names[:2] == ["summary", "summary weekly"]
    assert all(catalog.get(name, {}).get("help") for name in names)


async def test_a_chart_that_fails_to_draw_leaves_text_sparklines(
    dispatcher, clock, services, monkeypatch
):
    from handlers.analytics import charts

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts at all")

    monkeypatch.setattr(charts, "render_summary_chart", broken)
    gateway = CountingGateway()
    await history(dispatcher, gateway, clock)
    await dispatcher.handle(command(BOSS, "/summary", NOW), gateway)
    sent = gateway.sent[-1]
    assert sent.message.image is None and "📈 Daily summary" in sent.text
    # Boss on the 18th, five messages on the 19th: the last two of fourteen days.
    assert "📊 Messages, 11-06 → 11-19: " + "·" * 12 + "▂█" in sent.text
