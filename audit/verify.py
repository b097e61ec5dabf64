"""Verifying the whole log: every leaf, every stored node, every checkpoint, every witness, every signed statement.

Works on a live store or on an export (no database, no network). It stops at the first problem and names the entry
and what is wrong; the checks, in order:
  1. entries are contiguous from 0; each leaf hashes to its stored leaf hash and names its own seq; the query
     columns agree with the leaf; each payload matches the leaf's payload digest (or was lawfully redacted);
  2. the tree rebuilt from the leaves equals every stored subtree node (none missing, none extra);
  3. every checkpoint, stored or witnessed, is signed by the pinned log key, is no larger than the log, and its root
     is the rebuilt root at its size (a truncated, rolled-back or rewritten log fails here); witness cosignatures
     verify;
  4. every statement a person signed (gate requests, approvals and the approvals each answer counted, data-quality
     checks, administrative acts) verifies under its signer's key as registered in the log and says what its entry
     says, and no nonce is spent twice (a forged or replayed approval, or an erasure nobody signed, fails here); the
     payload of an entry that may never be redacted is present.
"""

from __future__ import annotations

import base64
import hashlib
import json
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from forgegov.audit.hashing import LEAF_PREFIX, node_hash
from forgegov.audit.merkle import EMPTY_ROOT, range_hash
from forgegov.audit.note import NoteError, open_checkpoint, verify_cosignature
from forgegov.foundation.clock import parse_rfc3339, rfc3339
from forgegov.foundation.crypto.signing import Purpose, key_id_of, public_key_from_b64, verify
from forgegov.foundation.errors import SignatureInvalid, Tampered
from forgegov.foundation.vocabulary import ADMIN_ACTIONS, NOT_REDACTABLE, QUORUM_WINDOW, RECENT_STARTS, AuditAction

PROJECTED = ("time", "actor", "action", "subject_digest", "decision_id", "policy_revision", "payload_digest")


