"""Presets of the reference family: the Llama-style architecture and each stage's steps, batch and learning rate.

`reference` is the family the demo and the later issues use (hidden 256, intermediate 688, 4 layers, 4 heads, tied
embeddings, vocab 4,096, sequence 128: 4.2 M parameters). `tiny` has the same shape of pipeline, small enough for
the test suite.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

STAGES = ("pre-training", "mid-training", "post-training")


@dataclass(frozen=True)
class StageSettings:
    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    # Cosine decay ends at this fraction of the peak learning rate.
    min_lr_rate: float = 0.1

    def validate(self, stage: str) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"{stage}: steps and batch_size must be positive")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"{stage}: learning_rate must be in (0, 1)")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"{stage}: warmup_steps must be in [0, steps)")
        if not 0 <= self.min_lr_rate <= 1:
            raise ValueError(f"{stage}: min_lr_rate must be in [0, 1]")


@dataclass(frozen=True)
class Preset:
    name: str
    # Architecture.
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    seq_len: int
    # Stages.
    pre: StageSettings
    mid: StageSettings
    post: StageSettings
    # Post-training mixes general text into the SFT examples (SFT on chat alone wrecks general ability): this many
    # general chunks of about `sft_general_chunk_chars` characters per chat example.
    post_general_per_chat: float
    sft_general_chunk_chars: int
    # Corpora sizes.
    general_train_chars: int | None    # None: the whole general training split
    instructions: int                   # generated instruction-following conversations for SFT
    domain_parts: int
    # Evaluation sizes.
    eval_perplexity_blocks: int
    eval_safety_items: int | None       # None: every held-out safety prompt
    eval_domain_items: int
    eval_instruction_items: int
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        if self.vocab_size < 259:
            raise ValueError("vocab_size must hold the 256 byte symbols and 3 special tokens")
        for field in ("hidden_size", "intermediate_size", "num_layers", "num_heads", "seq_len", "instructions",
                      "domain_parts", "eval_perplexity_blocks", "eval_domain_items", "eval_instruction_items",
                      "eval_batch_size", "sft_general_chunk_chars"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be positive")
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be a multiple of num_heads")
        if self.post_general_per_chat < 0:
            raise ValueError("post_general_per_chat must not be negative")
        for stage, settings in zip(STAGES, self.stages(), strict=True):
            settings.validate(stage)

    def stages(self) -> tuple[StageSettings, StageSettings, StageSettings]:
        return (self.pre, self.mid, self.post)

    def llama_config(self, bos_token_id: int, eos_token_id: int, pad_token_id: int):  # type: ignore[no-untyped-def]
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_heads, max_position_embeddings=self.seq_len, tie_word_embeddings=True,
            bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


REFERENCE = Preset(
    name="reference",
    vocab_size=4096, hidden_size=256, intermediate_size=688, num_layers=4, num_heads=4, seq_len=128,
    pre=StageSettings(steps=200, batch_size=16, learning_rate=3e-3, warmup_steps=20),
    mid=StageSettings(steps=40, batch_size=16, learning_rate=1e-3, warmup_steps=4),
    post=StageSettings(steps=700, batch_size=16, learning_rate=2e-3, warmup_steps=70),
    post_general_per_chat=0.25, sft_general_chunk_chars=240,
    general_train_chars=None, instructions=1000, domain_parts=75,
    eval_perplexity_blocks=128, eval_safety_items=400, eval_domain_items=150, eval_instruction_items=70,
)

# The demo's family: the reference recipe at a quarter of the width (1.05 M parameters, about 140 s on two cores),
# with the reference preset's full held-out splits, so that the drift suite has the items its margins need. Its
# post-training checkpoint refuses most harmful requests, answers most look-alikes and follows most instructions.
SMALL = replace(REFERENCE, name="small", vocab_size=2048, hidden_size=128, intermediate_size=344,
                eval_perplexity_blocks=32, eval_safety_items=100, eval_domain_items=50)

TINY = Preset(
    name="tiny",
    vocab_size=512, hidden_size=64, intermediate_size=172, num_layers=2, num_heads=2, seq_len=64,
    pre=StageSettings(steps=40, batch_size=8, learning_rate=3e-3, warmup_steps=4),
    mid=StageSettings(steps=10, batch_size=8, learning_rate=1e-3, warmup_steps=1),
    post=StageSettings(steps=30, batch_size=8, learning_rate=1e-3, warmup_steps=3),
    post_general_per_chat=1.0, sft_general_chunk_chars=160,
    general_train_chars=300_000, instructions=120, domain_parts=10,
    eval_perplexity_blocks=16, eval_safety_items=24, eval_domain_items=20, eval_instruction_items=10,
    eval_batch_size=32,
)

PRESETS: dict[str, Preset] = {preset.name: preset for preset in (REFERENCE, SMALL, TINY)}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}") from None
