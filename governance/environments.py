"""A multi-turn environment as a governed asset: a folder of Python with `environment.toml` declaring a class in the
shape TRL's `environment_factory` takes (a `reset(**row)` that may return an observation, public methods the model
calls as tools, and `get_reward()` scoring the episode), its dependencies, and golden episodes (`golden.jsonl`: reset
arguments, the tool calls to make with the result each must give, and the reward the episode must end with).

Like a reward, the folder is registered under its digest and approved at its gate on what forgegov sees when it
replays the golden episodes in the sandbox from a verified copy of the registered bytes; the class never runs in
forgegov's or the trainer's process (`loading/environments.py` hands training a stand-in that steps it in the
sandbox). An environment must replay: the same reset arguments and calls give the same results and reward, which is
what lets a run's episodes be re-scored with the approved code.
"""

from __future__ import annotations

import keyword
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgegov.governance.code_assets import (
    DECLARATION_VERSION,
    DeclarationError,
    golden_lines,
    installed_versions,
    read_declared,
)
from forgegov.governance.sandbox.isolation import CodeKind, SandboxLimits
from forgegov.governance.sandbox.pool import CallResult, Sandbox

DECLARATION = "environment.toml"
MAX_GOLDEN = 200
MAX_TURNS = 32
# Bumped whenever how golden episodes are replayed changes, so that evidence says which procedure produced it.
GOLDEN_PROCEDURE = 1
TOOL_TYPES = frozenset({"integer", "number", "string", "boolean"})
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_RESERVED_COLUMNS = frozenset({"environment"})  # TRL's column choosing among several environments
_NOT_TOOLS = frozenset({"reset", "get_reward"})
MAX_TOOLS = 32
_SECTION_RE = re.compile(r"^\s*(Args|Arguments|Parameters|Returns?|Raises|Yields|Examples?|Notes?)\s*:", re.M | re.I)
_CHOICES_RE = re.compile(r"\(\s*choices\s*:[^)]*\)", re.I)


class EnvironmentDeclarationError(DeclarationError):
    """An environment folder is unreadable or its declaration invalid, or the class offers tools the trainer cannot
    present; the message names what and what it must be."""


@dataclass(frozen=True)
class GoldenEpisode:
    reset: dict[str, Any]
    observation: str | None  # what reset must return; absent from the file means "not checked"
    checks_observation: bool
    calls: tuple[dict[str, Any], ...]  # {tool, arguments, result} or {tool, arguments, error}
    expected: float | None  # the reward; None: the episode has none to check (it failed after these calls)


@dataclass(frozen=True)
class EnvironmentDeclaration:
    version: int
    entry: str
    dependencies: tuple[str, ...]
    tolerance: float
    max_turns: int
    golden: tuple[GoldenEpisode, ...]

    def to_document(self) -> dict[str, Any]:
        return {"version": self.version, "entry": self.entry, "dependencies": list(self.dependencies),
                "tolerance": self.tolerance, "max_turns": self.max_turns, "golden_episodes": len(self.golden)}


@dataclass(frozen=True)
class ToolParameter:
    name: str
    type: str
    required: bool


def _plain(text: str, limit: int = 500) -> str:
    """One line of prose: what the model reads, with nothing transformers' docstring parser would take for
    structure (a section header, a `(choices: ...)` enum)."""
    return " ".join(_CHOICES_RE.sub("", text).split())[:limit]


