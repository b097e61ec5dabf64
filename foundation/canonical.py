"""Canonical bytes and content digests.

Anything hashed or signed is serialised with RFC 8785 (JSON Canonicalization Scheme) so that two parties holding the
same document always hash the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import rfc8785

from forgegov.foundation.errors import BadInput

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")


def canonical_bytes(document: Any) -> bytes:
    try:
        return rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise BadInput(f"document cannot be canonicalised: {exc}") from exc


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_of(document: Any) -> str:
    return sha256_digest(canonical_bytes(document))


def check_digest(value: str) -> str:
    if not _DIGEST_RE.match(value):
        raise BadInput(f"not a digest: {value!r} (expected sha256:<64 lowercase hex>)")
    return value
