"""A member's side of the team server: join it, sign on this machine, send, and check every answer's log.

A member's workspace holds their own keys, the server's URL and what was pinned from the server when they joined
(the log's origin and key, the platform key, the policy then in force) and the newest tree head they verified
(`log-view.json`). It holds no store and no database credentials: the server decides, and every answer carries the
log's signed tree head and a consistency proof, so a server that rolls its log back or forks it is caught on the next
call.

The verbs here take the same arguments as `governance.actions`, so the CLI calls one or the other (`verbs_for`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from forgegov.app.run_start import StartOutcome
from forgegov.audit.hashing import leaf_hash
from forgegov.audit.log_key import origin_of
from forgegov.audit.log_view import (
    NOTE_HEADER,
    PROOF_HEADER,
    SEEN_HEADER,
    LogForked,
    LogRolledBack,
    LogView,
    proof_from_wire,
)
from forgegov.audit.merkle import ProofError, verify_inclusion
from forgegov.audit.note import open_checkpoint
from forgegov.audit.operations import verify_export
from forgegov.audit.verify import VerifyReport
from forgegov.foundation import errors
from forgegov.foundation.artifact_store import CHUNK
from forgegov.foundation.canonical import check_digest, digest_of
from forgegov.foundation.clock import now_rfc3339
from forgegov.foundation.config import (
    CONFIG_FILE,
    AuditConfig,
    ProvenanceConfig,
    RemoteWitness,
    ServerConfig,
    Workspace,
    WorkspaceConfig,
    fsync_dir,
    write_config,
)
from forgegov.foundation.crypto.keys import Signer
from forgegov.foundation.crypto.request_auth import HEADER, sign_request
from forgegov.foundation.crypto.signing import Purpose, key_id_of, public_key_from_b64, public_key_to_b64, sign
from forgegov.foundation.errors import (
    AlreadyExists,
    BadInput,
    DigestMismatch,
    ForgegovError,
    PolicyDenied,
    Tampered,
    WorkspaceError,
)
from forgegov.foundation.manifest import build_manifest, file_entries, list_files
from forgegov.foundation.staging import staged_folder
from forgegov.foundation.verifier_key import parse_verifier_key
from forgegov.foundation.vocabulary import AssetKind, AuditAction, CheckpointStage, Gate, GateAction, ReleaseStage
from forgegov.governance.actions import Prepared, sign_prepared
from forgegov.governance.admin import AdminAct, AdminOutcome, AdminStatement, make_admin_statement
from forgegov.governance.asset_kinds import DatasetSpec
from forgegov.governance.datasets.intake import scan_dataset
from forgegov.governance.evaluations import EvalRecord, signed_record
from forgegov.governance.evidence.data_quality import CheckOutcome
from forgegov.governance.fetches import fetch_reference_holds
from forgegov.governance.gate import GateOutcome
from forgegov.governance.identities import (
    abandon_rotation,
    check_name,
    enrolment_target,
    finish_rotation,
    prepare_rotation,
    read_enrolment_request,
    rotation_signer,
    unlock_key_file,
)
from forgegov.governance.job_entries import orders
from forgegov.governance.jobs import evaluation_job, run_job, signed_references_hold
from forgegov.governance.review import Review
from forgegov.governance.runs.lifecycle import RunOutcome
from forgegov.governance.runs.provenance import PLATFORM_KEY, SignedProvenance
from forgegov.governance.runs.recipe import read_recipe
from forgegov.governance.runs.records import check_run_provenance
from forgegov.governance.runs.spec import RECIPE_FILE

VIEW_FILE = "log-view.json"
TIMEOUT_S = 60.0
UPLOAD_CHUNK = 8 * CHUNK


class ServerUnavailable(ForgegovError):
    """The team server could not be reached, or did not answer as a forgegov server does."""


# The errors a server reports as its own: the store's, the gate's and the policy's vocabulary. What only a member
# can find (its log rolled back or forked, a proof or note that fails) is never taken from the server's word.
_REMOTE_ERRORS: dict[str, type[ForgegovError]] = {
    cls.__name__: cls for cls in (
        BadInput, errors.NotFound, AlreadyExists, errors.StateConflict, errors.KeyUnavailable, errors.RevokedIdentity,
        errors.UnreadablePath, errors.DecisionUnavailable, errors.PolicyBundleError, errors.StoreError, Tampered,
        errors.SignatureInvalid, errors.ReplayedApproval, errors.StoreTampered, DigestMismatch,
        errors.DecisionDiffers, ForgegovError)}


def remote_error(document: Any, status: int) -> ForgegovError:
    """The server's typed error, raised here as the same type (or the base of its exit code), so a member's
    exit codes mean what they mean in a workspace of one."""
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return ServerUnavailable(f"the server answered {status} without a forgegov error")
    message, hint = error["message"], error.get("hint") if isinstance(error.get("hint"), str) else None
    if error.get("type") == "PolicyDenied":
        reasons, outcome = error.get("reasons"), error.get("outcome")
        return PolicyDenied(message, [str(r) for r in reasons] if isinstance(reasons, list) else [], hint=hint,
                            decision_id=str(error.get("decision_id") or "") or None,
                            outcome=outcome if isinstance(outcome, dict) else None)
    cls = _REMOTE_ERRORS.get(str(error.get("type")))
    if cls is not None:
        try:
            return cls(message, hint=hint)
        except TypeError:
            pass
    by_code: dict[Any, type[ForgegovError]] = {2: BadInput, 3: errors.DecisionUnavailable, 4: Tampered}
    return by_code.get(error.get("exit_code"), ForgegovError)(message, hint=hint)


class Connection:
    """Signed calls to the server; each answer's tree head is checked against the one seen before."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.url = workspace.server_url
        audit = workspace.config.audit
        self.view = LogView(workspace.root / VIEW_FILE, audit.origin, public_key_from_b64(audit.log_public_key))

    def call(self, method: str, path: str, signer: Signer | None, *, document: Any = None, content: bytes = b"",
             sink: Callable[[httpx.Response], Any] | None = None) -> Any:
        body = json.dumps(document).encode() if document is not None else content
        headers = {"Content-Type": "application/json" if document is not None else "application/octet-stream"}
        if signer is not None:
            headers[HEADER] = sign_request(signer, self.workspace.config.audit.origin, method, path, body)
        with self.view.locked():
            seen = self.view.seen()
            headers[SEEN_HEADER] = str(seen.size if seen else 0)
            try:
                with _client().stream(method, self.url + path, content=body, headers=headers) as response:
                    self._check_log(response)
                    if response.status_code == 200 and sink is not None:
                        return sink(response)
                    response.read()
            except httpx.HTTPError as exc:
                raise ServerUnavailable(f"cannot reach the team server at {self.url}: {exc}",
                                        hint="check the URL in forgegov.toml ([server] url) and that the server "
                                             "runs") from exc
        try:
            answer = response.json()
        except ValueError as exc:
            raise ServerUnavailable(f"the server at {self.url} answered {response.status_code} without JSON") from exc
        if response.status_code != 200:
            raise remote_error(answer, response.status_code)
        return answer

    def _check_log(self, response: httpx.Response) -> None:
        note = response.headers.get(NOTE_HEADER)
        if not note:
            raise Tampered(f"the server at {self.url} answered without a signed tree head",
                           hint="is it a forgegov server, of a version that joins this workspace?")
        proof = response.headers.get(PROOF_HEADER, "")
        try:
            text = base64.b64decode(note, validate=True).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise Tampered("the server's tree head is not base64 UTF-8") from exc
        self.view.advance(text, proof_from_wire(proof.split(",") if proof else []))


