"""Per-install random keys, made on first use and kept in the database."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import DialectInsert
from storage.models import InstallSecret

SECRETS = InstallSecret.__table__

_READ = select(SECRETS.c.value).where(SECRETS.c.name == bindparam("p_name"))
_CREATE = DialectInsert(
    lambda insert: insert(SECRETS).on_conflict_do_nothing(index_elements=[SECRETS.c.name])
)


async def install_secret(session: AsyncSession, name: str, *, now: datetime) -> bytes:
    """The key called `name`; two processes asking at once agree on one value."""
    value = (await session.execute(_READ, {"p_name": name})).scalar()
    if value is None:
        # Made once per install; whoever loses the race reads the winner's key.
        row = {"name": name, "value": secrets.token_hex(32), "created_at": now}
        await session.execute(_CREATE.of(session), row)
        value = (await session.execute(_READ, {"p_name": name})).scalar()
    assert value is not None
    return bytes.fromhex(value)
