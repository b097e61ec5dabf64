"""Replaying recorded decisions: the proof that no decider other than the approved policy ruled.

Replay walks the audit log, not the store's decision rows, so a decision row deleted to hide a decision is itself
found. For every gate decision entry it proves, before asking OPA anything:

1. the stored input hashes to the digest the entry committed to (an edited input);
2. the parts of the input that people signed (who acted, the request, every approval counted, whether a key was
   revoked at the time) are what their statements, carried in the entry and verified under the keys the log bound to
   their names, say (a quorum made up by someone holding only the log key);

then re-evaluates the input with the real OPA under the stored bundle of the policy the log had put in force when the
entry was made (the record must name that same policy; re-hashed, run by its pinned OPA build, from sealed files)
and compares the answer with what was recorded. Administrative acts
(revocations, redactions, their denials) are replayed the same way from the input their entries carry. A fake OPA
server that allowed what the policy denies, a wrapper that ran another bundle, or an edited decision all show up as
a differing decision, named with its audit entry.

One OPA per policy, queried over its loopback HTTP API, keeps this to a few milliseconds a decision.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.foundation.canonical import sha256_digest
from forgegov.foundation.clock import parse_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import DecisionUnavailable, StateConflict, StoreTampered
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset, AuditEntry, Decision
from forgegov.foundation.vocabulary import ADMIN_ACTIONS, AssetKind, AuditAction, DecisionResult, Gate
from forgegov.governance.evidence.data_quality import checks_evidence
from forgegov.governance.fetches import fetch_reference_holds
from forgegov.governance.identities import revocations
from forgegov.governance.jobs import signed_references_hold
from forgegov.governance.opa.client import PACKAGE_PREFIX, OpaAnswer, PolicyClient
from forgegov.governance.opa.sealed import SealedFile
from forgegov.governance.opa.supervisor import LocalOpa
from forgegov.governance.policy import (
    ADMIN_PACKAGE,
    Bundle,
    Decider,
    OpaBuild,
    activation_chain,
    in_force_at,
    stored_policy,
)
from forgegov.governance.statements import MAX_CLOCK_SKEW, check_admin_input, check_signed_input

_HINT = "run `forgegov audit verify`"


@dataclass
class ReplayReport:
    decisions: int = 0
    replayed: int = 0
    agreed: int = 0
    unanswered: int = 0  # denied without an OPA answer (OPA unreachable, ...): nothing to replay
    differing: list[dict[str, Any]] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"decisions": self.decisions, "replayed": self.replayed, "agreed": self.agreed,
                "unanswered": self.unanswered, "differing": self.differing, "limits": self.limits,
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class _Recorded:
    """One recorded decision, as its audit entry committed to it: what to ask, and what was answered."""

    seq: int
    decision_id: str | None
    package: str
    what: str  # "gate.dataset.approve", "audit.redact", ...
    subject: Any
    document: dict[str, Any]
    answered: tuple[Any, Any, Any]  # result, reasons, missing


def replay_decisions(workspace: Workspace) -> ReplayReport:
    started = time.perf_counter()
    report = ReplayReport()
    groups: dict[str, list[_Recorded]] = defaultdict(list)
    policies: dict[str, tuple[Bundle, Decider]] = {}
    with read_session(workspace.database_url) as session:
        revoked = revocations(session)
        chain = activation_chain(session)
        seen: set[str] = set()
        entries = session.exec(select(AuditEntry).where(
            AuditEntry.action.like("gate.%") | AuditEntry.action.in_(ADMIN_ACTIONS),  # type: ignore[attr-defined]
            AuditEntry.action != AuditAction.GATE_REFUSED).order_by(AuditEntry.seq))  # type: ignore[arg-type]
        for entry in entries:
            report.decisions += 1
            if entry.decision_id is not None:
                seen.add(entry.decision_id)
            if entry.payload is None:
                report.limits.append(f"audit entry {entry.seq} ({entry.action}) was redacted: its decision cannot "
                                     "be replayed")
                continue
            # The policy that decided is the one the log had put in force by then, whatever the record says.
            in_force = in_force_at(chain, entry.seq)
            if entry.action in ADMIN_ACTIONS:
                recorded, digest = _admin_recorded(session, entry)
            else:
                recorded, digest = _gate_recorded(session, entry, revoked, report.limits)
            if digest != in_force.digest or (entry.action not in ADMIN_ACTIONS and entry.policy_revision != in_force.revision):
                raise StoreTampered(f"audit entry {entry.seq} ({entry.action}) records a decision under policy "
                                    f"{digest} ({entry.policy_revision}), but the log had put {in_force.revision} "
                                    f"({in_force.digest}) in force then", hint=_HINT)
            if recorded is None:
                report.unanswered += 1
                continue
            groups[digest].append(recorded)
        hidden = sorted(set(session.exec(select(Decision.id)).all()) - seen)
        if hidden:
            raise StoreTampered(f"decision {hidden[0]} is in the store but no gate entry of the audit log records it "
                                f"({len(hidden)} such)", hint=_HINT)
        for digest in groups:
            # Every policy the log put in force is in the store: one missing (or altered) was removed to avoid
            # this very replay.
            policies[digest] = stored_policy(session, digest)
    opa = OpaBuild.configured(workspace)
    for digest, recorded_group in groups.items():
        bundle, decider = policies[digest]
        if opa.sha256 != decider.sha256:
            report.limits.append(f"{len(recorded_group)} decisions under policy {bundle.revision} were made by "
                                 f"OPA {decider.opa_version} (sha256 {decider.sha256[:16]}…), which this machine "
                                 "does not have: not replayed")
            continue
        _replay_group(workspace, opa, bundle, recorded_group, report)
    report.seconds = time.perf_counter() - started
    return report


def _gate_recorded(session: Session, entry: AuditEntry, revoked: dict[str, int],
                   limits: list[str]) -> tuple[_Recorded | None, str]:
    """A gate decision entry, its stored input proven (1. and 2. above); None when OPA was never asked."""
    decision = session.get(Decision, entry.decision_id) if entry.decision_id else None
    if decision is None:
        raise StoreTampered(f"audit entry {entry.seq} ({entry.action}) records decision {entry.decision_id}, which "
                            "the store no longer holds: the store was altered", hint=_HINT)
    action = AuditAction.of_gate(decision.gate, decision.action)
    if action != entry.action:
        raise StoreTampered(f"decision {decision.id} is a {action.value}, but its audit entry {entry.seq} records a "
                            f"{entry.action}", hint=_HINT)
    payload = committed_payload(session, what=f"decision {decision.id}", action=action, seq=entry.seq,
                                subject_digest=decision.subject_digest,
                                fields={"input_digest": decision.input_digest, "policy_digest": decision.policy_digest,
                                        "result": decision.result.value})
    if entry.decision_id != decision.id or sha256_digest(decision.input.encode()) != decision.input_digest:
        raise StoreTampered(f"the stored input of decision {decision.id} does not hash to the digest its audit entry "
                            f"({entry.seq}) committed to", hint=_HINT)
    document = _object(decision.input, f"the stored input of decision {decision.id}")
    check_signed_input(session, entry.seq, decision.subject_digest, payload, document, revoked)
    _check_gathered(session, entry, payload, decision, document, limits)
    if payload.get("opa_decision_id") is None and decision.result is DecisionResult.DENY:
        return None, str(decision.policy_digest)
    recorded = _Recorded(entry.seq, decision.id, f"{PACKAGE_PREFIX}.{decision.gate.value}", entry.action,
                         payload.get("subject"), document,
                         (payload.get("result"), payload.get("reasons"), payload.get("missing")))
    return recorded, str(decision.policy_digest)


def _check_gathered(session: Session, entry: AuditEntry, payload: dict[str, Any], decision: Decision,
                    document: dict[str, Any], limits: list[str]) -> None:
    """The parts of the input forgegov gathered rather than anyone signed, re-derived where the log allows: the
    decision's time lies between its statement's signing and its entry, and a dataset decision's data-quality
    evidence is every check the log had recorded of those bytes by then, as stored and signed (a made-up "no
    findings" in an appended entry would skip the privacy review)."""
    statement = payload.get("statement") if isinstance(payload.get("statement"), dict) else {}
    try:
        decided, signed, logged = (parse_rfc3339(str(document.get("now"))),
                                   parse_rfc3339(str(statement.get("signed_at"))), parse_rfc3339(entry.time))
    except ValueError as exc:
        raise StoreTampered(f"audit entry {entry.seq}: the decision's time is unreadable", hint=_HINT) from exc
    if not signed - MAX_CLOCK_SKEW <= decided <= logged + MAX_CLOCK_SKEW:
        raise StoreTampered(f"audit entry {entry.seq}: the decision says it was taken at {document.get('now')}, "
                            f"outside its statement's signing ({statement.get('signed_at')}) and its entry "
                            f"({entry.time})", hint=_HINT)
    if decision.gate is not Gate.DATASET:
        return
    asset = session.exec(select(Asset).where(Asset.kind == AssetKind.DATASET,
                                             Asset.digest == decision.subject_digest)).first()
    if asset is None:
        raise StoreTampered(f"audit entry {entry.seq} decides on dataset {decision.subject_digest}, which is not "
                            "registered", hint=_HINT)
    try:
        gathered = checks_evidence(session, asset, before=entry.seq)
    except StateConflict:
        limits.append(f"audit entry {entry.seq}: a data-quality check it read was redacted since, so its evidence "
                      "is taken as recorded")
        return
    if (document.get("evidence") or {}).get("data_quality") != gathered:
        raise StoreTampered(f"audit entry {entry.seq}: the data-quality evidence its decision read is not the checks "
                            "the log had recorded of those bytes by then", hint=_HINT)


# Acts whose signed references the server resolved: what the policy was told must be what they name.
_REFERENCES_HOLD: dict[str, Callable[[dict[str, Any], dict[str, Any]], bool]] = {
    "job.start": signed_references_hold, "asset.fetch": fetch_reference_holds}


def _admin_recorded(session: Session, entry: AuditEntry) -> tuple[_Recorded | None, str]:
    """An administrative act's entry: the question it put to the policy is carried with its decision, and must be
    the one its actor signed (who acts, which act, why, on what)."""
    payload = _object(entry.payload or "", f"audit entry {entry.seq}")
    document = check_admin_input(session, entry.seq, payload, entry.action)
    holds = _REFERENCES_HOLD.get(str(document.get("act")))
    signed, target = payload["statement"].get("target"), document.get("target")
    if holds is not None and not (isinstance(signed, dict) and isinstance(target, dict) and holds(signed, target)):
        raise StoreTampered(f"audit entry {entry.seq} ({entry.action}): the policy was told of other assets than "
                            "the act's signed references name", hint=_HINT)
    decision = payload["decision"]
    if decision.get("opa_decision_id") is None and decision.get("allow") is False:
        return None, str(decision.get("policy_digest"))
    result = (DecisionResult.ALLOW if decision.get("allow") else DecisionResult.DENY if decision.get("reasons")
              else DecisionResult.PENDING if decision.get("missing") else DecisionResult.DENY)
    recorded = _Recorded(entry.seq, None, ADMIN_PACKAGE, entry.action, payload["statement"].get("target"), document,
                         (result.value, decision.get("reasons"), list(decision.get("missing") or [])))
    return recorded, str(decision.get("policy_digest"))


def _object(text: str, what: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise StoreTampered(f"{what} is not JSON", hint=_HINT) from exc
    if not isinstance(document, dict):
        raise StoreTampered(f"{what} is not a JSON object", hint=_HINT)
    return document


def _replay_group(workspace: Workspace, opa: OpaBuild, bundle: Bundle, group: list[_Recorded],
                  report: ReplayReport) -> None:
    with SealedFile.of_bytes("bundle.tar.gz", bundle.archive()) as sealed, \
            LocalOpa(opa.sealed.path, sealed.path, workspace.logs_dir / "opa-replay.log",
                     pass_fds=(opa.sealed.fd, sealed.fd)) as local:
        client = PolicyClient(local.url, workspace.opa.timeout_s)
        try:
            for recorded in group:
                now = _outcome(client, recorded, bundle.revision)
                report.replayed += 1
                if now == recorded.answered:
                    report.agreed += 1
                    continue
                then = recorded.answered
                report.differing.append({
                    "decision_id": recorded.decision_id, "audit_seq": recorded.seq, "what": recorded.what,
                    "subject": recorded.subject, "policy_revision": bundle.revision,
                    "recorded": {"result": then[0], "reasons": then[1], "missing": then[2]},
                    "replayed": {"result": now[0], "reasons": now[1], "missing": now[2]},
                })
        finally:
            client.close()


def _outcome(client: PolicyClient, recorded: _Recorded, revision: str) -> tuple[str, list[str], list[str]]:
    try:
        answer: OpaAnswer = client.decide_package(recorded.package, recorded.document, revision)
    except DecisionUnavailable as exc:
        return DecisionResult.DENY.value, [exc.message], []
    result = (DecisionResult.ALLOW if answer.allow else DecisionResult.DENY if answer.deny
              else DecisionResult.PENDING)
    return result.value, list(answer.deny), list(answer.missing)
