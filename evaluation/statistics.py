"""Paired, pre-registered non-inferiority: is the candidate worse than its base, on each metric, by more than the
margin policy declares, and could the suite have seen that margin at all?

Both models are scored on the same items, every metric oriented so that higher is better (a scorer reports "not
over-refused", never "over-refused"). Per metric, on the paired differences d = candidate − base:

- binary outcomes, independent items: the score test for a paired difference of proportions (Nam 1997; Tango
  1998), H0: Δ ≤ −margin, with the flip probabilities estimated under the null (restricted maximum likelihood), and
  its interval by inverting the test. The exact two-sided McNemar p-value (no change at all) is reported beside it.
  The exact *conditional* test (the pass → fail count given the m discordant items) is not used for the decision:
  for a non-inferiority margin it treats m/n as the true flip rate and passed a true regression at the margin in up
  to 48 % of suites when few items flip (measured at n = 518, margin 0.05).
- continuous scores, independent items: the paired t-test (one-sided, H0: mean d ≤ −margin).
- any metric whose items share a cluster (a template, a passage): the mean difference with a cluster-robust (CR1)
  standard error and G − 1 degrees of freedom, so that fifty paraphrases of one prompt count as one piece of
  evidence, not fifty.

Across the metrics of one decision the p-values are Holm-adjusted. Before any of that decides, the power check, as
pre-registered: the exact power of the test used, at this suite's size (clusters: its effective number), for a
candidate that truly did not change at the spread policy plans for (the score test's power summed over every
outcome; the noncentral t). Below the declared power the suite cannot see its own margin, and the verdict is
"insufficient evidence", never a pass. `required` reports the smallest size that reaches it; the minimum
detectable effect at the observed spread is reported beside it.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
from scipy import stats

from forgegov.foundation.errors import BadInput

RESULT_VERSION = 1


class MetricKind(StrEnum):
    BINARY = "binary"
    CONTINUOUS = "continuous"


class Verdict(StrEnum):
    NON_INFERIOR = "non-inferior"
    INFERIOR = "inferior"
    INSUFFICIENT = "insufficient-evidence"


@dataclass(frozen=True)
class Design:
    """What a decision pre-registers (from policy data): the one-sided level and the power the suites must have."""

    alpha: float
    power: float

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5 or not 0.5 < self.power < 1:
            raise BadInput(f"a decision needs 0 < alpha < 0.5 and 0.5 < power < 1 (got {self.alpha}, {self.power})")


@dataclass(frozen=True)
class MetricPlan:
    """One metric's pre-registration: how much worse the candidate may be (`margin`, in the metric's own units), and
    the spread to plan for (`planning_spread`: the share of items expected to flip for a binary metric, the standard
    deviation of the paired differences for a continuous one) when the observed spread is smaller."""

    metric: str
    kind: MetricKind
    margin: float
    planning_spread: float
    cluster_spread: float | None = None  # the SD of per-cluster mean differences, for suites with a cluster key

    def __post_init__(self) -> None:
        if self.cluster_spread is not None and (not math.isfinite(self.cluster_spread) or self.cluster_spread <= 0):
            raise BadInput(f"metric {self.metric}: the cluster spread must be a positive number")
        if not math.isfinite(self.margin) or self.margin <= 0 or (self.kind is MetricKind.BINARY and self.margin >= 1):
            raise BadInput(f"metric {self.metric}: the margin must be a positive number (below 1 for a binary "
                           f"metric; got {self.margin})")
        upper = 1.0 if self.kind is MetricKind.BINARY else math.inf
        if not math.isfinite(self.planning_spread) or not 0 < self.planning_spread <= upper:
            raise BadInput(f"metric {self.metric}: the planning spread must be in (0, {upper}] "
                           f"(got {self.planning_spread})")


@dataclass(frozen=True)
class PairedScores:
    """Scores of the base and of the candidate on the same items, in the same order; `clusters`, when given, names
    the cluster of each item."""

    item_ids: tuple[str, ...]
    base: tuple[float, ...]
    candidate: tuple[float, ...]
    clusters: tuple[str, ...] | None = None

    def check(self, plan: MetricPlan) -> None:
        sizes = {len(self.item_ids), len(self.base), len(self.candidate)} | (
            {len(self.clusters)} if self.clusters is not None else set())
        if len(sizes) != 1 or not self.item_ids:
            raise BadInput(f"metric {plan.metric}: base, candidate, item ids and clusters must be non-empty and of "
                           "one length")
        if len(set(self.item_ids)) != len(self.item_ids):
            raise BadInput(f"metric {plan.metric}: an item is scored twice")
        values = (*self.base, *self.candidate)
        if not all(math.isfinite(v) for v in values):
            raise BadInput(f"metric {plan.metric}: a score is not a finite number")
        if plan.kind is MetricKind.BINARY and not all(v in (0.0, 1.0) for v in values):
            raise BadInput(f"metric {plan.metric} is binary: every score must be 0 or 1")


@dataclass(frozen=True)
class MetricResult:
    metric: str
    kind: MetricKind
    method: str
    n: int
    clusters: int | None
    base_mean: float
    candidate_mean: float
    difference: float  # candidate − base
    interval: tuple[float, float]  # two-sided 1 − 2α: its lower end is the one-sided bound the test uses
    margin: float
    p_value: float  # one-sided non-inferiority, H0: difference ≤ −margin
    mde: float  # the smallest true regression detectable at the declared α and power, at the observed spread
    power: float  # exact power of the test at this size, for no true change at the planned spread
    required: int  # the smallest size (items, or clusters) at which that power reaches the declared one
    flipped_to_fail: tuple[str, ...]
    flipped_to_pass: tuple[str, ...]
    mcnemar_p: float | None = None  # binary: exact two-sided test of no change at all
    adjusted_p: float | None = None  # Holm, across the metrics of one decision
    verdict: Verdict | None = None
    version: int = field(default=RESULT_VERSION)

    def to_dict(self) -> dict[str, object]:
        return {"version": self.version, "metric": self.metric, "kind": self.kind.value, "method": self.method,
                "n": self.n, "clusters": self.clusters, "base_mean": self.base_mean,
                "candidate_mean": self.candidate_mean, "difference": self.difference,
                "interval": list(self.interval), "margin": self.margin, "p_value": self.p_value,
                "adjusted_p": self.adjusted_p, "mde": self.mde, "power": self.power, "required": self.required,
                "mcnemar_p": self.mcnemar_p,
                "verdict": self.verdict.value if self.verdict else None,
                "flipped_to_fail": list(self.flipped_to_fail), "flipped_to_pass": list(self.flipped_to_pass)}


def compare(plan: MetricPlan, design: Design, scores: PairedScores) -> MetricResult:
    """The paired comparison of one metric, before Holm adjustment and verdict (see `decide`)."""
    scores.check(plan)
    n = len(scores.item_ids)
    diffs = [c - b for b, c in zip(scores.base, scores.candidate, strict=True)]
    worse = tuple(i for i, b, c in zip(scores.item_ids, scores.base, scores.candidate, strict=True) if c < b)
    better = tuple(i for i, b, c in zip(scores.item_ids, scores.base, scores.candidate, strict=True) if c > b)
    common = {"metric": plan.metric, "kind": plan.kind, "n": n, "base_mean": _mean(scores.base),
              "candidate_mean": _mean(scores.candidate), "difference": _mean(diffs), "margin": plan.margin,
              "flipped_to_fail": worse if plan.kind is MetricKind.BINARY else (),
              "flipped_to_pass": better if plan.kind is MetricKind.BINARY else ()}
    if scores.clusters is not None:
        return MetricResult(**{**common, **_clustered(plan, design, diffs, scores.clusters)})  # type: ignore[arg-type]
    if plan.kind is MetricKind.BINARY:
        return MetricResult(**common, **_paired_binary(plan, design, n, len(worse), len(better)))  # type: ignore[arg-type]
    return MetricResult(**common, **_paired_t(plan, design, diffs))  # type: ignore[arg-type]


def decide(results: Sequence[MetricResult], design: Design) -> list[MetricResult]:
    """Holm-adjust the metrics of one decision and give each its verdict: insufficient evidence when the suite's
    power falls short of the declared one, else non-inferior when the adjusted p-value is at most α, else inferior.
    The power check is the pre-registered one, on the planned spread: it does not depend on how this candidate
    happened to score."""
    adjusted = holm([r.p_value for r in results])
    decided = []
    for result, p in zip(results, adjusted, strict=True):
        if result.power < design.power:
            verdict = Verdict.INSUFFICIENT
        else:
            verdict = Verdict.NON_INFERIOR if p <= design.alpha else Verdict.INFERIOR
        decided.append(replace(result, adjusted_p=p, verdict=verdict))
    return decided


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error at α across the metrics of a decision)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _paired_binary(plan: MetricPlan, design: Design, n: int, b: int, c: int) -> dict[str, object]:
    """b items went pass → fail, c fail → pass (see the module's docstring)."""
    z = float(stats.norm.ppf(1 - design.alpha))
    statistic = _score_statistic(n, b, c, -plan.margin)
    interval = (_score_bound(n, b, c, z, lower=True), _score_bound(n, b, c, z, lower=False))
    m = b + c
    return {"method": "paired-score", "clusters": None, "interval": interval,
            "p_value": float(stats.norm.sf(statistic)),
            "mde": (z + float(stats.norm.ppf(design.power))) * math.sqrt(m / n) / math.sqrt(n),
            "mcnemar_p": float(stats.binomtest(b, m, 0.5).pvalue) if m else 1.0,
            "power": _binary_power(n, plan.planning_spread, plan.margin, design.alpha),
            "required": required_items(plan, design)}


def _score_statistic(n: int, b: int, c: int, delta0: float, shift: float = -0.5) -> float:
    """(Δ̂ − Δ0) / SE under H0: Δ = Δ0, with the pass → fail probability at its maximum likelihood under the
    constraint that fail → pass is that plus Δ0 (the root of 2n·p² − B·p − C = 0 in range). Δ̂ is moved half an item
    by `shift` (a continuity correction; toward a regression for the non-inferiority test): without it the score test
    passed a true regression at the margin in 5.5 % of suites at α = 5 % (n = 501, every flip a regression); with it,
    at most 4.75 % over the flip rates and sizes from 60 to 1,000 items checked in the tests."""
    return float(_score_statistics(n, np.array([b]), np.array([c]), delta0, shift)[0])


def _score_bound(n: int, b: int, c: int, z: float, *, lower: bool) -> float:
    """One end of the two-sided 1 − 2α score interval: the Δ0 at which the statistic, corrected toward that end,
    equals ±z (bisection; the statistic falls as Δ0 rises). Its lower end lies above −margin exactly when the
    non-inferiority test passes."""
    shift, target = (-0.5, z) if lower else (0.5, -z)
    low, high = -1.0, 1.0
    for _ in range(80):
        middle = (low + high) / 2
        if _score_statistic(n, b, c, middle, shift) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _paired_t(plan: MetricPlan, design: Design, diffs: list[float]) -> dict[str, object]:
    n = len(diffs)
    if n < 2:
        raise BadInput(f"metric {plan.metric}: a paired t-test needs at least two items")
    mean = _mean(diffs)
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1))
    return {**_t_based(plan, design, "paired-t", mean, sd / math.sqrt(n), n - 1, None),
            "power": _t_power(n, n - 1, plan.planning_spread, plan.margin, design.alpha),
            "required": required_items(plan, design)}