@dataclass(frozen=True)
class Tool:
    """One method the model may call, as the sandboxed class described it, checked here."""

    name: str
    doc: str
    parameters: tuple[ToolParameter, ...]

    def _arguments_section(self) -> str:
        found = re.search(r"^\s*(Args|Arguments)\s*:\s*$", self.doc, re.M | re.I)
        if found is None:
            return ""
        rest = self.doc[found.end():]
        following = _SECTION_RE.search(rest)
        return rest[:following.start()] if following else rest

    @property
    def docstring(self) -> str:
        """The docstring the trainer gives the tool's method, from which transformers makes the schema the model
        is shown: the author's summary and parameter descriptions, each reduced to plain prose, in one layout."""
        header = _SECTION_RE.search(self.doc)
        summary = _plain(self.doc[:header.start()] if header else self.doc) or self.name
        if not self.parameters:
            return summary
        section, lines = self._arguments_section(), []
        for parameter in self.parameters:
            found = re.search(rf"^\s*{re.escape(parameter.name)}\s*(?:\([^)]*\))?\s*:\s*(.+)$", section, re.M)
            lines.append(f"    {parameter.name}: {(_plain(found.group(1)) if found else '') or 'the ' + parameter.name}")
        return "\n".join([summary, "", "Args:", *lines])

    def to_document(self) -> dict[str, Any]:
        return {"name": self.name, "docstring": self.docstring,
                "parameters": {p.name: {"type": p.type, "required": p.required} for p in self.parameters}}


