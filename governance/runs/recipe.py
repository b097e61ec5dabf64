"""The run spec ("recipe"): one TOML file saying what a training run will do, typed and validated on load.

A recipe names the base checkpoint, the method, the datasets and how they are mixed, the seed, the schedule and the
devices. It is checked here for *shape* only: every field present, of the right type, in range, and nothing else.
Two things are deliberately left to the run gate that comes later:

* references are checked for SUBJECT syntax (`[kind/]name[@version]` or `sha256:<at least 12 hex>`) but not resolved
  against a store: whether they exist, are approved, and are the kind and stage they should be is the gate's job;
* policy thresholds (a floor on the replay share, a ceiling on the proprietary share, which methods a stage allows)
  are not checked here: OPA decides those from `Recipe.to_document()`, `proprietary_share` and `replay_share`.

Unknown keys are refused everywhere, so that a misspelt key cannot silently fall back to a default. Only the optional
fields listed in each section have defaults. `to_document()` is the canonical form (every field, defaults filled in,
enums as their values, `lora = false` when off) that the gate input and the lineage record carry, and
`recipe_digest()` hashes it, so TOML key order and formatting do not change the digest. The order of the mixture's
sources does: interleaving draws from them in that order, so a reordered mixture is a different data stream.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from forgegov.foundation.canonical import digest_of
from forgegov.foundation.errors import BadInput, UnreadablePath

RECIPE_VERSION = 1
SHARE_TOLERANCE = 1e-6

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}\Z")  # the registry's asset names
# Versions are bounded so that no reference parses into a number the store cannot hold.
_REF_RE = re.compile(r"^(?:(?P<kind>[a-z]+)/)?(?P<name>[a-z0-9][a-z0-9._-]{0,127})"
                     r"(?:@(?P<version>[1-9][0-9]{0,8}))?\Z")
_DIGEST_REF_RE = re.compile(r"^sha256:[0-9a-f]{12,64}\Z")


class RecipeError(BadInput):
    """A recipe is unreadable or invalid; the message names the field and what it must be."""


class Method(StrEnum):
    CPT = "cpt"
    SFT = "sft"
    GRPO = "grpo"  # reinforcement fine-tuning against approved reward functions, run in the sandbox


class RewardFailure(StrEnum):
    """What a GRPO run does when a reward call fails (times out, crashes, returns no scores)."""

    FAIL = "fail"  # stop the run
    ZERO = "zero"  # score the batch zero and count it, stopping past max_reward_failures


class SourceRole(StrEnum):
    PROPRIETARY = "proprietary"
    GENERAL = "general"
    REPLAY = "replay"  # instruction/safety data kept in the mixture so the base's behaviour is not forgotten


class Stopping(StrEnum):
    """`datasets.interleave_datasets`' stopping strategies."""

    FIRST_EXHAUSTED = "first_exhausted"
    ALL_EXHAUSTED = "all_exhausted"


class Decay(StrEnum):
    COSINE = "cosine"
    LINEAR = "linear"
    CONSTANT = "constant"


class DeviceKind(StrEnum):
    CPU = "cpu"
    CUDA = "cuda"


def _fail(where: str, problem: str, hint: str | None = None) -> RecipeError:
    return RecipeError(f"recipe field {where} {problem}", hint=hint)


# A recipe is hashed as canonical JSON (RFC 8785), whose numbers are exact only up to 2^53 - 1: a larger integer would
# register and then hash to something else than it says.
_MAX_EXACT_INT = 2**53 - 1


def _check_int(value: Any, where: str, *, minimum: int) -> int:
    # bool is an int in Python, but `max_steps = true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"must be an integer ≥ {minimum}, got {value!r}")
    if value < minimum:
        raise _fail(where, f"must be an integer ≥ {minimum}, got {value}")
    if value > _MAX_EXACT_INT:
        raise _fail(where, f"must be at most 2^53 - 1, where JSON numbers stop being exact, got {value}")
    return value


