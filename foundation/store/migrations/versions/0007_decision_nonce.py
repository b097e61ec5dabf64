"""Every decision spends its statement's nonce, denied ones included.

Revision: 0007, after 0006. Before it, only an applied approval recorded its nonce, so a statement denied (say while
OPA was down) could be submitted again within its freshness window. Decisions made before this revision keep a NULL
nonce; their allowed approvals are still found by `approval.nonce`.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decision") as batch:
        batch.add_column(sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.create_unique_constraint("uq_decision_nonce", ["nonce"])


def downgrade() -> None:
    with op.batch_alter_table("decision") as batch:
        batch.drop_constraint("uq_decision_nonce", type_="unique")
        batch.drop_column("nonce")
