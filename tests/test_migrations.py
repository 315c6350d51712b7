"""Alembic migrations: an empty database reaches head on SQLite and PostgreSQL, a second run is a
no-op, the migrated schema equals the models, and SQLite runs with WAL and foreign keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, delete, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from storage import postdays
from storage.db import Database, alembic_config
from storage.models import Base, Chat, Community, CommunityDay, Membership, Occurrence
from tests.conftest import postgres_schema_database

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
TABLES = set(Base.metadata.tables)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def empty_db(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Database]:
    """A database with nothing in it: a new SQLite file, or a new empty PostgreSQL schema."""
    if request.param == "sqlite":
        path = tmp_path / "empty.db"
        assert not path.exists()
        db = Database(f"sqlite:///{path}")
        try:
            yield db
        finally:
            await db.dispose()
        return
    async with postgres_schema_database(migrate=False) as db:
        yield db


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _schema(conn: Connection) -> dict[str, Any]:
    """Tables, columns, keys and indexes as the database reports them."""
    insp = inspect(conn)
    return {
        name: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(name)],
            insp.get_pk_constraint(name),
            sorted(insp.get_foreign_keys(name), key=repr),
            sorted(insp.get_unique_constraints(name), key=repr),
            sorted(insp.get_indexes(name), key=repr),
        )
        for name in sorted(insp.get_table_names())
    }


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return compare_metadata(context, Base.metadata)


async def _version_rows(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


def test_revisions_form_one_linear_chain() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    chain = [rev.revision for rev in script.walk_revisions()]
    assert chain[0] == HEAD and chain[-1] == "0001"
    assert len(chain) == len(set(chain))


async def test_upgrading_from_the_previous_revision_keeps_the_data(empty_db: Database) -> None:
    await empty_db.migrate("0001")
    async with empty_db.session() as s:
        await s.execute(
            insert(Community).values(
                platform="telegram", external_id="-1", title="Kept", timezone="UTC",
                locale="en", settings={}, created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )  # fmt: skip
    await empty_db.migrate()
    assert await empty_db.current_revision() == HEAD
    async with empty_db.session() as s:
        assert (await s.execute(select(Community.title))).scalar_one() == "Kept"
        assert (await s.execute(select(func.count()).select_from(Occurrence))).scalar_one() == 0


async def test_member_post_days_are_backfilled_from_the_daily_rollups(
    empty_db: Database,
) -> None:
    await empty_db.migrate("0007")
    days = [(date(2026, 9, 1), 0), (date(2026, 9, 3), 2), (date(2026, 10, 5), 1)]
    async with empty_db.session() as s:
        for statement in (
            "INSERT INTO communities (id, platform, external_id, title, timezone, locale, "
            "settings, created_at) VALUES (1, 'console', 'g1', 'G', 'UTC', 'en', '{}', :t)",
            "INSERT INTO members (id, platform, external_id, display_name, first_seen_at) "
            "VALUES (1, 'console', 'ann', 'Ann', :t), (2, 'console', 'ben', 'Ben', :t)",
            "INSERT INTO memberships (community_id, member_id, first_seen_at, last_seen_at) "
            "VALUES (1, 1, :t, :t), (1, 2, :t, :t)",
        ):
            await s.execute(text(statement), {"t": datetime(2026, 8, 1, tzinfo=UTC)})
        for day, messages in days:  # a reaction-only day first: not a post
            await s.execute(
                text(
                    "INSERT INTO member_days (community_id, day, member_id, messages, reactions,"
                    " replies, characters) VALUES (1, :day, 1, :m, 1, 0, 0)"
                ),
                {"day": day, "m": messages},
            )
    await empty_db.migrate()
    async with empty_db.session() as s:
        rows = await s.execute(
            select(Membership.member_id, Membership.first_posted_on, Membership.last_posted_on)
            .order_by(Membership.member_id)
        )  # fmt: skip
        assert rows.all() == [(1, date(2026, 9, 3), date(2026, 10, 5)), (2, None, None)]
        masks = await s.execute(
            select(Membership.recent_posts_day, Membership.recent_posts)
            .order_by(Membership.member_id)
        )  # fmt: skip
        assert masks.all() == [(postdays.day_number(date(2026, 10, 5)), 1 | 1 << 32), (None, 0)]


async def test_upgrade_from_empty_reaches_head(empty_db: Database) -> None:
    async with empty_db.engine.connect() as conn:
        assert await conn.run_sync(_tables) == set()
    assert await empty_db.current_revision() is None

    await empty_db.migrate()

    assert await empty_db.current_revision() == HEAD
    async with empty_db.engine.connect() as conn:
        assert await conn.run_sync(_tables) == TABLES | {"alembic_version"}


async def test_migrating_twice_is_a_no_op(empty_db: Database) -> None:
    await empty_db.migrate()
    async with empty_db.session() as s:
        await s.execute(
            insert(Community).values(
                platform="console",
                external_id="g1",
                timezone="UTC",
                locale="en",
                settings={"kept": True},
                created_at=datetime(2026, 11, 20, tzinfo=UTC),
            )
        )
    async with empty_db.engine.connect() as conn:
        before = await conn.run_sync(_schema)

    await empty_db.migrate()
    await empty_db.migrate("head")

    async with empty_db.engine.connect() as conn:
        assert await conn.run_sync(_schema) == before
    assert await _version_rows(empty_db) == [HEAD]
    async with empty_db.session() as s:
        settings = (await s.execute(select(Community.settings))).scalars().all()
    assert settings == [{"kept": True}]


async def test_migrated_schema_matches_the_models(empty_db: Database) -> None:
    await empty_db.migrate()
    async with empty_db.engine.connect() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == []

    # The comparison really looks: a schema that drifted from the models is reported.
    async with empty_db.engine.begin() as conn:
        await conn.execute(text("DROP INDEX ix_activity_events_community_id_occurred_at"))
        await conn.execute(text("ALTER TABLE members ADD COLUMN nickname VARCHAR(20)"))
        drift = await conn.run_sync(_differences)
    assert sorted(d[0] for d in drift) == ["add_index", "remove_column"]


async def test_downgrade_to_base_and_upgrade_again(empty_db: Database) -> None:
    await empty_db.migrate()
    async with empty_db.engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "base"))
    assert await empty_db.current_revision() is None
    async with empty_db.engine.connect() as conn:
        assert await conn.run_sync(_tables) == {"alembic_version"}

    await empty_db.migrate()
    assert await empty_db.current_revision() == HEAD
    async with empty_db.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def test_sqlite_runs_with_wal_and_foreign_keys(db: Database) -> None:
    # Two connections at once: the pragmas are set on every new connection, not just the first.
    async with db.engine.connect() as first, db.engine.connect() as second:
        for conn in (first, second):
            journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
            foreign_keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
            assert (journal.lower(), foreign_keys) == ("wal", 1)


async def test_foreign_keys_are_enforced_and_cascade(any_db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with any_db.session() as s:
            await s.execute(insert(Chat).values(community_id=999, external_id="c", kind="group"))

    async with any_db.session() as s:
        community = Community(
            platform="console",
            external_id="g1",
            timezone="UTC",
            locale="en",
            settings={},
            created_at=datetime(2026, 11, 20, tzinfo=UTC),
        )
        s.add(community)
        await s.flush()
        s.add(Chat(community_id=community.id, external_id="c1", kind="group"))
        s.add(CommunityDay(community_id=community.id, day=datetime(2026, 11, 20).date()))
    async with any_db.session() as s:
        await s.execute(delete(Community))
    async with any_db.session() as s:
        for model in (Chat, CommunityDay):
            assert (await s.execute(select(func.count()).select_from(model))).scalar_one() == 0
