"""`record_together`: a batch's outcomes in one transaction, else each in its own."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.firing import record_together
from storage.db import Database


async def test_outcomes_are_recorded_together_when_they_can_be(db: Database) -> None:
    calls: list[object] = []

    async def together(session: AsyncSession, items: Sequence[int]) -> None:
        calls.append(list(items))

    async def alone(session: AsyncSession, item: int) -> None:
        calls.append(item)

    await record_together(db, [1, 2, 3], together, alone, what="things", label=str)
    await record_together(db, [], together, alone, what="things", label=str)
    assert calls == [[1, 2, 3]]


async def test_a_refused_batch_is_recorded_item_by_item_and_one_bad_item_loses_no_other(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    recorded: list[int] = []

    async def together(session: AsyncSession, items: Sequence[int]) -> None:
        raise ValueError("refused")

    async def alone(session: AsyncSession, item: int) -> None:
        if item == 2:
            raise ValueError("bad item")
        recorded.append(item)

    await record_together(
        db, [1, 2, 3], together, alone, what="things", label=lambda i: f"thing {i}"
    )
    assert recorded == [1, 3]
    assert "recording 3 things together failed" in caplog.text
    assert "thing 2: could not record its outcome" in caplog.text
