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