@functools.cache
def _client() -> httpx.Client:
    """One client per process, shared by threads: connections are kept alive between calls, and building a client
    (its TLS context) costs more than a gate decision. An idle connection is dropped here (after 2 s) before the
    server drops it (uvicorn, after 5 s), so that no call is sent on a connection the server is closing."""
    return httpx.Client(timeout=TIMEOUT_S, limits=httpx.Limits(keepalive_expiry=2.0))


def _drop_connections() -> None:
    """After a download that failed, its connection may look reusable here while the server has closed it (it
    stopped a blob that did not hash as named): start the next call on a new one."""
    _client().close()
    _client.cache_clear()


def _signer(workspace: Workspace, actor: str, passphrase: str) -> Signer:
    return unlock_key_file(workspace, actor, passphrase)


# -- joining ----------------------------------------------------------------------------------------------------------

def join(directory: Path, url: str, member: str = "", witness_keys: tuple[str, ...] = ()) -> Workspace:
    """A member's workspace for the server at URL, trusting what it presents now (trust on first use): its log's
    origin and key (the origin must be the key's own) and its first tree head, held to every later answer; its
    platform key; and the policy then in force, recorded for the member to compare (policies change by the policy
    gate, which the log shows). WITNESS_KEYS come from the witnesses' operators, never from the server: `audit
    verify` checks their cosignatures."""
    witnesses = tuple(RemoteWitness(key) for key in witness_keys)
    directory = directory.resolve()
    if (directory / CONFIG_FILE).exists():
        raise AlreadyExists(f"{directory} is already a forgegov workspace")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise WorkspaceError(f"{directory} exists and is not an empty folder")
    if member:
        check_name(member)
    server = ServerConfig(url=url.rstrip("/"), member=member)
    try:
        response = _client().get(server.url + "/v1/trust")
    except httpx.HTTPError as exc:
        raise ServerUnavailable(f"cannot reach the team server at {url}: {exc}") from exc
    try:
        trust = response.json()
        log_key = public_key_from_b64(trust["log_public_key"])
        platform_key = trust["platform_public_key"]
        policy_digest = check_digest(trust["policy"]["digest"])
        note = base64.b64decode(response.headers[NOTE_HEADER], validate=True).decode()
    except (ValueError, KeyError, TypeError) as exc:
        raise ServerUnavailable(f"{url} did not answer as a forgegov server ({exc})") from exc
    if trust.get("origin") != origin_of(log_key):
        raise Tampered(f"the server's log origin {trust.get('origin')!r} is not the one its key names "
                       f"({origin_of(log_key)})")
    open_checkpoint(note, origin_of(log_key), log_key)
    config = WorkspaceConfig(audit=AuditConfig(origin=origin_of(log_key), log_public_key=trust["log_public_key"],
                                               remote_witnesses=witnesses),
                             provenance=ProvenanceConfig(platform_key),
                             server=replace(server, policy_digest=policy_digest))
    with staged_folder(directory, "join") as staging:
        staged = Workspace(staging, config)
        staged.keys_dir.mkdir(mode=0o700)
        write_config(staging, config, create=True)
        LogView(staging / VIEW_FILE, config.audit.origin, log_key).advance(note, [])
    return Workspace(directory, config)


def load_member(root: Path) -> Workspace:
    """The member's workspace at ROOT."""
    from forgegov.foundation.config import load_workspace

    workspace = load_workspace(root)
    if not workspace.server_url:
        raise WorkspaceError(f"{root} is not a member's workspace (it has no [server] url)")
    return workspace


def whoami(workspace: Workspace, actor: str, passphrase: str) -> str:
    return Connection(workspace).call("GET", "/v1/whoami", _signer(workspace, actor, passphrase))["name"]


# -- the gate verbs, as governance.actions has them ------------------------------------------------------------------

def prepare_remote(connection: Connection, signer: Signer, subject: str, action: GateAction, gate: Gate | None,
             target: ReleaseStage | None) -> Prepared:
    """What the server says SUBJECT is, to sign; a subject named by its whole digest is held to that digest."""
    document = {"subject": subject, "action": action.value, "gate": gate.value if gate else None,
                "target": target.value if target else None}
    prepared = Prepared.from_dict(connection.call("POST", "/v1/prepare", signer, document=document))
    if subject.startswith("sha256:") and len(subject) == len("sha256:") + 64 and prepared.digest != subject:
        raise Tampered(f"the server asks for a signature on {prepared.digest}, not on {subject}")
    return prepared


