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
import re
from collections.abc import Callable

import httpx

from forgegov.audit.note import NoteError, parse_note, verify_cosignature
from forgegov.foundation.config import RemoteWitness
from forgegov.foundation.errors import ForgegovError
from forgegov.foundation.verifier_key import parse_verifier_key

TIMEOUT_S = 10.0
SIZE_TYPE = "text/x.tlog.size"
log = logging.getLogger(__name__)
_SIZE = re.compile(r"[0-9]{1,19}")


class WitnessUnavailable(ForgegovError):
    """The witness could not be reached, or answered as no tlog-witness does."""


def add_checkpoint(witness: RemoteWitness, old_size: int, proof: list[bytes], note: str) -> str | int:
    """The witness's answer for NOTE (its signature lines); or the size it holds, when that is not OLD_SIZE (409)."""
    body = f"old {old_size}\n" + "".join(base64.b64encode(node).decode() + "\n" for node in proof) + "\n" + note
    try:
        response = httpx.post(witness.url.rstrip("/") + "/add-checkpoint", content=body.encode(), timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise WitnessUnavailable(f"witness {witness.name} at {witness.url}: {exc}") from exc
    if response.status_code == 409 and response.headers.get("content-type", "").startswith(SIZE_TYPE):
        text = response.text.strip()
        if not _SIZE.fullmatch(text):
            raise WitnessUnavailable(f"witness {witness.name} answered 409 without the size it holds")
        return int(text)
    if response.status_code == 422:
        # The consistency proof from the head it cosigned to this one does not verify: this tree does not extend
        # what the witness was shown before. Not an outage: a fork, or a log rewritten.
        raise NoteError(f"witness {witness.name} refuses the tree head: it does not extend the one it cosigned at "
                        f"size {old_size} ({response.text.strip()[:200]})")
    if response.status_code != 200:
        # 403: it does not know this log's key (or, for litewitness, its origin); 404: its origin; 400: malformed.
        raise WitnessUnavailable(f"witness {witness.name} refused the tree head ({response.status_code}): "
                                 f"{response.text.strip()[:200]}")
    return response.text


def cosigned(witness: RemoteWitness, note: str, answer: str) -> str:
    """NOTE with the one line of ANSWER that is the witness's cosignature under its pinned key. Anything else it sent
    (lines by other names, ones that do not verify) is left out; an answer holding no such line is a witness
    misbehaving, or misconfigured (another witness at that URL): WitnessUnavailable, not a verdict on the log."""
    key = parse_verifier_key(witness.key)
    for line in answer.split("\n"):
        if not line.strip():
            continue
        candidate = note + line + "\n"
        try:
            parse_note(candidate)
            verify_cosignature(candidate, key.name, key.public_key)
        except NoteError:
            continue
        return candidate
    raise WitnessUnavailable(f"witness {witness.name} answered without a cosignature that verifies under its "
                             "pinned key")


def hand_over(witness: RemoteWitness, note: str, size: int, held: int, proof_from: Callable[[int], list[bytes]],
              log_size: Callable[[], int]) -> str | None:
    """NOTE (a tree head of SIZE entries) cosigned by WITNESS, handed over from the size HELD this server last saw
    it cosign, and once more from the size the witness says it holds. None when the witness already holds a larger
    head of this log (another writer handed it over meanwhile: that head covers this one); NoteError when it holds
    one larger than the whole log (it was shown another history, or this log was rolled back)."""
    for _attempt in range(2):
        answer = add_checkpoint(witness, held, proof_from(held) if held <= size else [], note)
        if isinstance(answer, str):
            return cosigned(witness, note, answer)
        if answer < held:
            # It cosigned size HELD before, by this server's own record: it lost its state (or is another witness
            # under that key), and a witness that forgets can be shown two histories.
            log.warning("witness %s holds size %d, less than the %d it cosigned before", witness.name, answer, held)
        else:
            log.info("witness %s holds size %d, not %d", witness.name, answer, held)
        if answer > size:
            if answer <= log_size():
                return None
            raise NoteError(f"witness {witness.name} holds a tree head of {answer} entries, more than this log "
                            "has: it was shown another history, or this log was rolled back")
        held = answer
    raise WitnessUnavailable(f"witness {witness.name} kept answering with another size it holds")
