"""A recipe's shares are token shares (issue 13, deliverable 6): the stream is built on a token budget per source, so
every prefix of it holds the planned shares to within one example, whatever the sources' example lengths."""

from __future__ import annotations

import pytest

from forgegov.foundation.errors import BadInput
from forgegov.training.mixture import budgeted_order

# Long domain documents, short chat replays: sampled by example, the replay share of tokens fell to a third of plan.
LENGTHS = [[400] * 60, [120] * 300, [25] * 400]
SHARES = [0.7, 0.25, 0.05]


@pytest.mark.parametrize(("lengths", "shares"), [
    (LENGTHS, SHARES),
    ([[1] * 5000, [1000] * 5, [1000] * 5], [0.6, 0.2, 0.2]),  # one source of tiny examples against two of huge ones
    ([[10] * 400] + [[300] * 40] * 5, [0.5] + [0.1] * 5),
])
def test_every_prefix_holds_the_planned_token_shares(lengths, shares):
    # From the first example on: above its budget by at most one of its own examples, below it by at most its share
    # of one example of every other source.
    longest = [max(rows) for rows in lengths]
    tokens = [0] * len(lengths)
    for source, row in budgeted_order(lengths, shares, "all_exhausted"):
        tokens[source] += lengths[source][row]
        total = sum(tokens)
        for i, share in enumerate(shares):
            assert tokens[i] <= share * total + longest[i]
            assert tokens[i] >= share * (total - sum(longest) + longest[i]) - 1e-9


def test_the_stream_ends_once_it_holds_what_the_run_will_read():
    order = budgeted_order(LENGTHS, SHARES, "all_exhausted", max_tokens=10_000)
    held = sum(LENGTHS[source][row] for source, row in order)
    assert 10_000 <= held < 10_000 + max(map(max, LENGTHS))


def test_all_exhausted_uses_every_source_whole_and_first_exhausted_stops_at_the_first():
    every = budgeted_order(LENGTHS, SHARES, "all_exhausted")
    assert all({row for source, row in every if source == i} == set(range(len(LENGTHS[i]))) for i in range(3))
    first = budgeted_order(LENGTHS, SHARES, "first_exhausted")
    used = [sum(1 for source, _ in first if source == i) for i in range(3)]
    assert any(used[i] == len(LENGTHS[i]) for i in range(3)) and len(first) < len(every)


@pytest.mark.parametrize(("lengths", "shares", "stopping"), [
    ([[5], []], [0.5, 0.5], "all_exhausted"), ([[5], [5]], [1.0, 0.0], "all_exhausted"),
    ([[5], [5]], [0.5, float("inf")], "all_exhausted"), ([[5], [5]], [0.5, 0.5], "all-exhausted"),
])
def test_an_empty_source_a_bad_share_or_strategy_is_refused(lengths, shares, stopping):
    with pytest.raises(BadInput):
        budgeted_order(lengths, shares, stopping)


def test_sft_learns_every_assistant_turn_of_a_tool_transcript_and_nothing_else():
    """A warm start for an environment is a transcript whose first reply is a tool call: training on the last reply
    only (as SFT did) would never teach the call."""
    import datasets

    from forgegov.governance.runs.recipe import Method
    from forgegov.training.mixture import tokenize_source
    from forgegov.training.reference.tokenizer import train_tokenizer

    from .runs_support import sentences

    tokenizer = train_tokenizer(sentences("claims", 100, 0), vocab_size=300, max_length=256)
    call = {"type": "function", "function": {"name": "heat", "arguments": {"minutes": 8}}}
    transcript = [{"role": "user", "content": "Bring the room to 21 degrees."},
                  {"role": "assistant", "content": "", "tool_calls": [call]},
                  {"role": "tool", "name": "heat", "content": "21 degrees"},
                  {"role": "assistant", "content": "Done."}]
    one_turn = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi."}]
    data = datasets.Dataset.from_list([{"messages": transcript}, {"messages": one_turn}])
    rows = tokenize_source(data, tokenizer, Method.SFT, 0, 256, "test").to_list()
    learnt = [tokenizer.decode([t for t, m in zip(r["input_ids"], r["completion_mask"], strict=True) if m])
              for r in rows]
    assert learnt[0] == ' <call>{"name": "heat", "arguments": {"minutes": 8}}</call><|eos|> Done.<|eos|>'
    assert tokenizer.decode(rows[0]["input_ids"]) == tokenizer.apply_chat_template(transcript, tokenize=False)
    # A one-turn chat: its prompt, then its reply, as before.
    prompt = tokenizer.apply_chat_template(one_turn[:1], tokenize=False, add_generation_prompt=True)
    assert rows[1]["input_ids"] == tokenizer(prompt, add_special_tokens=False)["input_ids"] + tokenizer(
        " Hi.<|eos|>", add_special_tokens=False)["input_ids"]
    assert learnt[1] == " Hi.<|eos|>"
