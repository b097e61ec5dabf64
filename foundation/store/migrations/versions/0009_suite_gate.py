"""Evaluation suites become assets with their own gate: a suite that decides promotions is approved like the data it
reads.

Revision: 0009, after 0008.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_GATES_BEFORE = ("dataset", "reward", "run", "promotion", "base", "policy")
_KINDS_BEFORE = ("dataset", "reward", "checkpoint", "run", "policy")


def _check(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _replace_checks(gates: tuple[str, ...], kinds: tuple[str, ...]) -> None:
    # Checked VARCHARs (no PostgreSQL enum types): widening one means replacing its named CHECK.
    for table in ("gate_request", "decision"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint("ck_gate", type_="check")
            batch.create_check_constraint("ck_gate", _check("gate", gates))
    with op.batch_alter_table("asset") as batch:
        batch.drop_constraint("ck_assetkind", type_="check")
        batch.create_check_constraint("ck_assetkind", _check("kind", kinds))


def upgrade() -> None:
    _replace_checks((*_GATES_BEFORE, "suite"), (*_KINDS_BEFORE, "suite"))


def downgrade() -> None:
    _replace_checks(_GATES_BEFORE, _KINDS_BEFORE)
