"""The sandbox that reward and environment code runs in, attacked as that code would: every case of the escape suite
is contained, its failure recorded per call, and the workers it did not break are reused."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
from pathlib import Path

import pytest

from forgegov.governance.sandbox.isolation import SandboxExposure, SandboxLimits
from forgegov.governance.sandbox.pool import Outcome, Sandbox, check_scores, namespace_members

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (scripts/install.sh)")

ESCAPES = r'''
import ctypes, os, socket, struct

def _reached(port):
    """1.0 when any way of connecting to 127.0.0.1:port outside the sandbox got through."""
    reached = 0.0
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        reached = 1.0
    except OSError:
        pass
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    address = struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton("127.0.0.1") + bytes(8)
    if fd >= 0 and libc.connect(fd, address, len(address)) == 0:
        reached = 1.0
    if os.system(f"curl -s -m 2 -o /dev/null http://127.0.0.1:{port}/ 2>/dev/null") == 0:
        reached = 1.0
    return reached

def network(prompts, completions, port, **_):
    return [_reached(p) for p in port]

def raw_socket(prompts, completions, **_):
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        raw.sendto(b"\x08\x00\xf7\xff\x00\x00\x00\x00", ("127.0.0.1", 0))
        return [1.0] * len(prompts)
    except OSError:
        return [0.0] * len(prompts)

def read_file(prompts, completions, path, **_):
    found = []
    for p in path:
        try:
            with open(p, "rb") as f:
                f.read()
            found.append(1.0)
        except OSError:
            found.append(0.0)
    return found

def write_file(prompts, completions, path, **_):
    written = []
    for p in path:
        try:
            with open(p, "w") as f:
                f.write("x")
            written.append(1.0)
        except OSError:
            written.append(0.0)
    return written

def environment(prompts, completions, **_):
    return [float(len(os.environ.get("FORGEGOV_PASSPHRASE", "")))] * len(prompts)

def fork_bomb(prompts, completions, **_):
    while True:
        os.fork()

def allocate(prompts, completions, **_):
    hoard = bytearray(10 * 1024 ** 3)
    return [float(len(hoard))] * len(prompts)

def spin(prompts, completions, **_):
    while True:
        pass

def strings(prompts, completions, **_):
    return ["1.0"] * len(prompts)

def short(prompts, completions, **_):
    return [1.0]

def not_a_number(prompts, completions, **_):
    return [float("nan"), float("inf")][: len(prompts)]

def raises(prompts, completions, **_):
    raise ValueError("no answer column")

def exits(prompts, completions, **_):
    os._exit(7)

def pid(prompts, completions, **_):
    return [float(os.getpid())] * len(prompts)

def noisy(prompts, completions, **_):
    print('{"ok": true, "id": 1, "scores": [99.0]}')
    return [0.5] * len(prompts)

def namespaces(prompts, completions, **_):
    """1.0 for each way of making a user namespace (where a tmpfs of any size could be mounted) that worked."""
    made = [float(os.system("unshare -Urm true 2>/dev/null") == 0)]
    libc = ctypes.CDLL(None, use_errno=True)
    made.append(float(libc.unshare(0x10000000) == 0))  # CLONE_NEWUSER
    return made[: len(prompts)]

def vsock(prompts, completions, **_):
    try:
        socket.socket(40, socket.SOCK_STREAM).close()  # AF_VSOCK: the hypervisor, whatever the network namespace
        return [1.0] * len(prompts)
    except OSError:
        return [0.0] * len(prompts)

def keyring(prompts, completions, **_):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    # keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING): the inherited session keyring, or a refusal.
    return [float(libc.syscall(250, 0, -3, 0) >= 0)] * len(prompts)

def leaves_children(prompts, completions, **_):
    import time
    for _ in range(20):
        if os.fork() == 0:
            time.sleep(10 ** 6)
            os._exit(0)
    return [1.0] * len(prompts)

def spawns(prompts, completions, **_):
    import subprocess
    return [float(subprocess.run(["true"]).returncode == 0)] * len(prompts)

def deep_reply(prompts, completions, **_):
    os.write(3, b'{"ok": true, "id": 1, "scores": ' + b"[" * 100000 + b"]" * 100000 + b"}\n")
    import time
    time.sleep(3600)

def huge(prompts, completions, **_):
    return [10 ** 400] * len(prompts)

def dies_when_idle(prompts, completions, **_):
    import threading
    threading.Timer(0.3, lambda: os._exit(0)).start()
    return [1.0] * len(prompts)
'''

# Answers "ready" for the harness at import, then never reads its requests: a parent writing a large request
# would block forever without a deadline on sending.
STALLS = '''
import os, time
os.write(3, b'{"ready": true}\\n')
time.sleep(10 ** 6)
def score(prompts, completions, **_):
    return [1.0] * len(prompts)
'''

LIMITS = SandboxLimits(timeout_s=3.0, memory_mb=1024, processes=24, cpu_s=60)


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "escapes.py").write_text(ESCAPES, encoding="utf-8")
    return folder


def _batch(n: int = 2, **columns: list) -> dict[str, list]:
    return {"prompts": ["p"] * n, "completions": ["c"] * n, **columns}


@pytest.fixture
def listener():
    """A TCP server on the host's loopback: anything the sandbox reaches on it is counted."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[object] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            accepted.append(connection)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    server.close()


