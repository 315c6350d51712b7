"""Linked communities: `/link`, `/unlink` across a Telegram group and a Discord server, and
the combined block of the summary (its numbers are the sums of both sides' metrics)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.app import build_dispatcher
from handlers.analytics import links, summary
from handlers.analytics.metrics import daily_metrics
from handlers.core.context import Services
from handlers.core.events import ChatKind, ChatRef, Platform, Role
from handlers.core.render import Renderer
from storage import links as store
from storage.activity import ActivityWriter, CommunityDefaults
from storage.models import Community
from tests.conftest import postgres_schema_database
from tests.fakes import RecordingGateway, command, joined, left, message, reaction, user

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
YESTERDAY = date(2026, 11, 19)
Y = datetime(2026, 11, 19, tzinfo=UTC)
TG = ChatRef(Platform.TELEGRAM, "-100123", "-100123", "TG Group", ChatKind.GROUP)
DC = ChatRef(Platform.DISCORD, "chan-1", "guild-1", "general", ChatKind.GROUP, "DC Server")
TG2 = ChatRef(Platform.TELEGRAM, "-100999", "-100999", "Other TG", ChatKind.GROUP)
DC2 = ChatRef(Platform.DISCORD, "chan-9", "guild-9", "general", ChatKind.GROUP, "Other DC")
BOSS, MOD, ANN, BEN, CAT, DAN = (
    user("Boss"), user("Mod"), user("Ann"), user("Ben"), user("Cat"), user("Dan"),
)  # fmt: skip


def gateways() -> tuple[RecordingGateway, RecordingGateway]:
    tg = RecordingGateway(platform=Platform.TELEGRAM)
    dc = RecordingGateway(platform=Platform.DISCORD)
    tg.roles[BOSS.user_id] = Role.MANAGER
    dc.roles[MOD.user_id] = Role.MANAGER
    return tg, dc


async def say(dispatcher, gateway, text: str, chat: ChatRef, who=None, at=None) -> str:
    before = len(gateway.sent)
    who = who or (BOSS if chat.platform is Platform.TELEGRAM else MOD)
    await dispatcher.handle(command(who, text, at or NOW, chat=chat), gateway)
    return "\n".join(gateway.texts[before:])


async def code_from(dispatcher, gateway, chat: ChatRef) -> str:
    reply = await say(dispatcher, gateway, "/link", chat)
    found = re.search(r"/link (\S+)", reply)
    assert found, reply
    assert gateway.sent[-1].private_to is not None  # the code goes to the manager only
    return found.group(1)


async def community(db, chat: ChatRef) -> Community:
    async with db.session() as s:
        query = select(Community).where(
            Community.platform == chat.platform.value,
            Community.external_id == chat.community_id,
        )
        return (await s.execute(query)).scalar_one()


async def link_both(dispatcher, tg, dc) -> str:
    code = await code_from(dispatcher, tg, TG)
    return await say(dispatcher, dc, f"/link {code}", DC)


async def test_link_across_platforms_and_show_it_on_both_sides(dispatcher, services, clock):
    clock.set(NOW)
    tg, dc = gateways()
    reply = await link_both(dispatcher, tg, dc)
    assert "Linked with TG Group on Telegram" in reply
    tg_row, dc_row = await community(services.db, TG), await community(services.db, DC)
    tg_link, dc_link = store.link_of(tg_row), store.link_of(dc_row)
    assert tg_link is not None and dc_link is not None
    assert tg_link.group == dc_link.group
    assert (tg_link.community_id, dc_link.community_id) == (dc_row.id, tg_row.id)
    assert "linked with DC Server on Discord (since 2026-11-20)" in await say(
        dispatcher, tg, "/link", TG
    )
    assert "linked with TG Group on Telegram" in await say(dispatcher, dc, "/link", DC)


async def test_members_cannot_link(dispatcher, services, clock):
    clock.set(NOW)
    tg, dc = gateways()
    code = await code_from(dispatcher, tg, TG)
    # Ann isn't a Discord manager: refused before anything is written.
    assert "Linked" not in await say(dispatcher, dc, f"/link {code}", DC, who=ANN)
    assert dc.role_checks >= 1
    assert store.link_of(await community(services.db, TG)) is None
    before = len(tg.sent)
    await say(dispatcher, tg, "/link", TG, who=ANN)
    assert not re.search(r"/link \S+-\S+-", "\n".join(tg.texts[before:]))


async def test_refusals_change_nothing(dispatcher, services, clock):
    clock.set(NOW)
    tg, dc = gateways()
    code = await code_from(dispatcher, tg, TG)
    forged = code[:-1] + ("0" if code[-1] != "0" else "1")
    assert "isn't valid" in await say(dispatcher, dc, f"/link {forged}", DC)
    assert "isn't valid" in await say(dispatcher, dc, "/link nonsense", DC)
    assert "was made here" in await say(dispatcher, tg, f"/link {code}", TG)
    # Another Telegram group can't use it: a link joins two platforms.
    assert "Both communities are on Telegram" in await say(dispatcher, tg, f"/link {code}", TG2)
    clock.advance(minutes=16)
    assert "has expired" in await say(dispatcher, dc, f"/link {code}", DC, at=clock.now())
    assert "isn't linked" in await say(dispatcher, dc, "/unlink", DC, at=clock.now())
    assert store.link_of(await community(services.db, TG)) is None
    async with services.db.session() as s:
        rows = (await s.execute(select(Community))).scalars().all()
    assert rows and all(store.link_of(row) is None for row in rows)


async def test_already_linked_sides_are_refused(dispatcher, services, clock):
    clock.set(NOW)
    tg, dc = gateways()
    early = await code_from(dispatcher, dc, DC)  # made before the Discord server is linked
    await link_both(dispatcher, tg, dc)
    # A linked community shows its link instead of a new code.
    reply = await say(dispatcher, dc, "/link", DC)
    assert "linked with TG Group" in reply and not re.search(r"/link \S+-\S+-", reply)
    # The linked Telegram group can't take another Discord server's code.
    code = await code_from(dispatcher, dc, DC2)
    assert "already linked with DC Server" in await say(dispatcher, tg, f"/link {code}", TG)
    # The linked Discord server can't take another Telegram group's code.
    code = await code_from(dispatcher, tg, TG2)
    assert "already linked with TG Group" in await say(dispatcher, dc, f"/link {code}", DC)
    # A code made before its community got linked no longer links anything.
    assert "DC Server is already linked with another community" in await say(
        dispatcher, tg, f"/link {early}", TG2
    )
    assert store.link_of(await community(services.db, TG2)) is None
    assert store.link_of(await community(services.db, DC2)) is None
    tg_row = await community(services.db, TG)
    async with services.db.session() as s:
        other = await store.linked_community(s, tg_row)
    assert other is not None and other.external_id == DC.community_id


async def test_unlink_removes_both_sides(dispatcher, services, clock):
    clock.set(NOW)
    tg, dc = gateways()
    await link_both(dispatcher, tg, dc)
    reply = await say(dispatcher, dc, "/unlink", DC)
    assert "Unlinked from TG Group on Telegram" in reply
    assert store.link_of(await community(services.db, TG)) is None
    assert store.link_of(await community(services.db, DC)) is None
    assert "isn't linked" in await say(dispatcher, tg, "/unlink", TG)
    # They can link again with a fresh code.
    assert "Linked with" in await link_both(dispatcher, tg, dc)


async def history(dispatcher, services, tg, dc) -> None:
    """Yesterday: on Telegram Ann writes twice and Ben replies; Dan joins. On Discord Cat
    writes three times, Ann reacts, Ben joins and Dan leaves."""
    first = message(ANN, Y + timedelta(hours=9), chat=TG)
    dc_first = message(CAT, Y + timedelta(hours=10), chat=DC)
    for event, gateway in [
        (joined(DAN, Y + timedelta(hours=8), chat=TG), tg),
        (first, tg),
        (message(ANN, Y + timedelta(hours=9, minutes=5), chat=TG), tg),
        (message(BEN, Y + timedelta(hours=11), chat=TG, reply_to=ANN), tg),
        (dc_first, dc),
        (message(CAT, Y + timedelta(hours=10, minutes=1), chat=DC), dc),
        (message(CAT, Y + timedelta(hours=10, minutes=2), chat=DC), dc),
        (reaction(ANN, dc_first.message_id, Y + timedelta(hours=12), chat=DC), dc),
        (joined(BEN, Y + timedelta(hours=13), chat=DC), dc),
        (left(DAN, Y + timedelta(hours=14), chat=DC), dc),
    ]:
        await dispatcher.handle(event, gateway)
    await services.activity.flush()


async def _record_count(db, chat: ChatRef, count: int) -> None:
    from storage.analytics import record_member_count

    row = await community(db, chat)
    async with db.session() as s:
        await record_member_count(s, row.id, YESTERDAY, count)


async def test_the_combined_block_sums_both_sides(dispatcher, services, clock):
    tg, dc = gateways()
    await history(dispatcher, services, tg, dc)
    clock.set(NOW)
    await link_both(dispatcher, tg, dc)
    await _record_count(services.db, TG, 30)
    await _record_count(services.db, DC, 20)
    text = await say(dispatcher, tg, "/summary", TG)
    assert "Combined (Telegram + Discord) — with DC Server" in text
    assert "💬 Messages 6 · 🙋 active members 3" in text
    assert "👋 Joined 2 · left 1 · net growth +1" in text
    assert "💞 Replies 1 · reactions 1" in text
    assert "👥 Members: 50 · engagement 6.0%" in text
    assert "counts twice" in text
    # The per-platform figures are still Telegram's own.
    assert "💬 Messages: 3" in text
    # Both sides read through the metrics API: the block is exactly their sums.
    tg_row, dc_row = await community(services.db, TG), await community(services.db, DC)
    async with services.db.session() as s:
        data = await summary.gather(s, tg_row, kind=summary.Kind.DAILY, day=YESTERDAY, now=NOW)
        theirs = await daily_metrics(s, dc_row, YESTERDAY, now=NOW)
    mine, c = data.metrics, data.combined
    assert c is not None
    for name in ("messages", "active_members", "joins", "leaves", "replies", "reactions"):
        assert getattr(c, name) == getattr(mine, name) + getattr(theirs, name), name
    assert c.net_growth == mine.net_growth + theirs.net_growth
    assert c.member_count == 50
    assert c.stickiness == (mine.dau + theirs.dau) / (mine.mau + theirs.mau)
    assert c.engagement_rate == c.active_members / 50
    # The Discord side sees the same sums, with the platforms in the same order.
    dc_text = await say(dispatcher, dc, "/summary", DC)
    assert "Combined (Telegram + Discord) — with TG Group" in dc_text
    assert "💬 Messages 6 · 🙋 active members 3" in dc_text


async def test_combined_block_in_chinese_and_gone_after_unlink(dispatcher, services, clock):
    tg, dc = gateways()
    await history(dispatcher, services, tg, dc)
    clock.set(NOW)
    await link_both(dispatcher, tg, dc)
    await say(dispatcher, tg, "/settings language zh", TG)
    text = await say(dispatcher, tg, "/summary", TG)
    assert "合计（Telegram + Discord） — 含 DC Server" in text
    assert "💬 消息 6 · 🙋 活跃成员 3" in text
    assert "两边的人数尚未都获取" in text  # no member counts recorded
    assert "计算两次" in text
    assert "已与 Discord 上的 DC Server 关联" in await say(dispatcher, tg, "/link", TG)
    await say(dispatcher, tg, "/unlink", TG)
    assert "合计" not in await say(dispatcher, tg, "/summary", TG)
    assert "Combined" not in await say(dispatcher, dc, "/summary", DC)


async def test_a_stale_half_link_is_ignored(dispatcher, services, clock):
    """A link only one side records (say the other was edited by hand) adds no block."""
    tg, dc = gateways()
    await history(dispatcher, services, tg, dc)
    clock.set(NOW)
    await link_both(dispatcher, tg, dc)
    dc_row = await community(services.db, DC)
    async with services.db.session() as s:
        await s.execute(update(Community).where(Community.id == dc_row.id).values(settings={}))
    assert "Combined" not in await say(dispatcher, tg, "/summary", TG)
    # That side can link anew; the stale entry does not count as "already linked".
    code = await code_from(dispatcher, tg, TG)
    assert "Linked with TG Group" in await say(dispatcher, dc, f"/link {code}", DC)


def test_codes_are_signed_and_expire():
    key, other = b"k" * 32, b"o" * 32
    code = links.make_code(key, 42, NOW)
    assert links.read_code(key, code, NOW) == 42
    assert links.read_code(key, code.upper(), NOW + timedelta(minutes=14)) == 42
    for bad_key, when, problem in [
        (other, NOW, "bad_code"),
        (key, NOW + timedelta(minutes=15), "expired"),
    ]:
        try:
            links.read_code(bad_key, code, when)
        except links.CodeProblem as exc:
            assert exc.problem == problem
        else:
            raise AssertionError("accepted")
    # Another community id under the same signature is refused.
    community, stamp, mac = code.split("-")
    try:
        links.read_code(key, f"1{community}-{stamp}-{mac}", NOW)
    except links.CodeProblem as exc:
        assert exc.problem == "bad_code"
    else:
        raise AssertionError("accepted")


@pytest.mark.postgres
async def test_link_and_combined_summary_on_postgresql(clock):
    """The row locks and the JSON settings on the real database."""
    async with postgres_schema_database() as db:
        writer = ActivityWriter(db, batch_size=100, flush_interval=0.05)
        await writer.start()
        services = Services(
            db=db,
            activity=writer,
            renderer=Renderer(),
            clock=clock,
            defaults=CommunityDefaults("UTC", "en"),
        )
        try:
            dispatcher = build_dispatcher(services)
            tg, dc = gateways()
            await history(dispatcher, services, tg, dc)
            clock.set(NOW)
            assert "Linked with TG Group" in await link_both(dispatcher, tg, dc)
            text = await say(dispatcher, dc, "/summary", DC)
            assert "💬 Messages 6 · 🙋 active members 3" in text
            assert "Unlinked from" in await say(dispatcher, tg, "/unlink", TG)
            assert "Combined" not in await say(dispatcher, dc, "/summary", DC)
        finally:
            await writer.stop()
