"""Multi-turn environments become assets with their own gate: the simulator a grpo run's model acts in is code that
decides what the model becomes, approved like a reward function.

Revision: 0010, after 0009.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_GATES_BEFORE = ("dataset", "reward", "run", "promotion", "base", "policy", "suite")
_KINDS_BEFORE = ("dataset", "reward", "checkpoint", "run", "policy", "suite")


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
    _replace_checks((*_GATES_BEFORE, "environment"), (*_KINDS_BEFORE, "environment"))


def downgrade() -> None:
    _replace_checks(_GATES_BEFORE, _KINDS_BEFORE)