def _clustered(plan: MetricPlan, design: Design, diffs: list[float], clusters: tuple[str, ...]) -> dict[str, object]:
    n = len(diffs)
    mean = _mean(diffs)
    totals: dict[str, float] = defaultdict(float)
    sizes: dict[str, int] = defaultdict(int)
    for d, cluster in zip(diffs, clusters, strict=True):
        totals[cluster] += d - mean
        sizes[cluster] += 1
    g = len(totals)
    if g < 2:
        raise BadInput(f"metric {plan.metric}: a cluster-robust comparison needs at least two clusters")
    if plan.cluster_spread is None:
        raise BadInput(f"metric {plan.metric}: the suite declares clusters, so its plan needs a cluster spread")
    # CR1 (the small-sample factor G / (G − 1)), the variance of the mean of an intercept-only regression.
    se = math.sqrt(g / (g - 1) * math.fsum(t * t for t in totals.values())) / n
    # Clusters of unequal size weigh unequally in the item mean: n² / Σ size² clusters' worth of evidence.
    effective = n * n / sum(size * size for size in sizes.values())
    return {**_t_based(plan, design, "cluster-robust", mean, se, g - 1, g),
            "power": _t_power(effective, g - 1, plan.cluster_spread, plan.margin, design.alpha),
            "required": _required(MetricKind.CONTINUOUS, plan.margin, plan.cluster_spread, design.alpha,
                                  design.power)}