class AuditIntegrityError(Tampered):
    """The log, its stored nodes or a signed tree head is not what the log signed: `seq` names the entry, if one."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message, hint="compare with an export or a witness copy; see `forgegov audit verify --help`")
        self.seq = seq


# One entry as verification reads it: (seq, leaf, payload, stored leaf hash or None, *query columns in PROJECTED
# order, or nothing when there are none, as in an export). Plain tuples: a million of them pass through here.
EntryRow = tuple[Any, ...]
_projected = operator.itemgetter(*PROJECTED)
# The field of an allowed act's entry that must be what the act signed names (a name for identity acts).
_ACTED_FIELD = {AuditAction.AUDIT_REDACT: "seq", AuditAction.JOB_START: "kind", AuditAction.JOB_CANCEL: "job",
                AuditAction.ASSET_FETCH: "subject"}
_SEMANTIC_ACTIONS = (AuditAction.IDENTITY_CREATE, AuditAction.DATASET_CHECK, "gate.", *ADMIN_ACTIONS)
_decode = json.JSONDecoder().decode
# The same string escaping json.dumps(ensure_ascii=False) uses, so the fast path rebuilds leaves byte for byte.
_encode_string = json.encoder.encode_basestring


@dataclass(frozen=True)
class WitnessCopy:
    source: str
    note: str
    cosigners: dict[str, str] = field(default_factory=dict)


@dataclass
class VerifyReport:
    entries: int = 0
    nodes: int = 0
    checkpoints: int = 0
    witnessed: int = 0
    statements: int = 0
    redacted: list[int] = field(default_factory=list)
    root: str = ""
    rows: int = 0  # asset and identity rows held against the state the log says (workspaces only, not exports)
    covered: int = 0  # entries covered by the largest signed tree head that verified (stored or witnessed)
    witness_covered: int = 0  # the same, counting witnessed tree heads only
    limits: list[str] = field(default_factory=list)  # what this verification could not prove
    roots: dict[int, bytes] = field(default_factory=dict)  # the root at each size asked for (`at_sizes`)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "entries": self.entries, "nodes": self.nodes, "checkpoints": self.checkpoints,
                "witnessed": self.witnessed, "statements": self.statements, "redacted": self.redacted,
                "root": self.root, "rows": self.rows, "covered": self.covered, "witness_covered": self.witness_covered,
                "limits": self.limits}

    def state_limits(self) -> None:
        """Say what a passing verification still leaves open, so that "ok" is never read as more than it is."""
        if self.covered < self.entries:
            self.limits.append(f"entries {self.covered}..{self.entries - 1} are covered by no signed tree head: "
                               "they could be changed or dropped without detection (`forgegov audit checkpoint`)")
        if not self.witnessed:
            self.limits.append("no witness copy was checked: whoever holds the log key could rewrite the log, and a "
                               "rollback of the store goes unnoticed (configure witnesses, or pass --witness)")
        elif self.witness_covered < self.entries:
            self.limits.append(f"entries {self.witness_covered}..{self.entries - 1} are past the newest witnessed "
                               "tree head: whoever holds the log key could rewrite them")


def verify_log(origin: str, log_key: Ed25519PublicKey, entries: Iterable[EntryRow],
               nodes: Iterable[tuple[int, int, str]] | None, checkpoints: Iterable[str],
               witnessed: Iterable[WitnessCopy], at_sizes: Iterable[int] = ()) -> VerifyReport:
    report = VerifyReport()
    leaves: list[bytes] = []
    statements = _StatementChecker()
    redactions: set[int] = set()
    for row in entries:
        seq, payload_text = row[0], row[2]
        digest = _fast_check(row, len(leaves))
        if digest is None:
            leaf, digest = _check_entry(row, len(leaves))
            action, subject, actor, time = leaf["action"], leaf.get("subject_digest"), leaf["actor"], leaf["time"]
        else:
            action, subject, actor, time = row[6], row[7], row[5], row[4]
        leaves.append(digest)
        if payload_text is None:
            if action in NOT_REDACTABLE:
                raise AuditIntegrityError(f"entry {seq}: the payload of a {action} entry is missing, and no one may "
                                          "erase one", seq)
            report.redacted.append(seq)
            continue
        if not action.startswith(_SEMANTIC_ACTIONS):
            continue
        try:
            payload = _decode(payload_text)
            if not isinstance(payload, dict):
                raise TypeError("not a JSON object")
            statements.check(seq, action, payload, subject, actor, time)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Binascii and JSON errors are ValueErrors: a malformed payload is named, never a traceback.
            raise AuditIntegrityError(f"entry {seq}: the payload of a {action} entry is malformed ({exc})",
                                      seq) from exc
        if action == AuditAction.AUDIT_REDACT:
            erased = payload.get("seq")
            if not isinstance(erased, int) or isinstance(erased, bool) or not 0 <= erased < seq:
                raise AuditIntegrityError(f"entry {seq}: the audit.redact entry names no earlier entry", seq)
            redactions.add(erased)
    report.entries = len(leaves)
    unexplained = sorted(set(report.redacted) - redactions)
    if unexplained:
        raise AuditIntegrityError(f"entry {unexplained[0]}: payload is missing and no `audit.redact` entry "
                                  "records its erasure", unexplained[0])
    levels = _levels(leaves)
    if nodes is not None:
        report.nodes = _check_nodes(levels, nodes)
    for note in checkpoints:
        size = _check_checkpoint(note, origin, log_key, levels, "stored checkpoint")
        report.covered = max(report.covered, size)
        report.checkpoints += 1
    for copy in witnessed:
        size = _check_checkpoint(copy.note, origin, log_key, levels, f"witnessed checkpoint {copy.source}")
        report.covered = max(report.covered, size)
        report.witness_covered = max(report.witness_covered, size)
        for name, key in copy.cosigners.items():
            try:
                verify_cosignature(copy.note, name, public_key_from_b64(key))
            except NoteError as exc:
                raise AuditIntegrityError(f"witnessed checkpoint {copy.source}: {exc.message}") from exc
        report.witnessed += 1
    report.statements = statements.count
    report.root = base64.b64encode(_root(levels, len(leaves))).decode()
    report.roots = {size: _root(levels, size) for size in at_sizes if 0 < size <= len(leaves)}
    report.state_limits()
    return report


def _fast_check(row: EntryRow, expected_seq: int) -> bytes | None:
    """The common case in one pass: the stored leaf is exactly the v1 leaf its query columns describe, its hash is
    the stored one and the payload matches its digest. Returns the leaf hash, or None to take the slow path, which
    decodes the leaf and names what is wrong."""
    if len(row) != 4 + len(PROJECTED) or row[0] != expected_seq:
        return None
    seq, leaf_text, payload, stored_hash, time, actor, action, subject, decision, revision, payload_digest = row
    enc = _encode_string
    expected = (f'{{"action":{enc(action)},"actor":{enc(actor)},'
                f'"decision_id":{"null" if decision is None else enc(decision)},'
                f'"payload_digest":{enc(payload_digest)},'
                f'"policy_revision":{"null" if revision is None else enc(revision)},"seq":{seq},'
                f'"subject_digest":{"null" if subject is None else enc(subject)},"time":{enc(time)},"v":1}}')
    if leaf_text != expected:
        return None
    digest = hashlib.sha256(LEAF_PREFIX + leaf_text.encode()).digest()
    if digest.hex() != stored_hash:
        return None
    if payload is not None and "sha256:" + hashlib.sha256(payload.encode()).hexdigest() != payload_digest:
        return None
    return digest


def _check_entry(row: EntryRow, expected_seq: int) -> tuple[dict[str, Any], bytes]:
    seq, leaf_text, payload, stored_hash = row[:4]
    columns = row[4:]
    if seq != expected_seq:
        raise AuditIntegrityError(f"entry {expected_seq} is missing (the next entry present is {seq})",
                                  expected_seq)
    leaf_bytes = leaf_text.encode()
    digest = hashlib.sha256(LEAF_PREFIX + leaf_bytes).digest()
    if stored_hash is not None and digest.hex() != stored_hash:
        raise AuditIntegrityError(f"entry {seq}: leaf bytes do not match the stored leaf hash", seq)
    try:
        leaf = _decode(leaf_text)
    except ValueError as exc:
        raise AuditIntegrityError(f"entry {seq}: leaf is not JSON", seq) from exc
    if leaf.get("seq") != seq:
        raise AuditIntegrityError(f"entry {seq}: leaf says it is entry {leaf.get('seq')} (rows swapped or moved)", seq)
    if columns and columns != _leaf_projection(leaf):
        for name, value in zip(PROJECTED, columns, strict=True):
            if value != leaf.get(name):
                raise AuditIntegrityError(f"entry {seq}: column {name} says {value!r} but the signed "
                                          f"leaf says {leaf.get(name)!r}", seq)
    if payload is not None and \
            "sha256:" + hashlib.sha256(payload.encode()).hexdigest() != leaf.get("payload_digest"):
        raise AuditIntegrityError(f"entry {seq}: payload does not match the leaf's payload digest", seq)
    return leaf, digest


def _leaf_projection(leaf: dict[str, Any]) -> tuple[Any, ...]:
    try:
        return _projected(leaf)
    except KeyError:
        return ()


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every perfect subtree hash, level by level (level 0 = leaves)."""
    levels = [leaves]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return levels


