"""Handing signed tree heads to witnesses elsewhere, over C2SP tlog-witness (`POST /add-checkpoint`).

A witness run by someone else keeps the newest tree head it cosigned for this log and cosigns a new one only when a
consistency proof shows it extends that one. Two members shown different histories cannot both get the same witness's
cosignature, so a cosigned tree head is one the whole team was shown. The request is the previous size the witness
holds, the proof from it, a blank line and the checkpoint note; the answer is the witness's cosignature lines, or 409
with the size it holds when that is not the size sent (it lost nothing: it holds a newer or an older head than this
server remembers), which is then tried once more from that size.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable

import httpx

from forgegov.audit.note import NoteError, parse_note, verify_cosignature
from forgegov.foundation.config import RemoteWitness
from forgegov.foundation.crypto.verifier_key import parse_verifier_key
from forgegov.foundation.errors import ForgegovError

TIMEOUT_S = 10.0
SIZE_TYPE = "text/x.tlog.size"
log = logging.getLogger(__name__)


class WitnessUnavailable(ForgegovError):
    """The witness could not be reached, or answered as no tlog-witness does."""


def add_checkpoint(witness: RemoteWitness, old_size: int, proof: list[bytes], note: str) -> str | int:
    """The witness's cosignature lines for NOTE; or the size it holds, when that is not OLD_SIZE (409)."""
    body = f"old {old_size}\n" + "".join(base64.b64encode(node).decode() + "\n" for node in proof) + "\n" + note
    try:
        response = httpx.post(witness.url.rstrip("/") + "/add-checkpoint", content=body.encode(), timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise WitnessUnavailable(f"witness {witness.name} at {witness.url}: {exc}") from exc
    if response.status_code == 409 and response.headers.get("content-type", "").startswith(SIZE_TYPE):
        text = response.text.strip()
        if not text.isdigit():
            raise WitnessUnavailable(f"witness {witness.name} answered 409 without the size it holds")
        return int(text)
    if response.status_code == 422:
        # The consistency proof from the head it cosigned to this one does not verify: this tree does not extend
        # what the witness was shown before. Not an outage: a fork, or a log rewritten.
        raise NoteError(f"witness {witness.name} refuses the tree head: it does not extend the one it cosigned at "
                        f"size {old_size} ({response.text.strip()[:200]})")
    if response.status_code != 200:
        # 403: it does not know this log's key; 404: nor its origin; 400: malformed.
        raise WitnessUnavailable(f"witness {witness.name} refused the tree head ({response.status_code}): "
                                 f"{response.text.strip()[:200]}")
    return response.text


def cosigned(witness: RemoteWitness, note: str, lines: str) -> str:
    """NOTE with the witness's cosignature added, once it verifies under the witness's pinned key (a line by anyone
    else, or one that does not verify, is refused: NoteError)."""
    key = parse_verifier_key(witness.key)
    signed = note + "".join(f"{line}\n" for line in lines.splitlines() if line.strip())
    parse_note(signed)
    verify_cosignature(signed, key.name, key.public_key)
    return signed


def hand_over(witness: RemoteWitness, note: str, held: int, proof_from: Callable[[int], list[bytes]]) -> str:
    """NOTE cosigned by WITNESS, starting from the size HELD this server last saw it cosign; once more from the size
    the witness says it holds (a larger one than this tree head is a split view or a rollback: NoteError)."""
    answer = add_checkpoint(witness, held, proof_from(held), note)
    if isinstance(answer, int):
        log.info("witness %s holds size %d, not %d: retrying from it", witness.name, answer, held)
        answer = add_checkpoint(witness, answer, proof_from(answer), note)
        if isinstance(answer, int):
            raise NoteError(f"witness {witness.name} holds a tree head of {answer} entries that this log does not "
                            "extend: it was shown another history, or this log was rolled back")
    return cosigned(witness, note, answer)
