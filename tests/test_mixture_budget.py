"""A recipe's shares are token shares (issue 13, deliverable 6): the stream is built on a token budget per source, so
every prefix of it holds the planned shares to within one example, whatever the sources' example lengths."""

from __future__ import annotations

import pytest

from forgegov.foundation.errors import BadInput
from forgegov.training.mixture import budgeted_order

# Long domain documents, short chat replays: sampled by example, the replay share of tokens fell to a third of plan.
LENGTHS = [[400] * 60, [120] * 300, [25] * 400]
SHARES = [0.7, 0.25, 0.05]


def test_every_prefix_holds_the_planned_token_shares():
    order = budgeted_order(LENGTHS, SHARES, "all_exhausted")
    tokens = [0, 0, 0]
    for step, (source, row) in enumerate(order, start=1):
        tokens[source] += LENGTHS[source][row]
        total = sum(tokens)
        if total >= 4000:
            for planned, got in zip(SHARES, tokens, strict=True):
                assert abs(got / total - planned) <= max(map(max, LENGTHS)) / total, (step, tokens)


def test_all_exhausted_uses_every_source_whole_and_first_exhausted_stops_at_the_first():
    every = budgeted_order(LENGTHS, SHARES, "all_exhausted")
    assert all({row for source, row in every if source == i} == set(range(len(LENGTHS[i]))) for i in range(3))
    first = budgeted_order(LENGTHS, SHARES, "first_exhausted")
    used = [sum(1 for source, _ in first if source == i) for i in range(3)]
    assert any(used[i] == len(LENGTHS[i]) for i in range(3)) and len(first) < len(every)


@pytest.mark.parametrize(("lengths", "shares"), [([[5], []], [0.5, 0.5]), ([[5], [5]], [1.0, 0.0])])
def test_an_empty_source_or_a_zero_share_is_refused(lengths, shares):
    with pytest.raises(BadInput):
        budgeted_order(lengths, shares, "all_exhausted")
