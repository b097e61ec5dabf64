"""The trainer's own checkpoints during a run: committed to the log when saved, verified before a resume uses them.

A resumed run reads back everything the trainer saved: weights, optimiser and scheduler state (pickles, so code),
and the token counts that become the run's realised mixture. Unchecked, anyone who can write the run's folder could
plant a weight or fake a general-data share, and the candidate would carry valid signed provenance. So:

1. when the trainer saves `checkpoint-N`, every file of it is hashed and the manifest's digest, with the token counts
   each process saved into it, is signed with the platform key (as the run's provenance is) and appended to the log
   (`run.checkpoint`): someone holding only the log key cannot commit a checkpoint of their own making;
2. before a resume, the newest checkpoint the log committed to, under a platform signature that verifies, is hashed
   again and must match file for file (else DigestMismatch names the file, exit 4); the token counts are taken from
   the log entry, not from the folder;
3. a checkpoint saved but never committed (the process was killed in between) is not resumed from: the one before
   it is, or the run starts over.

What is not closed: between the re-hash in 2 and the trainer reading the folder, a process of the same user could
still swap a file. The window is the seconds a resume takes to start; closing it needs the trainer to load from the
verified bytes themselves (a loader that hands torch the hashed buffers), which transformers' resume does not offer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import select

from forgegov.audit.commitments import committed_payload
from forgegov.audit.recorder import EntryDraft, record
from forgegov.foundation.config import Workspace
from forgegov.foundation.crypto.signing import Purpose, sign, verify
from forgegov.foundation.errors import DigestMismatch, SignatureInvalid, StoreTampered
from forgegov.foundation.manifest import build_manifest
from forgegov.foundation.store.db import read_session
from forgegov.foundation.store.models import AuditEntry
from forgegov.foundation.vocabulary import AuditAction
from forgegov.governance.runs.provenance import PLATFORM_KEY

STATEMENT_VERSION = 1
_CHECKPOINT = re.compile(r"checkpoint-([0-9]{1,12})\Z")


@dataclass(frozen=True)
class Resumable:
    folder: Path
    step: int
    counts: dict[str, list[int]]  # token counts per file the processes saved them in, as committed


@dataclass(frozen=True)
class TrainerCheckpoints:
    """Bound to one run: what the backend calls when the trainer saves, and before it resumes."""

    workspace: Workspace
    run_id: str
    run_digest: str
    actor: str

    def commit(self, step: int, folder: Path, counts_files: list[str]) -> int:
        """Hash `folder` and log its digest with the token counts saved in it; the entry's seq."""
        manifest = build_manifest(folder)
        counts = {name: json.loads((folder / name).read_text(encoding="utf-8"))["counts"] for name in counts_files}
        statement = {"v": STATEMENT_VERSION, "run_id": self.run_id, "run_digest": self.run_digest, "step": step,
                     "folder": folder.name, "manifest_digest": manifest.digest, "files": len(manifest.files),
                     "bytes": manifest.total_bytes, "counts": counts}
        signature = sign(PLATFORM_KEY.load(self.workspace), Purpose.CHECKPOINT, statement)
        return record(self.workspace, EntryDraft(
            actor=self.actor, action=AuditAction.RUN_CHECKPOINT, subject_digest=self.run_digest,
            payload={**statement, "signature": signature},
        ))

    def resumable(self, trainer_dir: Path) -> Resumable | None:
        """The newest checkpoint folder the log committed to, verified file for file; None when there is none."""
        committed = self._committed()
        folders = sorted(((int(m[1]), path) for path in (trainer_dir.iterdir() if trainer_dir.is_dir() else ())
                          if (m := _CHECKPOINT.match(path.name)) and path.is_dir()), reverse=True)
        for step, folder in folders:
            payload = committed.get(step)
            if payload is None:
                continue  # saved, never committed: killed in between, so not trusted
            found = build_manifest(folder)
            if found.digest != payload["manifest_digest"]:
                raise DigestMismatch(
                    f"trainer checkpoint {folder} is not what run {self.run_id} committed at step {step} "
                    f"({payload['manifest_digest'][:19]}…, now {found.digest[:19]}…): resuming from it would train "
                    "on bytes nobody verified", file=folder.name, expected=payload["manifest_digest"],
                    actual=found.digest, hint="remove the run's trainer folder to train from the start")
            return Resumable(folder, step, payload["counts"])
        return None

    def _committed(self) -> dict[int, dict[str, Any]]:
        with read_session(self.workspace.database_url) as session:
            seqs = session.exec(select(AuditEntry.seq).where(AuditEntry.action == AuditAction.RUN_CHECKPOINT,
                                                             AuditEntry.subject_digest == self.run_digest)
                                .order_by(AuditEntry.seq)).all()  # type: ignore[arg-type]
            found = {}
            platform = PLATFORM_KEY.public_key(self.workspace)
            for seq in seqs:
                payload = committed_payload(session, what=f"a trainer checkpoint of run {self.run_id}",
                                            action=AuditAction.RUN_CHECKPOINT, seq=seq,
                                            subject_digest=self.run_digest, fields={})
                statement = {name: value for name, value in payload.items() if name != "signature"}
                try:
                    verify(platform, Purpose.CHECKPOINT, statement, str(payload.get("signature")))
                except SignatureInvalid as exc:
                    raise StoreTampered(f"audit entry {seq} commits a trainer checkpoint of run {self.run_id} that "
                                        "the platform key did not sign: it was appended by someone else",
                                        hint="run `forgegov audit verify`; remove the run's trainer folder to train "
                                             "from the start") from exc
                if payload.get("run_id") != self.run_id or payload.get("run_digest") != self.run_digest \
                        or not isinstance(payload.get("step"), int) or not isinstance(payload.get("counts"), dict):
                    continue
                # In log order, so that a run trained again from the start resumes from its newest attempt's save.
                found[payload["step"]] = payload
            return found
