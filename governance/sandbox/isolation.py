"""The command that starts one sandboxed worker: bubblewrap for namespaces and a file system built from read-only
binds, rlimits through util-linux's prlimit, and (as root) setpriv to give up every privilege.

What the code inside can and cannot reach, and why (docs/rewards.md says the same for reviewers):
- network: a network namespace of its own with only a loopback that is down: no connection, raw socket or DNS
  lookup leaves the sandbox, whether from Python, `ctypes` or a `curl` it starts.
- files: a new root holding only the interpreter's prefixes, /usr and the loader's files, read-only; the reward's
  verified copy at /code, read-only; a size-capped tmpfs at /scratch, the only writable place. The workspace, its
  keys, its store and everyone's home are not there at all (`refuse_exposure` refuses a layout that would show them).
- privileges: as root the code runs under an unprivileged uid of its own sandbox (from 100000 up, no account behind
  it) with no capabilities, no-new-privs and an empty bounding set, so one sandbox's processes never count against
  another's process limit; as another user, inside a user namespace that may create no further ones.
- system calls: a seccomp filter (libseccomp, through pyseccomp) refuses the calls a namespace does not contain:
  new namespaces (unshare, setns, clone with a namespace flag; clone3, which cannot be inspected, answers ENOSYS so
  the C library falls back to clone), the kernel keyrings (a session keyring inherited from the parent would
  otherwise be readable), socket families other than Unix, IPv4, IPv6 and netlink (AF_VSOCK reaches the hypervisor
  on a VM whatever the network namespace), and bpf, perf events, userfaultfd, io_uring and ptrace.
- resources: address space (a 10 GB allocation fails), CPU seconds over a worker's life, file size, open files and
  (through the sandbox user's process count) fork bombs; wall time per call is the pool's.
- environment: cleared; only PATH, HOME, TMPDIR, locale and thread counts are set, so no passphrase variable is seen.
- not isolated: the filter is a deny list (every other call is allowed); memory is limited per process, not per
  sandbox (no cgroup is created), and the process limit is shared by the workers of one sandbox; CPU caches and the
  kernel are shared, as with any process; /proc/1/cmdline shows the sandbox's own command line (host paths of the
  interpreter and the code's copy, nothing secret).
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput, ForgegovError

HARNESS = Path(__file__).with_name("harness.py")
# Uids (and gids) a sandbox runs under when forgegov is root: one per sandbox, picked at random in this range, owning
# no file; RLIMIT_NPROC counts per uid, so a fork bomb in one sandbox cannot starve another.
SANDBOX_IDS = range(100_000, 165_536)
_LOADER_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
_TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


class SandboxUnavailable(ForgegovError):
    """The sandbox cannot be built on this machine; code that needs it does not run anywhere else instead."""


class SandboxExposure(BadInput):
    """The sandbox would show something it must not (the workspace, its keys or store) to the code inside."""


@dataclass(frozen=True)
class SandboxLimits:
    """What one sandboxed worker may use. Configs are validated here so a zero or negative limit never means 'none'."""

    timeout_s: float = 30.0  # wall time of one call
    start_timeout_s: float = 60.0  # wall time to start a worker and import the code
    memory_mb: int = 2048  # address space of each process
    cpu_s: int = 600  # CPU seconds over a worker's life (workers are replaced after calls_per_worker calls)
    processes: int = 64  # processes and threads the sandbox user may have at once, all workers together
    scratch_mb: int = 64  # the writable tmpfs
    file_mb: int = 64  # the largest file written, stderr included
    open_files: int = 256
    calls_per_worker: int = 500

    def __post_init__(self) -> None:
        for name in ("timeout_s", "start_timeout_s", "memory_mb", "cpu_s", "processes", "scratch_mb", "file_mb",
                     "open_files", "calls_per_worker"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise BadInput(f"sandbox limit {name} must be a positive number, not {value!r}")


# Where the sandbox's tools are taken from: root-owned system folders only, never PATH, which whoever starts the
# trainer sets (a `bwrap` earlier on it would run reward code with no sandbox at all).
_SYSTEM_BIN = ("/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin")


def _tool(name: str) -> str:
    found = next((path for folder in _SYSTEM_BIN if os.access(path := f"{folder}/{name}", os.X_OK)), None)
    if found is None:
        raise SandboxUnavailable(f"{name} is not installed, and reward and environment code runs only in the sandbox",
                                 hint="install it (Debian: apt-get install bubblewrap util-linux), "
                                      "or run `bash scripts/install.sh`")
    return found


def _prefixes() -> list[Path]:
    """The interpreter's own folders: the virtual environment's packages and the base installation they extend."""
    found: list[Path] = []
    for prefix in {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}:
        if not any(prefix.is_relative_to(other) for other in found):
            found = [other for other in found if not other.is_relative_to(prefix)] + [prefix]
    return sorted(found)


def _binds(code: Path) -> list[tuple[Path, Path]]:
    """(source, target) read-only binds; the code's copy appears at /code."""
    binds = [(Path("/usr"), Path("/usr"))] + [(p, p) for p in _prefixes() if not p.is_relative_to("/usr")]
    binds += [(Path(f), Path(f)) for f in _LOADER_FILES if os.path.exists(f)]
    return binds + [(code, Path("/code")), (HARNESS, Path("/sandbox/harness.py"))]


