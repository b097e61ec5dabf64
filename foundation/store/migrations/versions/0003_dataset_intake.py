"""Datasets carry what intake learned: their declared kind and classification, and their record count.

Revision: 0003, after 0002.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("asset") as batch:
        batch.add_column(sa.Column("dataset_kind", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.add_column(sa.Column("classification", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.add_column(sa.Column("records", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("asset") as batch:
        batch.drop_column("records")
        batch.drop_column("classification")
        batch.drop_column("dataset_kind")
