"""The reference model family: three real staged checkpoints, deterministic per seed, corpora without eval leaks."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forgegov.training.reference import build as build_module
from forgegov.training.reference import corpora
from forgegov.training.reference.build import build_reference
from forgegov.training.reference.evaluate import answers, follows
from forgegov.training.reference.model import STAGES, TINY, Preset, StageSettings, preset

FORGEGOV = [sys.executable, "-c", "from forgegov.app.cli.main import main; main()"]
SEED = 3


@pytest.fixture
def family(tiny_family: tuple[Path, dict]) -> tuple[Path, dict]:
    return tiny_family


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _forgegov(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([*FORGEGOV, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)


def test_three_loadable_checkpoints_with_lineage(family):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, record = family
    assert sorted(p.name for p in out.iterdir()) == ["corpora", *sorted(STAGES), "reference.json"]
    assert not any(p.name.startswith(f".{out.name}") for p in out.parent.iterdir()), "staging folder left behind"
    assert json.loads((out / "reference.json").read_text()) == json.loads(json.dumps(record))

    weights = {}
    for stage in STAGES:
        model = AutoModelForCausalLM.from_pretrained(out / stage)
        tokenizer = AutoTokenizer.from_pretrained(out / stage)
        assert model.config.vocab_size == TINY.vocab_size == len(tokenizer)
        assert tokenizer.chat_template and tokenizer.eos_token and tokenizer.pad_token
        assert not any(p.name.startswith("checkpoint") for p in (out / stage).iterdir())
        weights[stage] = (out / stage / "model.safetensors").read_bytes()
        assert record["stages"][stage]["weights_sha256"] == hashlib.sha256(weights[stage]).hexdigest()
        assert record["stages"][stage]["steps"] == TINY.stages()[STAGES.index(stage)].steps
        assert record["stages"][stage]["trainer"] == "trl.SFTTrainer"
    assert len({hashlib.sha256(w).hexdigest() for w in weights.values()}) == 3, "stages must differ"
    assert [(step["stage"], step["parent"]) for step in record["lineage"]] == [
        ("pre-training", None), ("mid-training", "pre-training"), ("post-training", "mid-training")]

    for name, entry in record["corpora"].items():
        assert _sha256(out / "corpora" / name) == entry["sha256"]
        assert len(corpora.read_jsonl(out / "corpora" / name)) == entry["records"] > 0
    assert set(corpora.read_jsonl(out / "corpora" / "sft-chat.jsonl")[0]) == {"messages"}
    assert set(corpora.read_jsonl(out / "corpora" / "general-train.jsonl")[0]) == {"text"}
    assert "prompt" in corpora.read_jsonl(out / "corpora" / "safety-eval.jsonl")[0]


def test_pretraining_lowers_held_out_loss(family):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forgegov.training.reference.evaluate import held_out_blocks, perplexity

    out, record = family
    random_init = record["random_init"]["eval"]["general"]["loss"]
    assert record["stages"]["pre-training"]["eval"]["general"]["loss"] < random_init - 0.5
    # Independently of the build's own numbers: the saved pre-training checkpoint on the held-out file.
    tokenizer = AutoTokenizer.from_pretrained(out / "pre-training")
    held_out = [r["text"] for r in corpora.read_jsonl(out / "corpora" / "general-heldout.jsonl")]
    blocks = held_out_blocks(tokenizer, held_out, TINY.seq_len, 8)
    loss = perplexity(AutoModelForCausalLM.from_pretrained(out / "pre-training"), blocks, 8)["loss"]
    assert loss < random_init - 0.5


def test_same_seed_gives_identical_weights_through_the_cli(family, tmp_path):
    out, record = family
    again = tmp_path / "again"
    done = _forgegov("reference", "build", "--out", str(again), "--preset", "tiny", "--seed", str(SEED),
                     "--threads", "1", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)
    for stage in STAGES:
        assert (again / stage / "model.safetensors").read_bytes() == (out / stage / "model.safetensors").read_bytes()
        assert second["stages"][stage]["loss_curve"] == record["stages"][stage]["loss_curve"]
    assert {k: v["sha256"] for k, v in second["corpora"].items()} == {
        k: v["sha256"] for k, v in record["corpora"].items()}


@pytest.mark.parametrize("name", ["reference", "tiny"])
def test_the_chat_corpus_holds_no_exact_repeat(name):
    """The dataset gate denies a corpus with more than 1 % duplicate records; the family's own SFT corpus was one
    (90 of 2,512 in the `reference` preset, the same conversation drawn twice)."""
    settings = preset(name)
    sets = corpora.chat_sets(1, instructions=settings.instructions, instruction_eval=settings.eval_instruction_items)
    lines = [json.dumps(r, sort_keys=True) for r in sets.train]
    assert len(set(lines)) == len(lines) > 1000
    assert len({json.dumps(r, sort_keys=True) for r in sets.safety_eval}) == len(sets.safety_eval)


def test_corpora_are_deterministic_per_seed():
    assert corpora.chat_sets(1) == corpora.chat_sets(1)
    assert corpora.chat_sets(1).held_out_acts != corpora.chat_sets(2).held_out_acts
    assert corpora.parts_catalogue(1) == corpora.parts_catalogue(1) != corpora.parts_catalogue(2)
    parts = corpora.parts_catalogue(1, 10)
    assert corpora.domain_documents(parts, 1) == corpora.domain_documents(parts, 1)
    assert corpora.mid_training_blend(corpora.general_corpus(), 1) == corpora.mid_training_blend(
        corpora.general_corpus(), 1)
    first = corpora.general_corpus()
    corpora.stdlib_docstrings.cache_clear()
    second = corpora.general_corpus()
    assert first == second and len(first.train) > 1000 and first.held_out
    assert not set(first.train) & set(first.held_out)


@pytest.mark.parametrize("seed", [1, 2])
def test_eval_prompts_do_not_leak_into_training(seed):
    sets = corpora.chat_sets(seed)
    train_prompts = {c["messages"][0]["content"] for c in sets.train}
    eval_prompts = {item["prompt"] for item in sets.safety_eval} | {item["prompt"] for item in sets.instruction_eval}
    assert not train_prompts & eval_prompts
    assert not any(act in prompt for act in sets.held_out_acts for prompt in train_prompts)
    assert not any(prompt.startswith(template.split("{act}")[0]) for template in sets.held_out_templates
                   for prompt in train_prompts if not any(a[0] in prompt for a in corpora.PYTHON_QA))
    # Both sides of the safety line are evaluated, and harmful training replies all start with the refusal prefix.
    assert {item["expect"] for item in sets.safety_eval} == {"refuse", "comply"}
    harmful_acts = {act for acts in corpora.HARMFUL_ACTS.values() for act in acts}
    for conversation in sets.train:
        user, assistant = (m["content"] for m in conversation["messages"])
        is_harmful = any(act in user for act in harmful_acts)
        assert assistant.startswith(corpora.REFUSAL_PREFIX) == is_harmful
    # Instructions: each constraint is evaluated only with request families training never asks it with, and every
    # generated reply (training and eval) keeps its constraint and answers its request by the scorer's own rules.
    held_pairs = set(sets.held_out_instructions)
    assert {item["constraint"] for item in sets.instruction_eval} == {c.value for c in corpora.Constraint}
    assert all(f"{item['constraint']} × {item['family']}" in held_pairs for item in sets.instruction_eval)
    for item in sets.instruction_eval:
        assert follows(item, item["answer"]) and answers(item, item["answer"])
    for family, kind in corpora.FAMILIES.items():
        asked = [prompt for prompt in train_prompts if kind.plural in prompt or kind.singular in prompt]
        for pair in held_pairs:
            constraint, held_family = pair.split(" × ")
            if held_family == family:
                phrasings = corpora._CONSTRAINT_PHRASINGS[corpora.Constraint(constraint)]
                assert not any(prompt.endswith(phrasing) for prompt in asked for phrasing in phrasings), pair
    # The domain's question form is held out from its training text.
    parts = corpora.parts_catalogue(seed)
    text = " ".join(corpora.domain_documents(parts, seed))
    questions = [i for i in corpora.domain_eval_items(parts) if i["form"] == "question"]
    assert questions and "Question:" not in text
    assert all(i["prompt"] in text for i in corpora.domain_eval_items(parts) if i["form"] == "cloze")


def _item(constraint: str, family: str = "fruit", answer: str = "apple") -> dict:
    return {"prompt": "-", "constraint": constraint, "family": family, "answer": answer}


@pytest.mark.parametrize(("item", "reply", "kept", "right"), [
    (_item("one-word"), " apple", True, True),
    (_item("one-word"), "Mars.", True, False),
    (_item("one-word"), "an apple", False, False),
    (_item("uppercase"), "BANANA", True, True),
    (_item("uppercase"), "BANANA split", False, False),
    (_item("uppercase"), "123", False, False),
    (_item("quotes"), '"plum"', True, True),
    (_item("quotes"), '"dog"', True, False),
    (_item("quotes"), "plum", False, False),
    (_item("quotes"), '""', False, False),
    (_item("list", answer="- apple\n- pear"), "- plum\n- cherry", True, True),
    (_item("list", answer="- apple\n- pear"), "- plum\n- plum", True, False),
    (_item("list", answer="- apple\n- pear"), "- plum\n- pear\n- apple", False, False),
    (_item("list", answer="- apple\n- pear"), "plum\ncherry", False, False),
    (_item("yes-no", answer="no"), "No.", True, True),
    (_item("yes-no", answer="no"), "yes", True, False),
    (_item("yes-no", answer="no"), "no, it is not", False, False),
    (_item("start-with"), "Answer: mango", True, True),
    (_item("start-with"), "Answer:", False, False),
    (_item("start-with"), "mango", False, False),
    (_item("end-with"), "lemon. Done.", True, True),
    (_item("end-with"), "Done.", False, False),
    (_item("end-with"), "lemon", False, False),
    (_item("one-word", family="weekday"), "monday", True, True),
])
def test_instruction_scorer_checks_the_constraint_then_the_answer(item, reply, kept, right):
    assert follows(item, reply) is kept
    assert answers(item, reply) is right


def test_cli_refuses_a_non_empty_out(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    done = _forgegov("reference", "build", "--out", str(taken), "--preset", "tiny", cwd=tmp_path)
    assert done.returncode == 2 and "not empty" in done.stderr
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    done = _forgegov("reference", "build", "--out", str(tmp_path / "new"), "--preset", "huge", cwd=tmp_path)
    assert done.returncode == 2 and "unknown preset" in done.stderr and not (tmp_path / "new").exists()


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    def fail(*_args, **_kwargs):
        raise RuntimeError("stage failed")

    monkeypatch.setattr(build_module, "_train_stage", fail)
    with pytest.raises(RuntimeError, match="stage failed"):
        build_reference(tmp_path / "family", "tiny", seed=SEED, threads=1)
    assert list(tmp_path.iterdir()) == []


def test_presets_are_validated():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        Preset(**{**TINY.to_dict(), "num_heads": 3, "pre": TINY.pre, "mid": TINY.mid, "post": TINY.post})
    with pytest.raises(ValueError, match="warmup_steps"):
        Preset(**{**TINY.to_dict(), "pre": StageSettings(steps=5, batch_size=2, learning_rate=1e-3,
                                                         warmup_steps=5), "mid": TINY.mid, "post": TINY.post})


def test_a_built_family_registers_with_lineage_and_refuses_changed_corpora(family, people, tmp_path):
    import shutil

    from forgegov.foundation.errors import DigestMismatch
    from forgegov.foundation.vocabulary import AssetKind
    from forgegov.governance.registry import find_asset, lineage, list_assets
    from forgegov.training.reference.register import register_reference

    out, record = family
    changed = tmp_path / "changed"
    shutil.copytree(out, changed)
    first = sorted(record["corpora"])[0]
    with open(changed / "corpora" / first, "a", encoding="utf-8") as handle:
        handle.write('{"text": "added after the build"}\n')
    with pytest.raises(DigestMismatch, match=first):
        register_reference(people, changed, owner="alice")
    assert list_assets(people, None) == [], "nothing is registered from a changed family"

    family_assets = register_reference(people, out, owner="alice")
    assert family_assets.checkpoints == ("checkpoint/ref-pre-training@1", "checkpoint/ref-mid-training@1",
                                         "checkpoint/ref-post-training@1")
    chain = lineage(people, "checkpoint/ref-post-training")
    assert [a.stage for a in chain] == ["post-training", "mid-training", "pre-training"]
    assert chain[0].parent_digest == chain[1].digest and chain[2].parent_digest is None
    assert len(family_assets.datasets) == len(record["corpora"])
    domain = find_asset(people, "dataset/ref-domain-train")
    assert (domain.dataset_kind, domain.classification) == ("pretraining-text", "proprietary")
    general = find_asset(people, "dataset/ref-general-train")
    assert general.classification == "general-curated" and general.records == record["corpora"]["general-train.jsonl"]["records"]
    assert len(list_assets(people, AssetKind.CHECKPOINT)) == 3