def test_no_network_reaches_the_host_from_python_ctypes_or_curl(code, listener):
    port, accepted = listener
    with socket.create_connection(("127.0.0.1", port)):  # the listener works from outside
        pass
    with Sandbox(code, "escapes:network", limits=LIMITS) as sandbox:
        result = sandbox.call(_batch(1, port=[port]))
    assert result.outcome is Outcome.OK and result.scores == [0.0]
    assert len(accepted) == 1  # only the check above


def test_no_raw_socket(code):
    with Sandbox(code, "escapes:raw_socket", limits=LIMITS) as sandbox:
        assert sandbox.call(_batch()).scores == [0.0, 0.0]


def test_the_workspace_its_keys_and_store_are_not_there(code, tmp_path):
    keys = tmp_path / "workspace" / "keys"
    keys.mkdir(parents=True)
    (keys / "alice.key").write_text("secret")
    store = tmp_path / "workspace" / "forgegov.db"
    store.write_text("rows")
    # /etc/shadow and the repository the interpreter was installed from are not in the sandbox either.
    paths = [str(keys / "alice.key"), str(store), "/etc/shadow", str(Path(__file__).resolve())]
    with Sandbox(code, "escapes:read_file", limits=LIMITS, hidden=[tmp_path / "workspace"]) as sandbox:
        result = sandbox.call(_batch(len(paths), path=paths))
    assert result.scores == [0.0] * len(paths)


def test_only_scratch_is_writable(code):
    paths = ["/code/escapes.py", "/usr/injected", "/injected", f"{sys.prefix}/injected", "/scratch/mine"]
    with Sandbox(code, "escapes:write_file", limits=LIMITS) as sandbox:
        assert sandbox.call(_batch(len(paths), path=paths)).scores == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert (code / "escapes.py").read_text() == ESCAPES and not Path(sys.prefix, "injected").exists()


def test_the_environment_is_cleared(code, monkeypatch):
    monkeypatch.setenv("FORGEGOV_PASSPHRASE", "hunter2")
    with Sandbox(code, "escapes:environment", limits=LIMITS) as sandbox:
        assert sandbox.call(_batch()).scores == [0.0, 0.0]


@pytest.mark.parametrize(("entry", "outcome", "detail"), [
    ("fork_bomb", Outcome.ERROR, "BlockingIOError"),
    ("allocate", Outcome.MEMORY, "MemoryError"),
    ("spin", Outcome.TIMEOUT, "no answer within 3 s"),
    ("strings", Outcome.INVALID, "score 0 is str '1.0', not a number"),
    ("short", Outcome.INVALID, "returned 1 scores for 2 items"),
    ("not_a_number", Outcome.INVALID, "NaN or infinite"),
    ("raises", Outcome.ERROR, "ValueError: no answer column"),
    ("exits", Outcome.CRASHED, "exited with status 7"),
])
def test_a_failing_reward_is_contained_recorded_and_its_worker_replaced(code, entry, outcome, detail):
    with Sandbox(code, f"escapes:{entry}", limits=LIMITS) as sandbox:
        failed = sandbox.call(_batch())
        assert failed.outcome is outcome and failed.scores is None and detail in failed.detail
        assert sandbox.idle == []  # nothing it left behind is reused
        assert [call.outcome for call in sandbox.calls] == [outcome]
    # Everything the code started is gone with its worker: nothing is left in its PID namespace.
    assert sandbox.namespaces and not [pid for ns in sandbox.namespaces for pid in namespace_members(ns)]


def test_workers_are_reused_and_printing_cannot_forge_a_reply(code):
    with Sandbox(code, "escapes:pid", limits=LIMITS) as sandbox:
        first, second = sandbox.call(_batch(1)), sandbox.call(_batch(1))
        assert first.scores == second.scores  # one worker answered both
    with Sandbox(code, "escapes:noisy", limits=LIMITS) as sandbox:
        assert sandbox.call(_batch(1)).scores == [0.5]


def test_a_batch_is_split_over_workers_in_order(code):
    with Sandbox(code, "escapes:read_file", limits=LIMITS, workers=3) as sandbox:
        paths = ["/scratch/none", "/code/escapes.py"] * 4
        result = sandbox.score(_batch(len(paths), path=paths))
    assert result.outcome is Outcome.OK and result.scores == [0.0, 1.0] * 4
    assert len(sandbox.calls) == 3


def test_code_that_cannot_be_imported_is_unavailable(code):
    (code / "broken.py").write_text("import not_installed_anywhere\n")
    with Sandbox(code, "broken:score", limits=LIMITS) as sandbox:
        result = sandbox.call(_batch())
    assert result.outcome is Outcome.UNAVAILABLE and "ModuleNotFoundError" in result.detail