def _check_number(value: Any, where: str, requirement: str) -> float:
    """A finite int or float, as float; `requirement` is the range the caller checks, quoted when refused."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(where, f"must be a number {requirement}, got {value!r}")
    return float(value)


def _check_between(value: Any, where: str, low: float, high: float, *, above_low: bool = False) -> float:
    """A finite number from `low` (excluded when `above_low`) to `high`, as float."""
    requirement = f"in {'(' if above_low else '['}{low:g}, {high:g}]"
    number = _check_number(value, where, requirement)
    if number > high or number < low or (above_low and number == low):
        raise _fail(where, f"must be a number {requirement}, got {number:g}")
    return number


def _check_choice(enum: type[StrEnum], value: Any, where: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        choices = " | ".join(member.value for member in enum)
        raise _fail(where, f"must be one of {choices}, got {value!r}") from None


def _check_ref(value: Any, where: str, kind: str) -> str:
    """SUBJECT syntax only; `kind`, when the reference spells one, must be the one expected here."""
    usage = f"use {kind}/NAME@VERSION (or NAME@VERSION) or sha256:<at least 12 lowercase hex digits>"
    if not isinstance(value, str):
        raise _fail(where, f"must be a string reference, got {value!r}", hint=usage)
    if value.startswith("sha256:"):
        if not _DIGEST_REF_RE.match(value):
            raise _fail(where, f"is not a digest reference: {value!r}", hint=usage)
        return value
    found = _REF_RE.match(value)
    if not found:
        raise _fail(where, f"is not a reference: {value!r}", hint=usage)
    if found["kind"] and found["kind"] != kind:
        article = "an" if kind[0] in "aeiou" else "a"
        raise _fail(where, f"must name {article} {kind}, but {value!r} names a {found['kind']}", hint=usage)
    return value


@dataclass(frozen=True)
class BaseSpec:
    checkpoint: str

    def __post_init__(self) -> None:
        _check_ref(self.checkpoint, "base.checkpoint", "checkpoint")

    def to_document(self) -> dict:
        return {"checkpoint": self.checkpoint}


@dataclass(frozen=True)
class Source:
    dataset: str
    role: SourceRole
    share: float

    def __post_init__(self) -> None:
        _check_ref(self.dataset, "mixture.sources.dataset", "dataset")
        where = f"mixture.sources ({self.dataset})"
        object.__setattr__(self, "role", _check_choice(SourceRole, self.role, f"{where}.role"))
        share = _check_number(self.share, f"{where}.share", "in (0, 1]")
        if not 0 < share <= 1:
            raise _fail(f"{where}.share", f"must be a number in (0, 1], got {share}")
        object.__setattr__(self, "share", share)

    @property
    def identity(self) -> str:
        """The reference without an explicit `dataset/`, so that two spellings of one name count as one source."""
        return self.dataset.removeprefix("dataset/")

    def to_document(self) -> dict:
        return {"dataset": self.dataset, "role": self.role.value, "share": self.share}


@dataclass(frozen=True)
class Mixture:
    sources: tuple[Source, ...]
    stopping: Stopping = Stopping.FIRST_EXHAUSTED

    def __post_init__(self) -> None:
        sources = tuple(self.sources)
        if not sources:
            raise _fail("mixture.sources", "is empty", hint="add at least one [[mixture.sources]] table")
        if any(not isinstance(s, Source) for s in sources):
            raise _fail("mixture.sources", "must hold Source entries")
        seen: list[Source] = []
        for source in sources:
            for earlier in seen:
                if _same_dataset(earlier, source):
                    raise _fail("mixture.sources", f"names one dataset twice: {earlier.dataset!r} and "
                                f"{source.dataset!r}", hint="list each dataset once, with its whole share")
            seen.append(source)
        total = math.fsum(s.share for s in sources)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise _fail("mixture.sources", f"shares must sum to 1, they sum to {total:.9g}",
                        hint="adjust the share of each [[mixture.sources]] so that they add up to 1")
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "stopping", _check_choice(Stopping, self.stopping, "mixture.stopping"))

    def share_of(self, role: SourceRole) -> float:
        return math.fsum(s.share for s in self.sources if s.role is role)

    def to_document(self) -> dict:
        return {"sources": [s.to_document() for s in self.sources], "stopping": self.stopping.value}


def _same_dataset(a: Source, b: Source) -> bool:
    if a.dataset.startswith("sha256:") and b.dataset.startswith("sha256:"):
        # Two digest prefixes, one extending the other, can only name the same bytes.
        return a.dataset.startswith(b.dataset) or b.dataset.startswith(a.dataset)
    return a.identity == b.identity


@dataclass(frozen=True)
class LoraSpec:
    r: int
    alpha: float
    target_modules: tuple[str, ...]
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _check_int(self.r, "train.lora.r", minimum=1)
        alpha = _check_number(self.alpha, "train.lora.alpha", "> 0")
        if alpha <= 0:
            raise _fail("train.lora.alpha", f"must be a number > 0, got {alpha}")
        dropout = _check_number(self.dropout, "train.lora.dropout", "in [0, 1)")
        if not 0 <= dropout < 1:
            raise _fail("train.lora.dropout", f"must be a number in [0, 1), got {dropout}")
        modules = self.target_modules
        if (isinstance(modules, str) or not isinstance(modules, list | tuple) or not modules
                or any(not isinstance(m, str) or not m for m in modules) or len(set(modules)) != len(modules)):
            raise _fail("train.lora.target_modules", f"must be a non-empty list of distinct module names, got "
                        f"{modules!r}", hint='e.g. target_modules = ["q_proj", "v_proj"]')
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "dropout", dropout)
        object.__setattr__(self, "target_modules", tuple(modules))

    def to_document(self) -> dict:
        return {"r": self.r, "alpha": self.alpha, "dropout": self.dropout,
                "target_modules": list(self.target_modules)}


@dataclass(frozen=True)
class TrainSpec:
    max_steps: int
    batch_size: int
    seq_len: int
    learning_rate: float
    warmup_steps: int  # required: re-warming from a trained base is a choice to make, not a default to inherit
    decay: Decay = Decay.COSINE
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    lora: LoraSpec | None = None

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "seq_len"):
            _check_int(getattr(self, name), f"train.{name}", minimum=1)
        _check_int(self.warmup_steps, "train.warmup_steps", minimum=0)
        if self.warmup_steps >= self.max_steps:
            raise _fail("train.warmup_steps", f"must be below train.max_steps ({self.max_steps}), got "
                        f"{self.warmup_steps}")
        lr = _check_number(self.learning_rate, "train.learning_rate", "in (0, 1]")
        if not 0 < lr <= 1:
            raise _fail("train.learning_rate", f"must be a number in (0, 1], got {lr}")
        ratio = _check_number(self.min_lr_ratio, "train.min_lr_ratio", "in [0, 1]")
        if not 0 <= ratio <= 1:
            raise _fail("train.min_lr_ratio", f"must be a number in [0, 1], got {ratio}")
        weight_decay = _check_number(self.weight_decay, "train.weight_decay", "in [0, 1]")
        if not 0 <= weight_decay <= 1:
            raise _fail("train.weight_decay", f"must be a number in [0, 1], got {weight_decay}")
        grad_clip = _check_number(self.grad_clip, "train.grad_clip", "> 0")
        if grad_clip <= 0:
            raise _fail("train.grad_clip", f"must be a number > 0, got {grad_clip}")
        if self.lora is not None and not isinstance(self.lora, LoraSpec):
            raise _fail("train.lora", f"must be a LoraSpec or None, got {self.lora!r}")
        object.__setattr__(self, "decay", _check_choice(Decay, self.decay, "train.decay"))
        object.__setattr__(self, "learning_rate", lr)
        object.__setattr__(self, "min_lr_ratio", ratio)
        object.__setattr__(self, "weight_decay", weight_decay)
        object.__setattr__(self, "grad_clip", grad_clip)

    def to_document(self) -> dict:
        return {"max_steps": self.max_steps, "batch_size": self.batch_size, "seq_len": self.seq_len,
                "learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps, "decay": self.decay.value,
                "min_lr_ratio": self.min_lr_ratio, "weight_decay": self.weight_decay, "grad_clip": self.grad_clip,
                "lora": self.lora.to_document() if self.lora is not None else False}


@dataclass(frozen=True)
class RewardRef:
    """One reward a GRPO run optimises, with its weight in the sum TRL takes: registered reward code by reference
    (resolved and held to its approval by the run gate), or an external endpoint speaking the Nova reward contract,
    named by URL, the identity of who runs it and the scorer's version (which the policy allows or not)."""

    reward: str | None = None
    weight: float = 1.0
    endpoint: str | None = None
    identity: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        if (self.reward is None) == (self.endpoint is None):
            raise _fail("rewards", "entries name either reward (registered code) or endpoint (a URL), one of them",
                        hint='reward = "reward/NAME@VERSION", or endpoint = "https://...", identity and version')
        if self.reward is not None:
            _check_ref(self.reward, "rewards.reward", "reward")
            if self.identity is not None or self.version is not None:
                raise _fail(f"rewards ({self.reward})", "takes identity and version only with endpoint")
        else:
            _check_endpoint(self.endpoint, self.identity, self.version)
        object.__setattr__(self, "weight", _check_between(self.weight, f"rewards ({self.name}).weight", 0, 100,
                                                          above_low=True))

    @property
    def name(self) -> str:
        return self.reward.removeprefix("reward/") if self.reward is not None else str(self.endpoint)

    def to_document(self) -> dict:
        if self.reward is not None:
            return {"reward": self.reward, "weight": self.weight}
        return {"endpoint": self.endpoint, "identity": self.identity, "version": self.version, "weight": self.weight}


