"""PII and secret findings: right positives, no false alarms on look-alikes, and never the value itself."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest

from forgegov.governance.datasets import sensitive
from forgegov.governance.datasets.sensitive import Finding, ScanSummary, find, luhn_valid


@pytest.mark.parametrize("text,kind", [
    ("write to jane.doe+claims@example.co.uk today", Finding.EMAIL),
    ("call +44 20 7946 0958 after six", Finding.PHONE),
    ("call (415) 555-0132", Finding.PHONE),
    ("card 4111 1111 1111 1111 exp 12/29", Finding.PAYMENT_CARD),
    ("card 5500-0000-0000-0004", Finding.PAYMENT_CARD),
    ("ssn 123-45-6789 on file", Finding.NATIONAL_ID),
    ("NI number AB 12 34 56 C", Finding.NATIONAL_ID),
    ("aws AKIAIOSFODNN7EXAMPLE in config", Finding.API_KEY),
    ("token ghp_" + "a1B2" * 9 + " leaked", Finding.API_KEY),
    ("key AIza" + "S" * 35, Finding.API_KEY),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=", Finding.PRIVATE_KEY),
    ("-----BEGIN PRIVATE KEY-----", Finding.PRIVATE_KEY),
])
def test_finds(text, kind):
    assert find(text)[kind] == 1


@pytest.mark.parametrize("text", [
    "Part ZX-481 is made of titanium.",
    "order 4111 1111 1111 1112 failed",      # fails the Luhn check
    "serial 0000000000000000",               # a single repeated digit is no card
    "ssn-like 000-12-3456 and 666-12-3456",  # never-issued areas
    "released on 2026-11-22 at 20:13:04",
    "version 1.22.2 of the tool; 1234567",
    "the address is user at example dot com",
    "-----BEGIN PUBLIC KEY-----",
    "How do I kill a Python process?",
])
def test_no_false_alarms(text):
    assert not find(text), find(text)


def test_luhn():
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")


def test_summary_reports_counts_rates_and_locations_but_never_values():
    summary = ScanSummary(max_samples=2)
    rows = ["clean line", "mail a@b.io and c@d.io", "card 4111111111111111", "mail e@f.io", "mail g@h.io"]
    for i, row in enumerate(rows, start=1):
        summary.add(f"train.jsonl:{i}", row)
    evidence = summary.to_evidence()
    email = evidence["findings"]["email"]
    assert (email["count"], email["records"], email["rate"]) == (4, 3, 3 / 5)
    assert email["sample_locations"] == ["train.jsonl:2", "train.jsonl:4"]
    assert evidence["findings"]["payment-card"]["category"] == "pii"
    assert evidence["findings"]["api-key"]["count"] == 0
    text = json.dumps(evidence)
    for secret in ("a@b.io", "4111111111111111", "g@h.io"):
        assert secret not in text


def _unfiltered_find(text: str) -> Counter:
    """`find` as it was before its pre-filters: every pattern over the whole of every text."""
    found: Counter = Counter()
    for kind, pattern in ((Finding.EMAIL, sensitive._EMAIL), (Finding.NATIONAL_ID, sensitive._NATIONAL_ID),
                          (Finding.API_KEY, sensitive._API_KEY), (Finding.PRIVATE_KEY, sensitive._PRIVATE_KEY),
                          (Finding.PHONE, sensitive._PHONE)):
        hits = len(pattern.findall(text))
        if hits:
            found[kind] += hits
    cards = 0
    for match in sensitive._CARD_CANDIDATE.finditer(text):  # over the whole text, not only digit runs
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits):
            cards += 1
    if cards:
        found[Finding.PAYMENT_CARD] += cards
    return found


_FRAGMENTS = ["jane.doe+claims@example.co.uk", "a@b.io", "user at example dot com", "@", "+44 20 7946 0958",
              "+1 (415) 555-0132", "(415) 555-0132", "415.555.0132", "+7", "4111 1111 1111 1111", "5500-0000-0000-0004",
              "4111111111111111", "4222222222222", "4222 2222 22222", "0000000000000000", "123-45-6789", "000-12-3456", "AB 12 34 56 C", "AB123456C",
              "AKIAIOSFODNN7EXAMPLE", "ASIA" + "Z" * 16, "ghp_" + "a1B2" * 9, "xoxb-" + "1234567890-abc",
              "AIza" + "S" * 35, "sk-proj-" + "x" * 24, "glpat-" + "y" * 20, "-----BEGIN PRIVATE KEY-----",
              "-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN PUBLIC KEY-----", "2026-11-22 20:13:04", "1.22.2",
              "١٢٣-٤٥-٦٧٨٩", "４１１１ １１１１ １１１１ １１１１", "+٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨", "café", "東京", "_", "sk-", "naïve"]


def _corpus(n: int = 4000) -> list[str]:
    rng = random.Random(1234)
    alphabet = "0123456789" * 4 + " -.+()@_" * 2 + "ABCDKZaxz" + "٣５"
    texts = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            roll = rng.random()
            if roll < 0.4:
                parts.append(rng.choice(_FRAGMENTS))
            elif roll < 0.8:
                parts.append("".join(rng.choices(alphabet, k=rng.randint(1, 30))))
            else:
                parts.append(rng.choice(["the", "order", "call", "Part ZX-481", "ssn", "card", "key", "\n"]))
        texts.append(rng.choice(["", " ", "-", "+"]).join(parts))
    return texts


def test_prefiltered_find_agrees_with_every_pattern_on_every_text():
    texts = _corpus()
    assert sum(1 for t in texts if _unfiltered_find(t)) > len(texts) // 2  # the corpus does exercise the patterns
    for text in texts:
        assert find(text) == _unfiltered_find(text), text
    for kind in Finding:  # and every category is found somewhere
        assert any(_unfiltered_find(t)[kind] for t in texts), kind
