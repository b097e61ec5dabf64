"""Typed errors. Every failure a user can cause or meet is one of these; the CLI maps them to exit codes and a hint.

Exit codes: 2 bad input, 3 denied by policy (or the policy decision could not be obtained: fail closed), 1 other.
"""

from __future__ import annotations


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


class SignatureInvalid(BadInput):
    """A signature does not verify, or a signed payload was altered."""


class ReplayedApproval(SignatureInvalid):
    pass


class DigestMismatch(BadInput):
    """Bytes on disk are not the bytes that were registered (and approved) under a digest: swapped or edited since.

    `file`, `expected` and `actual` say where, when one file is to blame, so that a refusal can be recorded precisely.
    """

    def __init__(self, message: str, *, file: str | None = None, expected: str | None = None,
                 actual: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.file = file
        self.expected = expected
        self.actual = actual


class StateConflict(BadInput):
    """The action does not fit the subject's current state (no open request, already decided, ...)."""


class PolicyDenied(ForgegovError):
    """OPA answered and the answer denies. `reasons` are the policy's own messages."""

    exit_code = 3

    def __init__(self, message: str, reasons: list[str], *, decision_id: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reasons = reasons
        self.decision_id = decision_id


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