def _check_endpoint(url: Any, identity: Any, version: Any) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.username \
            or parts.password or parts.fragment:
        raise _fail("rewards.endpoint", f"must be an http(s) URL without credentials or fragment, got {url!r}")
    for name, value in (("identity", identity), ("version", version)):
        if not isinstance(value, str) or not value.strip() or len(value) > 128:
            raise _fail(f"rewards ({url}).{name}", f"must be a non-empty string (at most 128 characters), got "
                        f"{value!r}", hint="the policy allows endpoints by URL and identity; the version is recorded")


@dataclass(frozen=True)
class EnvironmentRef:
    """The multi-turn environment a GRPO run's model acts in (registered code, resolved and held to its approval by
    the run gate): its tools are offered to the model and its reward, with this weight, joins the [[rewards]]."""

    environment: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        _check_ref(self.environment, "environment.environment", "environment")
        object.__setattr__(self, "weight", _check_between(self.weight, "environment.weight", 0, 100, above_low=True))

    def to_document(self) -> dict:
        return {"environment": self.environment, "weight": self.weight}


@dataclass(frozen=True)
class RLSpec:
    """GRPO's own settings: the group of completions sampled per prompt and how they are sampled, the KL penalty,
    and what a failing reward call does."""

    num_generations: int
    max_completion_length: int
    temperature: float = 1.0
    beta: float = 0.0
    on_reward_failure: RewardFailure = RewardFailure.FAIL
    max_reward_failures: int = 0
    reward_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        _check_int(self.num_generations, "rl.num_generations", minimum=2)
        _check_int(self.max_completion_length, "rl.max_completion_length", minimum=1)
        _check_int(self.max_reward_failures, "rl.max_reward_failures", minimum=0)
        object.__setattr__(self, "on_reward_failure",
                           _check_choice(RewardFailure, self.on_reward_failure, "rl.on_reward_failure"))
        object.__setattr__(self, "temperature", _check_between(self.temperature, "rl.temperature", 0, 10,
                                                               above_low=True))
        object.__setattr__(self, "beta", _check_between(self.beta, "rl.beta", 0, 10))
        object.__setattr__(self, "reward_timeout_s", _check_between(self.reward_timeout_s, "rl.reward_timeout_s", 0,
                                                                    3600, above_low=True))

    def to_document(self) -> dict:
        return {"num_generations": self.num_generations, "max_completion_length": self.max_completion_length,
                "temperature": self.temperature, "beta": self.beta,
                "on_reward_failure": self.on_reward_failure.value, "max_reward_failures": self.max_reward_failures,
                "reward_timeout_s": self.reward_timeout_s}


