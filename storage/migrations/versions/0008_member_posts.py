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
    # Backfill from the daily rollups; from now on the activity writer keeps both.
    op.execute(
        """
        UPDATE memberships SET
          first_posted_on = (
            SELECT MIN(md.day) FROM member_days md
            WHERE md.community_id = memberships.community_id
              AND md.member_id = memberships.member_id AND md.messages > 0),
          last_posted_on = (
            SELECT MAX(md.day) FROM member_days md
            WHERE md.community_id = memberships.community_id
              AND md.member_id = memberships.member_id AND md.messages > 0)
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("last_posted_on")
        batch_op.drop_column("first_posted_on")
