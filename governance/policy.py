"""The policy in force, the bytes OPA runs for it, and the engine that asks OPA about it.

A policy is a bundle (Rego, JSON data, a `.manifest` naming its revision) together with the OPA build pinned to
decide it; one digest covers both. Bundles live in the store (`policy_bundle`), put there by registration, and a
policy is put in force only by the policy gate (`policy_adoption.py`). Nothing here trusts a row or a file:

1. Which policy is in force is read from the newest `policy.activate` entry of the log, with the row beside it
   checked against that entry, and (after a workspace's first policy) the signed statement of the policy-gate
   decision it names verified under its signer's key. A row inserted, deleted or edited stops every gate.
2. The stored bundle is re-hashed, together with its pinned OPA build, before use: an edited bundle or pin stops
   every gate.
3. The embedded OPA binary is copied into a sealed file and hashed there; one whose digest is not the pinned one
   does not start (a wrapper given as FORGEGOV_OPA, or another OPA release, is refused).
4. OPA reads the bundle from a sealed file holding exactly the bytes hashed in 2, so nothing can change between the
   check and OPA loading it.
5. Each policy put in force after the first was allowed by the one before it: the adopting decision's signed request
   and approvals are what its input says (1.), and OPA under the previous policy still allows that input, so a policy
   owner who holds the log key cannot adopt a policy by appending an entry. Key rotations are proven the same way.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from sqlmodel import Session, select

from forgegov.audit.commitments import committed_payload
from forgegov.foundation.canonical import canonical_bytes, digest_of, sha256_digest
from forgegov.foundation.config import OpaMode, Workspace
from forgegov.foundation.errors import BadInput, DecisionUnavailable, PolicyBundleError, StoreTampered
from forgegov.foundation.manifest import FileEntry
from forgegov.foundation.store.models import AuditEntry, Decision, PolicyActivation, PolicyBundle
from forgegov.foundation.vocabulary import AuditAction, Gate, GateAction
from forgegov.governance.identities import revocations
from forgegov.governance.opa.binary import find_opa
from forgegov.governance.opa.client import DECISION_RULE, PACKAGE_PREFIX, OpaAnswer, PolicyClient, parse_answer
from forgegov.governance.opa.sealed import SealedFile
from forgegov.governance.opa.supervisor import LocalOpa
from forgegov.governance.statements import check_admin_input, check_signed_input

MANIFEST_FILE = ".manifest"
DATA_FILE = "data/data.json"
ADMIN_PACKAGE = "forgegov.admin"
POLICY_MANIFEST_VERSION = 1
# A bundle is a few dozen small text files; these bounds keep a hostile archive from exhausting memory.
MAX_BUNDLE_FILES = 1000
MAX_BUNDLE_BYTES = 16 << 20
_HINT = "run `forgegov audit verify`; the store was edited outside forgegov"


@dataclass(frozen=True)
class Decider:
    """The OPA build pinned to decide a policy: its release (for people) and the SHA-256 of its executable."""

    opa_version: str
    sha256: str

    def to_document(self) -> dict[str, str]:
        return {"engine": "opa", "version": self.opa_version, "sha256": self.sha256}

    @classmethod
    def from_document(cls, document: Any) -> Decider:
        if not isinstance(document, dict) or set(document) != {"engine", "version", "sha256"} \
                or document["engine"] != "opa" or not isinstance(document["version"], str) \
                or not isinstance(document["sha256"], str) or len(document["sha256"]) != 64:
            raise StoreTampered("a stored policy's decider is not an OPA build pin", hint=_HINT)
        return cls(document["version"], document["sha256"])


@dataclass(frozen=True)
class PolicyManifest:
    """What a policy asset's digest covers: every bundle file, the bundle's revision and the pinned OPA build."""

    files: tuple[FileEntry, ...]
    revision: str
    decider: Decider
    archive: bytes = field(repr=False, compare=False)

    def to_document(self) -> dict[str, Any]:
        return {"manifest_version": POLICY_MANIFEST_VERSION, "revision": self.revision,
                "decider": self.decider.to_document(),
                "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files]}

    @property
    def digest(self) -> str:
        return digest_of(self.to_document())


@dataclass(frozen=True)
class Bundle:
    """A policy bundle's files, in memory: read once, hashed, archived and handed to OPA from these bytes."""

    files: dict[str, bytes]

    @property
    def revision(self) -> str:
        try:
            revision = json.loads(self.files[MANIFEST_FILE])["revision"]
        except KeyError as exc:
            raise PolicyBundleError(f"the bundle has no {MANIFEST_FILE} naming its revision") from exc
        except (ValueError, TypeError) as exc:
            raise PolicyBundleError(f"the bundle's {MANIFEST_FILE} does not name a revision: {exc}") from exc
        if not isinstance(revision, str) or not revision or len(revision) > 128:
            raise PolicyBundleError(f"the bundle's {MANIFEST_FILE}: revision must be a non-empty string (≤ 128)")
        return revision

    def archive(self) -> bytes:
        """A gzipped tar OPA loads as a bundle; the same files always give the same bytes."""
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in sorted(self.files.items()):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        return gzip.compress(raw.getvalue(), mtime=0)

    def manifest(self, decider: Decider) -> PolicyManifest:
        files = tuple(FileEntry(name, len(data), "sha256:" + hashlib.sha256(data).hexdigest())
                      for name, data in sorted(self.files.items()))
        return PolicyManifest(files, self.revision, decider, self.archive())

    def write(self, destination: Path) -> None:
        for name, data in self.files.items():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def _bundle_member(name: str) -> bool:
    return name.endswith((".rego", ".json")) or PurePosixPath(name).name == MANIFEST_FILE


