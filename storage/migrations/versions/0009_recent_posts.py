"""recent posts: a bit mask of each membership's posting days before the latest one

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Bit k = a message on day number `recent_posts_day - k`, k < 62 (storage/postdays.py).
_GAP = {
    "sqlite": "CAST(julianday(ms.last_posted_on) - julianday(md.day) AS INTEGER)",
    "postgresql": "(ms.last_posted_on - md.day)",
}
_DAY_NUMBER = {
    "sqlite": "CAST(julianday(last_posted_on) - 2440587.5 AS INTEGER)",
    "postgresql": "(last_posted_on - DATE '1970-01-01')",
}


def upgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("recent_posts", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("recent_posts_day", sa.Integer(), nullable=True))
    dialect = op.get_bind().dialect.name
    op.execute(
        f"UPDATE memberships SET recent_posts_day = {_DAY_NUMBER[dialect]} "
        "WHERE last_posted_on IS NOT NULL"
    )
    # One grouped pass over the rollups (see 0008 for why not a subquery per membership).
    # Each posting day is one distinct bit, so the sum of the bits is their OR.
    gap = _GAP[dialect]
    op.execute(
        f"""
        UPDATE memberships SET recent_posts = masks.bits
        FROM (
            SELECT md.community_id, md.member_id, SUM(CAST(1 AS BIGINT) << {gap}) AS bits
            FROM member_days md
            JOIN memberships ms
              ON ms.community_id = md.community_id AND ms.member_id = md.member_id
            WHERE md.messages > 0 AND md.day <= ms.last_posted_on AND {gap} < 62
            GROUP BY md.community_id, md.member_id
        ) AS masks
        WHERE memberships.community_id = masks.community_id
          AND memberships.member_id = masks.member_id
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("recent_posts_day")
        batch_op.drop_column("recent_posts")
