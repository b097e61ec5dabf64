"""Run recipes: a TOML file read into typed, validated settings, refused whole when any field is wrong."""

from __future__ import annotations

import copy
import math
import tomllib

import pytest

from forgegov.foundation.errors import BadInput, UnreadablePath
from forgegov.governance.runs.recipe import (
    Decay,
    DeviceKind,
    Method,
    RecipeError,
    SourceRole,
    Stopping,
    load_recipe,
    parse_recipe,
    recipe_digest,
)

VALID = """\
version = 1
name = "claims-cpt"
method = "cpt"
seed = 1

[base]
checkpoint = "checkpoint/ref-post@1"

[[mixture.sources]]
dataset = "dataset/claims@1"
role = "proprietary"
share = 0.70

[[mixture.sources]]
dataset = "dataset/general-text@1"
role = "general"
share = 0.20

[[mixture.sources]]
dataset = "dataset/chat-safety@1"
role = "replay"
share = 0.10

[mixture]
stopping = "first_exhausted"

[train]
max_steps = 300
batch_size = 32
seq_len = 128
learning_rate = 1e-3
warmup_steps = 30
decay = "cosine"
min_lr_ratio = 0.1
weight_decay = 0.1
grad_clip = 1.0
lora = false

[devices]
kind = "cpu"
count = 1
"""

# The same recipe with keys, tables and number spellings shuffled; only the order of the sources is kept.
REORDERED = """\
seed = 1
method = "cpt"
name = "claims-cpt"
version = 1

[devices]
count = 1
kind = "cpu"

[train]
lora = false
grad_clip = 1
weight_decay = 0.1
min_lr_ratio = 0.1
decay = "cosine"
warmup_steps = 30
learning_rate = 0.001
seq_len = 128
batch_size = 32
max_steps = 300

[mixture]
stopping = "first_exhausted"
sources = [
  { share = 0.7, role = "proprietary", dataset = "dataset/claims@1" },
  { share = 0.2, role = "general", dataset = "dataset/general-text@1" },
  { share = 0.1, role = "replay", dataset = "dataset/chat-safety@1" },
]

[base]
checkpoint = "checkpoint/ref-post@1"
"""

# Pinned so that any change to the canonical document, which lineage records will carry, is a deliberate one.
VALID_DIGEST = "sha256:7ac87a31282924d4d8f887db9f4bf12938cca4e51cea932343e2c23748b42957"