def send_statement(connection: Connection, signer: Signer, statement: Any) -> GateOutcome:
    """Send a signed gate statement; the outcome, once the log this member verified shows it was logged as told."""
    document = {"payload": statement.payload, "signature": statement.signature}
    outcome = GateOutcome.from_dict(connection.call("POST", "/v1/gate", signer, document=document))
    _fields, payload = logged(connection, signer, outcome.audit_seq,
                              AuditAction.of_gate(outcome.gate, outcome.action))
    told = {"statement": statement.payload, "signature": statement.signature, "result": outcome.result.value,
            "state": outcome.state, "subject": outcome.subject}
    if {key: payload.get(key) for key in told} != told:
        raise Tampered(f"entry {outcome.audit_seq} of the log does not record the outcome the server reported "
                       f"({outcome.result.value}, {outcome.state}) for this member's statement")
    return outcome


def logged(connection: Connection, signer: Signer, seq: int, action: AuditAction,
           by: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The leaf and payload of entry SEQ, which the server says it appended for this member's call (or, given BY,
    for that member's): proved included under the newest tree head this member verified, its leaf naming ACTION,
    the member and the payload's digest. A server that reports an outcome it never logged, or logged otherwise, is
    caught here."""
    seen = connection.view.seen()
    if seen is None or not 0 <= seq < seen.size:
        raise Tampered(f"the server reported log entry {seq}, which its signed tree head does not cover")
    answer = connection.call("GET", f"/v1/log/entries/{seq}?size={seen.size}", signer)
    leaf, payload = answer.get("leaf"), answer.get("payload")
    if not isinstance(leaf, str) or not isinstance(payload, str):
        raise Tampered(f"the server did not send log entry {seq} with its payload")
    try:
        verify_inclusion(seq, seen.size, leaf_hash(leaf.encode()), proof_from_wire(answer.get("proof")), seen.root)
    except ProofError as exc:
        raise Tampered(f"log entry {seq} is not in the log this member verified: {exc}") from exc
    fields = json.loads(leaf)
    expected = {"seq": seq, "action": action.value, "actor": signer.name if by is None else by,
                "payload_digest": "sha256:" + hashlib.sha256(payload.encode()).hexdigest()}
    if {key: fields.get(key) for key in expected} != expected:
        raise Tampered(f"log entry {seq} is not {expected['actor']}'s {action.value} (its leaf says otherwise)")
    return fields, json.loads(payload)


def request(workspace: Workspace, subject: str, actor: str, passphrase: str, *, gate: Gate | None = None,
            target: ReleaseStage | None = None, comment: str = "", engine: None = None) -> GateOutcome:
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    prepared = prepare_remote(connection, signer, subject, GateAction.REQUEST, gate, target)
    return send_statement(connection, signer, sign_prepared(signer, prepared, GateAction.REQUEST, target=target,
                                                   comment=comment))


def answer(workspace: Workspace, subject: str, actor: str, passphrase: str, action: GateAction, *,
           gate: Gate | None = None, comment: str = "", expect_digest: str | None = None,
           engine: None = None) -> GateOutcome:
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    prepared = prepare_remote(connection, signer, subject, action, gate, None)
    return send_statement(connection, signer, sign_prepared(signer, prepared, action, comment=comment,
                                                   expect_digest=expect_digest))


def withdraw(workspace: Workspace, subject: str, actor: str, passphrase: str, *, gate: Gate | None = None,
             comment: str = "", engine: None = None) -> GateOutcome:
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    prepared = prepare_remote(connection, signer, subject, GateAction.WITHDRAW, gate, None)
    return send_statement(connection, signer, sign_prepared(signer, prepared, GateAction.WITHDRAW, comment=comment))


def promote(workspace: Workspace, checkpoint: str, target: ReleaseStage, actor: str, passphrase: str, *,
            comment: str = "", engine: None = None) -> GateOutcome:
    return request(workspace, checkpoint, actor, passphrase, gate=Gate.PROMOTION, target=target, comment=comment)


def review(workspace: Workspace, subject: str, gate: Gate | None, actor: str, passphrase: str) -> Review:
    document = {"subject": subject, "gate": gate.value if gate else None}
    return Review.from_dict(Connection(workspace).call("POST", "/v1/review", _signer(workspace, actor, passphrase),
                                                       document=document))


# The entry each administrative act a member can send is logged as, once allowed.
_ADMIN_LOGGED = {AdminAct.ENROL: AuditAction.IDENTITY_ENROL, AdminAct.REVOKE: AuditAction.IDENTITY_REVOKE,
                 AdminAct.ROTATE: AuditAction.IDENTITY_ROTATE, AdminAct.JOB_START: AuditAction.JOB_START,
                 AdminAct.JOB_CANCEL: AuditAction.JOB_CANCEL, AdminAct.FETCH: AuditAction.ASSET_FETCH}


def _send_admin(connection: Connection, signer: Signer, statement: AdminStatement,
                path: str = "/v1/admin") -> tuple[AdminOutcome, dict[str, Any]]:
    """Send a signed act; the server's outcome, once the entry it names is proved to record this very act (carried
    out, or waiting for the other signers its quorum asks for), and the rest of the server's answer."""
    outcome, answer = _post_admin(connection, signer, statement, path)
    _check_logged_act(connection, signer, statement, outcome)
    return outcome, answer


