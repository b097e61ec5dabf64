"""The team server's HTTP API: the embedded mode's doors, behind signed requests.

Every gate runs here through the same code as in a workspace of one (`governance.gate.submit`, `admin.submit_admin`):
members send statements they signed on their own machines, and the server decides them with the policy in force on
its own OPA, appends them to its log and changes state. No member holds the store's credentials or the log key.

Every answer, errors included, carries the log's newest signed tree head and a consistency proof from the size the
member says it saw last (`Forgegov-Log-Seen`), so that each call lets the member check the log only grew.
"""

from __future__ import annotations

import base64
import json
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from forgegov.app.reads import read_here
from forgegov.app.run_start import still_missing
from forgegov.app.server.auth import Authenticator, Limits, RateLimited
from forgegov.app.server.jobs import Jobs
from forgegov.app.server.registration import Registrations
from forgegov.audit.log_key import pinned_public_key
from forgegov.audit.log_view import NOTE_HEADER as NOTE
from forgegov.audit.log_view import PROOF_HEADER as PROOF
from forgegov.audit.log_view import SEEN_HEADER as SEEN
from forgegov.audit.operations import export_log
from forgegov.audit.tree_heads import included_entry, newest_head, witness_notes
from forgegov.foundation.artifact_store import ArtifactStore, artifact_store
from forgegov.foundation.canonical import check_digest
from forgegov.foundation.config import Workspace
from forgegov.foundation.crypto.request_auth import HEADER, SignedRequest, check_body
from forgegov.foundation.crypto.signing import public_key_to_b64
from forgegov.foundation.errors import (
    BadInput,
    DigestMismatch,
    ForgegovError,
    NotFound,
    PolicyDenied,
    SignatureInvalid,
    StateConflict,
    StoreError,
)
from forgegov.foundation.manifest import file_entries, hash_file
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import Asset
from forgegov.foundation.vocabulary import AssetKind, AssetState, Gate, GateAction, ReleaseStage
from forgegov.governance import actions
from forgegov.governance.admin import AdminAct, AdminOutcome, AdminStatement, carried_out, submit_admin
from forgegov.governance.fetches import fetched_asset, require_readable
from forgegov.governance.gate import submit
from forgegov.governance.policy import PolicyEngine, open_engine, policy_in_force
from forgegov.governance.registry import check_recorded, label, manifest_of, resolve
from forgegov.governance.review import review
from forgegov.governance.runs.provenance import PLATFORM_KEY, SignedProvenance
from forgegov.governance.runs.records import run_record
from forgegov.governance.runs.spec import RECIPE_FILE, register_recipe
from forgegov.governance.statements import SignedStatement

API_VERSION = 1
MAX_BODY = 16 << 20  # one chunk of an upload (8 MiB) with room; statements are a few KiB
MAX_RECIPE = 1 << 20  # a run recipe is a page of TOML


