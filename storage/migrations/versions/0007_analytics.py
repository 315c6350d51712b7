"""analytics: hourly rollups, member counts, alerts, member indexes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "community_hours",
        sa.Column("community_id", BIG_ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("messages", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reactions", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_community_hours_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("community_id", "day", "hour", name=op.f("pk_community_hours")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("community_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), server_default="1", nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_alerts_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alerts_community_id_kind_subject_last_at"),
            ["community_id", "kind", "subject", "last_at"],
            unique=False,
        )
    with op.batch_alter_table("community_days", schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_count", sa.Integer(), nullable=True))
    # Deleting a member (`/forgetme`, retention) finds their rows without a table scan.
    with op.batch_alter_table("activity_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_activity_events_member_id"), ["member_id"])
    with op.batch_alter_table("member_days", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_days_member_id"), ["member_id"])


def downgrade() -> None:
    with op.batch_alter_table("member_days", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_days_member_id"))
    with op.batch_alter_table("activity_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_activity_events_member_id"))
    with op.batch_alter_table("community_days", schema=None) as batch_op:
        batch_op.drop_column("member_count")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_community_id_kind_subject_last_at"))
    op.drop_table("alerts")
    op.drop_table("community_hours")