def _post_admin(connection: Connection, signer: Signer, statement: AdminStatement,
                path: str = "/v1/admin") -> tuple[AdminOutcome, dict[str, Any]]:
    """Send a signed act; the server's outcome as it reports it (`_check_logged_act` holds it to the log), and the
    rest of its answer."""
    document = {"payload": statement.payload, "signature": statement.signature}
    answer = connection.call("POST", path, signer, document=document)
    if not isinstance(answer, dict):
        raise ServerUnavailable(f"the server's answer to {statement.act.value} is not a JSON object")
    acted = answer.get("act", answer) if isinstance(answer.get("act"), dict) else answer
    try:
        outcome = AdminOutcome(AdminAct(acted["act"]), acted["actor"], int(acted["audit_seq"]), acted["target"],
                               tuple(str(m) for m in acted.get("waiting") or ()))
    except (KeyError, TypeError, ValueError) as exc:
        raise ServerUnavailable(f"the server's answer to {statement.act.value} is malformed: {exc}") from exc
    if outcome.act is not statement.act:
        raise Tampered(f"the server answered {statement.act.value} with the outcome of {outcome.act.value}")
    if outcome.waiting and statement.act in _ACTED_UPON:
        raise Tampered(f"the server answered {statement.act.value} as waiting for more signers, which it never "
                       "acts upon")
    return outcome, answer


# Acts the server carries out in the same call (a job started or stopped, a fetch served): never merely waiting.
_ACTED_UPON = (AdminAct.JOB_START, AdminAct.JOB_CANCEL, AdminAct.FETCH)


def _signed_target_holds(statement: AdminStatement, target: dict[str, Any]) -> bool:
    """Whether the target the server reports is the one this member signed: the same name, contact and key (an
    identity act), so that a waiting signature is shown as what it waits on."""
    signed = statement.payload["target"]
    if "name" in signed and target.get("name") != signed["name"]:
        return False
    if "contact" in signed and target.get("contact") != signed["contact"]:
        return False
    if "public_key" in signed:
        try:
            return target.get("key_id") == key_id_of(public_key_from_b64(str(signed["public_key"])))
        except ValueError:
            return False
    return True


def _check_logged_act(connection: Connection, reader: Signer, statement: AdminStatement,
                      outcome: AdminOutcome) -> None:
    """The entry the server named records this very act, carried out or waiting as it said, on its target."""
    waits = bool(outcome.waiting)
    _fields, payload = logged(connection, reader, outcome.audit_seq,
                              AuditAction.ADMIN_PENDING if waits else _ADMIN_LOGGED[outcome.act])
    decision = payload.get("decision")
    if (payload.get("statement"), payload.get("signature")) != (statement.payload, statement.signature) \
            or not isinstance(decision, dict) or decision.get("allow") is not (not waits) \
            or (waits and (decision.get("reasons") or decision.get("missing") != list(outcome.waiting))) \
            or not isinstance(decision.get("input"), dict) or decision["input"].get("target") != outcome.target \
            or not _signed_target_holds(statement, outcome.target):
        raise Tampered(f"entry {outcome.audit_seq} of the log does not record this member's {outcome.act.value} "
                       f"as {'waiting' if waits else 'allowed'}, on the target the server reported")


def enrol(workspace: Workspace, request: dict[str, Any], reason: str, actor: str, passphrase: str, *,
          engine: None = None) -> AdminOutcome:
    requested = read_enrolment_request(request)
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    statement = make_admin_statement(signer, AdminAct.ENROL, enrolment_target(requested), reason)
    return _send_admin(connection, signer, statement)[0]


def revoke(workspace: Workspace, name: str, reason: str, actor: str, passphrase: str, *,
           engine: None = None) -> AdminOutcome:
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    statement = make_admin_statement(signer, AdminAct.REVOKE, {"name": name}, reason)
    if name != actor:
        return _send_admin(connection, signer, statement)[0]
    # Revoking one's own key: the server refuses whatever it signs next, the read of the entry included, so this
    # outcome is the server's word; the revocation shows in the log every other member verifies (the CLI says so).
    return _post_admin(connection, signer, statement)[0]


def rotate(workspace: Workspace, name: str, new_passphrase: str, reason: str, actor: str, passphrase: str, *,
           engine: None = None, request: dict[str, Any] | None = None) -> AdminOutcome:
    """Bind a new key to NAME on the server. NAME rotating their own key makes it here, encrypted under
    `new_passphrase`, and it replaces the key file once the server logged the rotation. Anyone else binds the key in
    NAME's signed request (`identity request` on NAME's machine, which holds it): a key made on the admin's machine
    would let the admin sign as NAME."""
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    if request is not None:
        requested = read_enrolment_request(request)
        if requested.name != name:
            raise BadInput(f"the request is {requested.name}'s, not {name}'s")
        statement = make_admin_statement(signer, AdminAct.ROTATE, {"name": name, "public_key": requested.public_key},
                                         reason)
        return _send_admin(connection, signer, statement)[0]
    if actor != name:
        raise BadInput(f"{name}'s new key is made on {name}'s machine, never on another's",
                       hint=f"{name} runs `forgegov identity request {name} --contact ...` and hands the file to "
                            f"you; then `forgegov identity rotate {name} --request FILE --as {actor} ...`")
    public = prepare_rotation(workspace, name, new_passphrase)
    statement = make_admin_statement(signer, AdminAct.ROTATE, {"name": name,
                                                               "public_key": public_key_to_b64(public)}, reason)
    try:
        outcome = _post_admin(connection, signer, statement)[0]
    except ServerUnavailable as exc:
        # Whether the server logged it is unknown: the new key is kept, so that it is not lost if it did.
        raise ServerUnavailable(exc.message, hint=f"the new key is kept in {workspace.keys_dir}; run `forgegov "
                                                  "audit verify` to see whether the rotation was logged") from exc
    except ForgegovError:
        abandon_rotation(workspace, name)
        raise
    # The log is read back before any key file moves: with the old key while the act waits, with the new one (the
    # only one the server knows NAME by) once it is carried out.
    if outcome.waiting:
        _check_logged_act(connection, signer, statement, outcome)
        abandon_rotation(workspace, name)
        return outcome
    _check_logged_act(connection, rotation_signer(workspace, name, new_passphrase), statement, outcome)
    finish_rotation(workspace, name, signer.key_id)
    return outcome


