"""A governed environment as TRL's `environment_factory` sees it: a class with `reset` and one method per tool,
whose every step runs in the sandbox (`governance/loading/environments.py`), never in the trainer's process.

The class is built from the tools the sandboxed code described and forgegov checked, with signatures, types and
docstrings TRL turns into the tool schema the model is shown. Each instance holds one episode at a time: its reset
arguments, the observation, and every call with its result, which is what the harness replays when the worker that
held the episode is gone, and what the rollouts file keeps so that a reviewer can replay the run's episodes with the
approved code. A call that fails in the sandbox (timeout, crash, memory) is shown to the model as a tool error, as
TRL shows a tool's own exception, and ends the episode's claim to a reward: it is scored as the recipe says.
"""

from __future__ import annotations

import inspect
import uuid
from typing import Any

from forgegov.foundation.errors import BadInput
from forgegov.governance.environments import Tool, step_request
from forgegov.governance.loading.environments import LoadedEnvironment
from forgegov.governance.sandbox.pool import CallResult

PYTHON_TYPES = {"integer": int, "number": float, "string": str, "boolean": bool}


class ToolRefused(Exception):
    """What the model is shown (as a tool error) when a call cannot go to the environment."""


class Episode:
    """One rollout's episode: started by `reset`, stepped by tool calls, ended by its reward."""

    def __init__(self, loaded: LoadedEnvironment, reset: dict[str, Any]) -> None:
        self.loaded = loaded
        self.name = uuid.uuid4().hex
        self.reset = reset
        self.observation: str | None = None
        self.calls: list[dict[str, Any]] = []  # each {tool, arguments, result | error}, as the environment gave it
        self.refused: list[dict[str, Any]] = []  # calls the model made that never reached the environment
        self.failure: CallResult | None = None  # the first call that failed in the sandbox

    def _send(self, **what: Any) -> CallResult:
        request = step_request(self.name, self.reset, self.calls, observation=self.observation, **what) \
            if what else step_request(self.name, self.reset, [])
        return self.loaded.sandbox.request(request)

    def start(self) -> str | None:
        result = self._send()
        if not result.ok or result.reply is None:
            self.failure = self.failure or result
            return None
        self.observation = result.reply["observation"]
        return self.observation

    def call(self, tool: Tool, arguments: dict[str, Any]) -> str:
        expected = {p.name for p in tool.parameters}
        if unknown := sorted(set(arguments) - expected):
            raise self._refuse(tool, arguments, f"{tool.name} takes no argument {', '.join(unknown)}")
        if missing := sorted(p.name for p in tool.parameters if p.required and p.name not in arguments):
            raise self._refuse(tool, arguments, f"{tool.name} needs {', '.join(missing)}")
        if self.failure is not None:
            raise self._refuse(tool, arguments, "the environment failed earlier in this episode")
        if len(self.calls) >= self.loaded.declaration.max_turns:
            raise self._refuse(tool, arguments, f"this episode has made its {self.loaded.declaration.max_turns} "
                                                "tool calls")
        request = {"tool": tool.name, "arguments": dict(arguments)}
        result = self._send(call=request)
        if not result.ok or result.reply is None:
            self.failure = result
            raise ToolRefused(f"the environment failed ({result.outcome.value})")
        got = {key: result.reply[key] for key in ("result", "error") if key in result.reply}
        self.calls.append({**request, **got})
        if "error" in got:
            raise ToolRefused(got["error"])
        return str(got["result"])

    def _refuse(self, tool: Tool, arguments: dict[str, Any], why: str) -> ToolRefused:
        self.refused.append({"tool": tool.name, "arguments": arguments, "why": why, "after_calls": len(self.calls)})
        return ToolRefused(why)

    def finish(self) -> float | None:
        """The episode's reward, or None when it failed (then `failure` says how), now or earlier."""
        if self.failure is not None:
            return None
        result = self._send(reward=True)
        if not result.ok or result.reply is None:
            self.failure = result
            return None
        return float(result.reply["reward"])

    def to_document(self, reward: float | None) -> dict[str, Any]:
        failure = None if self.failure is None else {"outcome": self.failure.outcome.value,
                                                    "detail": self.failure.detail}
        return {"reset": self.reset, "observation": self.observation, "calls": self.calls, "refused": self.refused,
                "reward": reward, "failure": failure}


