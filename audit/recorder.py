"""The one way to write the audit log: an entry is appended in the same transaction as the change it records, and once
that transaction has committed, a signed tree head is published when one is due.

Callers never append and sign separately, so no call site can forget the tree head that `audit.checkpoint_every`
promises (six of twelve did before this door existed). A writer killed between the commit and the signature only
delays the tree head to the next one due: the entries are committed either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlmodel import Session

from forgegov.audit.log import Appended, EntryDraft, append_many
from forgegov.audit.tree_heads import SignedTreeHead, hand_to_witnesses, sign_tree_head
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import ForgegovError
from forgegov.foundation.store.db import write_transaction

__all__ = ["AuditedTransaction", "EntryDraft", "TreeHeadUnsigned", "audited_transaction", "record"]


class TreeHeadUnsigned(ForgegovError):
    """The change and its entries are committed, but the signed tree head due after them could not be made (the log
    key is missing or is not the pinned one, say). Nothing is undone, and callers must not undo anything either; the
    next tree head covers the entries once the cause is fixed. The exit code is the cause's: a replaced log key is
    tampering (4)."""

    def __init__(self, cause: ForgegovError) -> None:
        super().__init__(f"the change was recorded, but the signed tree head due now could not be made: "
                         f"{cause.message}", hint=cause.hint or "fix the cause, then `forgegov audit checkpoint`")
        self.exit_code = cause.exit_code
        self.cause = cause


@dataclass
class AuditedTransaction:
    """A write transaction that may append audit entries. `session` is the store's, for the change itself."""

    session: Session
    appended: list[Appended] = field(default_factory=list)

    def append(self, draft: EntryDraft) -> Appended:
        return self.append_many([draft])[0]

    def append_many(self, drafts: Sequence[EntryDraft]) -> list[Appended]:
        done = append_many(self.session, drafts)
        self.appended.extend(done)
        return done


def tree_head_due(workspace: Workspace, seqs: Sequence[int]) -> bool:
    """Whether the entries just appended complete a multiple of `checkpoint_every` entries (any of them, not only
    the last: one transaction may append several). Decided from their positions, so it costs no query."""
    every = workspace.config.audit.checkpoint_every
    if not every or not workspace.config.audit.log_public_key or not seqs:
        return False
    return any((seq + 1) % every == 0 for seq in range(min(seqs), max(seqs) + 1))


@contextmanager
def audited_transaction(workspace: Workspace, *, tree_head: bool = False) -> Iterator[AuditedTransaction]:
    """With `tree_head`, a signed tree head follows whatever was appended, due or not (every gate decision), so the
    window in which entries are covered by no signature, and by no witness, closes with each decision."""
    with write_transaction(workspace.database_url) as session:
        transaction = AuditedTransaction(session)
        yield transaction
    publish_if_due(workspace, [a.seq for a in transaction.appended], force=tree_head)


def publish_if_due(workspace: Workspace, seqs: Sequence[int], *, force: bool = False) -> SignedTreeHead | None:
    """Sign a tree head when one is due and give it to every configured witness."""
    if not (tree_head_due(workspace, seqs) or (force and seqs and workspace.config.audit.log_public_key)):
        return None
    try:
        signed = sign_tree_head(workspace)
        hand_to_witnesses(workspace, signed)
    except ForgegovError as cause:
        raise TreeHeadUnsigned(cause) from cause
    return signed


def record(workspace: Workspace, draft: EntryDraft) -> int:
    """Append one entry on its own (not part of a larger change); its seq."""
    with audited_transaction(workspace) as transaction:
        return transaction.append(draft).seq