def refuse_exposure(code: Path, hidden: list[Path]) -> None:
    """Refuse a layout in which a bound folder holds something that must stay hidden (a workspace inside the
    virtual environment, say): bind mounts show whole trees."""
    for source, _target in _binds(code):
        for secret in hidden:
            resolved = secret.resolve()
            if resolved.is_relative_to(source.resolve()):
                raise SandboxExposure(
                    f"{resolved} lies inside {source}, which the sandbox shows read-only to the code it runs",
                    hint="keep the workspace, its keys and its store outside the Python installation and /usr")


def workspace_paths(workspace: Workspace) -> list[Path]:
    """What sandboxed code must never see: the workspace (its keys, its store, its artifacts)."""
    return [workspace.root, workspace.keys_dir, workspace.artifacts_dir]


def _ancestors(binds: list[tuple[Path, Path]]) -> list[str]:
    """--dir arguments for every folder above a bind target, made traversable for the unprivileged code (bubblewrap
    makes them 0700 otherwise, owned by root), skipping those a bind above them already provides."""
    made: list[str] = []
    targets = [target for _source, target in binds]
    for target in targets:
        for parent in reversed(target.parents[:-1]):  # from the top down, without "/"
            inside_bind = any(parent.is_relative_to(t) for t in targets if t != target and t != parent)
            if str(parent) in made or inside_bind or parent in targets:
                continue
            made.append(str(parent))
    return [arg for folder in made for arg in ("--perms", "0755", "--dir", folder)]


def _count_processes(uid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count


# Linux's clone flags for new namespaces, and the socket families a network namespace contains.
_NAMESPACE_FLAGS = (0x00000080, 0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
_CONTAINED_FAMILIES = (1, 2, 10, 16)  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
_REFUSED_CALLS = ("unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
                  "io_uring_setup", "io_uring_enter", "io_uring_register", "ptrace", "process_vm_readv",
                  "process_vm_writev")


def seccomp_program() -> bytes:
    """The compiled seccomp filter (BPF) every worker runs under; bubblewrap installs it just before the command."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as exc:
        raise SandboxUnavailable(f"the seccomp library cannot be loaded ({exc})",
                                 hint="install libseccomp2 and forgegov's dependencies (`bash scripts/install.sh`)") \
            from exc
    refuse = seccomp.ERRNO(errno.EPERM)
    program = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for call in _REFUSED_CALLS:
        program.add_rule(refuse, call)
    for flag in _NAMESPACE_FLAGS:
        program.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    program.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    for call in ("socket", "socketpair"):
        program.add_rule(refuse, call, seccomp.Arg(0, seccomp.GT, max(_CONTAINED_FAMILIES)))
        for family in range(max(_CONTAINED_FAMILIES)):
            if family not in _CONTAINED_FAMILIES:
                program.add_rule(refuse, call, seccomp.Arg(0, seccomp.EQ, family))
    with tempfile.TemporaryFile() as compiled:
        program.export_bpf(compiled)
        compiled.seek(0)
        return compiled.read()


class CodeKind(StrEnum):
    """What the harness runs: a reward function ("module:function"), or an environment class ("module:Class")."""

    REWARD = "reward"
    ENVIRONMENT = "environment"


def worker_command(code: Path, kind: CodeKind, entry: str, limits: SandboxLimits, seccomp_fd: int,
                   sandbox_id: int) -> list[str]:
    """argv that starts one worker for `entry` of `kind` in `code`, a folder the caller made readable;
    `seccomp_fd` is a descriptor, inherited by bubblewrap, holding `seccomp_program()`."""
    bwrap, prlimit = _tool("bwrap"), _tool("prlimit")
    privileged = os.geteuid() == 0
    # RLIMIT_NPROC counts the processes of the real user: as root (exempt from it) the code runs as the sandbox's own
    # uid; another user keeps its own uid, so its processes outside the sandbox count as well.
    processes = limits.processes if privileged else _count_processes(os.getuid()) + limits.processes
    megabyte = 1024 * 1024
    command = [prlimit, f"--as={limits.memory_mb * megabyte}", f"--cpu={int(limits.cpu_s)}",
               f"--nproc={processes}", f"--fsize={limits.file_mb * megabyte}", f"--nofile={limits.open_files}",
               "--core=0", "--", bwrap]
    if privileged:
        command += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        command += ["--unshare-all", "--disable-userns"]
    command += ["--die-with-parent", "--new-session", "--clearenv", "--seccomp", str(seccomp_fd),
                "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/scratch", "--setenv", "TMPDIR", "/scratch",
                "--setenv", "LANG", "C.UTF-8", "--setenv", "OMP_NUM_THREADS", "1",
                "--setenv", "PYTHONHASHSEED", "0", "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
    for name in _TOP_LEVEL:
        path = Path("/") / name
        if path.is_symlink():
            command += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            command += ["--ro-bind", str(path), str(path)]
    binds = _binds(code)
    command += _ancestors(binds)
    for source, target in binds:
        command += ["--ro-bind", str(source), str(target)]
    command += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(limits.scratch_mb * megabyte),
                "--tmpfs", "/scratch",
                "--chdir", "/scratch", "--remount-ro", "/"]
    if privileged:
        command += [_tool("setpriv"), f"--reuid={sandbox_id}", f"--regid={sandbox_id}", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return command + [sys.executable, "-I", "-B", "/sandbox/harness.py", kind.value, entry]