def _call(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not {"tool", "arguments"} <= value.keys() \
            or len(value.keys() & {"result", "error"}) != 1 \
            or not value.keys() <= {"tool", "arguments", "result", "error"}:
        raise EnvironmentDeclarationError(f"{where} must hold tool, arguments and either result or error")
    if not isinstance(value["tool"], str) or not _NAME_RE.match(value["tool"]):
        raise EnvironmentDeclarationError(f"{where}: tool must name a method")
    if not isinstance(value["arguments"], dict) or any(not _NAME_RE.match(str(k)) for k in value["arguments"]):
        raise EnvironmentDeclarationError(f"{where}: arguments must be an object of parameter names")
    outcome = "result" if "result" in value else "error"
    if not isinstance(value[outcome], str):
        raise EnvironmentDeclarationError(f"{where}: {outcome} must be the text the tool gives")
    return dict(value)


def _golden(path: Path, max_turns: int) -> tuple[GoldenEpisode, ...]:
    episodes: list[GoldenEpisode] = []
    allowed = {"reset", "observation", "calls", "expected"}
    for where, document in golden_lines(path, EnvironmentDeclarationError, "episodes", MAX_GOLDEN):
        if not {"reset", "calls", "expected"} <= document.keys() or not document.keys() <= allowed:
            raise EnvironmentDeclarationError(f"{where} must hold reset, calls, expected and optionally observation, "
                                              "nothing else")
        reset = document["reset"]
        if not isinstance(reset, dict) or any(not _NAME_RE.match(str(k)) or k in _RESERVED_COLUMNS for k in reset):
            raise EnvironmentDeclarationError(f"{where}: reset must be an object of dataset columns (the row TRL "
                                              "passes to reset), not named environment")
        calls = document["calls"]
        if not isinstance(calls, list) or len(calls) > max_turns:
            raise EnvironmentDeclarationError(f"{where}: calls must be a list of at most max_turns ({max_turns}) "
                                              "tool calls")
        expected = document["expected"]
        if isinstance(expected, bool) or not isinstance(expected, (int, float)):
            raise EnvironmentDeclarationError(f"{where}: expected must be the number get_reward returns")
        observation = document.get("observation")
        if observation is not None and not isinstance(observation, str):
            raise EnvironmentDeclarationError(f"{where}: observation must be the text reset returns, or null")
        episodes.append(GoldenEpisode(reset, observation, "observation" in document,
                                      tuple(_call(c, f"{where}: call {n}") for n, c in enumerate(calls, 1)),
                                      float(expected)))
    return tuple(episodes)


def read_declaration(folder: Path) -> EnvironmentDeclaration:
    """The declaration of the environment in `folder`, validated, with its golden episodes."""
    declared = read_declared(folder, DECLARATION, frozenset({"max_turns"}), "module:Class",
                             EnvironmentDeclarationError)
    max_turns = declared.document.get("max_turns", 8)
    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or not 1 <= max_turns <= MAX_TURNS:
        raise EnvironmentDeclarationError(f"{DECLARATION}: max_turns must be a whole number from 1 to {MAX_TURNS}, "
                                          f"not {max_turns!r}")
    return EnvironmentDeclaration(DECLARATION_VERSION, declared.entry, declared.dependencies, declared.tolerance,
                                  max_turns, _golden(declared.golden, max_turns))


def check_tools(described: Any) -> tuple[Tool, ...]:
    """The tools the sandboxed class described, or EnvironmentDeclarationError: what the trainer turns into methods
    the model can call must be plain names and JSON-typed parameters, not whatever the code says."""
    if not isinstance(described, list) or not described:
        raise EnvironmentDeclarationError("the environment offers no tool: give its class at least one public method "
                                          "besides reset and get_reward")
    if len(described) > MAX_TOOLS:
        raise EnvironmentDeclarationError(f"the environment offers {len(described)} tools; at most {MAX_TOOLS}")
    tools: list[Tool] = []
    for entry in described:
        if not isinstance(entry, dict) or not isinstance(entry.get("parameters"), list) \
                or any(not isinstance(p, dict) for p in entry["parameters"]):
            raise EnvironmentDeclarationError("the environment described a tool in a form that is not a name, "
                                              "parameters and a docstring")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise EnvironmentDeclarationError(f"the environment offers a tool named {str(name)[:80]!r}; tool names are "
                                              "identifiers of at most 64 characters")
        # The trainer's stand-in class gets one method per tool: these names are its own.
        if name in _NOT_TOOLS or name in {t.name for t in tools}:
            raise EnvironmentDeclarationError(f"the environment offers a tool named {name}, which is reserved or "
                                              "offered twice")
        parameters: list[ToolParameter] = []
        for parameter in entry["parameters"]:
            pname, ptype = parameter.get("name"), parameter.get("type")
            plain = isinstance(pname, str) and _NAME_RE.match(pname) and pname != "self" and not keyword.iskeyword(pname)
            if not plain or pname in {p.name for p in parameters} \
                    or parameter.get("kind") not in ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY"):
                raise EnvironmentDeclarationError(f"tool {name} has a parameter {str(pname)[:80]!r} the model cannot "
                                                  "name (use plain named parameters, no *args or **kwargs)")
            if ptype not in TOOL_TYPES:
                raise EnvironmentDeclarationError(f"parameter {pname} of tool {name} is typed {str(ptype)[:80]}; "
                                                  f"annotate it as one of int, float, str, bool")
            parameters.append(ToolParameter(pname, ptype, parameter.get("required") is True))
        doc = entry.get("doc")
        if not isinstance(doc, str) or not doc.strip():
            raise EnvironmentDeclarationError(f"tool {name} has no docstring: the model is shown it as the tool's "
                                              "description")
        tools.append(Tool(name, doc[:4000], tuple(parameters)))
    return tuple(tools)


def describe(sandbox: Sandbox) -> tuple[Tool, ...] | CallResult:
    """The tools of the environment running in `sandbox`, checked; or the failed call."""
    result = sandbox.request({"describe": True})
    if not result.ok or result.reply is None:
        return result
    return check_tools(result.reply["tools"])


def step_request(episode: str, reset: dict[str, Any], history: list[dict[str, Any]], *,
                 observation: str | None | bool = False, call: dict[str, Any] | None = None,
                 reward: bool = False) -> dict[str, Any]:
    """One request to the harness: the episode (named, with its reset arguments and the calls so far, each with the
    result it gave), and what to do next. `observation`, once known, is checked when the episode is replayed."""
    body: dict[str, Any] = {"episode": episode, "reset": reset, "history": history, "call": call, "reward": reward}
    if observation is not False:
        body["observation"] = observation
    return body


def _episode_failure(index: int, result: CallResult, at: str) -> dict[str, Any]:
    return {"episode": index + 1, "at": at, "outcome": result.outcome.value,
            "detail": result.detail.split("\n", 1)[0][:300]}


def replay_episode(sandbox: Sandbox, index: int, episode: GoldenEpisode, tolerance: float) -> dict[str, Any] | None:
    """One golden (or recorded) episode stepped in the sandbox: None when every result and the reward are as
    expected, else what differed first."""
    name = f"replay-{index + 1}-{uuid.uuid4().hex}"
    started = sandbox.request(step_request(name, episode.reset, []))
    if not started.ok or started.reply is None:
        return _episode_failure(index, started, "reset")
    if episode.checks_observation and started.reply["observation"] != episode.observation:
        return {"episode": index + 1, "at": "reset", "outcome": "differs", "expected": episode.observation,
                "got": started.reply["observation"]}
    history: list[dict[str, Any]] = []
    for number, call in enumerate(episode.calls, 1):
        request = {"tool": call["tool"], "arguments": call["arguments"]}
        result = sandbox.request(step_request(name, episode.reset, history, observation=started.reply["observation"],
                                              call=request))
        if not result.ok or result.reply is None:
            return _episode_failure(index, result, f"call {number}")
        got = {key: result.reply[key] for key in ("result", "error") if key in result.reply}
        wanted = {key: call[key] for key in ("result", "error") if key in call}
        if got != wanted:
            return {"episode": index + 1, "at": f"call {number} ({call['tool']})", "outcome": "differs",
                    "expected": wanted, "got": got}
        history.append({**request, **got})
    if episode.expected is None:
        return None
    ended = sandbox.request(step_request(name, episode.reset, history, observation=started.reply["observation"],
                                         reward=True))
    if not ended.ok or ended.reply is None:
        return _episode_failure(index, ended, "get_reward")
    if abs(ended.reply["reward"] - episode.expected) > tolerance:
        return {"episode": index + 1, "at": "get_reward", "outcome": "differs", "expected": episode.expected,
                "got": ended.reply["reward"]}
    return None


def golden_evidence(code: Path, limits: SandboxLimits, hidden: list[Path]) -> dict[str, Any]:
    """What the environment gate reads: the tools the class offers (as the trainer will present them) and its golden
    episodes replayed one by one in the sandbox against `code`, a private verified copy of the registered folder.
    No timings, since approvals sign a digest of it."""
    declaration = read_declaration(code)
    failures: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    problem = None
    with Sandbox(code, declaration.entry, limits=limits, hidden=hidden, kind=CodeKind.ENVIRONMENT) as sandbox:
        try:
            described = describe(sandbox)
        except EnvironmentDeclarationError as exc:
            described, problem = None, exc.message
        if isinstance(described, CallResult):
            problem = f"{described.outcome.value}: {described.detail.split(chr(10), 1)[0][:300]}"
        elif described is not None:
            # No episode is replayed when the tools cannot be offered: the policy denies on that alone.
            tools = [t.to_document() for t in described]
            for index, episode in enumerate(declaration.golden):
                found = replay_episode(sandbox, index, episode, declaration.tolerance)
                if found is not None:
                    failures.append(found)
    # How often the golden episodes call each offered tool: one they never call was approved on no evidence.
    calls = Counter(call["tool"] for episode in declaration.golden for call in episode.calls)
    return {"procedure": GOLDEN_PROCEDURE, "entry": declaration.entry, "tolerance": declaration.tolerance,
            "max_turns": declaration.max_turns, "dependencies": installed_versions(declaration.dependencies),
            "limits": {"timeout_s": limits.timeout_s, "memory_mb": limits.memory_mb},
            "tools": {"offered": tools, "problem": problem,
                      "golden_calls": {tool["name"]: calls.get(tool["name"], 0) for tool in tools}},
            "golden": {"episodes": len(declaration.golden),
                       "reproduced": 0 if problem else len(declaration.golden) - len(failures),
                       "failures": failures}}