def _root(levels: list[list[bytes]], size: int) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    return range_hash(0, size, lambda level, index: levels[level][index])


def _check_nodes(levels: list[list[bytes]], nodes: Iterable[tuple[int, int, str]]) -> int:
    seen = 0
    counts = [0] * len(levels)
    for level, index, value in nodes:
        if level < 1 or level >= len(levels) or index >= len(levels[level]):
            raise AuditIntegrityError(f"stored node ({level}, {index}) lies outside the tree the entries make")
        if levels[level][index].hex() != value:
            first = index << level
            raise AuditIntegrityError(f"stored node ({level}, {index}) over entries {first}..{first + (1 << level) - 1}"
                                      " does not match those entries", first)
        counts[level] += 1
        seen += 1
    for level in range(1, len(levels)):
        if counts[level] != len(levels[level]):
            raise AuditIntegrityError(f"{len(levels[level]) - counts[level]} stored node(s) at level {level} are "
                                      "missing")
    return seen


def _check_checkpoint(note: str, origin: str, log_key: Ed25519PublicKey, levels: list[list[bytes]],
                      what: str) -> int:
    """The size the signed tree head in `note` covers, once it verifies and matches the log's tree there."""
    try:
        checkpoint = open_checkpoint(note, origin, log_key)
    except NoteError as exc:
        raise AuditIntegrityError(f"{what}: {exc.message}") from exc
    size = len(levels[0])
    if checkpoint.size > size:
        raise AuditIntegrityError(f"{what} covers {checkpoint.size} entries but the log has only {size}: "
                                  "entries were removed from the end (truncation or rollback)", size)
    if _root(levels, checkpoint.size) != checkpoint.root:
        raise AuditIntegrityError(f"{what} at size {checkpoint.size} does not match the log's tree at that size: "
                                  "the log was rewritten (a split view)")
    return checkpoint.size


