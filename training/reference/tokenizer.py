"""Byte-level BPE trained locally with `tokenizers`, wrapped as a `transformers` fast tokenizer with a chat template.

The chat format is the one the note measured: "User: …" / "Assistant: …" lines. A conversation starts with the bos
token and each assistant turn ends with the eos token (no newline after it, so a
formatted conversation ends in eos and TRL adds none). An assistant turn may end in tool calls (`<call>{json}</call>`)
answered by "Tool: …" lines, for multi-turn environments; conversations without them render as before. The generation prompt is "Assistant:" with no trailing space,
so the reply's first token carries its own leading space exactly as in training.
"""

from __future__ import annotations

from collections.abc import Sequence

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% elif message['role'] == 'assistant' %}Assistant: {{ message['content'] }}"
    "{% for call in message.get('tool_calls') or [] %}<call>{{ call['function'] | tojson }}</call>{% endfor %}"
    "{{ eos_token }}"
    "{% elif message['role'] == 'tool' %}Tool: {{ message['content'] }}\n"
    "{% else %}{{ message['role'] | capitalize }}: {{ message['content'] }}\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

# How transformers parses a reply in that format back into a message (its response-parsing spec): tool calls are
# JSON objects between <call> and </call>, the rest up to eos is the content.
RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": "Assistant:",
    "fields": {
        "tool_calls": {"open": "<call>", "close_pattern": r"</call>", "repeats": True, "content": "json",
                       "transform": {"type": "function", "function": "{content}"}},
        "content": {"close_pattern": r"<\|eos\|>", "content": "text"},
    },
}


def train_tokenizer(texts: Sequence[str], vocab_size: int, max_length: int):  # type: ignore[no-untyped-def]
    """Train on `texts` (the general training split) and return a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(texts, trainer=trainer, length=len(texts))

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD, model_max_length=max_length,
        chat_template=CHAT_TEMPLATE, clean_up_tokenization_spaces=False)
    tokenizer.response_template = RESPONSE_TEMPLATE
    return tokenizer
