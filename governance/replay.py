"""Replaying recorded gate decisions: the proof that no decider other than the approved policy ruled.

Every decision stores the exact input document OPA was sent and the digest of the policy in force; its audit entry
commits to the input's digest, the policy's digest and the result. Replay re-evaluates every input under the real
OPA with that policy's stored bundle (re-hashed, run by its pinned OPA build, from sealed files) and compares the
answer with what was recorded. A fake OPA server that allowed what the policy denies, a wrapper that ran another
bundle, or an edited decision all show up as a differing decision, named with its audit entry.

One OPA per policy, queried over its loopback HTTP API, keeps this to a few milliseconds a decision.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.foundation.canonical import sha256_digest
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import DecisionUnavailable, StateConflict, StoreTampered
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import AuditEntry, Decision
from forgegov.foundation.vocabulary import AuditAction, DecisionResult
from forgegov.governance.opa.client import PolicyClient
from forgegov.governance.opa.sealed import SealedFile
from forgegov.governance.opa.supervisor import LocalOpa
from forgegov.governance.policy import Bundle, Decider, OpaBuild, stored_policy


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
    decision: Decision
    seq: int
    payload: dict[str, Any]


def replay_decisions(workspace: Workspace) -> ReplayReport:
    started = time.perf_counter()
    report = ReplayReport()
    groups: dict[str, list[_Recorded]] = defaultdict(list)
    policies: dict[str, tuple[Bundle, Decider]] = {}
    with read_session(workspace.database_url) as session:
        decisions = list(session.exec(select(Decision).order_by(Decision.decided_at, Decision.id)))  # type: ignore[arg-type]
        report.decisions = len(decisions)
        for decision in decisions:
            recorded = _recorded(session, decision)
            if recorded.payload.get("opa_decision_id") is None and decision.result is DecisionResult.DENY:
                report.unanswered += 1
                continue
            groups[str(decision.policy_digest)].append(recorded)
        for digest in list(groups):
            try:
                policies[digest] = stored_policy(session, digest)
            except StoreTampered as exc:
                report.limits.append(f"{len(groups.pop(digest))} decisions under policy {digest} cannot be "
                                     f"replayed: {exc.message}")
        for recorded_group in groups.values():
            for recorded in recorded_group:
                session.expunge(recorded.decision)
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


def _recorded(session: Session, decision: Decision) -> _Recorded:
    """The decision as its audit entry committed to it; the stored input must hash to the committed digest."""
    action = AuditAction.of_gate(decision.gate, decision.action)
    try:
        payload = committed_payload(session, what=f"decision {decision.id}", action=action,
                                    decision_id=decision.id, subject_digest=decision.subject_digest,
                                    fields={"input_digest": decision.input_digest,
                                            "policy_digest": decision.policy_digest,
                                            "result": decision.result.value})
    except StateConflict:
        raise StoreTampered(f"the audit entry of decision {decision.id} was redacted; a gate decision's entry "
                            "never is", hint="run `forgegov audit verify`") from None
    if sha256_digest(decision.input.encode()) != decision.input_digest:
        raise StoreTampered(f"the stored input of decision {decision.id} does not hash to the digest its audit entry "
                            "committed to", hint="run `forgegov audit verify`")
    seqs = session.exec(select(AuditEntry.seq).where(AuditEntry.decision_id == decision.id,
                                                     AuditEntry.action == action)).all()
    if len(seqs) != 1:
        raise StoreTampered(f"decision {decision.id} has {len(seqs)} {action.value} entries in the audit log, not one",
                            hint="run `forgegov audit verify`")
    return _Recorded(decision, seqs[0], payload)


def _replay_group(workspace: Workspace, opa: OpaBuild, bundle: Bundle, group: list[_Recorded],
                  report: ReplayReport) -> None:
    with SealedFile.of_bytes("bundle.tar.gz", bundle.archive()) as sealed, \
            LocalOpa(opa.sealed.path, sealed.path, workspace.logs_dir / "opa-replay.log",
                     pass_fds=(opa.sealed.fd, sealed.fd)) as local:
        client = PolicyClient(local.url, workspace.opa.timeout_s)
        try:
            for recorded in group:
                decision = recorded.decision
                try:
                    answer = client.decide(decision.gate, json.loads(decision.input), bundle.revision)
                    replayed = (DecisionResult.ALLOW if answer.allow
                                else DecisionResult.DENY if answer.deny else DecisionResult.PENDING).value
                    now = (replayed, list(answer.deny), list(answer.missing))
                except DecisionUnavailable as exc:
                    now = (DecisionResult.DENY.value, [exc.message], [])
                then = (recorded.payload.get("result"), recorded.payload.get("reasons"),
                        recorded.payload.get("missing"))
                report.replayed += 1
                if now == then:
                    report.agreed += 1
                else:
                    report.differing.append({
                        "decision_id": decision.id, "audit_seq": recorded.seq, "gate": decision.gate.value, "action": decision.action.value,
                        "subject": recorded.payload.get("subject"), "policy_revision": bundle.revision,
                        "recorded": {"result": then[0], "reasons": then[1], "missing": then[2]},
                        "replayed": {"result": now[0], "reasons": now[1], "missing": now[2]},
                    })
        finally:
            client.close()
