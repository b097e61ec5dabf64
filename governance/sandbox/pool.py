"""Sandboxed workers, reused between calls, and the one way to call code through them.

A reward call sends keyword arguments (TRL's reward signature: prompts, completions and dataset columns, each a list)
and gets back a `CallResult`: the scores, or what went wrong. An environment request (a step of an episode, see the
harness) gets back the step's reply, checked for form, the same way. Nothing the worker says is trusted (the code runs in the
harness's process and can write on its reply channel): a reply must be a list of finite numbers (or None, TRL's "no
score") of the batch's length, within a size cap; sending and waiting both have a deadline; a worker that hangs past
the call's wall time is killed with everything it started, one that dies is reported with its exit status and the
end of its stderr, and either is replaced before the next call. After a call that went well, any process the code
left behind is killed before the worker is used again. Every call is kept in `calls`, for the run's record.

Workers are started from one long-lived thread the sandbox owns: bubblewrap's --die-with-parent follows the thread
that started it, so a worker started by a short-lived thread would be killed when that thread ends.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from forgegov.foundation.errors import BadInput
from forgegov.governance.sandbox.isolation import (
    SANDBOX_IDS,
    CodeKind,
    SandboxLimits,
    refuse_exposure,
    seccomp_program,
    worker_command,
)

MAX_REPLY_BYTES = 16 * 1024 * 1024
MAX_TOOL_TEXT = 64 * 1024  # an observation or a tool's result: the model reads it, so it is kept short
STDERR_TAIL = 2000
KILL_WAIT_S = 10.0


class Outcome(StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"  # past the call's wall time: killed
    CRASHED = "crashed"  # the worker died (a signal, os._exit, a fault) or wrote a reply that is no reply
    MEMORY = "memory"  # the code ran out of its address space
    ERROR = "error"  # the code raised
    INVALID = "invalid"  # it returned something that is not one finite score (or None) per item
    UNAVAILABLE = "unavailable"  # the code could not even be imported


@dataclass(frozen=True)
class CallResult:
    outcome: Outcome
    scores: list[float | None] | None  # only when outcome is OK
    detail: str  # why not OK, for the record and the reviewer
    items: int
    seconds: float
    reply: dict[str, Any] | None = None  # an environment's answer, checked for form (only when OK)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "items": self.items, "detail": self.detail,
                "seconds": round(self.seconds, 4)}


def _refuse_constant(name: str) -> float:
    raise ValueError(f"a score of {name} is not a finite number")


def check_scores(value: Any, items: int) -> list[float | None]:
    """The scores in a reply, or ValueError saying why they are none."""
    if not isinstance(value, list):
        raise ValueError(f"the code returned {type(value).__name__}, not a list of scores")
    if len(value) != items:
        raise ValueError(f"the code returned {len(value)} scores for {items} items")
    scores: list[float | None] = []
    for index, score in enumerate(value):
        if score is None:
            scores.append(None)
        elif isinstance(score, bool) or not isinstance(score, (int, float)):
            raise ValueError(f"score {index} is {type(score).__name__} {str(score)[:40]!r}, not a number")
        else:
            try:
                number = float(score)
            except OverflowError:
                raise ValueError(f"score {index} is an integer too large for a float") from None
            if not math.isfinite(number):
                raise ValueError(f"score {index} is {number}, not a finite number")
            scores.append(number)
    return scores


class _Worker:
    def __init__(self, command: list[str], limits: SandboxLimits, program_fd: int) -> None:
        self.limits = limits
        self.calls = 0
        self.stderr = tempfile.TemporaryFile(prefix="forgegov-sandbox-stderr-")
        # Unbuffered pipes: nothing is left in a Python buffer to be flushed (and fail) when a worker is killed.
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                        start_new_session=True, close_fds=True, pass_fds=(program_fd,), bufsize=0)
        self.buffer = b""
        if self.process.stdin is None or self.process.stdout is None:  # pipes were asked for: never
            raise OSError("the worker's pipes were not opened")
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        os.set_blocking(self.stdin.fileno(), False)
        self.namespace: int | None = None  # the PID namespace everything the code starts lives in
        self.init: int | None = None  # its first process (bubblewrap's), ancestor of all the others
        self.own: set[int] = set()  # the namespace's processes when the harness was ready: its init and the harness

    def note_namespace(self) -> None:
        """Remember the worker's PID namespace (that of bubblewrap's first child), so that `kill` can wait until
        nothing in it is left: processes of a killed namespace die asynchronously, and until they are gone they
        still count against the sandbox user's process limit."""
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            self.namespace = os.stat(f"/proc/{children[0]}/ns/pid").st_ino if children else None
            self.init = int(children[0]) if children else None
        except OSError:
            self.namespace = self.init = None
        self.own = set(namespace_members(self.namespace)) if self.namespace is not None else set()

    def kill_leftovers(self) -> None:
        """Processes the code started and left running (a call that forked and returned): killed, so that they
        neither run on nor hold the sandbox user's process limit against the next call or another sandbox."""
        if self.namespace is None or self.init is None:
            return
        # The cheap look first (the namespace's process tree, from its first process): usually nothing is left.
        if _descendants(self.init) <= self.own:
            return
        _kill_until_gone(self.namespace, keep=self.own)  # the harness reaps its children before the next call

    def stderr_tail(self) -> str:
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - STDERR_TAIL))
        return self.stderr.read().decode("utf-8", "replace").strip()

    def read_reply(self, timeout: float) -> dict[str, Any] | Outcome:
        """The next reply line, or TIMEOUT / CRASHED. A reply that is not a JSON object is CRASHED: the protocol
        descriptor is the harness's own, so garbage there means the worker is not in a state to trust."""
        deadline = time.monotonic() + timeout
        descriptor = self.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(descriptor, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    return Outcome.TIMEOUT
                if not selector.select(left):
                    continue
                chunk = os.read(descriptor, 65536)
                if not chunk:
                    return Outcome.CRASHED
                self.buffer += chunk
                if len(self.buffer) > MAX_REPLY_BYTES:
                    return Outcome.CRASHED
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            reply = json.loads(line, parse_constant=_refuse_constant)
        except RecursionError:
            return Outcome.CRASHED  # nested deeper than the parser goes: not a reply
        except ValueError:
            # NaN or Infinity in the reply: refused as invalid scores, not as a broken worker.
            try:
                reply = json.loads(line)
            except (ValueError, RecursionError):
                return Outcome.CRASHED
            return {**reply, "ok": False, "error": "NonFinite", "message": "a score is NaN or infinite"} \
                if isinstance(reply, dict) else Outcome.CRASHED
        return reply if isinstance(reply, dict) else Outcome.CRASHED

    def send(self, document: dict[str, Any], timeout: float) -> Outcome | None:
        """None once the request is written; TIMEOUT if the worker stops reading (it would block us forever),
        CRASHED if it is gone."""
        data = memoryview(json.dumps(document).encode() + b"\n")
        deadline = time.monotonic() + timeout
        descriptor = self.stdin.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(descriptor, selectors.EVENT_WRITE)
            while data:
                left = deadline - time.monotonic()
                if left <= 0:
                    return Outcome.TIMEOUT
                if not selector.select(left):
                    continue
                try:
                    written = os.write(descriptor, data)
                except BlockingIOError:
                    continue
                except OSError:
                    return Outcome.CRASHED
                data = data[written:]
        return None

    def ended(self) -> str:
        code = self.process.poll()
        if code is None:
            return ""
        if code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return f"exited with status {code}"

    def kill(self) -> None:
        """The worker and everything it started: bubblewrap's --die-with-parent and its PID namespace take the rest
        with it when its first process goes."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        if self.namespace is not None:
            _kill_until_gone(self.namespace, keep=set())
        for stream in (self.stdin, self.stdout, self.stderr):
            try:
                stream.close()
            except OSError:
                pass


class Sandbox:
    """Workers running `entry` ("module:function") from `code`, a private folder holding the verified copy of the code
    (made readable to the sandbox's user here). `hidden` are paths the layout must not show (the workspace)."""

    def __init__(self, code: Path, entry: str, *, limits: SandboxLimits | None = None, workers: int = 1,
                 hidden: list[Path] | None = None, kind: CodeKind = CodeKind.REWARD) -> None:
        if workers < 1:
            raise BadInput(f"a sandbox needs at least one worker, not {workers}")
        self.limits = limits or SandboxLimits()
        refuse_exposure(code, hidden or [])
        _make_readable(code)
        self.code = code
        self.program = tempfile.TemporaryFile(prefix="forgegov-seccomp-")
        self.program.write(seccomp_program())
        self.program.flush()
        self.entry = entry
        self.kind = kind
        self.sandbox_id = SANDBOX_IDS[secrets.randbelow(len(SANDBOX_IDS))]
        self.size = workers
        self.idle: list[_Worker] = []
        self.lock = threading.Lock()
        self.calls: list[CallResult] = []
        self.namespaces: list[int] = []  # the PID namespace of every worker started, for whoever checks none outlives it
        self.spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forgegov-sandbox")
        # Threads that wait on the workers of a split batch, kept rather than started per call.
        self.callers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="forgegov-sandbox-call")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for worker in idle:
            worker.kill()
        self.callers.shutdown(wait=True)
        self.spawner.shutdown(wait=True)
        self.program.close()

    def _spawn(self) -> _Worker:
        # Each worker reads the filter from its own descriptor, from the start (a shared one would be at its end).
        descriptor = os.open(f"/proc/self/fd/{self.program.fileno()}", os.O_RDONLY)
        try:
            return _Worker(worker_command(self.code, self.kind, self.entry, self.limits, descriptor,
                                          self.sandbox_id), self.limits,
                           descriptor)
        finally:
            os.close(descriptor)

    def _take(self) -> _Worker | CallResult:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        started = time.monotonic()
        worker = self.spawner.submit(self._spawn).result()
        ready = worker.read_reply(self.limits.start_timeout_s)
        if isinstance(ready, dict) and ready.get("ready") is True:
            worker.note_namespace()
            if worker.namespace is not None:
                with self.lock:
                    self.namespaces.append(worker.namespace)
            return worker
        detail = (f"{ready.get('error')}: {ready.get('message', '')}\n{ready.get('trace', '')}".strip()
                  if isinstance(ready, dict)
                  else f"the worker did not start ({ready.value}; {worker.ended() or 'still running'})")
        tail = worker.stderr_tail() if not isinstance(ready, dict) else ""
        worker.kill()
        return CallResult(Outcome.UNAVAILABLE, None, (detail + ("\n" + tail if tail else ""))[-STDERR_TAIL:], 0,
                          time.monotonic() - started)

    def _give_back(self, worker: _Worker) -> None:
        if worker.calls >= self.limits.calls_per_worker:
            worker.kill()
            return
        with self.lock:
            if len(self.idle) < self.size:
                self.idle.append(worker)
                return
        worker.kill()

    def call(self, kwargs: dict[str, list[Any]]) -> CallResult:
        """One reward call with every keyword argument a list of the same length (the batch), on one worker."""
        if self.kind is not CodeKind.REWARD:
            raise BadInput(f"{self.entry} is an environment: it takes requests, not reward calls")
        return self._exchange({"kwargs": kwargs}, _batch_size(kwargs), _judge_scores)

    def request(self, body: dict[str, Any]) -> CallResult:
        """One request to an environment (its tools described, or one step of an episode), on one worker."""
        if self.kind is not CodeKind.ENVIRONMENT:
            raise BadInput(f"{self.entry} is a reward function: it takes reward calls, not requests")
        return self._exchange(body, 1, lambda reply, items, seconds: _judge_step(body, reply, items, seconds))

    def _exchange(self, body: dict[str, Any], items: int, judge: Judge) -> CallResult:
        started = time.monotonic()
        taken = self._take()
        if isinstance(taken, CallResult):
            result = CallResult(taken.outcome, None, taken.detail, items, taken.seconds)
            self._keep(result)
            return result
        worker = taken
        worker.calls += 1
        deadline = time.monotonic() + self.limits.timeout_s
        reply: dict[str, Any] | Outcome | None = worker.send({"id": worker.calls, **body},
                                                             self.limits.timeout_s)
        if reply is None:
            reply = worker.read_reply(max(0.0, deadline - time.monotonic()))
        seconds = time.monotonic() - started
        if isinstance(reply, Outcome):
            if reply is Outcome.TIMEOUT:
                detail = f"no answer within {self.limits.timeout_s:g} s; the worker and its processes were killed"
            else:
                _settle(worker)
                tail = worker.stderr_tail()
                detail = f"the worker {worker.ended() or 'sent no valid reply'}" + (f"\n{tail}" if tail else "")
            worker.kill()
            result = CallResult(reply, None, detail[-STDERR_TAIL:], items, seconds)
        else:
            result = _failed(reply, worker.calls, items, seconds) or judge(reply, items, seconds)
            # Only a worker whose call went well is used again: one that raised may have left processes behind (a fork
            # bomb stopped by the process limit leaves its children spinning).
            if result.ok:
                worker.kill_leftovers()
                self._give_back(worker)
            else:
                worker.kill()
        self._keep(result)
        return result

    def score(self, kwargs: dict[str, list[Any]]) -> CallResult:
        """One batch split over the pool's workers, in parallel; the first failure of a part is the batch's."""
        items = _batch_size(kwargs)
        parts = min(self.size, items) or 1
        if parts == 1:
            return self.call(kwargs)
        bounds = [(items * k // parts, items * (k + 1) // parts) for k in range(parts)]
        started = time.monotonic()
        done = list(self.callers.map(
            lambda part: self.call({name: values[part[0]:part[1]] for name, values in kwargs.items()}), bounds))
        seconds = time.monotonic() - started
        failed = next((r for r in done if not r.ok), None)
        if failed is not None:
            return CallResult(failed.outcome, None, failed.detail, items, seconds)
        return CallResult(Outcome.OK, [s for r in done for s in (r.scores or [])], "", items, seconds)

    def _keep(self, result: CallResult) -> None:
        with self.lock:
            self.calls.append(result)


def _kill_until_gone(namespace: int, keep: set[int]) -> None:
    """SIGKILL every live process of `namespace` but `keep`, until none is left (or KILL_WAIT_S passed): they die
    asynchronously, and until then still count against the process limit."""
    deadline = time.monotonic() + KILL_WAIT_S
    while time.monotonic() < deadline:
        left = set(namespace_members(namespace)) - keep
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)


def _descendants(root: int) -> set[int]:
    """`root` and every process below it, from /proc's children lists (of every thread), without scanning /proc."""
    found, stack = set(), [root]
    while stack:
        pid = stack.pop()
        found.add(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                stack += [int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                          if int(child) not in found]
        except OSError:
            continue
    return found


def namespace_members(namespace: int) -> list[int]:
    """Live processes in PID namespace `namespace` (zombies are gone as far as limits go)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry / "ns" / "pid").st_ino == namespace and "State:\tZ" not in (entry / "status").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _batch_size(kwargs: dict[str, list[Any]]) -> int:
    sizes = {len(values) for values in kwargs.values() if isinstance(values, list)}
    if len(sizes) != 1 or any(not isinstance(values, list) for values in kwargs.values()):
        raise BadInput("every argument of a sandboxed call is a list, all of one length (the batch)")
    return sizes.pop()


Judge = Callable[[dict[str, Any], int, float], CallResult]


def _failed(reply: dict[str, Any], call_id: int, items: int, seconds: float) -> CallResult | None:
    """What went wrong with a reply, or None when it is an answer to this call."""
    if type(reply.get("id")) is not int or reply.get("id") != call_id:
        return CallResult(Outcome.CRASHED, None, "the worker answered another call", items, seconds)
    if reply.get("ok") is not True:
        error = str(reply.get("error", "unknown"))
        outcome = {"MemoryError": Outcome.MEMORY, "NonFinite": Outcome.INVALID}.get(error, Outcome.ERROR)
        detail = f"{error}: {reply.get('message', '')}\n{reply.get('trace', '')}".strip()
        return CallResult(outcome, None, detail[-STDERR_TAIL:], items, seconds)
    return None


def _judge_scores(reply: dict[str, Any], items: int, seconds: float) -> CallResult:
    try:
        scores = check_scores(reply.get("scores"), items)
    except ValueError as exc:
        return CallResult(Outcome.INVALID, None, str(exc), items, seconds)
    return CallResult(Outcome.OK, scores, "", items, seconds)


def _text(value: Any, what: str, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise ValueError(f"{what} is {type(value).__name__}, not text")
    if len(value) > MAX_TOOL_TEXT:
        raise ValueError(f"{what} is {len(value)} characters long; at most {MAX_TOOL_TEXT}")


def check_step(request: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    """The parts of an environment's reply to `request` forgegov uses, exactly those it asked for, or ValueError
    saying why the reply is not one."""
    if request.get("describe"):
        if not isinstance(reply.get("tools"), list) or any(not isinstance(t, dict) for t in reply["tools"]):
            raise ValueError("the environment described its tools in a form that is not a list of objects")
        return {"tools": reply["tools"]}
    if "observation" not in reply:
        raise ValueError("the environment's reply has no observation")
    _text(reply["observation"], "the observation reset gave", optional=True)
    checked: dict[str, Any] = {"observation": reply["observation"]}
    if request.get("call") is not None:
        outcomes = [key for key in ("result", "error") if key in reply]
        if len(outcomes) != 1:
            raise ValueError("the environment's reply to a tool call holds neither a result nor an error, or both")
        _text(reply[outcomes[0]], f"the tool's {outcomes[0]}", optional=False)
        checked[outcomes[0]] = reply[outcomes[0]]
    if request.get("reward"):
        if "reward" not in reply:
            raise ValueError("the environment's reply has no reward")
        checked["reward"] = check_scores([reply["reward"]], 1)[0]
        if checked["reward"] is None:
            raise ValueError("get_reward returned None, not a number")
    return checked


def _judge_step(request: dict[str, Any], reply: dict[str, Any], items: int, seconds: float) -> CallResult:
    try:
        checked = check_step(request, reply)
    except ValueError as exc:
        return CallResult(Outcome.INVALID, None, str(exc), items, seconds)
    return CallResult(Outcome.OK, None, "", items, seconds, reply=checked)


def _make_readable(code: Path) -> None:
    """The copy is read by the sandbox's unprivileged user; the folder above it stays private to this user."""
    if not code.is_dir() or code.is_symlink():
        raise BadInput(f"{code} is not a folder of code")
    os.chmod(code, 0o755)
    for root, folders, files in os.walk(code):
        for name in folders:
            os.chmod(Path(root) / name, 0o755)
        for name in files:
            os.chmod(Path(root) / name, 0o644)


def _settle(worker: _Worker) -> None:
    """Give a worker whose output just closed a moment to be reaped, so that its exit status can be reported."""
    try:
        worker.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