def _method(tool: Tool) -> Any:
    def method(self: Any, **arguments: Any) -> str:
        return self._episode_call(tool, arguments)

    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, annotation=PYTHON_TYPES[p.type],
                                     **({} if p.required else {"default": None}))
                   for p in tool.parameters]
    method.__name__ = method.__qualname__ = tool.name
    method.__doc__ = tool.docstring
    method.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = {**{p.name: PYTHON_TYPES[p.type] for p in tool.parameters}, "return": str}
    return method


def environment_class(loaded: LoadedEnvironment, exclude: frozenset[str]) -> type:
    """The class TRL instantiates once per rollout (and resets per episode); `exclude` are dataset columns that are
    not the environment's to see."""

    def __init__(self: Any) -> None:
        self._episode: Episode | None = None

    def reset(self: Any, **row: Any) -> str | None:
        self._episode = Episode(loaded, {k: v for k, v in row.items() if k not in exclude})
        return self._episode.start()

    def _episode_call(self: Any, tool: Tool, arguments: dict[str, Any]) -> str:
        if self._episode is None:
            raise ToolRefused("the episode has not started")
        return self._episode.call(tool, {k: v for k, v in arguments.items() if v is not None})

    namespace: dict[str, Any] = {"__init__": __init__, "reset": reset, "_episode_call": _episode_call,
                                 "__doc__": f"{loaded.label}, stepped in the sandbox"}
    for tool in loaded.tools:
        namespace[tool.name] = _method(tool)
    name = "".join(c if c.isalnum() else "_" for c in loaded.label.removeprefix("environment/"))[:64]
    cls = type(name or "Environment", (), namespace)
    _check_schemas(cls, loaded)
    return cls


def _check_schemas(cls: type, loaded: LoadedEnvironment) -> None:
    """Each tool turned into the schema the model will be shown, now, so that one transformers cannot read stops
    the run before any compute rather than in TRL's first step."""
    from transformers.utils import get_json_schema
    from transformers.utils.chat_template_utils import DocstringParsingException, TypeHintParsingException

    for tool in loaded.tools:
        try:
            get_json_schema(getattr(cls, tool.name))
        except (DocstringParsingException, TypeHintParsingException, ValueError) as exc:
            raise BadInput(f"tool {tool.name} of {loaded.label} cannot be shown to a model as a schema: {exc}",
                           hint="fix its docstring or annotations and register a new version") from exc


def episode_of(instance: Any) -> Episode | None:
    """The episode an instance of `environment_class` holds (TRL hands the instances to reward functions)."""
    return getattr(instance, "_episode", None)


def tool_parsing(tokenizer: Any, base_label: str) -> None:
    """Makes sure TRL can render and parse the base's tool calls before any compute: its chat template must render a
    tool-calling conversation, and the tokenizer must say how a reply's tool calls are parsed (the reference family's
    does; others have it set by TRL for the templates it knows)."""
    from trl.chat_template_utils import add_response_schema, supports_tool_calling

    from forgegov.training.reference.tokenizer import CHAT_TEMPLATE, RESPONSE_TEMPLATE

    if not supports_tool_calling(tokenizer):
        raise BadInput(f"the chat template of {base_label} cannot render tool calls, so its model cannot act in an "
                       "environment", hint="start from a checkpoint whose chat template renders assistant tool_calls "
                                           "and tool messages")
    if getattr(tokenizer, "response_template", None) is not None or getattr(tokenizer, "response_schema", None):
        return
    if tokenizer.chat_template == CHAT_TEMPLATE:
        tokenizer.response_template = RESPONSE_TEMPLATE
        return
    try:
        add_response_schema(tokenizer)
    except ValueError as exc:
        raise BadInput(f"the tokenizer of {base_label} does not say how tool calls are parsed from a reply",
                       hint="save a response_template with the tokenizer (transformers' response parsing), then "
                            "register the checkpoint again") from exc