def _t_based(plan: MetricPlan, design: Design, method: str, mean: float, se: float, df: int,
             clusters: int | None) -> dict[str, object]:
    t_alpha = float(stats.t.ppf(1 - design.alpha, df))
    mde = (t_alpha + float(stats.t.ppf(design.power, df))) * se
    if se == 0:
        p_value = 0.0 if mean > -plan.margin else 1.0
    else:
        p_value = float(stats.t.sf((mean + plan.margin) / se, df))
    return {"method": method, "clusters": clusters, "interval": (mean - t_alpha * se, mean + t_alpha * se),
            "p_value": p_value, "mde": mde}


def required_items(plan: MetricPlan, design: Design) -> int:
    """The smallest number of independent items at which the test used here reaches the declared power for a
    candidate that truly did not change, at the planned spread (see `_binary_power`, `_t_power`)."""
    return _required(plan.kind, plan.margin, plan.planning_spread, design.alpha, design.power)


@functools.lru_cache(maxsize=256)
def _required(kind: MetricKind, margin: float, spread: float, alpha: float, power: float) -> int:
    z = float(stats.norm.ppf(1 - alpha) + stats.norm.ppf(power))
    approximate = z * z * (spread if kind is MetricKind.BINARY else spread * spread) / margin ** 2
    n = max(2, math.floor(0.8 * approximate))
    if kind is MetricKind.BINARY:
        while _binary_power(n, spread, margin, alpha) < power:
            n += 1
        return n
    while _t_power(n, n - 1, spread, margin, alpha) < power:
        n += 1
    return n