def _write(tmp_path, text, name="recipe.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _valid_doc() -> dict:
    return tomllib.loads(VALID)


def test_valid_recipe_loads_typed(tmp_path):
    recipe = load_recipe(_write(tmp_path, VALID))
    assert recipe.name == "claims-cpt"
    assert recipe.method is Method.CPT
    assert recipe.base.checkpoint == "checkpoint/ref-post@1"
    assert [s.role for s in recipe.mixture.sources] == [SourceRole.PROPRIETARY, SourceRole.GENERAL,
                                                         SourceRole.REPLAY]
    assert recipe.mixture.stopping is Stopping.FIRST_EXHAUSTED
    assert recipe.train.learning_rate == 1e-3
    assert recipe.train.lora is None
    assert recipe.devices.kind is DeviceKind.CPU
    assert math.isclose(recipe.proprietary_share, 0.70)
    assert math.isclose(recipe.replay_share, 0.10)


def test_round_trip_and_digest_are_stable(tmp_path):
    recipe = load_recipe(_write(tmp_path, VALID))
    document = recipe.to_document()
    assert parse_recipe(document) == recipe
    assert recipe_digest(parse_recipe(copy.deepcopy(document))) == recipe_digest(recipe)
    assert recipe_digest(recipe) == VALID_DIGEST


def test_key_order_and_spelling_do_not_change_the_digest(tmp_path):
    original = load_recipe(_write(tmp_path, VALID, "a.toml"))
    reordered = load_recipe(_write(tmp_path, REORDERED, "b.toml"))
    assert recipe_digest(reordered) == recipe_digest(original)


def test_any_changed_value_changes_the_digest(tmp_path):
    original = recipe_digest(load_recipe(_write(tmp_path, VALID, "a.toml")))
    reseeded = recipe_digest(load_recipe(_write(tmp_path, VALID.replace("seed = 1", "seed = 2"), "b.toml")))
    assert reseeded != original


def test_source_order_is_part_of_the_recipe():
    # Interleaving draws from the sources in order, so swapping two is a different data stream.
    doc = _valid_doc()
    swapped = copy.deepcopy(doc)
    sources = swapped["mixture"]["sources"]
    sources[1], sources[2] = sources[2], sources[1]
    assert recipe_digest(parse_recipe(swapped)) != recipe_digest(parse_recipe(doc))


def test_optional_fields_take_their_defaults():
    doc = _valid_doc()
    del doc["devices"], doc["mixture"]["stopping"]
    for key in ("decay", "min_lr_ratio", "weight_decay", "grad_clip", "lora"):
        del doc["train"][key]
    recipe = parse_recipe(doc)
    assert recipe.mixture.stopping is Stopping.FIRST_EXHAUSTED
    assert recipe.train.decay is Decay.COSINE
    assert (recipe.train.min_lr_ratio, recipe.train.weight_decay, recipe.train.grad_clip) == (0.1, 0.0, 1.0)
    assert recipe.train.lora is None
    assert (recipe.devices.kind, recipe.devices.count) == (DeviceKind.CPU, 1)


def test_lora_table_is_read():
    doc = _valid_doc()
    doc["train"]["lora"] = {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]}
    lora = parse_recipe(doc).train.lora
    assert lora is not None
    assert (lora.r, lora.alpha, lora.dropout, lora.target_modules) == (8, 16.0, 0.0, ("q_proj", "v_proj"))
    assert parse_recipe(parse_recipe(doc).to_document()).train.lora == lora


def test_sft_needs_no_proprietary_source():
    doc = _valid_doc()
    doc["method"] = "sft"
    doc["mixture"]["sources"][0]["role"] = "general"
    recipe = parse_recipe(doc)
    assert recipe.method is Method.SFT
    assert recipe.proprietary_share == 0


def test_digest_references_are_accepted():
    doc = _valid_doc()
    doc["base"]["checkpoint"] = "sha256:" + "ab" * 6
    doc["mixture"]["sources"][0]["dataset"] = "sha256:" + "0" * 64
    assert parse_recipe(doc).base.checkpoint == "sha256:abababababab"


DELETE = object()


