"""Data-quality check results, one row per check of a dataset version.

Revision: 0004, after 0003.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_check",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("record_version", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("dataset_digest", sqlmodel.sql.sqltypes.AutoString(length=71), nullable=False),
        sa.Column("suite_digest", sqlmodel.sql.sqltypes.AutoString(length=71), nullable=False),
        sa.Column("result", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("result_digest", sqlmodel.sql.sqltypes.AutoString(length=71), nullable=False),
        sa.Column("checked_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("checked_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["asset.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_dataset_check_asset_id"), "dataset_check", ["asset_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dataset_check_asset_id"), table_name="dataset_check")
    op.drop_table("dataset_check")
