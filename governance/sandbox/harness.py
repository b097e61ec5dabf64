"""Runs inside the sandbox, never imported by forgegov: it imports the reward's entry point from /code and answers
one JSON line per request on the protocol descriptor, until its input closes.

Standard library only, and nothing from forgegov (forgegov is not even visible in the sandbox). Whatever the code
prints goes to stderr, so that it cannot forge a reply. The reply is not trusted by the parent either: a score's
type, count and finiteness are checked outside (sandbox.pool).
"""

import importlib
import json
import os
import sys
import traceback

CODE = "/code"
MESSAGE_CHARS = 2000


def _reply(out, document):
    # default=repr: an object that is not JSON (a numpy array, a generator) arrives as a string, which the parent
    # refuses as a score, instead of killing the worker with a TypeError here.
    out.write(json.dumps(document, default=repr) + "\n")
    out.flush()


def _failure(exc):
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-4:])
    return {"ok": False, "error": type(exc).__name__, "message": str(exc)[:MESSAGE_CHARS],
            "trace": trace[-MESSAGE_CHARS:]}


def _reap():
    # Children the code left behind are killed by the parent between calls; until they are waited for they still
    # count against the sandbox's process limit.
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main():
    module_name, _, function_name = sys.argv[1].partition(":")
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.path.insert(0, CODE)
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        if not callable(function):
            raise TypeError(f"{sys.argv[1]} is not callable")
    except BaseException as exc:  # noqa: BLE001 - whatever the import does is the code's failure to report
        _reply(out, {"ready": False, **_failure(exc)})
        return
    _reply(out, {"ready": True})
    for line in sys.stdin:
        _reap()
        request = json.loads(line)
        try:
            scores = function(**request["kwargs"])
            if isinstance(scores, tuple):
                scores = list(scores)
            reply = {"ok": True, "id": request["id"], "scores": scores}
        except BaseException as exc:  # noqa: BLE001 - a reward's exception is a scored call's outcome, not ours
            reply = {"id": request["id"], **_failure(exc)}
        _reply(out, reply)


if __name__ == "__main__":
    main()
