"""member posts: first and latest message day per membership

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_posted_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("last_posted_on", sa.Date(), nullable=True))
    # Backfill from the daily rollups in one grouped pass (a correlated subquery per
    # membership lets SQLite pick the (community_id, day, member_id) key and scan the
    # community's whole history once per member); from now on the activity writer keeps both.
    op.execute(
        """
        UPDATE memberships SET first_posted_on = posts.first_day, last_posted_on = posts.last_day
        FROM (
            SELECT community_id, member_id, MIN(day) AS first_day, MAX(day) AS last_day
            FROM member_days WHERE messages > 0 GROUP BY community_id, member_id
        ) AS posts
        WHERE memberships.community_id = posts.community_id
          AND memberships.member_id = posts.member_id
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("last_posted_on")
        batch_op.drop_column("first_posted_on")