class Decider:
    """One OPA for the server's life, restarted when the policy in force changes (a policy gate approval)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._lock = threading.Lock()
        self._engine: PolicyEngine | None = None

    @contextmanager
    def engine(self) -> Iterator[PolicyEngine]:
        # Decisions are serialised anyway (each gate runs in one serialised transaction); one lock keeps the engine
        # from being swapped under a decision in progress.
        with self._lock:
            with read_session(self.workspace.database_url) as session:
                in_force = policy_in_force(session).digest
                if self._engine is None or self._engine.pinned_digest != in_force:
                    self.close()
                    self._engine = open_engine(self.workspace, session).__enter__()
            yield self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.__exit__(None, None, None)
            self._engine = None


@dataclass
class Service:
    workspace: Workspace
    auth: Authenticator
    decider: Decider
    artifacts: ArtifactStore
    registrations: Registrations
    jobs: Jobs

    # -- members' reads and writes; each takes the caller (proven by signature) and the JSON body

    def trust(self, _caller: str | None, _body: Any) -> dict[str, Any]:
        with read_session(self.workspace.database_url) as session:
            in_force = policy_in_force(session)
        return {"api": API_VERSION, "forgegov": version("forgegov"), "origin": self.workspace.config.audit.origin,
                "log_public_key": public_key_to_b64(pinned_public_key(self.workspace)),
                "platform_public_key": public_key_to_b64(PLATFORM_KEY.public_key(self.workspace)),
                "policy": {"digest": in_force.digest, "revision": in_force.revision}}

    def witnessed(self, _caller: str | None, _body: Any) -> dict[str, Any]:
        """The newest tree head each witness elsewhere cosigned: members check the cosignatures under the witness
        keys they pinned themselves."""
        notes = {}
        for witness in self.workspace.config.audit.remote_witnesses:
            held = witness_notes(self.workspace.remote_witness_dir(witness))
            if held:
                notes[witness.name] = held[-1][1]
        return {"witnesses": notes}

    def whoami(self, caller: str | None, _body: Any) -> dict[str, Any]:
        return {"name": caller}

    def prepare(self, _caller: str | None, body: Any) -> dict[str, Any]:
        target = body.get("target")
        return actions.prepare(self.workspace, _text(body, "subject"), GateAction(_text(body, "action")),
                               gate=Gate(body["gate"]) if body.get("gate") else None,
                               target=ReleaseStage(target) if target else None).to_dict()

    def review(self, _caller: str | None, body: Any) -> dict[str, Any]:
        gate = Gate(body["gate"]) if body.get("gate") else None
        return review(self.workspace, _text(body, "subject"), gate).to_dict()

    def gate(self, caller: str | None, body: Any) -> dict[str, Any]:
        statement = SignedStatement(body.get("payload"), str(body.get("signature")))
        if not isinstance(statement.payload, dict) or statement.payload.get("signer") != caller:
            raise SignatureInvalid("a member sends the statements they signed themselves, not another's")
        with self.decider.engine() as engine:
            return submit(self.workspace, engine, statement).to_dict()

    def admin(self, caller: str | None, body: Any) -> dict[str, Any]:
        statement = _own_act(caller, body)
        if statement.payload.get("act") in _OWN_CALL_ACTS:
            raise BadInput("a job is started at /v1/jobs and stopped at /v1/jobs/cancel, and an asset fetched at "
                           "/v1/fetch, where the server does what the act allows")
        return self._submit(statement).to_dict()

    def _decide(self, statement: AdminStatement) -> AdminOutcome:
        """An act the server then acts upon (a job, a fetch): carried out, never merely waiting."""
        return carried_out(self._submit(statement))

    def _submit(self, statement: AdminStatement) -> AdminOutcome:
        with self.decider.engine() as engine:
            return submit_admin(self.workspace, engine, statement)

    def fetch(self, caller: str | None, body: Any) -> dict[str, Any]:
        """A member's signed `asset.fetch`, once the policy allows it (`governance/fetches.py`): the asset's files
        manifest, as its registration entry committed to it, with its files in the artifact store for them to read."""
        fetched = self._decide(_acting(caller, body, AdminAct.FETCH))
        with read_session(self.workspace.database_url) as session:
            asset = fetched_asset(session, fetched.target)
            check_recorded(session, asset)
        self._stock(asset)
        return {"act": fetched.to_dict(), "subject": label(asset), "digest": asset.digest,
                "manifest": manifest_of(asset)}

    def readable(self, caller: str, digest: str) -> int:
        """The size of blob DIGEST, when CALLER may read it: an allowed fetch of theirs covers it, or they uploaded
        every byte of it."""
        with read_session(self.workspace.database_url) as session:
            require_readable(session, self.artifacts, caller, digest)
        size = self.artifacts.has(digest)
        if size is None:
            raise NotFound(f"the artifact store holds no blob {digest}",
                           hint="upload it first (`forgegov artifact put FILE`)")
        return size

    def _stock(self, asset: Asset) -> None:
        """Every file of ASSET in the artifact store. A member's upload put a dataset's there; what the server
        registered itself (a run's candidate, a checkpoint its operator registered) is copied from its folder, and
        refused if a file there no longer hashes as registered."""
        source = Path(asset.source_path)
        for entry in file_entries(manifest_of(asset)):
            digest = f"sha256:{entry.sha256}"
            if self.artifacts.has(digest) is not None:
                continue
            path = source if source.is_file() else source / entry.path  # a one-file asset was registered as its file
            actual = "sha256:" + hash_file(path)[1]
            if actual != digest:
                raise DigestMismatch(f"{label(asset)}'s file {entry.path} on the server no longer hashes as "
                                     "registered", expected=digest, actual=actual)
            self.artifacts.put_file(path)

    def entry(self, _caller: str | None, seq: int, size: int) -> dict[str, Any]:
        """Entry SEQ as the log committed to it (its leaf and payload) and its inclusion proof in the tree of SIZE
        entries: what lets a member check that the outcome they were told is the one the log holds."""
        leaf, payload, proof = included_entry(self.workspace, seq, size)
        return {"seq": seq, "size": size, "leaf": leaf, "payload": payload,
                "proof": [base64.b64encode(node).decode() for node in proof]}

    # -- reads, runs and evaluations (`app/reads.py`, `app/server/jobs.py`)

    def start_job(self, caller: str | None, body: Any) -> dict[str, Any]:
        """A job the member's signed `job.start` asks for, once the policy allows it: its start entry, and how it
        is doing."""
        statement = _acting(caller, body, AdminAct.JOB_START)
        with self.jobs.slot():
            started = self._decide(statement)
            return {"act": started.to_dict(), "job": self.jobs.start(started)}

    def cancel_job(self, caller: str | None, body: Any) -> dict[str, Any]:
        statement = _acting(caller, body, AdminAct.JOB_CANCEL)
        stopped = self._decide(statement)
        return {"act": stopped.to_dict(), "job": self.jobs.stop(str(stopped.target["job"]))}

    def read(self, _caller: str | None, body: Any) -> dict[str, Any]:
        arguments = body.get("arguments")
        return {"data": read_here(self.workspace, _text(body, "name"), {} if arguments is None else arguments,
                                  self.decider.engine)}

    def register_run(self, caller: str | None, body: Any) -> dict[str, Any]:
        """The run asset of a recipe's bytes (registered now when they are new), and where its run gate stands."""
        recipe = _text(body, "recipe")
        if len(recipe) > MAX_RECIPE:
            raise BadInput(f"a recipe is at most {MAX_RECIPE} characters of TOML; this one is {len(recipe)}")
        with tempfile.TemporaryDirectory(prefix="forgegov-recipe-") as folder:
            path = Path(folder) / RECIPE_FILE
            path.write_text(recipe, encoding="utf-8")
            asset, _recipe, registered = register_recipe(self.workspace, path, str(caller))
        missing, decision_id = (still_missing(self.workspace, asset.digest) if asset.state is AssetState.PENDING
                                else ((), None))
        return {"subject": label(asset), "digest": asset.digest, "registered": registered,
                "state": asset.state.value, "missing": list(missing), "decision_id": decision_id}

    def provenance(self, _caller: str | None, body: Any) -> dict[str, Any]:
        """What `run verify` checks on a member's machine: the run's record, its two signed envelopes, and the
        candidate's manifest (the member fetches its files, `asset.fetch`, and hashes them)."""
        found = run_record(self.workspace, _text(body, "run"))
        if found["candidate_digest"] is None:
            raise StateConflict(f"run {found['run_id']} is {found['status']}: only a completed run has provenance")
        with read_session(self.workspace.database_url) as session:
            candidate = resolve(session, found["candidate_digest"], AssetKind.CHECKPOINT)
            check_recorded(session, candidate)
        signed = SignedProvenance.read(Path(found["output_dir"]) / "provenance")
        return {"run": found, "statement_envelope": signed.statement_envelope,
                "manifest_envelope": signed.manifest_envelope,
                "candidate": {"label": label(candidate), "digest": candidate.digest,
                              "manifest": manifest_of(candidate)}}

    # -- the artifact store

    def upload_begin(self, caller: str | None, body: Any, digest: str) -> dict[str, Any]:
        return self.artifacts.begin(digest, body.get("size"), owner=str(caller), prove=body.get("prove") is True).to_dict()

    def upload_finish(self, caller: str | None, _body: Any, digest: str) -> dict[str, Any]:
        return self.artifacts.finish(digest, owner=str(caller)).to_dict()


# Acts with a call of their own, which does what the act allows.
_OWN_CALL_ACTS = (AdminAct.JOB_START.value, AdminAct.JOB_CANCEL.value, AdminAct.FETCH.value)


def _own_act(caller: str | None, body: Any) -> AdminStatement:
    statement = AdminStatement(body.get("payload"), str(body.get("signature")))
    if not isinstance(statement.payload, dict) or statement.payload.get("signer") != caller:
        raise SignatureInvalid("a member sends the acts they signed themselves, not another's")
    return statement


def _acting(caller: str | None, body: Any, act: AdminAct) -> AdminStatement:
    statement = _own_act(caller, body)
    if statement.payload.get("act") != act.value:
        raise BadInput(f"this call takes a signed {act.value} act")
    return statement


def _text(body: Any, name: str) -> str:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise BadInput(f"the request names no {name}")
    return value


def _status(error: ForgegovError) -> int:
    if isinstance(error, RateLimited):
        return 429
    if isinstance(error, StoreError):
        return 500
    if isinstance(error, NotFound):
        return 404
    return {2: 400, 3: 403, 4: 409}.get(error.exit_code, 500)


def error_document(error: ForgegovError) -> dict[str, Any]:
    document: dict[str, Any] = {"type": type(error).__name__, "message": error.message, "hint": error.hint,
                                "exit_code": error.exit_code}
    if isinstance(error, PolicyDenied):
        document |= {"reasons": error.reasons, "decision_id": error.decision_id, "outcome": error.outcome}
    return {"error": document}


def create_app(workspace: Workspace, limits: Limits | None = None) -> Starlette:
    artifacts = artifact_store(workspace)
    service = Service(workspace, Authenticator(workspace, limits or Limits()), Decider(workspace), artifacts,
                      Registrations(workspace, artifacts), Jobs(workspace))

    def seen_size(request: Request) -> int:
        try:
            return max(0, int(request.headers.get(SEEN, "0")))
        except ValueError:
            return 0

    def log_headers(seen: int) -> dict[str, str]:
        note, proof = newest_head(workspace, seen)
        return {NOTE: base64.b64encode(note.encode()).decode(),
                PROOF: ",".join(base64.b64encode(node).decode() for node in proof)}

    def signed_path(request: Request) -> str:
        raw = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")

    async def read_capped(request: Request) -> bytes:
        """The body, refused as soon as it passes MAX_BODY (a declared length over it is refused unread)."""
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_BODY:
            raise BadInput(f"the request body is larger than {MAX_BODY} bytes, or of no stated length")
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_BODY:
                raise BadInput(f"the request body is larger than {MAX_BODY} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def call(request: Request, work: Callable[[str | None, Any], Any], *, signed: bool = True,
                   json_body: bool = True) -> Response:
        seen = seen_size(request)

        def run(claim: SignedRequest | None, body: bytes) -> tuple[int, Any]:
            # Store and object-store failures are the server's, and still answered with the log's head: a member
            # tells a broken server from a lying one by the signed tree head every answer carries.
            try:
                if claim is not None:
                    check_body(claim, body)
                parsed: Any = body
                if json_body:
                    try:
                        parsed = json.loads(body) if body else {}
                    except ValueError as exc:
                        raise BadInput("the request body is not JSON") from exc
                    if not isinstance(parsed, dict):
                        raise BadInput("the request body is not a JSON object")
                return 200, work(claim.signer if claim is not None else None, parsed)
            except ForgegovError as error:
                return _status(error), error_document(error)
            except (ValueError, KeyError, TypeError) as exc:  # a malformed request names its field, never a trace
                return 400, error_document(BadInput(f"the request is malformed: {exc}"))
            except (SQLAlchemyError, OSError) as exc:
                return 500, error_document(StoreError(f"the server could not complete the request: {exc}"))

        try:
            # Who signed, before a byte of the body is read: a stranger costs the server a header.
            claim = await run_in_threadpool(service.auth.caller, request.headers.get(HEADER), request.method,
                                            signed_path(request)) if signed else None
            body = await read_capped(request)
            status, result = await run_in_threadpool(run, claim, body)
        except ForgegovError as error:
            status, result = _status(error), error_document(error)
        headers = await run_in_threadpool(log_headers, seen)
        if callable(result):  # a body that is not JSON (a blob, the log): the handler builds its response
            return result(headers)
        return Response(json.dumps(result, default=str), status, headers=headers, media_type="application/json")

    def answering(work: Callable[[str | None, Any], Any], *, signed: bool = True) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            return await call(request, work, signed=signed)

        return handle

    # The JSON calls: what each does is the service's; how it is authenticated and answered is `call`'s.
    calls: dict[str, tuple[str, Callable[[str | None, Any], Any]]] = {
        "/v1/whoami": ("GET", service.whoami),
        "/v1/prepare": ("POST", service.prepare),
        "/v1/review": ("POST", service.review),
        "/v1/gate": ("POST", service.gate),
        "/v1/admin": ("POST", service.admin),
        "/v1/fetch": ("POST", service.fetch),
        "/v1/datasets/prepare": ("POST", lambda caller, body: service.registrations.prepare(str(caller), body)),
        "/v1/datasets/register": ("POST", lambda caller, body: service.registrations.register(str(caller), body)),
        "/v1/assets/register": ("POST", lambda caller, body: service.registrations.register_asset(str(caller), body)),
        "/v1/read": ("POST", service.read),
        "/v1/runs/register": ("POST", service.register_run),
        "/v1/runs/provenance": ("POST", service.provenance),
        "/v1/jobs": ("POST", service.start_job),
        "/v1/jobs/cancel": ("POST", service.cancel_job),
        "/v1/log/witnessed": ("GET", service.witnessed),
    }

    async def entry(request: Request) -> Response:
        def included(caller: str | None, _body: Any) -> dict[str, Any]:
            try:
                seq, size = int(request.path_params["seq"]), int(request.query_params["size"])
            except (KeyError, ValueError) as exc:
                raise BadInput("an entry is asked for by number, in a tree of a size (?size=N)") from exc
            return service.entry(caller, seq, size)

        return await call(request, included)

    async def job_status(request: Request) -> Response:
        return await call(request, lambda _caller, _body: service.jobs.status(str(request.path_params["job"])))

    async def upload(request: Request) -> Response:
        if request.method == "POST":
            return await call(request, lambda caller, body: service.upload_begin(caller, body, _digest(request)))

        def chunk(caller: str | None, body: bytes) -> dict[str, Any]:
            try:
                offset = int(request.query_params["offset"])
            except (KeyError, ValueError) as exc:
                raise BadInput("a chunk names its offset (?offset=N)") from exc
            return service.artifacts.write(_digest(request), offset, body, owner=str(caller)).to_dict()

        return await call(request, chunk, json_body=False)

    async def finish(request: Request) -> Response:
        return await call(request, lambda caller, body: service.upload_finish(caller, body, _digest(request)))

    async def download(request: Request) -> Response:
        def open_blob(caller: str | None, _body: bytes) -> Callable[[dict[str, str]], Response]:
            digest = _digest(request)
            size = service.readable(str(caller), digest)
            return lambda headers: StreamingResponse(service.artifacts.read_verified(digest), 200,
                                                     media_type="application/octet-stream",
                                                     headers={**headers, "Content-Length": str(size)})

        return await call(request, open_blob, json_body=False)

    async def export(request: Request) -> Response:
        """The log as `audit export` writes it, for a member's `audit verify`."""
        def write(_caller: str | None, _body: bytes) -> Callable[[dict[str, str]], Response]:
            with tempfile.TemporaryDirectory(prefix="forgegov-export-") as folder:
                path = Path(folder) / "log.jsonl"
                export_log(workspace, path)
                data = path.read_bytes()
            return lambda headers: Response(data, 200, headers=headers, media_type="application/jsonl")

        return await call(request, write, json_body=False)

    routes = [
        Route("/v1/trust", answering(service.trust, signed=False), methods=["GET"]),
        *(Route(path, answering(work), methods=[method]) for path, (method, work) in calls.items()),
        Route("/v1/jobs/{job}", job_status, methods=["GET"]),
        Route("/v1/log/export", export, methods=["GET"]),
        Route("/v1/log/entries/{seq}", entry, methods=["GET"]),
        Route("/v1/artifacts/{digest}", upload, methods=["POST", "PUT"]),
        Route("/v1/artifacts/{digest}", download, methods=["GET"]),
        Route("/v1/artifacts/{digest}/finish", finish, methods=["POST"]),
    ]
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.jobs.close()
            service.decider.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    return app


def _digest(request: Request) -> str:
    return check_digest(str(request.path_params["digest"]))
