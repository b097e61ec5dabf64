"""Merkle audit log: canonical leaf bytes kept with each entry, stored subtree nodes, signed checkpoints.

Revision: 0002, after 0001. Existing entries keep their leaf hashes: the interim log already hashed exactly these
leaf fields with RFC 8785, so only the leaf bytes and the subtree nodes have to be filled in.
"""

import hashlib
import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies of what the log did when this revision was written (leaf version 1, RFC 6962 node hashing, node ids
# as level << 48 | index): a migration must keep doing what it did, whatever later code does.
LEAF_VERSION = 1


def canonical_leaf(fields: dict) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def node_id(level: int, index: int) -> int:
    return level << 48 | index


def upgrade() -> None:
    with op.batch_alter_table("audit_entry") as batch:
        batch.add_column(sa.Column("leaf", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.alter_column("payload", existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        batch.create_index("ix_audit_entry_actor", ["actor"])
        batch.create_index("ix_audit_entry_action", ["action"])
        batch.create_index("ix_audit_entry_subject_digest", ["subject_digest"])
    op.create_table(
        "audit_node",
        sa.Column("id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_version", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("root", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_checkpoint_size", "audit_checkpoint", ["size"])

    connection = op.get_bind()
    entry = sa.table("audit_entry", sa.column("seq", sa.Integer), sa.column("leaf", sa.String),
                     sa.column("leaf_hash", sa.String), *(sa.column(name, sa.String) for name in (
                         "time", "actor", "action", "subject_digest", "decision_id", "policy_revision",
                         "payload_digest")))
    node = sa.table("audit_node", sa.column("id", sa.BigInteger), sa.column("hash", sa.String))
    rows = connection.execute(sa.select(entry).order_by(entry.c.seq)).mappings().all()
    level = []
    for row in rows:
        fields = {"v": LEAF_VERSION, **{k: row[k] for k in ("seq", "time", "actor", "action", "subject_digest",
                                                              "decision_id", "policy_revision", "payload_digest")}}
        connection.execute(sa.update(entry).where(entry.c.seq == row["seq"])
                           .values(leaf=canonical_leaf(fields).decode()))
        level.append(bytes.fromhex(row["leaf_hash"]))
    height = 0
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        height += 1
        if level:
            connection.execute(sa.insert(node), [{"id": node_id(height, i), "hash": h.hex()}
                                                 for i, h in enumerate(level)])
    with op.batch_alter_table("audit_entry") as batch:
        batch.alter_column("leaf", existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False)


def downgrade() -> None:
    op.drop_index("ix_audit_checkpoint_size", table_name="audit_checkpoint")
    op.drop_table("audit_checkpoint")
    op.drop_table("audit_node")
    with op.batch_alter_table("audit_entry") as batch:
        batch.drop_index("ix_audit_entry_subject_digest")
        batch.drop_index("ix_audit_entry_action")
        batch.drop_index("ix_audit_entry_actor")
        batch.alter_column("payload", existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False)
        batch.drop_column("leaf")
