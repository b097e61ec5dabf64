"""Training runs, and the base gate (a checkpoint approved as the starting point of runs).

Revision: 0006, after 0005.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_GATES_BEFORE = ("dataset", "reward", "run", "promotion")
_GATES_AFTER = (*_GATES_BEFORE, "base")


def _gate_check(gates: tuple[str, ...]) -> str:
    return "gate IN (" + ", ".join(f"'{g}'" for g in gates) + ")"


def _replace_gate_check(gates: tuple[str, ...]) -> None:
    # The gate column is a checked VARCHAR (no PostgreSQL enum type); widening it means replacing the named CHECK.
    # On SQLite batch mode rebuilds the table with the reflected constraints, the old one dropped and the new added.
    for table in ("gate_request", "decision"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint("ck_gate", type_="check")
            batch.create_check_constraint("ck_gate", _gate_check(gates))


def upgrade() -> None:
    _replace_gate_check(_GATES_AFTER)
    op.create_table(
        "training_run",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("record_version", sa.Integer(), nullable=False),
        sa.Column("run_asset_id", sa.Integer(), nullable=False),
        sa.Column("recipe_digest", sqlmodel.sql.sqltypes.AutoString(length=71), nullable=False),
        sa.Column("decision_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("plan", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sa.Enum("running", "failed", "completed", name="ck_runstatus", native_enum=False,
                                    create_constraint=True, length=16), nullable=False),
        sa.Column("started_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("output_dir", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("realised", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("candidate_digest", sqlmodel.sql.sqltypes.AutoString(length=71), nullable=True),
        sa.Column("provenance_digest", sqlmodel.sql.sqltypes.AutoString(length=71), nullable=True),
        sa.ForeignKeyConstraint(["run_asset_id"], ["asset.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_asset_id"),
    )


def downgrade() -> None:
    op.drop_table("training_run")
    _replace_gate_check(_GATES_BEFORE)
