"""Policy adoption becomes a gate: policy bundles are assets kept in the store, and an activation names its decision;
approvals can be withdrawn (a gate action, and an asset state).

Revision: 0008, after 0007. Workspaces made before it keep their bundle in a `policy/` folder that forgegov no longer
reads; their first policy must be proposed again through the policy gate (see docs/gates.md).
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_GATES_BEFORE = ("dataset", "reward", "run", "promotion", "base")
_KINDS_BEFORE = ("dataset", "reward", "checkpoint", "run")
_ACTIONS_BEFORE = ("request", "approve", "reject")
_STATES_BEFORE = ("registered", "pending", "approved", "rejected")


def _check(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _replace_checks(gates: tuple[str, ...], kinds: tuple[str, ...], actions: tuple[str, ...],
                    states: tuple[str, ...]) -> None:
    # Checked VARCHARs (no PostgreSQL enum types): widening one means replacing its named CHECK.
    for table in ("gate_request", "decision"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint("ck_gate", type_="check")
            batch.create_check_constraint("ck_gate", _check("gate", gates))
    with op.batch_alter_table("decision") as batch:
        batch.drop_constraint("ck_gateaction", type_="check")
        batch.create_check_constraint("ck_gateaction", _check("action", actions))
    with op.batch_alter_table("asset") as batch:
        batch.drop_constraint("ck_assetkind", type_="check")
        batch.create_check_constraint("ck_assetkind", _check("kind", kinds))
        batch.drop_constraint("ck_assetstate", type_="check")
        batch.create_check_constraint("ck_assetstate", _check("state", states))


def upgrade() -> None:
    _replace_checks((*_GATES_BEFORE, "policy"), (*_KINDS_BEFORE, "policy"), (*_ACTIONS_BEFORE, "withdraw"),
                    (*_STATES_BEFORE, "withdrawn"))
    op.create_table(
        "policy_bundle",
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=71), nullable=False),
        sa.Column("record_version", sa.Integer(), nullable=False),
        sa.Column("archive", sa.LargeBinary(), nullable=False),
        sa.Column("decider", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    with op.batch_alter_table("policy_activation") as batch:
        batch.add_column(sa.Column("decision_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policy_activation") as batch:
        batch.drop_column("decision_id")
    op.drop_table("policy_bundle")
    _replace_checks(_GATES_BEFORE, _KINDS_BEFORE, _ACTIONS_BEFORE, _STATES_BEFORE)
