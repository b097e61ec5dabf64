"""Runs inside the sandbox, never imported by forgegov: it imports the entry point from /code and answers one JSON
line per request on the protocol descriptor, until its input closes.

Two kinds of code run here. A reward ("module:function") is called with each request's keyword arguments. An
environment ("module:Class") is a multi-turn simulator: each request names an episode by its reset arguments and the
tool calls so far, and asks for one more step (a tool call, or its reward). Live instances are kept by episode, so a
step usually costs one tool call; an episode this worker does not hold at that point (a replaced worker, an evicted
one) is rebuilt by replaying its calls, each of which must give the result recorded for it, since a simulator that
does not replay cannot be re-scored either.

Standard library only, and nothing from forgegov (forgegov is not even visible in the sandbox). Whatever the code
prints goes to stderr, so that it cannot forge a reply. The reply is not trusted by the parent either: a score's
type, count and finiteness are checked outside (sandbox.pool).
"""

import collections
import importlib
import inspect
import json
import math
import os
import sys
import traceback
import typing

CODE = "/code"
MESSAGE_CHARS = 2000
EPISODES_KEPT = 1024  # live environment instances per worker; older ones are replayed when needed again
ARGUMENT_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


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


class NotReplayed(Exception):
    """A replayed call gave another result than the one recorded for it."""


def _tools(cls):
    """What the environment offers the model: its public methods but reset and get_reward (as TRL reads a class),
    each with its parameters' JSON types and its docstring, for the trainer to present them."""
    tools = []
    for name, method in inspect.getmembers(cls, predicate=inspect.isfunction):
        if name.startswith("_") or name in ("reset", "get_reward"):
            continue
        hints = typing.get_type_hints(method)
        parameters = []
        for parameter in list(inspect.signature(method).parameters.values())[1:]:
            annotation = hints.get(parameter.name)
            parameters.append({"name": parameter.name, "type": ARGUMENT_TYPES.get(annotation, repr(annotation)),
                               "required": parameter.default is inspect.Parameter.empty,
                               "kind": parameter.kind.name})
        tools.append({"name": name, "doc": inspect.getdoc(method) or "", "parameters": parameters})
    return tools


class Episodes:
    def __init__(self, cls, tools):
        self.cls = cls
        self.tools = {tool["name"] for tool in tools}
        self.live = collections.OrderedDict()  # episode -> (instance, observation, the calls made so far)

    def _call(self, instance, call):
        if call["tool"] not in self.tools:
            # Only what the class offers as a tool is ever called: not reset, get_reward or any other attribute.
            return {"error": f"no tool named {str(call['tool'])[:100]}"}
        try:
            return {"result": str(getattr(instance, call["tool"])(**call["arguments"]))}
        except Exception as exc:  # noqa: BLE001 - a tool's exception is what the model is shown, as TRL does
            return {"error": f"{type(exc).__name__}: {exc}"[:MESSAGE_CHARS]}

    def _at(self, request):
        """The episode's instance after its recorded calls, and the observation its reset gave."""
        episode, history = request["episode"], request["history"]
        kept = self.live.get(episode)
        # A live episode is used only when the request describes it exactly as it went here; anything else is
        # rebuilt, so a history is never believed without being replayed.
        if kept is not None and kept[2] == history and request.get("observation", kept[1]) == kept[1]:
            self.live.move_to_end(episode)
            return kept[0], kept[1]
        instance = self.cls()
        observation = instance.reset(**request["reset"])
        observation = None if observation is None else str(observation)
        if "observation" in request and observation != request["observation"]:
            raise NotReplayed(f"episode {episode} was reset to {observation!r}, not the recorded "
                              f"{request['observation']!r}")
        for index, call in enumerate(history):
            again = self._call(instance, call)
            recorded = {key: call[key] for key in ("result", "error") if key in call}
            if again != recorded:
                raise NotReplayed(f"call {index + 1} of episode {episode} ({call['tool']}) gave {again} when "
                                  f"replayed, not the recorded {recorded}")
        return instance, observation

    def step(self, request):
        instance, observation = self._at(request)
        reply = {"observation": observation}
        calls = list(request["history"])
        if request.get("call") is not None:
            outcome = self._call(instance, request["call"])
            reply.update(outcome)
            calls.append({"tool": request["call"]["tool"], "arguments": request["call"]["arguments"], **outcome})
        if request.get("reward"):
            value = instance.get_reward()
            reply["reward"] = value if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value) else repr(value)
        self.live[request["episode"]] = (instance, reply["observation"], calls)
        self.live.move_to_end(request["episode"])
        while len(self.live) > EPISODES_KEPT:
            self.live.popitem(last=False)
        return reply


def _load(kind, entry):
    module_name, _, name = entry.partition(":")
    found = getattr(importlib.import_module(module_name), name)
    if kind == "environment":
        if not inspect.isclass(found):
            raise TypeError(f"{entry} is not a class")
        tools = _tools(found)
        return Episodes(found, tools), tools
    if not callable(found):
        raise TypeError(f"{entry} is not callable")
    return found, None


def _answer(kind, code, tools, request):
    if kind == "reward":
        scores = code(**request["kwargs"])
        return {"scores": list(scores) if isinstance(scores, tuple) else scores}
    if request.get("describe"):
        return {"tools": tools}
    return code.step(request)


def main():
    kind, entry = sys.argv[1], sys.argv[2]
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.path.insert(0, CODE)
    try:
        code, tools = _load(kind, entry)
    except BaseException as exc:  # noqa: BLE001 - whatever the import does is the code's failure to report
        _reply(out, {"ready": False, **_failure(exc)})
        return
    _reply(out, {"ready": True})
    for line in sys.stdin:
        _reap()
        request = json.loads(line)
        try:
            reply = {"ok": True, "id": request["id"], **_answer(kind, code, tools, request)}
        except BaseException as exc:  # noqa: BLE001 - the code's exception is a call's outcome, not ours
            reply = {"id": request["id"], **_failure(exc)}
        _reply(out, reply)


if __name__ == "__main__":
    main()