def _set(doc: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    target = doc
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key = int(last) if last.isdigit() else last
    if value is DELETE:
        del target[key]
    else:
        target[key] = value


INVALID = [
    # (where, value, what the message must name)
    ("version", 2, r"field version must be 1"),
    ("version", 1.0, r"field version must be 1"),
    ("name", "Claims CPT", r"field name"),
    ("name", "", r"field name"),
    ("method", "grpo", r"field rewards is empty: a grpo run optimises at least one approved reward"),
    ("method", "dpo", r"field method must be one of cpt \| sft \| grpo"),
    ("rewards", [{"reward": "reward/exact@1"}],
     r"field rewards \(like \[rl\] and \[environment\]\) applies to method grpo only, not cpt"),
    ("environment", {"environment": "environment/thermostat@1"}, r"applies to method grpo only, not cpt"),
    ("environment", {"environment": "reward/thermostat@1"}, r"field environment\.environment must name an environment"),
    ("environment", {"environment": "thermostat", "turns": 3}, r"unknown keys in environment: turns"),
    ("environment", {"environment": "thermostat", "weight": 0}, r"field environment\.weight"),
    ("seed", -1, r"field seed"),
    ("seed", 2**32, r"field seed"),
    ("seed", "1", r"field seed"),
    ("base.checkpoint", "sha256:abc", r"field base\.checkpoint"),
    ("base.checkpoint", "dataset/claims@1", r"field base\.checkpoint must name a checkpoint"),
    ("base.checkpoint", "ref-post@stage", r"field base\.checkpoint"),
    ("base.checkpoint", f"ref-post@{2**63}", r"field base\.checkpoint"),
    ("base.checkpoint", "ref-post\n", r"field base\.checkpoint"),
    ("mixture.sources", [], r"field mixture\.sources is empty"),
    ("mixture.sources", {"dataset": "x"}, r"field mixture\.sources must be an array"),
    ("mixture.sources.0.share", 0, r"mixture\.sources \(dataset/claims@1\)\.share"),
    ("mixture.sources.0.share", 1.5, r"mixture\.sources \(dataset/claims@1\)\.share"),
    ("mixture.sources.0.share", "0.7", r"mixture\.sources \(dataset/claims@1\)\.share"),
    ("mixture.sources.0.share", 0.6, r"field mixture\.sources shares must sum to 1"),
    ("mixture.sources.0.role", "secret", r"mixture\.sources \(dataset/claims@1\)\.role"),
    ("mixture.sources.0.role", "general", r"field mixture\.sources needs a proprietary source"),
    ("mixture.sources.1.dataset", "claims@1", r"field mixture\.sources names one dataset twice"),
    ("mixture.sources.1.dataset", "dataset/Claims", r"field mixture\.sources\.dataset"),
    ("mixture.sources.1.dataset", "checkpoint/x@1", r"field mixture\.sources\.dataset must name a dataset"),
    ("mixture.stopping", "never", r"field mixture\.stopping"),
    ("train.max_steps", 0, r"field train\.max_steps"),
    ("train.max_steps", True, r"field train\.max_steps"),
    ("train.batch_size", -1, r"field train\.batch_size"),
    ("train.seq_len", 1.5, r"field train\.seq_len"),
    ("train.learning_rate", 0, r"field train\.learning_rate"),
    ("train.learning_rate", 2.0, r"field train\.learning_rate"),
    ("train.learning_rate", float("nan"), r"field train\.learning_rate"),
    ("train.warmup_steps", 300, r"field train\.warmup_steps must be below train\.max_steps"),
    ("train.warmup_steps", -1, r"field train\.warmup_steps"),
    ("train.min_lr_ratio", 1.5, r"field train\.min_lr_ratio"),
    ("train.weight_decay", -0.1, r"field train\.weight_decay"),
    ("train.grad_clip", 0, r"field train\.grad_clip"),
    ("train.decay", "step", r"field train\.decay must be one of cosine \| linear \| constant"),
    ("train.lora", True, r"field train\.lora must be false or a \[train\.lora\] table"),
    ("train.lora", {"r": 0, "alpha": 16, "target_modules": ["q"]}, r"field train\.lora\.r"),
    ("train.lora", {"r": 8, "alpha": 16, "target_modules": []}, r"field train\.lora\.target_modules"),
    ("devices.kind", "tpu", r"field devices\.kind must be one of cpu \| cuda"),
    ("devices.count", 0, r"field devices\.count"),
    # Misspelt keys must be refused, never read as "absent, use the default".
    ("sede", 1, r"unknown keys in the recipe's top level: sede"),
    ("train.learning_rte", 1e-3, r"unknown keys in train: learning_rte"),
    ("mixture.sources.0.weight", 0.7, r"unknown keys in mixture\.sources\[0\]: weight"),
    ("mixture.stoping", "all_exhausted", r"unknown keys in mixture: stoping"),
    ("devices.gpus", 1, r"unknown keys in devices: gpus"),
    ("base.stage", "post-training", r"unknown keys in base: stage"),
    ("train.lora", {"r": 8, "alpha": 16, "target_modules": ["q"], "rank": 8}, r"unknown keys in train\.lora: rank"),
    # Required fields have no defaults.
    ("seed", DELETE, r"missing required field\(s\): seed"),
    ("base", DELETE, r"missing required field\(s\): base"),
    ("base.checkpoint", DELETE, r"missing required field\(s\): base\.checkpoint"),
    ("mixture.sources", DELETE, r"missing required field\(s\): mixture\.sources"),
    ("mixture.sources.2.share", DELETE, r"missing required field\(s\): mixture\.sources\[2\]\.share"),
    ("train.warmup_steps", DELETE, r"missing required field\(s\): train\.warmup_steps"),
    ("train.lora", {"r": 8, "target_modules": ["q"]}, r"missing required field\(s\): train\.lora\.alpha"),
]


@pytest.mark.parametrize(("where", "value", "message"), INVALID, ids=[f"{w}=(absent)" if v is DELETE else f"{w}={v!r}" for w, v, _ in INVALID])
def test_invalid_recipe_is_refused_naming_the_field(where, value, message):
    doc = _valid_doc()
    parse_recipe(doc)  # the case must fail because of its one change, not because the base document is wrong
    _set(doc, where, value)
    with pytest.raises(RecipeError, match=message):
        parse_recipe(doc)


def test_recipe_errors_are_bad_input():
    # The CLI maps BadInput to exit code 2; a recipe mistake is the user's to fix.
    assert issubclass(RecipeError, BadInput)


def test_toml_syntax_error_names_file_and_line(tmp_path):
    broken = VALID.replace('method = "cpt"', "method = cpt")
    path = _write(tmp_path, broken)
    with pytest.raises(BadInput, match=r"recipe .*recipe\.toml is not valid TOML: .*line 3"):
        load_recipe(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(UnreadablePath, match="nope.toml"):
        load_recipe(tmp_path / "nope.toml")


def test_a_recipe_nested_too_deeply_is_a_recipe_error_not_a_crash(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("version = 1\nname = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(RecipeError, match="nests arrays or tables too deeply"):
        load_recipe(path)


GRPO = {"method": "grpo", "rewards": [{"reward": "reward/exact@1", "weight": 2}],
        "rl": {"num_generations": 4, "max_completion_length": 8}}


def _grpo_doc(**changes) -> dict:
    doc = {**_valid_doc(), **GRPO, **changes}
    doc["train"] = {**doc["train"], "batch_size": 8}
    return doc


def test_a_grpo_recipe_names_its_rewards_and_rl_settings():
    recipe = parse_recipe(_grpo_doc())
    assert [r.to_document() for r in recipe.rewards] == [{"reward": "reward/exact@1", "weight": 2.0}]
    assert recipe.rl is not None and recipe.rl.on_reward_failure.value == "fail" and recipe.rl.beta == 0.0
    document = recipe.to_document()
    assert document["rl"]["num_generations"] == 4 and document["rewards"][0]["weight"] == 2.0
    assert parse_recipe(document) == recipe
    assert "rewards" not in parse_recipe(_valid_doc()).to_document()  # other methods' documents are unchanged
    reweighted = _grpo_doc(rewards=[{"reward": "reward/exact@1", "weight": 3}])
    assert recipe_digest(parse_recipe(reweighted)) != recipe_digest(recipe)


@pytest.mark.parametrize(("changes", "message"), [
    ({"rl": DELETE}, r"missing required table \[rl\] for method grpo"),
    ({"rewards": [{"reward": "exact@1"}, {"reward": "reward/exact@1"}]}, r"names one reward twice"),
    ({"rewards": [{"reward": "dataset/exact@1"}]}, r"must name a reward"),
    ({"rewards": [{"reward": "exact@1", "weight": 0}]}, r"weight"),
    ({"rl": {"num_generations": 3, "max_completion_length": 8}}, r"multiple of rl.num_generations"),
    ({"rl": {"num_generations": 1, "max_completion_length": 8}}, r"rl.num_generations"),
    ({"rl": {"num_generations": 4, "max_completion_length": 8, "on_reward_failure": "ignore"}},
     r"rl.on_reward_failure must be one of fail \| zero"),
    ({"rl": {"num_generations": 4, "max_completion_length": 8, "top_k": 3}}, r"unknown keys in rl: top_k"),
])
def test_an_invalid_grpo_recipe_is_refused(changes, message):
    doc = _grpo_doc()
    for key, value in changes.items():
        if value is DELETE:
            del doc[key]
        else:
            doc[key] = value
    with pytest.raises(RecipeError, match=message):
        parse_recipe(doc)