# -- the log, verified on this machine --------------------------------------------------------------------------------

def verify_log(workspace: Workspace, actor: str, passphrase: str, witnesses: list[Path] | None = None) -> VerifyReport:
    """Fetch the server's whole log and verify it here, under the log key pinned at join: every entry, every stored
    tree head, every signed statement; and that it extends the newest tree head this member verified before."""
    connection = Connection(workspace)
    before = connection.view.seen()
    with tempfile.TemporaryDirectory(prefix="forgegov-verify-") as folder:
        path = Path(folder) / "log.jsonl"

        def save(response: httpx.Response) -> None:
            with path.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)

        # The witnesses' heads first: one cosigned after the export was taken would reach past its end.
        pinned = _witnessed(workspace, connection, _signer(workspace, actor, passphrase), Path(folder))
        connection.call("GET", "/v1/log/export", _signer(workspace, actor, passphrase), sink=save)
        with path.open(encoding="utf-8") as handle:
            header = json.loads(handle.readline())
        audit = workspace.config.audit
        if header.get("origin") != audit.origin or header.get("log_public_key") != audit.log_public_key:
            raise Tampered(f"the server exported a log of {header.get('origin')!r} under another key than the one "
                           f"pinned when this member joined ({audit.origin})")
        after = connection.view.seen()
        sizes = tuple(head.size for head in (before, after) if head is not None)
        report = verify_export(path, [*(witnesses or []), *(folder for folder, _size in pinned.values())], sizes)
        for witness in workspace.config.audit.remote_witnesses:
            if witness.name not in pinned:
                report.limits.append(f"witness {witness.name} has cosigned no tree head the server shows: nothing "
                                     "here shows that the others were shown this history")
            elif pinned[witness.name][1] < report.entries:
                report.limits.append(f"witness {witness.name} cosigned the first {pinned[witness.name][1]} of "
                                     f"{report.entries} entries")
    # The export must be the log this member verified, call by call: the same root at every size they saw.
    if before is not None and before.size > report.entries:
        raise LogRolledBack(f"the exported log has {report.entries} entries, fewer than the {before.size} this member "
                            "saw")
    for head in (before, after):
        # A head past the export's end is one the log reached while it was being exported: the view checked it.
        if head is None or head.size == 0 or head.size > report.entries:
            continue
        if report.roots[head.size] != head.root:
            raise LogForked(f"the exported log's first {head.size} entries are not the log this member verified "
                            "before: the server showed another history")
    return report


def _witnessed(workspace: Workspace, connection: Connection, signer: Signer,
               folder: Path) -> dict[str, tuple[Path, int]]:
    """The newest tree head each witness this member pinned cosigned, as the server keeps them, laid out as witness
    folders whose cosigners are the member's own pinned keys (never the server's word): `verify_export` then checks
    each cosignature, and that the exported log has that very root at that size."""
    pinned = {w.name: w for w in workspace.config.audit.remote_witnesses}
    if not pinned:
        return {}
    answer = connection.call("GET", "/v1/log/witnessed", signer)
    notes = answer.get("witnesses") if isinstance(answer, dict) else None
    if not isinstance(notes, dict):
        raise ServerUnavailable("the server's answer about its witnesses is malformed")
    laid_out = {}
    for name, note in notes.items():
        if name not in pinned or not isinstance(note, str):
            continue
        key = parse_verifier_key(pinned[name].key)
        witness_dir = folder / f"witness-{len(laid_out)}"
        (witness_dir / "checkpoints").mkdir(parents=True)
        size = open_checkpoint(note, workspace.config.audit.origin,
                               public_key_from_b64(workspace.config.audit.log_public_key)).size
        (witness_dir / "checkpoints" / f"{size}.note").write_text(note, encoding="utf-8")
        (witness_dir / "witness.json").write_text(json.dumps({
            "origin": workspace.config.audit.origin, "log_public_key": workspace.config.audit.log_public_key,
            "cosigners": {name: base64.b64encode(key.raw()).decode()}}), encoding="utf-8")
        laid_out[name] = (witness_dir, size)
    return laid_out


# -- the artifact store -----------------------------------------------------------------------------------------------

def put_artifact(workspace: Workspace, path: Path, actor: str, passphrase: str) -> dict[str, Any]:
    """Upload a file by its digest, in chunks, resuming where an earlier upload of the same bytes stopped; the
    server verifies the digest on receipt."""
    try:
        size = path.stat().st_size
        hasher = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                hasher.update(chunk)
    except OSError as exc:
        raise errors.UnreadablePath(f"cannot read {path}: {exc.strerror}") from exc
    digest = "sha256:" + hasher.hexdigest()
    sent = _upload(Connection(workspace), _signer(workspace, actor, passphrase), path, digest, size)
    return {"digest": digest, "size": size, "sent": sent}


def _upload(connection: Connection, signer: Signer, path: Path, digest: str, size: int, *, prove: bool = False) -> int:
    """Send PATH as DIGEST from where the server's upload of it stands; the bytes sent. With PROVE, a blob the store
    already holds is sent all the same (once per member), so that the server knows this member holds its bytes."""
    state = connection.call("POST", f"/v1/artifacts/{digest}", signer, document={"size": size, "prove": prove})
    sent, received = 0, state["received"]
    with path.open("rb") as handle:
        handle.seek(received)
        while received < size:
            chunk = handle.read(UPLOAD_CHUNK)
            state = connection.call("PUT", f"/v1/artifacts/{digest}?offset={received}", signer, content=chunk)
            received = state["received"]
            sent += len(chunk)
    connection.call("POST", f"/v1/artifacts/{digest}/finish", signer, document={})
    return sent