@functools.lru_cache(maxsize=4096)
def _binary_power(n: int, discordance: float, margin: float, alpha: float) -> float:
    """Exact power of the score test with n items when nothing truly changed and a share `discordance` of items
    flips either way: every outcome (m discordant items, Binomial(n, discordance); b of them pass → fail,
    Binomial(m, 1/2)) weighed by its probability, counted where the test passes."""
    z = float(stats.norm.ppf(1 - alpha))
    lowest = int(stats.binom.ppf(1e-12, n, discordance))
    highest = int(stats.binom.isf(1e-12, n, discordance))
    total = 0.0
    for m in range(lowest, highest + 1):
        b = np.arange(m + 1)
        passes = _score_statistics(n, b, m - b, -margin) > z
        total += float(stats.binom.pmf(m, n, discordance) * np.sum(stats.binom.pmf(b, m, 0.5)[passes]))
    return total


def _score_statistics(n: int, b: np.ndarray, c: np.ndarray, delta0: float, shift: float = -0.5) -> np.ndarray:
    """`_score_statistic` over arrays of outcomes."""
    m = b + c
    big_b = m * (1 - delta0) - 2 * delta0 * (n - c)
    big_c = b * delta0 * (1 - delta0)
    p = (big_b + np.sqrt(np.maximum(big_b * big_b + 8 * n * big_c, 0.0))) / (4 * n)
    p = np.clip(p, max(0.0, -delta0), (1 - delta0) / 2)
    variance = (2 * p + delta0 - delta0 * delta0) / n
    distance = (c - b + shift) / n - delta0
    safe = np.where(variance > 0, variance, 1.0)
    return np.where(variance > 0, distance / np.sqrt(safe), np.where(distance > 0, np.inf, -np.inf))


def _t_power(n: float, df: int, spread: float, margin: float, alpha: float) -> float:
    """Power of the one-sided t test with `df` degrees of freedom and n (effective) units of evidence, for no true
    change, when the units' differences spread with SD `spread` (noncentral t)."""
    return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, margin * math.sqrt(n) / spread))
