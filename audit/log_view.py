"""A member's view of the team server's log: the log key pinned when they joined, and the newest tree head they have
verified since.

Every answer from the server carries its newest signed tree head and a consistency proof from the size this member
last saw. The view accepts the tree head only if it is signed by the pinned key and the log it describes extends
the one seen before, so a server that rolls its log back (a restored database) or shows this member a different
history than others (a fork) is caught on the member's next call, as Go's checksum-database client catches a
misbehaving sumdb. What was seen is kept on disk, so the check holds across commands.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from forgegov.audit.merkle import ProofError, verify_consistency
from forgegov.audit.note import Checkpoint, open_checkpoint
from forgegov.foundation.config import fsync_dir
from forgegov.foundation.errors import Tampered, WorkspaceError
from forgegov.foundation.locks import exclusive

VIEW_VERSION = 1
# The headers that carry the log to a member: the size they saw last (asked), the newest signed tree head and the
# consistency proof from that size (answered).
SEEN_HEADER = "Forgegov-Log-Seen"
NOTE_HEADER = "Forgegov-Log-Note"
PROOF_HEADER = "Forgegov-Log-Proof"


class LogRolledBack(Tampered):
    """The server showed a log smaller than one it signed before: restored from an old backup, or rewritten."""


class LogForked(Tampered):
    """The server showed a log that does not extend the one it signed before: another history."""


@dataclass(frozen=True)
class SeenHead:
    size: int
    root: bytes
    note: str


class LogView:
    def __init__(self, path: Path, origin: str, public_key: Ed25519PublicKey) -> None:
        self.path = path
        self.origin = origin
        self.public_key = public_key

    def seen(self) -> SeenHead | None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise WorkspaceError(f"cannot read {self.path}: {exc}",
                                 hint="it records the newest tree head you verified; restore it from a backup, or "
                                      "join again (`forgegov init --join URL`) to trust the server anew") from exc
        if not isinstance(doc, dict) or doc.get("version") != VIEW_VERSION or doc.get("origin") != self.origin:
            raise WorkspaceError(f"{self.path} is not this log's view (origin {self.origin})")
        head = open_checkpoint(str(doc["note"]), self.origin, self.public_key)
        return SeenHead(head.size, head.root, str(doc["note"]))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One verified exchange at a time per workspace, so two commands never race to record different heads."""
        with exclusive(self.path.with_name(self.path.name + ".lock")):
            yield

    def advance(self, note: str, proof: Sequence[bytes]) -> Checkpoint:
        """Accept `note` if the pinned key signed it and `proof` shows it extends the head seen last; record it.
        The first head is trusted on first use (at join), as a pinned key is."""
        head = open_checkpoint(note, self.origin, self.public_key)
        seen = self.seen()
        if seen is not None:
            if head.size < seen.size:
                raise LogRolledBack(f"the server's log has {head.size} entries, but it signed a log of {seen.size} "
                                    f"before: it was rolled back or rewritten",
                                    hint="stop using the server and tell its operators; your last verified tree "
                                         f"head is in {self.path}")
            if seen.size > 0:
                try:
                    verify_consistency(seen.size, head.size, seen.root, head.root, list(proof))
                except ProofError as exc:
                    raise LogForked(f"the server's log of {head.size} entries is not an extension of the log of "
                                    f"{seen.size} it signed before ({exc.message}): it shows another history",
                                    hint="stop using the server and tell its operators; your last verified tree "
                                         f"head is in {self.path}") from exc
            if head.size == seen.size:
                return head
        self._write(note)
        return head

    def _write(self, note: str) -> None:
        text = json.dumps({"version": VIEW_VERSION, "origin": self.origin, "note": note})
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=self.path.parent, prefix=".log-view.",
                                         delete=False) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(f.name, self.path)
        fsync_dir(self.path.parent)


def proof_to_wire(proof: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(node).decode() for node in proof]


def proof_from_wire(proof: object) -> list[bytes]:
    if not isinstance(proof, list) or not all(isinstance(p, str) for p in proof):
        raise Tampered("the server's consistency proof is not a list of base64 hashes")
    try:
        return [base64.b64decode(p, validate=True) for p in proof]
    except ValueError as exc:
        raise Tampered("the server's consistency proof is not base64") from exc