def _download(connection: Connection, signer: Signer, digest: str, destination: Path, expected: int | None = None) -> int:
    """Write blob DIGEST beside DESTINATION and rename it into place only if its bytes hash to DIGEST; a blob of a
    known size is cut off as soon as the server sends more."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=destination.parent, prefix=f".{destination.name}.", delete=False)
    partial = Path(handle.name)
    try:
        hasher = hashlib.sha256()

        def save(response: httpx.Response) -> int:
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if expected is not None and size > expected:
                    raise DigestMismatch(f"the server sent more than the {expected} bytes of {digest}: refused",
                                         expected=digest)
                hasher.update(chunk)
                handle.write(chunk)
            return size

        try:
            with handle:
                size = connection.call("GET", f"/v1/artifacts/{digest}", signer, sink=save)
                handle.flush()
                os.fsync(handle.fileno())
            actual = "sha256:" + hasher.hexdigest()
            if actual != digest:
                raise DigestMismatch(f"the server sent bytes that hash to {actual}, not {digest}: refused",
                                     expected=digest, actual=actual)
        except (DigestMismatch, ServerUnavailable):
            _drop_connections()
            raise
        os.replace(partial, destination)
        fsync_dir(destination.parent)
    finally:
        partial.unlink(missing_ok=True)
    return size


def get_artifact(workspace: Workspace, digest: str, destination: Path, actor: str, passphrase: str) -> dict[str, Any]:
    """Download a blob and keep it only if it hashes to DIGEST (written beside DESTINATION, renamed into place)."""
    check_digest(digest)
    if destination.exists():
        raise AlreadyExists(f"{destination} already exists", hint="choose another path, or move it away")
    size = _download(Connection(workspace), _signer(workspace, actor, passphrase), digest, destination)
    return {"digest": digest, "size": size, "path": str(destination)}


# -- datasets through the server ---------------------------------------------------------------------------------------

def register_dataset(workspace: Workspace, path: Path, name: str, spec: DatasetSpec, actor: str, passphrase: str,
                     progress: Callable[[str], None] | None = None) -> CheckOutcome:
    """Upload the dataset's files, let the server check the bytes it holds, and sign the check it computed; the
    server registers the dataset with that check in one transaction (`app/server/registration.py`)."""
    step = progress or (lambda _stage: None)
    _root, files = list_files(path)
    manifest = build_manifest(path)
    expected = scan_dataset(path, spec.limits).digest  # the dataset's digest as the server's scan must find it
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    for file, entry in zip(files, manifest.files, strict=True):
        step(f"uploading {entry.path}")
        _upload(connection, signer, file, f"sha256:{entry.sha256}", entry.size)
    step("the server checks the bytes it holds")
    prepared = connection.call("POST", "/v1/datasets/prepare", signer, document={
        "name": name, "kind": spec.kind.value, "classification": spec.classification.value,
        "manifest": manifest.to_document()})
    unsigned = prepared.get("statement")
    if prepared.get("dataset_digest") != expected or not isinstance(unsigned, dict) \
            or unsigned.get("dataset_digest") != expected:
        raise DigestMismatch(f"the server checked other bytes than the files sent ({expected})", expected=expected)
    statement = {**unsigned, "signer": signer.name, "key_id": signer.key_id, "signed_at": now_rfc3339()}
    answer = connection.call("POST", "/v1/datasets/register", signer, document={
        "check_id": prepared["check_id"], "statement": statement,
        "signature": sign(signer.private_key, Purpose.DATA_QUALITY, statement)})
    try:
        return CheckOutcome(**answer)
    except TypeError as exc:
        raise BadInput(f"the server's answer is not a registration: {exc}") from exc


def register_asset(workspace: Workspace, kind: AssetKind, path: Path, name: str, actor: str, passphrase: str, *,
                   stage: CheckpointStage | None = None, parent: str | None = None,
                   progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Upload the files at PATH and have the server register them as ACTOR's KIND NAME (`/v1/assets/register`); the
    server's answer, once the log proves it registered exactly these files, as this member's, under the digest it
    reported."""
    _root, files = list_files(path)
    manifest = build_manifest(path)
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    for file, entry in zip(files, manifest.files, strict=True):
        _upload(connection, signer, file, f"sha256:{entry.sha256}", entry.size, prove=True)
        if progress is not None:
            progress(entry.size)
    answer = connection.call("POST", "/v1/assets/register", signer, document={
        "kind": kind.value, "name": name, "manifest": manifest.to_document(),
        "stage": stage.value if stage is not None else None, "parent": parent})
    try:
        seq, digest, registered = int(answer["audit_seq"]), check_digest(answer["digest"]), answer["manifest"]
        listed = sorted(file_entries(answer["files"]), key=lambda f: f.path)
        kind_files = registered.get("files") if isinstance(registered, dict) else None
        in_manifest = sorted(file_entries(registered), key=lambda f: f.path) if kind_files is not None else listed
    except (KeyError, TypeError, ValueError, AttributeError, errors.ForgegovError) as exc:
        raise ServerUnavailable(f"the server's answer to the registration is malformed: {exc}") from exc
    sent = sorted(manifest.files, key=lambda f: f.path)
    if listed != sent or in_manifest != sent or digest_of(registered) != digest:
        raise Tampered(f"the server registered other files than the {len(manifest.files)} sent, or under a digest "
                       "that is not its manifest's")
    fields, payload = logged(connection, signer, seq, AuditAction.registered(kind))
    if fields.get("subject_digest") != digest \
            or (payload.get("kind"), payload.get("name"), payload.get("owner")) != (kind.value, name, signer.name) \
            or answer.get("subject") != f"{kind.value}/{name}@{payload.get('version')}" \
            or payload.get("stage") != (stage.value if stage is not None else None) \
            or (payload.get("parent_digest") is None) != (parent is None):
        raise Tampered(f"log entry {seq} does not register {digest} as {signer.name}'s {kind.value} {name}, at the "
                       "stage and with the parent asked for")
    return answer


