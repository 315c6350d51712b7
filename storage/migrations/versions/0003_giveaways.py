"""giveaways

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "install_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_install_secrets")),
    )
    op.create_table(
        "giveaways",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "community_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("chat_title", sa.String(length=256), nullable=True),
        sa.Column("chat_kind", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("prize", sa.String(length=256), nullable=False),
        sa.Column("winners", sa.Integer(), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("commitment", sa.String(length=64), nullable=False),
        sa.Column("requirements", sa.JSON(), nullable=False),
        sa.Column("max_entries", sa.Integer(), nullable=True),
        sa.Column("entry_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("count_shown", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("drawn_late", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("entrants_digest", sa.String(length=64), nullable=True),
        sa.Column("rounds", sa.JSON(), nullable=False),
        sa.Column("result_message_id", sa.String(length=64), nullable=True),
        sa.Column("result_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_giveaways_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_giveaways")),
    )
    with op.batch_alter_table("giveaways", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_giveaways_community_id_status"), ["community_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_giveaways_status_ends_at"), ["status", "ends_at"], unique=False
        )

    op.create_table(
        "giveaway_entries",
        sa.Column(
            "giveaway_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("entrant_id", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("weight", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["giveaway_id"],
            ["giveaways.id"],
            name=op.f("fk_giveaway_entries_giveaway_id_giveaways"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("giveaway_id", "user_id", name=op.f("pk_giveaway_entries")),
        sa.UniqueConstraint(
            "giveaway_id", "entrant_id", name=op.f("uq_giveaway_entries_giveaway_id_entrant_id")
        ),
    )
    op.create_table(
        "giveaway_winners",
        sa.Column(
            "giveaway_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("round", sa.SmallInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("notified", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["giveaway_id"],
            ["giveaways.id"],
            name=op.f("fk_giveaway_winners_giveaway_id_giveaways"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("giveaway_id", "user_id", name=op.f("pk_giveaway_winners")),
    )


def downgrade() -> None:
    op.drop_table("giveaway_winners")
    op.drop_table("giveaway_entries")
    with op.batch_alter_table("giveaways", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_giveaways_status_ends_at"))
        batch_op.drop_index(batch_op.f("ix_giveaways_community_id_status"))

    op.drop_table("giveaways")
    op.drop_table("install_secrets")
