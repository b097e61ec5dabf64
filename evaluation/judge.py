"""A judge: a registered classifier checkpoint that decides each reply's refusal class in place of the rule table.

Rules (evaluation/refusal.py) are transparent but brittle on phrasing they never saw; a judge trained on an
organisation's own labelled replies can do better, and is then part of what decides a promotion. So it is governed
like the data: a suite names its judge by exact reference (pinned to a digest when the suite is registered), the
suite gate's policy admits only a judge an ML lead approved, the runner loads it through the verified checkpoint door,
and every result names the judge's digest beside the scorer version.

The contract a judge checkpoint keeps (checked when it is loaded, refused otherwise):
- it loads as a `transformers` sequence classifier, with its own tokenizer, safetensors only;
- its `config.json` `id2label` names exactly the three classes, `full_compliance`, `full_refusal` and
  `partial_refusal`, and sets `pad_token_id`;
- it reads one item as the text pair `tokenizer(prompt, reply)` (truncated from the longer side to its positions), and
  its class is the arg-max of its logits (every input the tokenizer makes for the pair, token type ids included,
  goes to the model; the pad token is the config's `pad_token_id`, and the tokenizer's when it has one);
- every weight it uses is in the checkpoint: transformers would fill a missing head with random values, so a causal
  language model with refusal labels in its config is refused, not given a random head.
Batches are right-padded with the attention mask, so a reply's class does not depend on its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from forgegov.evaluation.generate import by_length, padded
from forgegov.evaluation.refusal import RefusalClass
from forgegov.foundation.config import Workspace
from forgegov.foundation.errors import BadInput
from forgegov.governance.loading.checkpoints import Head, load_checkpoint

JUDGE_VERSION = "refusal-judge/1"  # the contract above; a change to it is a new version


@dataclass
class RefusalJudge:
    digest: str
    model: Any
    tokenizer: Any
    classes: tuple[RefusalClass, ...]  # by logit index
    max_tokens: int

    def classify(self, prompts: Sequence[str], replies: Sequence[str], batch_size: int) -> list[RefusalClass]:
        import torch

        if len(prompts) != len(replies):
            raise BadInput(f"the judge got {len(prompts)} prompts for {len(replies)} replies")
        if not prompts:
            return []
        # Every input the tokenizer makes for a pair (token type ids too, for a BERT-style cross-encoder): the judge
        # must see what it was trained on.
        encoded = self.tokenizer(list(prompts), list(replies), truncation="longest_first",
                                 max_length=self.max_tokens, verbose=False)
        pad = self.model.config.pad_token_id
        found: list[RefusalClass | None] = [None] * len(prompts)
        self.model.eval()
        with torch.inference_mode():
            for batch in by_length([len(e) for e in encoded["input_ids"]], batch_size):
                ids, mask = padded([encoded["input_ids"][i] for i in batch], pad, left=False)
                inputs = {"input_ids": ids, "attention_mask": mask}
                if "token_type_ids" in encoded:
                    inputs["token_type_ids"] = padded([encoded["token_type_ids"][i] for i in batch], 0, left=False)[0]
                logits = self.model(**{k: v.to(self.model.device) for k, v in inputs.items()}).logits
                for i, index in zip(batch, logits.argmax(dim=-1).tolist(), strict=True):
                    found[i] = self.classes[index]
        return [c for c in found if c is not None]


def load_judge(workspace: Workspace, digest: str, *, actor: str, purpose: str) -> RefusalJudge:
    model, tokenizer = load_checkpoint(workspace, digest, actor=actor, purpose=purpose,
                                       head=Head.SEQUENCE_CLASSIFIER)
    hint = "a judge is a sequence classifier whose config.json id2label names full_compliance, full_refusal and " \
           "partial_refusal, saved with its tokenizer (see evaluation/judge.py)"
    if tokenizer is None:
        raise BadInput(f"judge {digest} carries no tokenizer", hint=hint)
    labels = getattr(model.config, "id2label", None) or {}
    try:
        classes = tuple(RefusalClass(labels[i]) for i in range(len(labels)))
    except (KeyError, ValueError) as exc:
        raise BadInput(f"judge {digest} labels its classes {labels}, not as refusal classes", hint=hint) from exc
    if sorted(classes) != sorted(RefusalClass):
        raise BadInput(f"judge {digest} has the classes {[c.value for c in classes]}; it must have each refusal "
                       "class exactly once", hint=hint)
    if model.config.pad_token_id is None:
        raise BadInput(f"judge {digest} sets no pad_token_id, so it cannot read a batch", hint=hint)
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != model.config.pad_token_id:
        # Sequence classifiers find each row's last real token by the pad id: another id would read padding.
        raise BadInput(f"judge {digest} pads with token {model.config.pad_token_id} but its tokenizer with "
                       f"{tokenizer.pad_token_id}", hint=hint)
    limits = [n for n in (getattr(model.config, "max_position_embeddings", None),
                          getattr(tokenizer, "model_max_length", None)) if isinstance(n, int) and 0 < n < 1 << 20]
    if not limits:
        raise BadInput(f"judge {digest} states no input length (max_position_embeddings or the tokenizer's "
                       "model_max_length)", hint=hint)
    return RefusalJudge(digest, model, tokenizer, classes, min(limits))