def _fetch(connection: Connection, signer: Signer, subject: str, kind: str, reason: str) -> dict[str, Any]:
    """Sign `asset.fetch` for SUBJECT (the policy decides who may read what; the log records who did, and why); the
    server's answer, once its manifest is proved to be the asset's digest and the act proved logged."""
    statement = make_admin_statement(signer, AdminAct.FETCH, {"subject": subject, "kind": kind}, reason)
    fetched, answer = _send_admin(connection, signer, statement, "/v1/fetch")
    asset = fetched.target.get("asset") if isinstance(fetched.target.get("asset"), dict) else {}
    if not fetch_reference_holds({"subject": subject, "kind": kind}, fetched.target):
        raise Tampered(f"the server let this member fetch {asset.get('label')}, not {kind} {subject}")
    digest = digest_of(answer.get("manifest"))
    if digest != answer.get("digest") or digest != asset.get("digest"):
        raise DigestMismatch(f"the manifest the server sent for {answer.get('subject')} is not the digest of the "
                             f"asset it logged the fetch of", expected=str(answer.get("digest")), actual=digest)
    return answer


def fetch_dataset(workspace: Workspace, subject: str, destination: Path, actor: str, passphrase: str,
                  reason: str = "to read it before deciding") -> dict[str, Any]:
    """The registered dataset's files, from the server's artifact store, into DESTINATION (a new folder), kept only
    if every file hashes as its manifest says and the manifest is the dataset's digest: what a steward reads before
    approving, byte for byte what was registered."""
    if destination.exists():
        raise AlreadyExists(f"{destination} already exists", hint="fetch into a new folder")
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    answer = _fetch(connection, signer, subject, "dataset", reason)
    entries, digest = file_entries(answer["manifest"]), answer["digest"]
    with staged_folder(destination, "fetch") as staging:
        for entry in entries:
            _download(connection, signer, f"sha256:{entry.sha256}", staging / entry.path, entry.size)
    return {"subject": answer.get("subject"), "digest": digest, "files": len(entries), "path": str(destination)}


# -- reads, runs and evaluations through the server -------------------------------------------------------------------

JOB_POLL_S = 1.0


def read(workspace: Workspace, name: str, arguments: dict[str, Any], actor: str, passphrase: str) -> Any:
    """A read command's data (`app/reads.py`), computed by the server on its store; what the platform key signed
    (evaluation results) is checked here before it is shown."""
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    data = connection.call("POST", "/v1/read", signer, document={"name": name, "arguments": arguments})["data"]
    check = _CHECKED_READS.get(name)
    if check is not None:
        check(workspace, connection, signer, data)
    return data


