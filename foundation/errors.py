"""Typed errors. Every failure a user can cause or meet is one of these; the CLI maps them to exit codes and a hint.

Exit codes: 2 bad input, 3 denied by policy (or the policy decision could not be obtained: fail closed),
4 tampered (bytes, a stored record, a signature or the log are not what was signed, approved or committed to),
1 other.
"""

from __future__ import annotations

from typing import Any


class ForgegovError(Exception):
    """Base of every error forgegov raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class BadInput(ForgegovError):
    exit_code = 2


class NotFound(BadInput):
    pass


class AlreadyExists(BadInput):
    pass


class WorkspaceError(BadInput):
    """The workspace is missing, unreadable or its configuration is invalid."""


class ConfigError(WorkspaceError):
    pass


class UnreadablePath(BadInput):
    pass


class KeyUnavailable(BadInput):
    """A key is missing, unreadable or cannot be decrypted."""


class WrongPassphrase(KeyUnavailable):
    pass


class RevokedIdentity(BadInput):
    pass


class Tampered(ForgegovError):
    """Integrity failure: something signed, approved or committed to by the audit log is not what it was.

    Every such failure has this one base and one exit code, whoever detects it (the audit log's verifier, a gate, a
    loader, provenance), so that scripts and reviewers can tell tampering from a typo or a denial.
    """

    exit_code = 4


class SignatureInvalid(Tampered):
    """A signature does not verify, or a signed payload was altered."""


class ReplayedApproval(SignatureInvalid):
    pass


class StoreTampered(Tampered):
    """A stored record (a row, a stored manifest or plan) disagrees with the signed statement or audit entry that
    committed to it: the store was edited outside forgegov. No signature is involved, hence its own name."""


class ServiceKeyMismatch(Tampered):
    """A service key file (the log key, the platform key) is not the key the workspace pins: signing with it would
    produce signatures nobody should trust."""


class DigestMismatch(Tampered):
    """Bytes on disk are not the bytes that were registered (and approved) under a digest: swapped or edited since.

    `file`, `expected` and `actual` say where, when one file is to blame, so that a refusal can be recorded precisely.
    """

    def __init__(self, message: str, *, file: str | None = None, expected: str | None = None,
                 actual: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.file = file
        self.expected = expected
        self.actual = actual


class DecisionDiffers(Tampered):
    """A recorded gate decision is not what the policy recorded with it decides on the input recorded with it: another
    decider ruled (a fake OPA server, a wrapper running another bundle), or the record was edited."""


class StateConflict(BadInput):
    """The action does not fit the subject's current state (no open request, already decided, ...)."""


class PolicyDenied(ForgegovError):
    """OPA answered and the answer denies. `reasons` are the policy's own messages."""

    exit_code = 3

    def __init__(self, message: str, reasons: list[str], *, decision_id: str | None = None,
                 hint: str | None = None, outcome: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reasons = reasons
        self.decision_id = decision_id
        self.outcome = outcome  # the recorded decision, as an allowing one is reported (`--json` prints it)


class DecisionUnavailable(ForgegovError):
    """No trustworthy decision could be obtained (OPA down, timeout, undefined or malformed answer): deny."""

    exit_code = 3


class PolicyBundleError(ForgegovError):
    """The policy bundle is invalid, fails `opa check`, or differs from the one the workspace pinned."""

    exit_code = 3


class OpaNotInstalled(ForgegovError):
    exit_code = 1


class StoreError(ForgegovError):
    exit_code = 1