def test_a_layout_that_would_show_the_workspace_is_refused(code):
    with pytest.raises(SandboxExposure, match="shows read-only to the code"):
        Sandbox(code, "escapes:pid", limits=LIMITS, hidden=[Path(sys.prefix) / "workspace"])


@pytest.mark.parametrize("bad", [0, -1, True])
def test_limits_are_positive(bad):
    with pytest.raises(Exception, match="must be a positive number"):
        SandboxLimits(timeout_s=bad)


def test_scores_are_checked_outside():
    assert check_scores([1, None, 0.5], 3) == [1.0, None, 0.5]
    for value, items in (([True], 1), ("1", 1), ([1.0], 2), ([float("inf")], 1)):
        with pytest.raises(ValueError):
            check_scores(value, items)


def test_the_sandbox_user_cannot_see_other_processes(code):
    (code / "procs.py").write_text("import os\ndef score(prompts, completions, **_):\n"
                                   "    return [float(len([p for p in os.listdir('/proc') if p.isdigit()]))]"
                                   " * len(prompts)\n")
    with Sandbox(code, "procs:score", limits=LIMITS) as sandbox:
        [seen] = sandbox.call(_batch(1)).scores
    assert seen <= 4 < len([p for p in os.listdir("/proc") if p.isdigit()])


def test_no_user_namespace_vsock_or_keyring(code):
    """Found by attacking the first version: a user namespace let the code mount a tmpfs without a size limit,
    AF_VSOCK left the network namespace, and the parent's session keyring was readable."""
    with Sandbox(code, "escapes:namespaces", limits=LIMITS) as sandbox:
        assert sandbox.call(_batch()).scores == [0.0, 0.0]
    with Sandbox(code, "escapes:vsock", limits=LIMITS) as sandbox:
        assert sandbox.call(_batch()).scores == [0.0, 0.0]
    with Sandbox(code, "escapes:keyring", limits=LIMITS) as sandbox:
        assert sandbox.call(_batch()).scores == [0.0, 0.0]


def test_processes_left_behind_by_a_good_call_are_killed_before_the_next(code):
    """Found by attacking the first version: children left by a call that went well ran on and held the process
    limit (24 here) against later calls; each call below leaves 20."""
    with Sandbox(code, "escapes:leaves_children", limits=LIMITS) as greedy:
        assert [greedy.call(_batch()).scores for _ in range(3)] == [[1.0, 1.0]] * 3
        [namespace] = greedy.namespaces  # one worker answered all three
        assert len(namespace_members(namespace)) == 2  # its init and the harness: the children are gone


@pytest.mark.parametrize(("entry", "outcome"), [("deep_reply", Outcome.CRASHED), ("huge", Outcome.INVALID)])
def test_a_malformed_reply_is_an_outcome_not_an_exception_in_the_parent(code, entry, outcome):
    with Sandbox(code, f"escapes:{entry}", limits=LIMITS) as sandbox:
        assert sandbox.call(_batch()).outcome is outcome


def test_a_worker_that_stops_reading_cannot_block_the_parent(tmp_path):
    folder = tmp_path / "stalls"
    folder.mkdir()
    (folder / "stalls.py").write_text(STALLS)
    with Sandbox(folder, "stalls:score", limits=SandboxLimits(timeout_s=2.0, start_timeout_s=5.0)) as sandbox:
        result = sandbox.call(_batch(1, blob=["x" * 400_000]))
    assert result.outcome is Outcome.TIMEOUT and result.seconds < 10


def test_a_worker_that_died_while_idle_is_reported_and_replaced(code):
    import time

    with Sandbox(code, "escapes:dies_when_idle", limits=LIMITS) as sandbox:
        assert sandbox.call(_batch()).ok
        time.sleep(1.0)
        assert sandbox.call(_batch()).outcome is Outcome.CRASHED
        assert sandbox.call(_batch()).ok  # a new worker


def test_workers_of_a_pool_outlive_the_threads_that_used_them(code):
    """Found by attacking the first version: a worker started from a batch's short-lived thread was killed when
    that thread ended (bubblewrap's --die-with-parent follows the starting thread)."""
    with Sandbox(code, "escapes:pid", limits=LIMITS, workers=2) as sandbox:
        results = [sandbox.score(_batch(4)) for _ in range(4)]
    assert [r.outcome for r in results] == [Outcome.OK] * 4


def test_a_bwrap_first_on_path_is_not_the_sandbox(code, tmp_path, monkeypatch):
    """The tools come from system folders: a `bwrap` put first on PATH (which whoever starts the trainer sets) would
    otherwise run the reward with no sandbox at all."""
    fake = tmp_path / "bin"
    fake.mkdir()
    marker = tmp_path / "fake-bwrap-ran"
    (fake / "bwrap").write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    with Sandbox(code, "escapes:raw_socket", limits=LIMITS) as sandbox:
        assert sandbox.call(_batch()).scores == [0.0, 0.0]
    assert not marker.exists()