def _signed_result(workspace: Workspace, connection: Connection, signer: Signer, summary: Any) -> EvalRecord:
    """The evaluation result SUMMARY describes, as the log holds it (its entry proved included under the verified
    tree head) and the platform key pinned at join signed it; Tampered unless SUMMARY is that result's."""
    try:
        seq = int(summary["seq"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ServerUnavailable(f"the server's report of an evaluation names no log entry: {exc}") from exc
    fields, payload = logged(connection, signer, seq, AuditAction.EVAL_RECORD, str(summary.get("actor")))
    record = signed_record(PLATFORM_KEY.public_key(workspace), seq, fields["time"], fields["actor"],
                           fields["subject_digest"], payload)
    shown = {key: value for key, value in summary.items() if key != "statement"}
    if record.summary() != shown or summary.get("statement", record.statement) != record.statement:
        raise Tampered(f"the server's report of evaluation {record.id} is not the result the platform key signed")
    return record


def _check_results(workspace: Workspace, connection: Connection, signer: Signer, data: Any) -> None:
    if not isinstance(data, list):
        raise ServerUnavailable("the server's list of evaluations is not a list")
    for summary in data:
        _signed_result(workspace, connection, signer, summary)


def _check_result(workspace: Workspace, connection: Connection, signer: Signer, data: Any) -> None:
    if not isinstance(data, dict) or "statement" not in data:
        raise ServerUnavailable("the server's evaluation carries no signed statement")
    _signed_result(workspace, connection, signer, data)


# Reads whose data the platform key signed: checked on this machine, as `eval run` checks the result it asked for.
_CHECKED_READS = {"eval.list": _check_results, "eval.show": _check_result}


def _job(connection: Connection, signer: Signer, job: dict[str, Any], reason: str,
         progress: Callable[[str, int, int, str], None] | None,
         on_start: Callable[[int], None] | None = None) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Ask the server for a job, signing its start (`job.start`, which the policy decides), and follow it until it
    ends: the job's number, its orders as the logged start holds them (checked against what was asked here), and its
    result; or its error raised here as the server's."""
    statement = make_admin_statement(signer, AdminAct.JOB_START, job, reason)
    started, answer = _send_admin(connection, signer, statement, "/v1/jobs")
    seq = started.audit_seq
    try:
        ordered = orders(started.target)
    except (KeyError, TypeError) as exc:
        raise Tampered(f"job {seq}'s logged start holds no orders: {exc}") from exc
    if not signed_references_hold(job, started.target):
        raise Tampered(f"job {seq}'s logged orders ({ordered}) are not what this member asked for")
    job = answer.get("job")
    while True:
        if not isinstance(job, dict) or job.get("id") != str(seq):
            raise Tampered(f"the server reports on another job than entry {seq} of the log")
        if on_start is not None:
            on_start(seq)
            on_start = None
        # Every answer's progress, the last one's too: a short job may end between two looks.
        for phase in job.get("progress") or []:
            if progress is not None:
                try:
                    progress(str(phase["phase"]), int(phase["done"]), int(phase["total"]), str(phase["note"]))
                except (KeyError, TypeError, ValueError) as exc:
                    raise ServerUnavailable(f"the server's report of job {job.get('id')} is malformed: {exc}") from exc
        if job.get("state") != "running":
            break
        time.sleep(JOB_POLL_S)
        job = connection.call("GET", f"/v1/jobs/{seq}", signer)
    if job.get("state") != "succeeded":
        raise remote_error(job, 500)
    return seq, ordered, job["result"]


def start_run(workspace: Workspace, recipe_path: Path, actor: str, passphrase: Callable[[], str], *,
              comment: str = "", progress: Callable[[str, int, int, str], None] | None = None,
              on_start: Callable[[int], None] | None = None) -> StartOutcome:
    """`run start` for a member: the server registers the recipe's bytes, the member signs the run-gate request,
    and once the gate has approved the server trains it (a job) and signs its provenance with the platform key."""
    data, _recipe = read_recipe(recipe_path)  # refused here, before anything is sent, when it is not a recipe
    with tempfile.TemporaryDirectory(prefix="forgegov-recipe-") as folder:
        (Path(folder) / RECIPE_FILE).write_bytes(data)
        digest = build_manifest(Path(folder) / RECIPE_FILE).digest  # the run asset's digest, as the server must find
    secret = passphrase()
    connection, signer = Connection(workspace), _signer(workspace, actor, secret)
    seen = connection.call("POST", "/v1/runs/register", signer, document={"recipe": data.decode("utf-8")})
    name, registered, state = seen["subject"], bool(seen["registered"]), seen["state"]
    if seen.get("digest") != digest:
        raise Tampered(f"the server registered {name} as {seen.get('digest')}, not this recipe ({digest})")
    if state == "rejected":
        raise errors.StateConflict(f"{name} was rejected at the run gate", hint="change the recipe and start it again")
    if state == "registered":
        prepared = prepare_remote(connection, signer, name, GateAction.REQUEST, Gate.RUN, None)
        if prepared.digest != digest:  # signing a request for other bytes than this recipe's is refused
            raise Tampered(f"the server asks for a signature on {prepared.label} ({prepared.digest}), not on this "
                           f"recipe ({digest})")
        opened = send_statement(connection, signer, sign_prepared(signer, prepared, GateAction.REQUEST,
                                                                  comment=comment))
        if opened.state != "approved":
            return StartOutcome(name, registered, opened.state or "", opened.missing, opened.decision_id)
    elif state == "pending":
        return StartOutcome(name, registered, state, tuple(seen["missing"]), seen["decision_id"])
    _seq, _orders, result = _job(connection, signer, run_job(name), comment or f"train {name}", progress, on_start)
    return StartOutcome(name, registered, "approved", trained=RunOutcome.from_dict(result))


def run_evaluation(workspace: Workspace, candidate: str, suites: list[str], actor: str, passphrase: str, *,
                   base: str | None = None, batch_size: int = 32,
                   progress: Callable[[str, int, int, str], None] | None = None,
                   on_start: Callable[[int], None] | None = None) -> dict[str, Any]:
    """`eval run` for a member: the server evaluates (a job) and signs the result with the platform key; the
    summary of the recorded result."""
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    seq, ordered, summary = _job(connection, signer, evaluation_job(candidate, suites, base, batch_size),
                                 f"evaluate {candidate}", progress, on_start)
    # The summary must be the signed result the log holds (its entry proved included, its envelope verified under
    # the platform key pinned at join), made after this job started, by this member, of what the job was to do.
    record = _signed_result(workspace, connection, signer, summary)
    predicate = record.predicate
    if record.seq <= seq or record.job != seq or record.actor != actor \
            or predicate["candidate"]["label"] != ordered["candidate"] \
            or (ordered["base"] is not None and predicate["base"]["label"] != ordered["base"]) \
            or [s["name"] for s in predicate["suites"]] != ordered["suites"]:
        raise Tampered(f"evaluation {record.id} (entry {record.seq}) is not the result of job {seq}")
    return summary


def cancel_job(workspace: Workspace, job: int, reason: str, actor: str, passphrase: str) -> dict[str, Any]:
    """Stop job JOB on the server, signing `job.cancel` (which the policy decides); how the job stands after."""
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    statement = make_admin_statement(signer, AdminAct.JOB_CANCEL, {"job": job}, reason)
    _stopped, answer = _send_admin(connection, signer, statement, "/v1/jobs/cancel")
    stopped = answer.get("job")
    if not isinstance(stopped, dict) or stopped.get("id") != str(job):
        raise Tampered(f"the server reports on another job than job {job}, which this member stopped")
    return stopped


def verify_run(workspace: Workspace, run: str, actor: str, passphrase: str) -> dict[str, Any]:
    """`run verify` on this machine: the run's signed provenance, under the platform key pinned when this member
    joined, against the candidate's files fetched from the server's store and hashed here."""
    connection, signer = Connection(workspace), _signer(workspace, actor, passphrase)
    found = connection.call("POST", "/v1/runs/provenance", signer, document={"run": run})
    record, candidate = found["run"], found["candidate"]
    names = {record["run_id"], record["run"], record["run"].split("@")[0]}
    names |= {n.removeprefix("run/") for n in names}
    if run not in names and not (run.startswith("sha256:") and str(record.get("run_digest")).startswith(run)):
        raise Tampered(f"the server answered about {record['run']} (run {record['run_id']}), not {run}")
    fetched = _fetch(connection, signer, candidate["label"], "checkpoint", f"verify run {record['run_id']}")
    if fetched["digest"] != candidate["digest"]:
        raise Tampered(f"the server let this member fetch {fetched['digest']}, not the candidate {candidate['digest']}")
    entries = file_entries(candidate["manifest"])
    with tempfile.TemporaryDirectory(prefix="forgegov-run-verify-") as folder:
        files = Path(folder) / "candidate"
        for entry in entries:
            _download(connection, signer, f"sha256:{entry.sha256}", files / entry.path, entry.size)
        return check_run_provenance(PLATFORM_KEY.public_key(workspace), found["run"],
                                    SignedProvenance(found["statement_envelope"], found["manifest_envelope"]),
                                    candidate["label"], candidate["digest"], candidate["manifest"], files)
