"""Per-install random keys, made on first use and kept in the database."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import InstallSecret

SECRETS = InstallSecret.__table__


async def install_secret(session: AsyncSession, name: str, *, now: datetime) -> bytes:
    """The key called `name`; two processes asking at once agree on one value."""
    insert = dialect_insert(session)
    await session.execute(
        insert(SECRETS)
        .values(name=name, value=secrets.token_hex(32), created_at=now)
        .on_conflict_do_nothing(index_elements=[SECRETS.c.name])
    )
    value = (await session.execute(select(SECRETS.c.value).where(SECRETS.c.name == name))).scalar()
    assert value is not None
    return bytes.fromhex(value)
