"""Bytes handed to OPA exactly as they were hashed: a sealed anonymous file.

Hashing a file and then giving its path to another process leaves a window in which any process of the same user can
swap the file. Here the bytes are copied once into a memfd, sealed against every write, shrink and grow (so not even
the owner of the file can change it afterwards), and only then hashed; OPA receives the descriptor itself, as
`/proc/self/fd/N`, for both its executable and its bundle. What was hashed is what runs and what is read.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
from pathlib import Path

from forgegov.foundation.errors import PolicyBundleError, UnreadablePath

_SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
_CHUNK = 1 << 24


class SealedFile:
    """An anonymous, write-sealed file; `path` names it in this process and in a child given `fd` in pass_fds."""

    def __init__(self, name: str) -> None:
        if not hasattr(os, "memfd_create"):
            raise PolicyBundleError("sealed files need Linux (memfd_create); the embedded OPA cannot be verified here",
                                    hint="configure a remote OPA (`forgegov init --opa-url`)")
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)

    @classmethod
    def of_bytes(cls, name: str, data: bytes) -> SealedFile:
        sealed = cls(name)
        view = memoryview(data)
        while view:
            view = view[os.write(sealed.fd, view):]
        return sealed._seal()

    @classmethod
    def of_file(cls, name: str, path: Path) -> SealedFile:
        sealed = cls(name)
        try:
            with open(path, "rb") as source:
                size = os.fstat(source.fileno()).st_size
                offset = 0
                while offset < size:
                    copied = os.sendfile(sealed.fd, source.fileno(), offset, min(_CHUNK, size - offset))
                    if copied == 0:
                        break
                    offset += copied
        except OSError as exc:
            sealed.close()
            raise UnreadablePath(f"cannot read {path}: {exc.strerror or exc}") from exc
        return sealed._seal()

    def _seal(self) -> SealedFile:
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, _SEALS)
        return self

    @property
    def path(self) -> Path:
        return Path(f"/proc/self/fd/{self.fd}")

    def sha256(self) -> str:
        """The digest of the sealed bytes, read through the descriptor (after sealing, so they cannot change)."""
        size = os.fstat(self.fd).st_size
        if size == 0:
            return hashlib.sha256(b"").hexdigest()
        with mmap.mmap(self.fd, size, prot=mmap.PROT_READ) as mapped:
            return hashlib.sha256(mapped).hexdigest()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SealedFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