class _StatementChecker:
    """Every statement a person signed that an entry carries verifies under the key the log bound to the signer's name
    (their `identity.create`, then any `identity.rotate`), was signed by someone not revoked at that point of the log,
    and says what the entry says it did. Someone holding the log key (or only write access to the store, whose
    appended entries the next tree head would cover) can append entries, but not sign for anyone else: a gate decision
    resting on a made-up request or approval, or on a statement already spent or refused, a redaction nobody with a
    key asked for, or a check recorded in another's name fails here, on a store or on an export. Whether the policy
    allowed what was signed is replay's to prove (`audit verify --replay`)."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, Ed25519PublicKey]] = {}  # every key each name was bound to, by key id
        self.current: dict[str, str] = {}  # the key id each name is bound to now
        self.revoked: set[str] = set()
        self.decided: dict[str, tuple[int, str, Any]] = {}  # gate statement nonce -> (entry, result, statement)
        self.closed: dict[str, int] = {}  # request id -> the entry whose allowing decision closed it
        self.refused: dict[str, int] = {}  # nonces of statements a gate refused: never to decide afterwards
        self.admin_nonces: dict[str, int] = {}
        self.jobs: dict[int, tuple[str, str]] = {}  # job (its job.start entry) -> (who started it, its kind)
        self.starts: dict[str, list[str]] = {}  # member -> the times of their job.start entries, in log order
        # admin.pending entry -> (signer, key id, the statement they signed, its time); and those a decision counted
        self.pending: dict[int, tuple[str, str, dict[str, Any], str]] = {}
        self.counted: set[int] = set()
        self.enrolling: int | None = None  # the first identity.enrol: no identity.create may follow it
        self.count = 0

    def check(self, seq: int, action: str, payload: dict[str, Any], subject: str | None, actor: str,
              time: str) -> None:
        if action == AuditAction.IDENTITY_CREATE:
            if self.enrolling is not None:
                raise AuditIntegrityError(f"entry {seq}: identity {payload['name']!r} is created after the log began "
                                          f"enrolling its members (entry {self.enrolling}): only an enrolment binds "
                                          "a key from then on", seq)
            if payload["name"] in self.keys:
                # A name is bound to its first key for good: a second creation is a deleted identity recreated.
                raise AuditIntegrityError(f"entry {seq}: identity {payload['name']!r} is created a second time", seq)
            self._bind(payload["name"], payload)
        elif action == AuditAction.GATE_REFUSED:
            # A refusal records what was submitted, forged or not: its signature is the submitter's claim. What it
            # carried may never decide later.
            statement = payload.get("statement")
            if isinstance(statement, dict) and isinstance(statement.get("nonce"), str):
                self.refused.setdefault(statement["nonce"], seq)
        elif action.startswith("gate."):
            self._gate(seq, action, payload, subject)
        elif action in ADMIN_ACTIONS:
            self._admin(seq, action, payload, actor, time, subject)
        elif action == AuditAction.DATASET_CHECK:
            statement = self._signed(seq, Purpose.DATA_QUALITY, payload, "data-quality check")
            if (statement.get("check_id"), statement.get("result_digest"), statement.get("dataset_digest")) \
                    != (payload.get("check_id"), payload.get("result_digest"), subject):
                raise AuditIntegrityError(f"entry {seq}: the check's signed statement names another check, result "
                                          "or dataset than the entry records", seq)

    def _bind(self, name: str, payload: dict[str, Any]) -> None:
        self.keys.setdefault(name, {})[payload["key_id"]] = public_key_from_b64(payload["public_key"])
        self.current[name] = payload["key_id"]

    def _signed(self, seq: int, purpose: Purpose, carrier: Any, what: str, *, current: bool = True) -> dict[str, Any]:
        """The statement `carrier` holds, once it verifies under its signer's key: the key bound to them now, and
        them not revoked, when it was signed for this entry (`current`); any key the log ever bound to them when it
        was stored earlier."""
        statement = carrier.get("statement") if isinstance(carrier, dict) else None
        signature = carrier.get("signature") if isinstance(carrier, dict) else None
        if not isinstance(statement, dict) or not isinstance(signature, str):
            raise AuditIntegrityError(f"entry {seq}: the {what} carries no signed statement", seq)
        signer = statement.get("signer")
        if not isinstance(signer, str) or signer not in self.keys:
            raise AuditIntegrityError(f"entry {seq}: {what} signed by {signer!r}, an identity the log never "
                                      "registered", seq)
        key_id = statement.get("key_id")
        if current and (key_id != self.current[signer] or signer in self.revoked):
            raise AuditIntegrityError(f"entry {seq}: the {what} by {signer} is signed with a key that is not theirs, "
                                      "or was revoked, at this point of the log", seq)
        key = self.keys[signer].get(key_id) if isinstance(key_id, str) else None
        if key is None:
            raise AuditIntegrityError(f"entry {seq}: the {what} by {signer} names a key never bound to them", seq)
        try:
            verify(key, purpose, statement, signature)
        except SignatureInvalid as exc:
            raise AuditIntegrityError(f"entry {seq}: the signed {what} by {signer} does not verify (forged or "
                                      "altered)", seq) from exc
        self.count += 1
        return statement

    def _gate(self, seq: int, action: str, payload: dict[str, Any], subject: str | None) -> None:
        statement = self._signed(seq, Purpose.GATE_ACTION, payload, "statement")
        signed_subject = statement.get("subject") if isinstance(statement.get("subject"), dict) else {}
        if action != f"gate.{statement.get('gate')}.{statement.get('action')}" \
                or signed_subject.get("digest") != subject:
            raise AuditIntegrityError(f"entry {seq}: a {action} entry on {subject} carries a statement signed for "
                                      f"gate.{statement.get('gate')}.{statement.get('action')} on "
                                      f"{signed_subject.get('digest')}", seq)
        nonce = str(statement.get("nonce"))
        if nonce in self.decided:
            raise AuditIntegrityError(f"entry {seq}: statement nonce already used by entry {self.decided[nonce][0]} "
                                      "(replayed approval)", seq)
        if nonce in self.refused:
            raise AuditIntegrityError(f"entry {seq}: the statement was refused by a gate at entry "
                                      f"{self.refused[nonce]} and cannot decide afterwards", seq)
        # Every decision spends its statement's nonce, a denial included (one denied while OPA was down must not
        # decide again once it is up).
        self.decided[nonce] = (seq, str(payload.get("result")), (statement, payload.get("signature")))
        request_id = str(statement.get("request_id"))
        if statement.get("action") in ("approve", "reject") and request_id in self.closed:
            raise AuditIntegrityError(f"entry {seq}: answers request {request_id}, which an allowing decision closed "
                                      f"at entry {self.closed[request_id]}", seq)
        if payload.get("result") == "allow" and statement.get("action") != "withdraw":
            self.closed.setdefault(request_id, seq)
        if statement.get("action") not in ("approve", "reject"):
            return
        # An answer is decided together with the request it answers and every approval already on it: each is
        # carried signed, and each must be one an earlier decision admitted (not denied, not made up for this entry).
        about = (statement.get("request_id"), statement.get("subject"))
        request = self._signed(seq, Purpose.GATE_ACTION, payload.get("signed_request"), "request", current=False)
        if request.get("action") != "request" or (request.get("request_id"), request.get("subject")) != about:
            raise AuditIntegrityError(f"entry {seq}: the signed request carried is not the request this answer "
                                      "is about", seq)
        self._admitted_before(seq, payload["signed_request"], "request")
        carried = payload.get("signed_approvals")
        if not isinstance(carried, list):
            raise AuditIntegrityError(f"entry {seq}: the approvals already on the request are not carried", seq)
        for item in carried:
            approval = self._signed(seq, Purpose.GATE_ACTION, item, "approval", current=False)
            if approval.get("action") not in ("approve", "reject") \
                    or (approval.get("request_id"), approval.get("subject")) != about:
                raise AuditIntegrityError(f"entry {seq}: a carried approval is about another request", seq)
            self._admitted_before(seq, item, "approval")

    def _admitted_before(self, seq: int, carried: dict[str, Any], what: str) -> None:
        """The carried statement is the very one an earlier decision admitted (same bytes, same signature)."""
        statement = carried["statement"]
        decided = self.decided.get(str(statement.get("nonce")))
        if decided is None or decided[0] >= seq or decided[1] == "deny" \
                or decided[2] != (statement, carried.get("signature")):
            raise AuditIntegrityError(f"entry {seq}: the carried {what} by {statement.get('signer')} was never "
                                      "admitted by an earlier decision (it was denied, or is made up)", seq)

    def _admin(self, seq: int, action: str, payload: dict[str, Any], by: str, time: str,
               subject: str | None) -> None:
        statement = self._signed(seq, Purpose.ADMIN_ACT, payload, "administrative act")
        if by != statement.get("signer"):
            raise AuditIntegrityError(f"entry {seq}: the {action} entry names {by} as its actor, but "
                                      f"{statement.get('signer')} signed the act", seq)
        asked_target = (payload.get("decision") or {}).get("input", {}).get("target") or {}
        if action == AuditAction.ASSET_FETCH and subject != (asked_target.get("asset") or {}).get("digest"):
            # The store serves the files of the entry's subject to its member: it must be the asset the policy
            # allowed them to read.
            raise AuditIntegrityError(f"entry {seq}: the fetch is filed under {subject}, not the asset its decision "
                                      "allowed", seq)
        decision = payload.get("decision")
        allowed = decision.get("allow") if isinstance(decision, dict) else None
        asked = decision.get("input") if isinstance(decision, dict) else None
        actor = asked.get("actor") if isinstance(asked, dict) else None
        target = statement.get("target") if isinstance(statement.get("target"), dict) else {}
        if action == AuditAction.ADMIN_DENIED:
            acted, signed, act = payload.get("act"), statement.get("act"), allowed is False
        elif action == AuditAction.ADMIN_PENDING:
            # Waiting is neither allowed nor denied: the policy only asked for more signers.
            acted, signed = payload.get("act"), statement.get("act")
            act = allowed is False and not decision.get("reasons") and bool(decision.get("missing"))
        else:
            field_name = _ACTED_FIELD.get(AuditAction(action), "name")
            acted, signed, act = payload.get(field_name), target.get(field_name), allowed is True
            if action == AuditAction.IDENTITY_ROTATE and (payload.get("public_key") != target.get("public_key")
                                                          or acted not in self.keys):
                act = False
            if action == AuditAction.IDENTITY_ENROL and not self._enrolment_holds(payload, target):
                act = False
        # The question the policy was asked is the act that was signed (replay re-asks it).
        if statement.get("act") != payload.get("act", action) or not act or acted is None or acted != signed \
                or not isinstance(actor, dict) or actor.get("name") != statement.get("signer") \
                or asked.get("act") != statement.get("act"):
            raise AuditIntegrityError(f"entry {seq}: the {action} entry is not what its signed act "
                                      f"({statement.get('act')} on {target}) and its decision say", seq)
        nonce = str(statement.get("nonce"))
        if nonce in self.admin_nonces:
            raise AuditIntegrityError(f"entry {seq}: administrative act already used by entry "
                                      f"{self.admin_nonces[nonce]} (replayed)", seq)
        self.admin_nonces[nonce] = seq
        self._cosigners(seq, asked, statement, allowed is True)
        if action == AuditAction.ADMIN_PENDING:
            self.pending[seq] = (str(statement.get("signer")), str(statement.get("key_id")), statement, time)
        if statement.get("act") in (AuditAction.JOB_START, AuditAction.JOB_CANCEL):
            self._job_facts(seq, statement, asked, time, allowed is True)
        if action == AuditAction.IDENTITY_ENROL:
            self._bind(payload["name"], payload)
            self.enrolling = seq if self.enrolling is None else self.enrolling
        if action == AuditAction.IDENTITY_ROTATE:
            if key_id_of(public_key_from_b64(payload["public_key"])) != payload.get("key_id"):
                raise AuditIntegrityError(f"entry {seq}: the rotated key's id is not its key's", seq)
            self._bind(payload["name"], payload)
        elif action == AuditAction.IDENTITY_REVOKE:
            self.revoked.add(str(payload["name"]))

    def _cosigners(self, seq: int, asked: dict[str, Any], statement: dict[str, Any], allowed: bool) -> None:
        """Each earlier signer a decision counted toward its quorum is one the log holds waiting: an `admin.pending`
        entry before this one, within the quorum window, by that signer under their key of the time, whose signed
        act and target are the ones this entry's actor signed, neither the actor nor counted twice, and counted by
        no earlier decision. A quorum made of signatures nobody gave for this act is made up."""
        listed = asked.get("cosigners", [])
        if not isinstance(listed, list):
            raise AuditIntegrityError(f"entry {seq}: the decision's cosigners are not a list", seq)
        try:
            since = rfc3339(parse_rfc3339(str(asked.get("now"))) - QUORUM_WINDOW)
        except ValueError as exc:
            raise AuditIntegrityError(f"entry {seq}: the decision's time is not RFC 3339", seq) from exc
        counted = {str(statement.get("signer"))}
        for cosigner in listed:
            waiting_seq = cosigner.get("seq") if isinstance(cosigner, dict) else None
            waiting = self.pending.get(waiting_seq) \
                if isinstance(waiting_seq, int) and not isinstance(waiting_seq, bool) else None
            if waiting is None or waiting_seq in self.counted:
                raise AuditIntegrityError(f"entry {seq}: the decision was shown a cosigner ({cosigner}) whom no "
                                          "earlier admin.pending entry holds waiting, or one an earlier decision "
                                          "counted already", seq)
            name, key_id, signed, time = waiting
            if (cosigner.get("name"), cosigner.get("key_id")) != (name, key_id) or name in counted \
                    or (signed.get("act"), signed.get("target")) != (statement.get("act"), statement.get("target")) \
                    or time < since or name in self.revoked or self.current.get(name) != key_id:
                raise AuditIntegrityError(f"entry {seq}: the decision was shown {name}'s waiting signature (entry "
                                          f"{waiting_seq}) as a cosigner of another act, signer, key or time "
                                          "than the log holds", seq)
            counted.add(name)
        if allowed:
            self.counted.update(c["seq"] for c in listed)

    def _job_facts(self, seq: int, statement: dict[str, Any], asked: dict[str, Any], time: str,
                   allowed: bool) -> None:
        """The facts of the log a job act's decision was told are the log's: a start's count of its member's recent
        starts (the quota), a cancel's job and who started it. The server computes them from the store; a question
        recorded with others (the 21st start shown none, a cancel shown as one's own job) is made up."""
        signer, target = str(statement.get("signer")), asked.get("target")
        if not isinstance(target, dict):
            raise AuditIntegrityError(f"entry {seq}: the {statement.get('act')} decision was asked about nothing", seq)
        if statement.get("act") == AuditAction.JOB_START:
            since = rfc3339(parse_rfc3339(str(asked.get("now"))) - RECENT_STARTS)
            if target.get("recent") != [t for t in self.starts.get(signer, []) if t >= since]:
                raise AuditIntegrityError(f"entry {seq}: the job.start decision was shown other recent starts by "
                                          f"{signer} than the log holds", seq)
            if allowed:
                self.jobs[seq] = (signer, str(target.get("kind")))
                self.starts.setdefault(signer, []).append(time)
        elif self.jobs.get(target.get("job")) != (target.get("started_by"), target.get("kind")):  # type: ignore[call-overload]
            raise AuditIntegrityError(f"entry {seq}: the job.cancel decision was shown a job, or who started it, "
                                      "other than the log's", seq)

    def _enrolment_holds(self, payload: dict[str, Any], target: dict[str, Any]) -> bool:
        """An enrolment binds a name never bound before to the key, name and contact the new member signed for with
        that very key (they hold it), as the admin's act names them."""
        request = target.get("request")
        asked = request.get("payload") if isinstance(request, dict) else None
        if not isinstance(asked, dict) or payload.get("name") in self.keys:
            return False
        fields = ("name", "public_key", "key_id", "contact")
        if any(payload.get(f) != asked.get(f) for f in fields) \
                or any(target.get(f) != asked.get(f) for f in ("name", "public_key", "contact")):
            return False
        try:
            public = public_key_from_b64(str(asked.get("public_key")))
            verify(public, Purpose.ENROLMENT, asked, str(request.get("signature")))
        except (SignatureInvalid, ValueError):
            return False
        return key_id_of(public) == payload.get("key_id")
