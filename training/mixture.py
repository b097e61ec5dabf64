"""The data stream of a run: each approved dataset tokenised and tagged with its source, then interleaved.

Every token carries the index of the source it came from (`source_ids`, parallel to `input_ids`), through
interleaving, TRL's packing and the collator, to the training step that counts it. That is how a run knows the
tokens it actually trained on per source, not only the shares it planned.

A recipe's shares are shares of *tokens*. Sampling *examples* with the planned probabilities (`interleave_datasets`)
let sources with long documents crowd out short chat replays: planned 5 % replay trained on 1.5 % replay tokens.
The stream is now built on a token budget per source, so every prefix of it holds the planned shares to within about
one example per source (`budgeted_order`); the record keeps planned and realised shares side by side (shares of the
input tokens trained on, prompts included), and the promotion gate holds them to the tolerance policy states.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from forgegov.foundation.errors import BadInput
from forgegov.governance.runs.recipe import Method

if TYPE_CHECKING:
    import datasets
    import torch

PAD_SOURCE = -1


def tokenize_source(dataset: datasets.Dataset, tokenizer: Any, method: Method, index: int, seq_len: int,
                    name: str) -> datasets.Dataset:
    """`dataset` as token ids tagged with `index`. Raw text (a `text` column) is trained on whole, each document
    ending in eos. A chat (`messages`) is, for CPT, its whole rendering by the tokenizer's chat template; for SFT,
    trained on its assistant replies only (`completion_mask`)."""
    columns = set(dataset.column_names)
    if "text" in columns:
        def encode_text(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
            ids = [row + [tokenizer.eos_token_id] for row in ids]
            out: dict[str, list[Any]] = {"input_ids": ids, "source_ids": [[index] * len(row) for row in ids]}
            if method is Method.SFT:
                ids = [row[:seq_len] for row in ids]
                out = {"input_ids": ids, "source_ids": [[index] * len(row) for row in ids],
                       "completion_mask": [[1] * len(row) for row in ids]}
            return out

        encode = encode_text
    elif "messages" in columns and method is Method.CPT:
        # Instruction and safety conversations replayed in continued pre-training: the whole rendered chat is text.
        def encode_rendered(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            texts = [tokenizer.apply_chat_template(list(messages), tokenize=False) for messages in batch["messages"]]
            ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
            return {"input_ids": ids, "source_ids": [[index] * len(row) for row in ids]}

        encode = encode_rendered
    elif "messages" in columns:
        def encode_chat(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            ids_out, masks, sources = [], [], []
            for messages in batch["messages"]:
                ids, mask = _chat_segments(tokenizer, messages, name)
                ids, mask = ids[:seq_len], mask[:seq_len]
                if not any(mask):
                    # The prompt alone fills seq_len: nothing of the reply is left to learn. TRL would drop the
                    # example after the mixture counted its tokens, so it is left out here, before the budget.
                    continue
                ids_out.append(ids)
                masks.append(mask)
                sources.append([index] * len(ids))
            return {"input_ids": ids_out, "completion_mask": masks, "source_ids": sources}

        encode = encode_chat
    else:
        raise BadInput(f"{name} has columns {sorted(columns)}; a {method.value} run needs a `text` column or chat "
                       "`messages`")
    return dataset.map(encode, batched=True, remove_columns=dataset.column_names)


def _chat_segments(tokenizer: Any, messages: Sequence[dict[str, Any]], name: str) -> tuple[list[int], list[int]]:
    """Token ids of one conversation and its completion mask: 1 on every assistant turn as the chat template renders
    it (so the eos the template puts after a reply is learnt too), 0 on everything else (the prompt, tool results,
    later user turns). A multi-turn transcript thus teaches each of its replies, a tool call included, not only the
    last; a one-turn chat is its prompt and its reply, as before."""
    if not messages or messages[-1].get("role") != "assistant":
        raise BadInput(f"{name}: every conversation must end with an assistant turn to train on")
    texts: list[tuple[str, int]] = []
    rendered = ""
    turns = [i for i, message in enumerate(messages) if message.get("role") == "assistant"]
    for position, turn in enumerate(turns):
        prompt = tokenizer.apply_chat_template(list(messages[:turn]), tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(list(messages[:turn + 1]), tokenize=False)
        if not prompt.startswith(rendered) or not full.startswith(prompt):
            raise BadInput(f"{name}: the tokenizer's chat template renders a reply that does not extend what came "
                           "before it, so the replies cannot be told apart from the rest")
        reply = full[len(prompt):]
        if position == len(turns) - 1 and not reply.endswith(tokenizer.eos_token):
            reply += tokenizer.eos_token
        texts += [(prompt[len(rendered):], 0), (reply, 1)]
        rendered = full
    ids: list[int] = []
    mask: list[int] = []
    for text, learnt in texts:
        encoded = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        ids += encoded
        mask += [learnt] * len(encoded)
    return ids, mask


def interleave(streams: Sequence[datasets.Dataset], shares: Sequence[float], seed: int, stopping: str, *,
               max_tokens: int | None = None) -> datasets.Dataset:
    """One stream holding the planned token shares in every prefix: each source in an order shuffled by `seed`, then
    a token budget per source, filled greedily (the next example always comes from the source furthest below its
    share; see `budgeted_order` for the bound). Under `all_exhausted` a source that runs out starts over until every
    source has been used whole at least once; under `first_exhausted` the stream ends with the first source to run
    out; either way it ends once it holds `max_tokens`, what the run will read. The trainer reads the stream in order
    (`CausalLMTrainer.in_order`), so the tokens it trains on, however few steps it takes, hold the planned shares."""
    from datasets import concatenate_datasets

    streams = [stream.shuffle(seed=seed + index).flatten_indices() for index, stream in enumerate(streams)]
    if len(streams) == 1:
        return streams[0]
    order = budgeted_order([token_lengths(stream) for stream in streams], shares, stopping, max_tokens=max_tokens)
    offsets = [0]
    for stream in streams[:-1]:
        offsets.append(offsets[-1] + stream.num_rows)
    return concatenate_datasets(list(streams)).select([offsets[source] + row for source, row in order])


def budgeted_order(lengths: Sequence[Sequence[int]], shares: Sequence[float], stopping: str, *,
                   max_tokens: int | None = None) -> list[tuple[int, int]]:
    """(source, row) pairs in stream order; see `interleave`. After any prefix of T tokens, source i holds at most
    shares[i]·T plus one of its own examples, and at least shares[i]·(T − one example of each other source): it is
    picked whenever it is furthest behind, so it falls behind only while the others each add an example."""
    if stopping not in ("first_exhausted", "all_exhausted"):
        raise BadInput(f"unknown stopping strategy {stopping!r}: first_exhausted or all_exhausted")
    if any(len(rows) == 0 for rows in lengths) or not all(math.isfinite(share) and share > 0 for share in shares):
        raise BadInput("every source of a mixture needs examples to train on and a positive, finite share")
    sources = range(len(lengths))
    position, tokens, used_whole = [0] * len(lengths), [0] * len(lengths), [False] * len(lengths)
    order: list[tuple[int, int]] = []
    while max_tokens is None or sum(tokens) < max_tokens:
        source = min(sources, key=lambda i: (tokens[i] / shares[i], i))
        if position[source] == len(lengths[source]):
            used_whole[source] = True
            if stopping == "first_exhausted" or all(used_whole):
                return order
            position[source] = 0
        order.append((source, position[source]))
        tokens[source] += max(1, lengths[source][position[source]])
        position[source] += 1
    return order


def token_lengths(stream: datasets.Dataset) -> list[int]:
    """Tokens of each example of a tokenised source, read from its Arrow column without materialising the rows."""
    import pyarrow.compute as pc

    return pc.list_value_length(stream.with_format("arrow")[:].column("input_ids")).to_pylist()


@dataclass
class SourceTokens:
    """Tokens trained on, per source index. Counted in the training step, so only batches that were trained on
    count (not those a data loader fetched ahead)."""

    counts: list[int]

    @classmethod
    def empty(cls, sources: int) -> SourceTokens:
        return cls([0] * sources)

    def add(self, source_ids: torch.Tensor) -> None:
        import torch

        kept = source_ids[source_ids != PAD_SOURCE]
        for index, count in enumerate(torch.bincount(kept.flatten().long(), minlength=len(self.counts)).tolist()):
            if index >= len(self.counts):
                raise BadInput(f"a batch carries source index {index}, but the run has {len(self.counts)} sources")
            self.counts[index] += count


class SourceTaggingCollator:
    """Wraps TRL's collator: it pads `source_ids` beside the inputs, which TRL's collator would drop."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        sources = [example.pop("source_ids") for example in examples]
        batch = self.inner(examples)
        width = batch["input_ids"].shape[1]
        padded = torch.full((len(sources), width), PAD_SOURCE, dtype=torch.long)
        for row, ids in enumerate(sources):
            padded[row, :len(ids)] = torch.as_tensor(ids[:width], dtype=torch.long)
        batch["source_ids"] = padded
        return batch
