"""PII and secret findings: right positives, no false alarms on look-alikes, and never the value itself."""

from __future__ import annotations

import json

import pytest

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