@dataclass(frozen=True)
class DevicesSpec:
    kind: DeviceKind = DeviceKind.CPU
    count: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _check_choice(DeviceKind, self.kind, "devices.kind"))
        _check_int(self.count, "devices.count", minimum=1)

    def to_document(self) -> dict:
        return {"kind": self.kind.value, "count": self.count}


@dataclass(frozen=True)
class Recipe:
    name: str
    method: Method
    seed: int
    base: BaseSpec
    mixture: Mixture
    train: TrainSpec
    devices: DevicesSpec = field(default_factory=DevicesSpec)
    rewards: tuple[RewardRef, ...] = ()  # grpo only
    rl: RLSpec | None = None  # grpo only
    environment: EnvironmentRef | None = None  # grpo only
    version: int = RECIPE_VERSION

    def __post_init__(self) -> None:
        if type(self.version) is not int or self.version != RECIPE_VERSION:
            raise _fail("version", f"must be {RECIPE_VERSION}, got {self.version!r}",
                        hint=f"set version = {RECIPE_VERSION} (the only recipe format so far)")
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise _fail("name", f"{self.name!r} is invalid: use lowercase letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit (at most 128)")
        object.__setattr__(self, "method", _check_choice(Method, self.method, "method"))
        self._check_rl()
        _check_int(self.seed, "seed", minimum=0)
        if self.seed >= 2**32:
            raise _fail("seed", f"must be below 2**32, got {self.seed}")
        for attr, cls in (("base", BaseSpec), ("mixture", Mixture), ("train", TrainSpec), ("devices", DevicesSpec)):
            if not isinstance(getattr(self, attr), cls):
                raise _fail(attr, f"must be a {cls.__name__}")
        if self.method is Method.CPT and self.proprietary_share == 0:
            raise _fail("mixture.sources", "needs a proprietary source for method cpt",
                        hint='add a [[mixture.sources]] with role = "proprietary": continued pre-training '
                             "exists to teach the proprietary data")

    def _check_rl(self) -> None:
        rewards = tuple(self.rewards)
        if any(not isinstance(r, RewardRef) for r in rewards):
            raise _fail("rewards", "must hold RewardRef entries")
        if self.environment is not None and not isinstance(self.environment, EnvironmentRef):
            raise _fail("environment", "must be an EnvironmentRef")
        if self.method is not Method.GRPO:
            if rewards or self.rl is not None or self.environment is not None:
                raise _fail("rewards", "(like [rl] and [environment]) applies to method grpo only, not "
                            f"{self.method.value}", hint="remove them, or set method = \"grpo\"")
            return
        if not rewards and self.environment is None:
            raise _fail("rewards", "is empty: a grpo run optimises at least one approved reward, or the reward of "
                        "an approved environment",
                        hint='add a [[rewards]] table with reward = "reward/NAME@VERSION", or an [environment] '
                             'table with environment = "environment/NAME@VERSION"')
        if not isinstance(self.rl, RLSpec):
            raise RecipeError("recipe is missing required table [rl] for method grpo",
                              hint="add [rl] with num_generations and max_completion_length")
        names = [r.name for r in rewards]
        if len(set(names)) != len(names):
            raise _fail("rewards", "names one reward twice", hint="list each reward once, with its whole weight")
        if self.train.batch_size % self.rl.num_generations:
            raise _fail("train.batch_size", f"({self.train.batch_size}) must be a multiple of rl.num_generations "
                        f"({self.rl.num_generations}): each prompt's group of completions is scored together")
        object.__setattr__(self, "rewards", rewards)

    @property
    def proprietary_share(self) -> float:
        return self.mixture.share_of(SourceRole.PROPRIETARY)

    @property
    def replay_share(self) -> float:
        return self.mixture.share_of(SourceRole.REPLAY)

    def to_document(self) -> dict:
        document = {"version": self.version, "name": self.name, "method": self.method.value, "seed": self.seed,
                    "base": self.base.to_document(), "mixture": self.mixture.to_document(),
                    "train": self.train.to_document(), "devices": self.devices.to_document()}
        if self.rl is not None:  # only grpo has them: the documents (and digests) of other recipes are unchanged
            document["rewards"] = [r.to_document() for r in self.rewards]
            document["rl"] = self.rl.to_document()
        if self.environment is not None:  # likewise: grpo recipes without one keep their digests
            document["environment"] = self.environment.to_document()
        return document


