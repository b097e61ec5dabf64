"""Who is calling: a member proven by their signature on the request, fresh, used once, and not calling too often.

1. the header is a signed claim about this server and this request (origin, method, path) — a signature lifted from
   another request, or made for another server, does not fit;
2. the signer is an identity the log bound to the key named, and the signature verifies under it — a stranger, a
   rotated-away key and a forgery all get the same refusal, which names no member;
3. the signer is not revoked;
4. the caller is within their rate (a token bucket per identity) — one member cannot starve the others;
5. it was signed within the freshness window, and its nonce was not seen in it — a captured request cannot be sent
   again (statements carry nonces of their own, which the gate checks against the log).
All of this before the body is read; then the body must be the one signed (`check_body`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from forgegov.foundation.clock import now, parse_rfc3339
from forgegov.foundation.config import Workspace
from forgegov.foundation.crypto.request_auth import SignedRequest, read_request_signature
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

    def caller(self, header: str | None, method: str, path: str) -> SignedRequest:
        """The claim of the member who signed this request (its signer is proven); SignatureInvalid (or
        RateLimited) otherwise. The body is checked against it once read (`check_body`)."""
        # 1. a claim about this server and this request
        claim = read_request_signature(header, self.workspace.config.audit.origin, method, path)
        # 2. the key the log bound to the name, and a signature under it; one refusal for every way of failing
        refused = SignatureInvalid("the request is not signed by a member of this server",
                                   hint="ask a policy owner to enrol you (`forgegov identity request`); a member "
                                        "whose key was rotated signs with the current one")
        try:
            with read_session(self.workspace.database_url) as session:
                identity = get_identity(session, claim.signer)
        except NotFound as exc:
            raise refused from exc
        if claim.payload["key_id"] != identity.key_id:
            raise refused
        try:
            verify(public_key(identity), Purpose.API_REQUEST, claim.payload, claim.signature)
        except SignatureInvalid as exc:
            raise refused from exc
        # 3. not revoked (said only to the member themselves, who has just proven they hold the key)
        require_active(identity)
        # 4. within their rate
        self._take_token(identity.name)
        # 5. fresh and unused
        try:
            signed_at = parse_rfc3339(claim.payload["signed_at"])
        except ValueError as exc:
            raise SignatureInvalid("the request's signing time is not RFC 3339") from exc
        if abs(now() - signed_at) > MAX_CLOCK_SKEW:
            raise SignatureInvalid("the request was signed too long ago (or the clocks differ by more than "
                                   f"{int(MAX_CLOCK_SKEW.total_seconds() // 60)} minutes): refused as a possible "
                                   "replay", hint="check this machine's clock, then send it again")
        self._spend(claim.payload["nonce"], identity.name)
        return claim

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