def _check_size(files: dict[str, bytes], where: str) -> None:
    if len(files) > MAX_BUNDLE_FILES or sum(len(d) for d in files.values()) > MAX_BUNDLE_BYTES:
        raise BadInput(f"{where} is larger than a policy bundle may be ({MAX_BUNDLE_FILES} files, "
                       f"{MAX_BUNDLE_BYTES >> 20} MiB)")


def read_bundle(source: Path) -> Bundle:
    """The policy files of a bundle folder (Rego, JSON data, the manifest), read once; never Python caches or editor
    files, never what a symbolic link points at."""
    if not (source / MANIFEST_FILE).is_file():
        raise BadInput(f"{source} is not a policy bundle (no {MANIFEST_FILE})",
                       hint="give the bundle's top folder, the one holding .manifest")
    files: dict[str, bytes] = {}
    for path in sorted(source.rglob("*")):
        if path.is_symlink():
            raise BadInput(f"{path} is a symbolic link; a policy bundle holds real files only")
        name = path.relative_to(source).as_posix()
        if path.is_file() and _bundle_member(name) and not name.isprintable():
            # A reviewer reads these names (`forgegov review`, `policy diff`): no control characters in them.
            raise BadInput(f"{name!r} in {source} holds control characters; a policy file's name must be printable")
        if path.is_file() and _bundle_member(name):
            try:
                files[name] = path.read_bytes()
            except OSError as exc:
                raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from exc
            _check_size(files, str(source))
    return Bundle(files)


