"""Who is calling: a member proven by their signature on the request, fresh, used once, and not calling too often.

1. the header is a signed claim about this very request (method, path, body) — a signature lifted from another
   request does not fit;
2. the signer is an identity the log enrolled, not revoked, and the key id is the one the log bound to the name last —
   a revoked member or a rotated-away key is refused;
3. the signature verifies under that key;
4. it was signed within the freshness window, and its nonce was not seen in it — a captured request cannot be sent
   again (statements carry nonces of their own, which the gate checks against the log);
5. the caller is within their rate (a token bucket per identity) — one member cannot starve the others.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from forgegov.foundation.clock import now, parse_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.crypto.request_auth import read_request_signature
from forgegov.foundation.crypto.signing import Purpose, verify
from forgegov.foundation.errors import ForgegovError, NotFound, SignatureInvalid
from forgegov.foundation.store.db import read_session
from forgegov.governance.identities import get_identity, public_key, require_active
from forgegov.governance.statements import MAX_CLOCK_SKEW


class RateLimited(ForgegovError):
    """Too many requests from one member in too short a time."""


@dataclass(frozen=True)
class Limits:
    rate_per_s: float = 200.0
    burst: int = 400
    nonces: int = 1_000_000  # remembered nonces; the oldest are forgotten first (they are stale by then)


class Authenticator:
    def __init__(self, workspace: Workspace, limits: Limits | None = None) -> None:
        self.workspace = workspace
        self.limits = limits or Limits()
        self._lock = threading.Lock()
        self._nonces: OrderedDict[str, float] = OrderedDict()
        self._buckets: dict[str, tuple[float, float]] = {}

    def caller(self, header: str | None, method: str, path: str, body: bytes) -> str:
        """The name of the member who signed this request; SignatureInvalid (or RateLimited) otherwise."""
        # 1. a claim about this request
        claim = read_request_signature(header, method, path, body)
        # 2. an enrolled, active member, with the key the log bound to them
        try:
            with read_session(self.workspace.database_url) as session:
                identity = get_identity(session, claim.signer)
        except NotFound as exc:
            # Said without the did-you-mean a member's typo gets: a stranger learns no member's name.
            raise SignatureInvalid(f"{claim.signer!r} is not a member of this server",
                                   hint="ask an admin to enrol you (`forgegov identity request`)") from exc
        require_active(identity)
        if claim.payload["key_id"] != identity.key_id:
            raise SignatureInvalid(f"the request is signed with key {claim.payload['key_id'][:16]}…, not "
                                   f"{identity.name}'s key", hint="was the key rotated? use the current one")
        # 3. the signature
        verify(public_key(identity), Purpose.API_REQUEST, claim.payload, claim.signature)
        # 4. fresh and unused
        try:
            signed_at = parse_rfc3339(claim.payload["signed_at"])
        except ValueError as exc:
            raise SignatureInvalid("the request's signing time is not RFC 3339") from exc
        if abs(now() - signed_at) > MAX_CLOCK_SKEW:
            raise SignatureInvalid("the request was signed too long ago (or the clocks differ by more than "
                                   f"{int(MAX_CLOCK_SKEW.total_seconds() // 60)} minutes): refused as a possible "
                                   "replay", hint="check this machine's clock, then send it again")
        self._spend(claim.payload["nonce"], identity.name)
        # 5. within the caller's rate
        self._take_token(identity.name)
        return identity.name

    def _spend(self, nonce: str, name: str) -> None:
        with self._lock:
            key = f"{name}/{nonce}"
            if key in self._nonces:
                raise SignatureInvalid("this signed request was already received: refused as a replay")
            self._nonces[key] = time.monotonic()
            while len(self._nonces) > self.limits.nonces:
                self._nonces.popitem(last=False)
            horizon = time.monotonic() - 2 * MAX_CLOCK_SKEW.total_seconds()
            while self._nonces and next(iter(self._nonces.values())) < horizon:
                self._nonces.popitem(last=False)

    def _take_token(self, name: str) -> None:
        with self._lock:
            moment = time.monotonic()
            tokens, last = self._buckets.get(name, (float(self.limits.burst), moment))
            tokens = min(float(self.limits.burst), tokens + (moment - last) * self.limits.rate_per_s)
            if tokens < 1:
                self._buckets[name] = (tokens, moment)
                raise RateLimited(f"{name} sent more than {self.limits.rate_per_s:g} requests a second",
                                  hint="wait a moment and send it again")
            self._buckets[name] = (tokens - 1, moment)
