"""Tables. Every record carries `record_version` so that readers can tell old rows from new after a migration.

Times are RFC 3339 UTC strings (the same bytes on SQLite and PostgreSQL, and the same bytes that get signed);
JSON columns hold RFC 8785 canonical text.
"""

from __future__ import annotations

from enum import Enum
from typing import Optional

from sqlalchemy import BigInteger, Column, LargeBinary, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from forgegov.foundation.vocabulary import (
    AssetKind,
    AssetState,
    DecisionResult,
    Gate,
    GateAction,
    RequestStatus,
    RunStatus,
    Verdict,
)

RECORD_VERSION = 1


def _enum(enum_type: type[Enum], **kwargs) -> Column:
    """Enums are stored as their values in a checked VARCHAR: readable in SQL and no PostgreSQL enum types to migrate."""
    return Column(
        SAEnum(enum_type, native_enum=False, values_callable=lambda e: [m.value for m in e], length=16,
               validate_strings=True, create_constraint=True, name=f"ck_{enum_type.__name__.lower()}"),
        nullable=False, **kwargs,
    )


class Identity(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    record_version: int = RECORD_VERSION
    name: str = Field(index=True, unique=True, max_length=64)
    key_id: str = Field(unique=True, max_length=64)
    public_key: str = Field(max_length=64)
    created_at: str
    revoked_at: Optional[str] = None
    revoked_by: Optional[str] = None
    revoke_reason: Optional[str] = None


class Asset(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("kind", "name", "version", name="uq_asset_kind_name_version"),
        UniqueConstraint("kind", "digest", name="uq_asset_kind_digest"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    record_version: int = RECORD_VERSION
    kind: AssetKind = Field(sa_column=_enum(AssetKind))
    name: str = Field(index=True, max_length=128)
    version: int
    digest: str = Field(index=True, max_length=71)
    owner: str = Field(max_length=64)
    state: AssetState = Field(default=AssetState.REGISTERED, sa_column=_enum(AssetState))
    stage: Optional[str] = None
    # The digest of the checkpoint this one was trained from (checkpoints only; none for a root of the lineage).
    parent_digest: Optional[str] = Field(default=None, max_length=71)
    release: Optional[str] = None
    dataset_kind: Optional[str] = None
    classification: Optional[str] = None
    records: Optional[int] = None
    manifest: str
    source_path: str
    registered_by: str
    registered_at: str


class GateRequest(SQLModel, table=True):
    __tablename__ = "gate_request"
    id: str = Field(primary_key=True, max_length=36)
    record_version: int = RECORD_VERSION
    gate: Gate = Field(sa_column=_enum(Gate))
    asset_id: int = Field(foreign_key="asset.id", index=True)
    target: Optional[str] = None
    requested_by: str
    requested_at: str
    payload: str
    signature: str
    status: RequestStatus = Field(default=RequestStatus.OPEN, sa_column=_enum(RequestStatus))
    closed_at: Optional[str] = None


class Approval(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    record_version: int = RECORD_VERSION
    request_id: str = Field(foreign_key="gate_request.id", index=True)
    approver: str
    key_id: str = Field(max_length=64)
    verdict: Verdict = Field(sa_column=_enum(Verdict))
    payload: str
    signature: str
    nonce: str = Field(unique=True, max_length=64)
    signed_at: str
    recorded_at: str


class Decision(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=36)
    record_version: int = RECORD_VERSION
    opa_decision_id: Optional[str] = None
    gate: Gate = Field(sa_column=_enum(Gate))
    action: GateAction = Field(sa_column=_enum(GateAction))
    request_id: Optional[str] = None
    subject_digest: str
    actor: str
    input_digest: str
    input: str
    result: DecisionResult = Field(sa_column=_enum(DecisionResult))
    reasons: str
    missing: str
    policy_revision: Optional[str] = None
    policy_digest: Optional[str] = None
    decided_at: str
    # The nonce of the statement decided: spent by every decision, denied ones included (NULL before revision 0007).
    nonce: Optional[str] = Field(default=None, max_length=64, sa_column_kwargs={"unique": True})


class PolicyActivation(SQLModel, table=True):
    """A policy put in force. Since revision 0008 every activation after the workspace's first names the policy-gate
    decision that allowed it; readers hold the newest row against the log (`governance/policy.py`)."""

    __tablename__ = "policy_activation"
    id: Optional[int] = Field(default=None, primary_key=True)
    record_version: int = RECORD_VERSION
    digest: str = Field(max_length=71)
    revision: str
    activated_by: str
    activated_at: str
    signature: Optional[str] = None
    decision_id: Optional[str] = Field(default=None, max_length=36)


class PolicyBundle(SQLModel, table=True):
    """A policy bundle's bytes (a gzipped tar of its Rego, data and manifest) and the OPA build pinned to decide it,
    keyed by the digest that covers both. Kept in the store, not in a folder, so that registering a bundle is one
    transaction and every workspace on a shared store runs the same bytes; whoever reads it re-hashes it first."""

    __tablename__ = "policy_bundle"
    digest: str = Field(primary_key=True, max_length=71)
    record_version: int = RECORD_VERSION
    archive: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    decider: str


class AuditEntry(SQLModel, table=True):
    """One leaf of the audit log.

    `leaf` is the entry's canonical bytes and the only thing the tree commits to: `leaf_hash` is RFC 6962's
    SHA-256(0x00 || leaf). The other columns repeat leaf fields for querying; `audit verify` checks they agree.
    `payload` lives beside the leaf (the leaf holds its digest), so it can be erased lawfully (`audit redact`)
    without breaking the tree.
    """

    __tablename__ = "audit_entry"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    record_version: int = RECORD_VERSION
    leaf: str
    leaf_hash: str = Field(max_length=64)
    time: str
    actor: str = Field(index=True)
    action: str = Field(index=True)
    subject_digest: Optional[str] = Field(default=None, index=True)
    decision_id: Optional[str] = None
    policy_revision: Optional[str] = None
    payload_digest: str = Field(max_length=71)
    payload: Optional[str] = None


class AuditNode(SQLModel, table=True):
    """A perfect subtree hash at level ≥ 1 (level 0 is the entry's leaf hash), covering leaves
    [idx·2^level, (idx+1)·2^level). `id` is (level << 48) | idx: one integer key, so a proof's nodes come back from
    one cached `IN` query."""

    __tablename__ = "audit_node"
    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: str = Field(max_length=64)


class AuditTreeHead(SQLModel, table=True):
    """A signed tree head in the C2SP signed-note form (`note` is the whole note, signatures included). The table
    keeps C2SP's name for it, "checkpoint"; in code that word means model weights."""

    __tablename__ = "audit_checkpoint"
    id: Optional[int] = Field(default=None, primary_key=True)
    record_version: int = RECORD_VERSION
    size: int = Field(index=True)
    root: str = Field(max_length=64)
    note: str
    created_at: str


class DatasetCheck(SQLModel, table=True):
    """One data-quality check of one dataset version: the full result (counts, rates, locations; never values),
    its digest, and the audit entry that committed to that digest. The dataset gate reads the newest one."""

    __tablename__ = "dataset_check"
    id: str = Field(primary_key=True, max_length=36)
    record_version: int = RECORD_VERSION
    asset_id: int = Field(foreign_key="asset.id", index=True)
    dataset_digest: str = Field(max_length=71)
    suite_digest: str = Field(max_length=71)
    result: str
    result_digest: str = Field(max_length=71)
    checked_by: str = Field(max_length=64)
    checked_at: str
    audit_seq: int


class TrainingRun(SQLModel, table=True):
    """One execution of an approved run spec (one per run asset; resumed, never restarted).

    `plan` pins what the run gate approved: the recipe, and the base checkpoint and datasets by digest, copied from
    the allowing decision's input, so a dataset version registered after the approval cannot slip in. `realised`
    holds the tokens actually trained on per source, next to the planned shares, once the run completes; the
    candidate, its provenance and the code that produced it are recorded with it.
    """

    __tablename__ = "training_run"
    id: str = Field(primary_key=True, max_length=36)
    record_version: int = RECORD_VERSION
    run_asset_id: int = Field(foreign_key="asset.id", unique=True)
    recipe_digest: str = Field(max_length=71)
    decision_id: str = Field(max_length=36)
    plan: str
    status: RunStatus = Field(sa_column=_enum(RunStatus))
    started_by: str = Field(max_length=64)
    started_at: str
    attempts: int = 1
    output_dir: str
    finished_at: Optional[str] = None
    error: Optional[str] = None
    realised: Optional[str] = None
    code: Optional[str] = None
    candidate_digest: Optional[str] = Field(default=None, max_length=71)
    provenance_digest: Optional[str] = Field(default=None, max_length=71)
