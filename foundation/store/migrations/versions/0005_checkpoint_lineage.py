"""Checkpoints name the checkpoint they were trained from, by digest.

Revision: 0005, after 0004.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("asset") as batch:
        batch.add_column(sa.Column("parent_digest", sqlmodel.sql.sqltypes.AutoString(length=71), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("asset") as batch:
        batch.drop_column("parent_digest")
