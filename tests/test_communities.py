"""Community repository: find-or-create, and moving a community to a new platform id."""

from __future__ import annotations

from sqlalchemy import func, select

from storage.activity import ActivityKind, ActivityRecord, CommunityDefaults, write_batch
from storage.communities import ensure_community, rekey_community
from storage.db import Database
from storage.models import ActivityEvent, Chat, Community
from tests.fakes import T0


def _record(chat: str, key: str) -> ActivityRecord:
    return ActivityRecord(ActivityKind.MESSAGE, "telegram", chat, chat, "7", "Ann", T0, key)


async def test_ensure_community_creates_once_with_defaults_and_follows_the_title(any_db: Database):
    defaults = CommunityDefaults("Asia/Shanghai", "zh")
    async with any_db.session() as s:
        first = await ensure_community(
            s, platform="telegram", external_id="-1", title="Old", defaults=defaults, now=T0
        )
    async with any_db.session() as s:
        again = await ensure_community(
            s, platform="telegram", external_id="-1", title="New", defaults=defaults, now=T0
        )
        assert (again.id, again.timezone, again.locale) == (first.id, "Asia/Shanghai", "zh")
    async with any_db.session() as s:
        assert (await s.execute(select(Community.title))).scalar_one() == "New"


async def test_a_group_that_becomes_a_supergroup_keeps_its_history(any_db: Database):
    async with any_db.session() as s:
        await write_batch(s, [_record("-100", "m:1"), _record("-100", "m:2")])
    async with any_db.session() as s:
        assert await rekey_community(s, "telegram", "-100", "-100200") is True
    async with any_db.session() as s:
        await write_batch(s, [_record("-100200", "m:3")])
    async with any_db.session() as s:
        communities = (await s.execute(select(Community.external_id))).scalars().all()
        chats = (await s.execute(select(Chat.external_id))).scalars().all()
        events = (await s.execute(select(func.count(ActivityEvent.id)))).scalar_one()
    assert communities == ["-100200"] and chats == ["-100200"] and events == 3


async def test_rekey_refuses_when_there_is_nothing_to_move_or_the_target_exists(any_db: Database):
    async with any_db.session() as s:
        assert await rekey_community(s, "telegram", "-5", "-6") is False
        await write_batch(s, [_record("-5", "m:1"), _record("-6", "m:1")])
    async with any_db.session() as s:
        assert await rekey_community(s, "telegram", "-5", "-6") is False