def bundle_from_archive(archive: bytes) -> Bundle:
    """The files of a stored bundle archive; anything but plain, well-named bundle files is refused."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive)), mode="r:") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if not member.isfile() or path.is_absolute() or ".." in path.parts or member.name in files \
                        or not _bundle_member(member.name):
                    raise BadInput(f"archive member {member.name!r} is not a policy bundle file")
                extracted = tar.extractfile(member)
                files[member.name] = extracted.read() if extracted is not None else b""
                _check_size(files, "the stored bundle")
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise BadInput(f"the stored bundle is not a readable archive: {exc}") from exc
    return Bundle(files)


def packaged_bundle() -> Path:
    return Path(str(resources.files("forgegov.policies")))


def run_opa(binary: Path, args: list[str], pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300, check=False,
                          pass_fds=pass_fds)


class OpaBuild:
    """This machine's OPA executable, copied into a sealed file and hashed there: what was hashed is what runs.

    One per executable file (path, inode, size, modification time) for the life of the process: the sealed copy
    cannot change, so it is hashed once, its version asked once, and each bundle checked once, instead of copying
    and hashing 60 MB before every engine starts. A file replaced on disk is a new key, so it is copied and hashed
    afresh."""

    _builds: dict[tuple[str, int, int, int], OpaBuild] = {}

    def __init__(self, binary: Path) -> None:
        self.source = binary
        self.sealed = SealedFile.of_file("opa", binary)
        self.sha256 = self.sealed.sha256()
        self._decider: Decider | None = None
        self._checked: set[str] = set()

    @classmethod
    def configured(cls, workspace: Workspace | None) -> OpaBuild:
        binary = find_opa(workspace.opa.binary if workspace is not None else "")
        try:
            info = binary.stat()
        except OSError as exc:
            raise PolicyBundleError(f"cannot read the OPA executable {binary}: {exc.strerror or exc}") from exc
        key = (str(binary.resolve()), info.st_ino, info.st_size, info.st_mtime_ns)
        if key not in cls._builds:
            cls._builds[key] = cls(binary)
        return cls._builds[key]

    def decider(self) -> Decider:
        if self._decider is None:
            done = self.run(["version"])
            versions = [line.split(":", 1)[1].strip() for line in done.stdout.splitlines()
                        if line.startswith("Version:")]
            if not versions:
                raise PolicyBundleError(f"{self.source} is not an OPA executable: it did not report a version")
            self._decider = Decider("v" + versions[0], self.sha256)
        return self._decider

    def run(self, args: list[str], pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
        return run_opa(self.sealed.path, args, (self.sealed.fd, *pass_fds))

    def evaluate(self, bundle: Bundle, query: str, input_document: dict[str, Any]) -> OpaAnswer:
        """One answer from `opa eval` on exactly these bundle bytes (no server), as `PolicyClient` reads answers."""
        with SealedFile.of_bytes("bundle.tar.gz", bundle.archive()) as sealed, \
                SealedFile.of_bytes("input.json", canonical_bytes(input_document)) as given:
            done = self.run(["eval", "--bundle", str(sealed.path), "--input", str(given.path), "--format", "json",
                             query], (sealed.fd, given.fd))
        try:
            value = json.loads(done.stdout)["result"][0]["expressions"][0]["value"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise DecisionUnavailable(f"`opa eval` gave no answer for {query}: {done.stderr.strip()[:500]}") from exc
        return parse_answer({"result": value}, None)

    def check(self, bundle: Bundle) -> None:
        """`opa check --strict` on exactly these bytes (once per distinct bundle and executable)."""
        archive = bundle.archive()
        key = hashlib.sha256(archive).hexdigest()
        if key in self._checked:
            return
        with SealedFile.of_bytes("bundle.tar.gz", archive) as sealed:
            done = self.run(["check", "--strict", "--bundle", str(sealed.path)], (sealed.fd,))
        if done.returncode != 0:
            raise PolicyBundleError(f"policy bundle {bundle.revision} fails `opa check --strict`:\n"
                                    f"{(done.stdout + done.stderr).strip()}")
        self._checked.add(key)


def scan_policy(workspace: Workspace, source: Path) -> PolicyManifest:
    """Read a bundle folder for registration: it must pass `opa check --strict` under this machine's OPA, whose
    build is pinned with it."""
    bundle = read_bundle(source)
    opa = OpaBuild.configured(workspace)
    opa.check(bundle)
    return bundle.manifest(opa.decider())


@dataclass(frozen=True)
class PolicyInForce:
    digest: str
    revision: str
    activated_by: str
    activated_at: str
    decision_id: str | None
    audit_seq: int


def policy_in_force(session: Session) -> PolicyInForce:
    """The policy the log last put in force; StoreTampered when the store says otherwise (1. above)."""
    seqs = session.exec(select(AuditEntry.seq).where(AuditEntry.action == AuditAction.POLICY_ACTIVATE)
                        .order_by(AuditEntry.seq)).all()  # type: ignore[arg-type]
    row = session.exec(select(PolicyActivation).order_by(PolicyActivation.id.desc())).first()  # type: ignore[union-attr]
    if not seqs and row is None:
        raise PolicyBundleError("this workspace has no policy in force",
                                hint="initialise it with `forgegov init`, which puts the shipped policy in force")
    if not seqs or row is None:
        raise StoreTampered("the policy activations in the store and the policy.activate entries of the audit log "
                            "disagree (one side is empty)", hint=_HINT)
    what = f"the policy in force (policy_activation row {row.id})"
    committed_payload(session, what=what, action=AuditAction.POLICY_ACTIVATE, seq=seqs[-1], subject_digest=row.digest,
                      fields={"digest": row.digest, "revision": row.revision, "decision_id": row.decision_id})
    if len(seqs) > 1 or row.decision_id is not None:
        _check_adopted_by_gate(session, row, what)
    return PolicyInForce(row.digest, row.revision, row.activated_by, row.activated_at, row.decision_id, seqs[-1])


def _check_adopted_by_gate(session: Session, row: PolicyActivation, what: str) -> None:
    """Only a workspace's first policy is put in force without a decision; every later one names the policy-gate
    decision that allowed it, once; that decision's input is what its signed, admitted request and approvals say,
    and its statement decided nothing else. (That the previous policy allowed it is `prove_policy_acts`'s.)"""
    if row.decision_id is None:
        raise StoreTampered(f"{what} names no policy-gate decision, and only a workspace's first policy may",
                            hint=_HINT)
    citing = session.exec(select(AuditEntry.seq).where(AuditEntry.action == AuditAction.POLICY_ACTIVATE,
                                                       AuditEntry.payload.contains(row.decision_id, autoescape=True))).all()  # type: ignore[union-attr]
    if len(citing) != 1:
        raise StoreTampered(f"{what}: decision {row.decision_id} put a policy in force {len(citing)} times",
                            hint=_HINT)
    gate_actions = [AuditAction.of_gate(Gate.POLICY, action) for action in (GateAction.APPROVE, GateAction.REQUEST)]
    found = session.exec(select(AuditEntry.seq, AuditEntry.action).where(
        AuditEntry.decision_id == row.decision_id, AuditEntry.action.in_(gate_actions))).first()  # type: ignore[attr-defined]
    if found is None:
        raise StoreTampered(f"{what} names decision {row.decision_id}, which is no decision of the policy gate",
                            hint=_HINT)
    seq, action = found
    decided = committed_payload(session, what=f"the decision that put {row.revision} in force",
                                action=AuditAction(action), seq=seq, subject_digest=row.digest,
                                fields={"result": "allow", "state": "approved"})
    decision = session.get(Decision, row.decision_id)
    if decision is None or decision.input_digest != decided.get("input_digest") \
            or sha256_digest(decision.input.encode()) != decision.input_digest:
        raise StoreTampered(f"the decision that put {row.revision} in force (audit entry {seq}) has no stored input "
                            "that hashes to what its entry committed to", hint=_HINT)
    # Who requested and who approved, from their signatures (someone holding only the log key could append an
    # "allow" entry; they cannot sign for the policy owners).
    check_signed_input(session, seq, row.digest, decided, _object_of(seq, decision.input), revocations(session))
    # A statement decides once: an approval already spent (or refused) and carried again into an appended entry
    # would otherwise put back any policy it once approved.
    nonce = str((decided.get("statement") or {}).get("nonce"))
    candidates = session.exec(select(AuditEntry.seq, AuditEntry.payload).where(
        AuditEntry.action.like("gate.%"), AuditEntry.action != AuditAction.GATE_REFUSED,  # type: ignore[attr-defined]
        AuditEntry.payload.contains(nonce, autoescape=True))).all()  # type: ignore[union-attr]
    # The text search only narrows; what counts is the nonce of each decision's own statement (a comment that
    # quotes a nonce, or a refusal that records a statement, decides nothing).
    uses = [found for found, text in candidates if _statement_nonce(text) == nonce]
    if len(uses) != 1:
        raise StoreTampered(f"the statement behind decision {row.decision_id} was used by {len(uses)} gate entries "
                            f"({', '.join(map(str, uses))}), not one", hint=_HINT)


class AdoptionNotProven(StoreTampered):
    """A policy adoption or a key rotation in the log was not allowed by the policy in force when it was made."""


def prove_policy_acts(workspace: Workspace, session: Session) -> None:
    """The acts that change who decides and who signs were allowed by the policy in force when they were made (5.
    above): every policy put in force after the first, every key rotation and every enrolment. Each adopting decision was taken under
    the previous policy, and each rotation under the policy in force at its entry; OPA, run from sealed copies of that
    policy's stored bundle and the pinned build, must still allow the recorded input. Signatures alone cannot show
    this: someone holding the log key could append an "allow" resting only on their own signed request or act. Each
    proof is kept for the life of the process."""
    chain = activation_chain(session)
    for before, adopted in zip(chain, chain[1:], strict=False):
        decision = session.get(Decision, adopted.decision_id) if adopted.decision_id else None
        if decision is None or decision.policy_digest != before.digest or decision.subject_digest != adopted.digest:
            raise AdoptionNotProven(f"policy {adopted.digest} was put in force by decision {adopted.decision_id}, "
                                    "which is not a decision on it under the policy in force before it "
                                    f"({before.revision})", hint=_HINT)
        _prove(workspace, session, (decision.id, decision.input_digest), before.digest, Gate.POLICY.value,
               _object_of(adopted.seq, decision.input),
               f"policy {adopted.revision} is in force through decision {decision.id}")
    bindings = session.exec(select(AuditEntry.seq, AuditEntry.action, AuditEntry.payload).where(
        AuditEntry.action.in_([AuditAction.IDENTITY_ROTATE, AuditAction.IDENTITY_ENROL]))  # type: ignore[attr-defined]
        .order_by(AuditEntry.seq)).all()  # type: ignore[arg-type]
    for seq, action, payload in bindings:
        what = "key rotation" if action == AuditAction.IDENTITY_ROTATE else "enrolment"
        rotated = _object_of(seq, payload)
        decision, in_force = rotated.get("decision"), in_force_at(chain, seq)
        if not isinstance(decision, dict) or decision.get("policy_digest") != in_force.digest:
            raise AdoptionNotProven(f"the {what} at audit entry {seq} does not record the decision of the "
                                    "policy in force at the time", hint=_HINT)
        # The question re-asked is the act that was signed (who acts, on whom, which key), not one made up beside it.
        asked = check_admin_input(session, seq, rotated, str(action))
        _prove(workspace, session, (str(seq), hashlib.sha256(str(payload).encode()).hexdigest()), in_force.digest,
               None, asked, f"the {what} at audit entry {seq} stands")


def _prove(workspace: Workspace, session: Session, key: tuple[str, str], policy_digest: str, gate: str | None,
           input_document: dict[str, Any], what: str) -> None:
    if (*key, policy_digest) in _PROVEN:
        return
    bundle, decider = stored_policy(session, policy_digest)
    opa = OpaBuild.configured(workspace)
    if opa.sha256 != decider.sha256:
        raise DeciderMismatch(f"{what}; proving it takes OPA {decider.opa_version} (sha256 {decider.sha256[:16]}…), "
                              "the build that decided it", hint="point FORGEGOV_OPA (or [opa] binary) at that build")
    package = f"{PACKAGE_PREFIX}.{gate}" if gate is not None else ADMIN_PACKAGE
    answer = opa.evaluate(bundle, f"data.{package}.{DECISION_RULE}", input_document)
    if not answer.allow:
        raise AdoptionNotProven(f"{what}, but policy {bundle.revision}, in force when it was decided, does not allow "
                                f"it ({'; '.join(answer.deny + answer.missing)})", hint=_HINT)
    _PROVEN.add((*key, policy_digest))


_PROVEN: set[tuple[str, str, str]] = set()


def _object_of(seq: int, payload: str | None) -> dict[str, Any]:
    try:
        document = json.loads(payload or "")
    except ValueError as exc:
        raise StoreTampered(f"audit entry {seq} holds no readable payload", hint=_HINT) from exc
    if not isinstance(document, dict):
        raise StoreTampered(f"audit entry {seq} holds no readable payload", hint=_HINT)
    return document


def _statement_nonce(payload: str | None) -> object:
    try:
        statement = json.loads(payload or "").get("statement")
    except (ValueError, AttributeError):
        return None
    return statement.get("nonce") if isinstance(statement, dict) else None


@dataclass(frozen=True)
class Activation:
    seq: int
    digest: str
    revision: str
    decision_id: str | None


def activation_chain(session: Session) -> list[Activation]:
    """Every policy the log put in force, in order: which policy decided an entry is the one whose activation came
    last before it, never what a record beside the entry claims."""
    chain = session.exec(select(AuditEntry.seq, AuditEntry.payload).where(
        AuditEntry.action == AuditAction.POLICY_ACTIVATE).order_by(AuditEntry.seq)).all()  # type: ignore[arg-type]
    activations = []
    for seq, payload in chain:
        try:
            document = json.loads(payload or "")
            activations.append(Activation(seq, str(document["digest"]), str(document["revision"]),
                                          document.get("decision_id")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreTampered(f"audit entry {seq} (policy.activate) holds no readable payload", hint=_HINT) from exc
    return activations


def in_force_at(chain: list[Activation], seq: int) -> Activation:
    before = [activation for activation in chain if activation.seq < seq]
    if not before:
        raise StoreTampered(f"audit entry {seq} comes before any policy was put in force", hint=_HINT)
    return before[-1]


def stored_policy(session: Session, digest: str) -> tuple[Bundle, Decider]:
    """The bundle and pinned OPA build stored under `digest`, re-hashed (2. above)."""
    row = session.get(PolicyBundle, digest)
    if row is None:
        raise StoreTampered(f"policy {digest} is not in the store's policy bundles",
                            hint="a workspace made before store revision 0008 must be initialised again; "
                                 "otherwise run `forgegov audit verify`")
    try:
        bundle = bundle_from_archive(bytes(row.archive))
        decider = Decider.from_document(json.loads(row.decider))
    except (BadInput, ValueError) as exc:
        raise StoreTampered(f"the stored bundle of policy {digest} is unreadable: {exc}", hint=_HINT) from exc
    if bundle.manifest(decider).digest != digest:
        raise StoreTampered(f"the stored bundle of policy {digest} no longer hashes to that digest: the store was "
                            "altered", hint=_HINT)
    return bundle, decider


def keep_bundle(session: Session, manifest: PolicyManifest) -> None:
    if session.get(PolicyBundle, manifest.digest) is None:
        session.add(PolicyBundle(digest=manifest.digest, archive=manifest.archive,
                                 decider=canonical_bytes(manifest.decider.to_document()).decode()))


class DeciderMismatch(PolicyBundleError):
    """The OPA executable found is not the build the policy in force pins."""


class PolicyEngine:
    """OPA for one workspace: the embedded server, run from sealed copies of the pinned binary and the policy in
    force (started here, stopped on exit), or the configured URL."""

    def __init__(self, workspace: Workspace, pinned: PolicyInForce, bundle: Bundle, decider: Decider) -> None:
        self.workspace = workspace
        self.pinned_digest = pinned.digest
        self.pinned_revision = pinned.revision
        self._bundle = bundle
        self._decider = decider
        self._local: LocalOpa | None = None
        self._client: PolicyClient | None = None
        self._sealed: list[SealedFile] = []

    def __enter__(self) -> PolicyEngine:
        config = self.workspace.opa
        try:
            if config.mode is OpaMode.EMBEDDED:
                url = self._start_local()
            else:
                url = config.url
            self._client = PolicyClient(url, config.timeout_s)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_local(self) -> str:
        opa = OpaBuild.configured(self.workspace)
        if opa.sha256 != self._decider.sha256:
            raise DeciderMismatch(
                f"the OPA executable {opa.source} (sha256 {opa.sha256[:16]}…) is not the build policy "
                f"{self.pinned_revision} pins ({self._decider.opa_version}, sha256 {self._decider.sha256[:16]}…)",
                hint="point FORGEGOV_OPA (or [opa] binary) at the pinned build, or propose the policy again with "
                     "this OPA (`forgegov policy propose`)",
            )
        bundle = SealedFile.of_bytes("bundle.tar.gz", self._bundle.archive())
        self._sealed.append(bundle)
        self._local = LocalOpa(opa.sealed.path, bundle.path, self.workspace.logs_dir / "opa.log",
                               pass_fds=(opa.sealed.fd, bundle.fd))
        self._local.start()
        return self._local.url

    def __exit__(self, *_exc: object) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._local is not None:
            self._local.stop()
            self._local = None
        for sealed in self._sealed:
            sealed.close()
        self._sealed.clear()

    @property
    def url(self) -> str:
        if self._client is None:
            raise PolicyBundleError("policy engine used outside its `with` block")
        return self._client.url

    @property
    def opa_pid(self) -> int | None:
        return self._local.pid if self._local is not None else None

    def decide(self, gate: Gate, input_document: dict[str, Any]) -> OpaAnswer:
        if self._client is None:
            raise PolicyBundleError("policy engine used outside its `with` block")
        return self._client.decide(gate, input_document, expected_revision=self.pinned_revision)

    def decide_admin(self, input_document: dict[str, Any]) -> OpaAnswer:
        if self._client is None:
            raise PolicyBundleError("policy engine used outside its `with` block")
        return self._client.decide_package(ADMIN_PACKAGE, input_document, expected_revision=self.pinned_revision)


def open_engine(workspace: Workspace, session: Session) -> PolicyEngine:
    """An engine for the policy in force, its bundle, pin and adoption verified (use it in a `with` block)."""
    pinned = policy_in_force(session)
    prove_policy_acts(workspace, session)
    bundle, decider = stored_policy(session, pinned.digest)
    return PolicyEngine(workspace, pinned, bundle, decider)


def data_in_force(session: Session) -> dict[str, Any]:
    """The data document (`policies/data/data.json`) of the policy in force, from its stored, re-hashed bundle: the
    settings a step outside a gate must apply as policy states them (an evaluation's margins), with the gate that
    later reads the result checking that they still are the ones in force."""
    bundle, _decider = stored_policy(session, policy_in_force(session).digest)
    try:
        document = json.loads(bundle.files[DATA_FILE])
    except (KeyError, ValueError) as exc:
        raise PolicyBundleError(f"the policy in force has no readable {DATA_FILE}") from exc
    if not isinstance(document, dict):
        raise PolicyBundleError(f"the policy in force's {DATA_FILE} is not a JSON object")
    return document


def roles_under(session: Session, policy_digest: str) -> dict[str, list[str]]:
    """Who held which roles under the stored policy `policy_digest` (its data.json's `roles`): the roles a signer held
    when a decision under that policy counted their signature."""
    bundle, _decider = stored_policy(session, policy_digest)
    try:
        roles = json.loads(bundle.files[DATA_FILE]).get("roles", {})
    except (KeyError, ValueError, AttributeError):
        return {}
    return roles if isinstance(roles, dict) else {}