def recipe_digest(recipe: Recipe) -> str:
    return digest_of(recipe.to_document())


# --- from a TOML document -------------------------------------------------------------------------------------------

def _table(value: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    label = where or "the recipe's top level"
    if not isinstance(value, dict):
        raise _fail(where, f"must be a table, got {value!r}")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join(sorted((*required, *optional)))
        raise RecipeError(f"recipe has unknown keys in {label}: {', '.join(unknown)}",
                          hint=f"check the spelling; allowed there: {allowed}")
    missing = [key for key in required if key not in value]
    if missing:
        names = ", ".join(f"{where}.{key}" if where else key for key in missing)
        raise RecipeError(f"recipe is missing required field(s): {names}")
    return value


def _parse_lora(value: Any) -> LoraSpec | None:
    if value is False:
        return None
    if not isinstance(value, dict):
        raise _fail("train.lora", f"must be false or a [train.lora] table, got {value!r}",
                    hint="write [train.lora] with r, alpha, target_modules (and optionally dropout)")
    table = _table(value, "train.lora", ("r", "alpha", "target_modules"), ("dropout",))
    return LoraSpec(**table)


def parse_recipe(doc: dict) -> Recipe:
    """A validated Recipe from a parsed TOML (or `to_document()`) dictionary; RecipeError on the first problem."""
    top = _table(doc, "", ("version", "name", "method", "seed", "base", "mixture", "train"),
                 ("devices", "rewards", "rl", "environment"))
    base = _table(top["base"], "base", ("checkpoint",))
    mixture = _table(top["mixture"], "mixture", ("sources",), ("stopping",))
    raw_sources = mixture["sources"]
    if not isinstance(raw_sources, list):
        raise _fail("mixture.sources", "must be an array of tables, written [[mixture.sources]]")
    sources = tuple(Source(**_table(s, f"mixture.sources[{i}]", ("dataset", "role", "share")))
                    for i, s in enumerate(raw_sources))
    train = dict(_table(top["train"], "train", ("max_steps", "batch_size", "seq_len", "learning_rate", "warmup_steps"),
                        ("decay", "min_lr_ratio", "weight_decay", "grad_clip", "lora")))
    if "lora" in train:
        train["lora"] = _parse_lora(train["lora"])
    devices = _table(top.get("devices", {}), "devices", (), ("kind", "count"))
    raw_rewards = top.get("rewards", [])
    if not isinstance(raw_rewards, list):
        raise _fail("rewards", "must be an array of tables, written [[rewards]]")
    rewards = tuple(RewardRef(**_table(r, f"rewards[{i}]", (), ("reward", "weight", "endpoint", "identity", "version")))
                    for i, r in enumerate(raw_rewards))
    rl = None
    if "rl" in top:
        rl = RLSpec(**_table(top["rl"], "rl", ("num_generations", "max_completion_length"),
                             ("temperature", "beta", "on_reward_failure", "max_reward_failures", "reward_timeout_s")))
    environment = None
    if "environment" in top:
        environment = EnvironmentRef(**_table(top["environment"], "environment", ("environment",), ("weight",)))
    return Recipe(
        version=top["version"], name=top["name"], method=top["method"], seed=top["seed"],
        base=BaseSpec(**base),
        mixture=Mixture(sources=sources, **{k: v for k, v in mixture.items() if k != "sources"}),
        train=TrainSpec(**train),
        devices=DevicesSpec(**devices),
        rewards=rewards,
        rl=rl,
        environment=environment,
    )


def read_recipe(path: Path | str) -> tuple[bytes, Recipe]:
    """The file's bytes (what gets registered and hashed) and the recipe they hold."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadablePath(f"cannot read recipe {path}: {exc.strerror or exc}") from exc
    return data, parse_recipe_bytes(data, str(path))


def load_recipe(path: Path | str) -> Recipe:
    return read_recipe(path)[1]


def parse_recipe_bytes(data: bytes, where: str) -> Recipe:
    """A validated Recipe from a TOML file's bytes; `where` names the file in errors."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RecipeError(f"recipe {where} is not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message already says "(at line L, column C)".
        raise RecipeError(f"recipe {where} is not valid TOML: {exc}") from exc
    except RecursionError as exc:
        raise RecipeError(f"recipe {where} nests arrays or tables too deeply to be read") from exc
    return parse_recipe(doc)
