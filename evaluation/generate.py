"""What a model does with an evaluation's items: greedy replies, batched, and per-item log-likelihoods.

Batches are formed from prompts of similar length (fewer pad tokens to compute), padded on the left with an attention
mask so that every prompt ends where generation starts, and handed back in the items' own order. Greedy decoding at
batch size 1 and at batch size N must give the same replies; `tests/test_eval_runs.py` holds it to that.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from forgegov.governance.suites import Decoding, Template

Tick = Callable[[int], None]  # called with the number of items just finished


@dataclass(frozen=True)
class Output:
    value: str | float  # the reply, or the mean token log-likelihood
    seconds: float  # the item's share of its batch's wall time


def render(tokenizer: Any, prompt: str, decoding: Decoding) -> str:
    if decoding.template is Template.CHAT:
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return prompt


def padded(rows: Sequence[Sequence[int]], pad: int, *, left: bool) -> tuple[Any, Any]:
    """Token ids padded to the longest row, and the attention mask that hides the padding."""
    import torch

    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[r, span] = torch.tensor(row, dtype=torch.long)
        mask[r, span] = 1
    return ids, mask


def by_length(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _room(model: Any, wanted: int, reserved: int = 0) -> int:
    """How many prompt tokens fit: the suite's limit, within the model's positions less what generation needs."""
    positions = getattr(model.config, "max_position_embeddings", None)
    return max(1, min(wanted, positions - reserved)) if isinstance(positions, int) else wanted


def greedy(model: Any, tokenizer: Any, prompts: Sequence[str], decoding: Decoding, batch_size: int,
           tick: Tick | None = None) -> list[Output]:
    import torch

    room = _room(model, decoding.max_prompt_tokens, decoding.max_new_tokens)
    # Cut from the left: the end of a prompt (the question, the generation prompt) is what the reply follows.
    # One batched call: the fast tokenizer encodes the whole list in Rust.
    rendered = [render(tokenizer, p, decoding) for p in prompts]
    encoded = [ids[-room:] for ids in tokenizer(rendered, add_special_tokens=False, verbose=False)["input_ids"]]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outputs: list[Output | None] = [None] * len(prompts)
    model.eval()
    with torch.inference_mode():
        for batch in by_length([len(e) for e in encoded], batch_size):
            started = time.perf_counter()
            ids, mask = padded([encoded[i] for i in batch], pad, left=True)
            width = ids.shape[1]
            out = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                 max_new_tokens=decoding.max_new_tokens, do_sample=False, num_beams=1,
                                 pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
            replies = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
            share = (time.perf_counter() - started) / len(batch)
            for i, reply in zip(batch, replies, strict=True):
                outputs[i] = Output(reply, share)
            if tick is not None:
                tick(len(batch))
    return [o for o in outputs if o is not None]


def log_likelihoods(model: Any, tokenizer: Any, texts: Sequence[str], decoding: Decoding, batch_size: int,
                    tick: Tick | None = None) -> list[Output]:
    """Mean log-likelihood per predicted token of each text (its first `max_prompt_tokens` tokens, eos-terminated)."""
    import torch

    eos = tokenizer.eos_token_id
    room = _room(model, decoding.max_prompt_tokens)
    encoded = [(ids + [eos])[:room] for ids in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]]
    outputs: list[Output | None] = [None] * len(texts)
    model.eval()
    with torch.inference_mode():
        for batch in by_length([len(e) for e in encoded], batch_size):
            started = time.perf_counter()
            # Right padding: positions then start at 0 for every text, as in training.
            ids, mask = padded([encoded[i] for i in batch], eos, left=False)
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(model.device))[..., 0]
            keep = mask[:, 1:].to(model.device).float()
            means = ((logp * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)).tolist()
            share = (time.perf_counter() - started) / len(batch)
            for i, mean in zip(batch, means, strict=True):
                outputs[i] = Output(float(mean) if len(encoded[i]) > 1 else math.nan, share)
            if tick is not None:
                tick(len(batch))
    return [o for o in outputs if o is not None]
