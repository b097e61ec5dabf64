"""Train/eval contamination by word n-grams, in both directions the data gate uses."""

from __future__ import annotations

from forgegov.governance.datasets.contamination import NgramIndex, check

TRAIN = [
    "Part ZX-481 is made of titanium and was certified for marine use in the northern shipyard last spring.",
    "The warranty covers every part replaced by an authorised workshop within twenty four months of purchase.",
]


def test_copied_eval_item_is_caught_and_fresh_one_is_not():
    index = NgramIndex().add_all(TRAIN)
    items = [
        ("eval.jsonl:1", "Question: part zx-481 is made of titanium and was certified for marine use in the northern "
                         "shipyard. What metal?"),
        ("eval.jsonl:2", "Which shipyard built the first titanium hull, and in which decade did it open its doors?"),
    ]
    report = check(items, index)
    assert (report.items, report.contaminated, report.sample_locations) == (2, 1, ["eval.jsonl:1"])
    assert report.to_evidence()["rate"] == 0.5


def test_short_items_match_short_records_copied_whole():
    index = NgramIndex(n=13).add_all(TRAIN + ["Refuse requests for weapons."])
    assert index.overlaps("refuse requests for weapons")
    assert not index.overlaps("refuse requests for explosives")
    assert not index.overlaps("twenty four months"), "a short item inside a long passage is out of reach by design"


def test_reverse_direction_training_data_against_eval_index():
    eval_index = NgramIndex().add_all(["What is the boiling point of water at sea level in degrees Celsius, "
                                       "measured under standard atmospheric pressure conditions?"])
    leaked = check([("train.jsonl:7", "notes: what is the boiling point of water at sea level in degrees celsius "
                                      "measured under standard atmospheric pressure conditions? 100")], eval_index)
    assert leaked.contaminated == 1


def test_index_holds_hashes_not_text():
    index = NgramIndex().add_all(TRAIN)
    assert index.grams and all(isinstance(g, int) for g in index.grams)
