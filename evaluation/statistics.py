"""Paired, pre-registered non-inferiority: is the candidate worse than its base, on each metric, by more than the
margin policy declares, and could the suite have seen that margin at all?

Both models are scored on the same items, every metric oriented so that higher is better (a scorer reports "not
over-refused", never "over-refused"). Per metric, on the paired differences d = candidate − base:

- binary outcomes, independent items: the exact conditional McNemar approach. Given the m discordant items, the
  number b that went pass → fail is Binomial(m, π), and the difference is Δ = (m/n)(1 − 2π). The interval for Δ maps
  the Clopper-Pearson interval for π; the non-inferiority p-value is P(B ≤ b) at the π where Δ = −margin. The
  exact two-sided McNemar p-value (no change at all) is reported beside it.
- continuous scores, independent items: the paired t-test (one-sided, H0: mean d ≤ −margin).
- any metric whose items share a cluster (a template, a passage): the mean difference with a cluster-robust (CR1)
  standard error and G − 1 degrees of freedom, so that fifty paraphrases of one prompt count as one piece of
  evidence, not fifty.

Across the metrics of one decision the p-values are Holm-adjusted. Before any of that decides, the power check, as
pre-registered: the items (clusters) the test needs to reach the declared power at the spread policy plans for,
computed exactly for the test used (the conditional binomial test's exact power; the noncentral t). A suite with
fewer cannot see its own margin, and the verdict is "insufficient evidence", never a pass. The minimum detectable
effect at the observed spread is reported beside it. The items that flipped (pass → fail, fail → pass) are listed for people to read.
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
        if not math.isfinite(self.margin) or self.margin <= 0:
            raise BadInput(f"metric {self.metric}: the margin must be a positive number (got {self.margin})")
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
    required: int  # items (clusters, when clustered) the declared power needs at the planned spread
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
                "adjusted_p": self.adjusted_p, "mde": self.mde, "required": self.required,
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
    common = {"metric": plan.metric, "kind": plan.kind, "n": n, "required": required_items(plan, design),
              "base_mean": _mean(scores.base),
              "candidate_mean": _mean(scores.candidate), "difference": _mean(diffs), "margin": plan.margin,
              "flipped_to_fail": worse if plan.kind is MetricKind.BINARY else (),
              "flipped_to_pass": better if plan.kind is MetricKind.BINARY else ()}
    if scores.clusters is not None:
        return MetricResult(**{**common, **_clustered(plan, design, diffs, scores.clusters)})  # type: ignore[arg-type]
    if plan.kind is MetricKind.BINARY:
        return MetricResult(**common, **_exact_paired_binary(plan, design, n, len(worse), len(better)))  # type: ignore[arg-type]
    return MetricResult(**common, **_paired_t(plan, design, diffs))  # type: ignore[arg-type]


def decide(results: Sequence[MetricResult], design: Design) -> list[MetricResult]:
    """Holm-adjust the metrics of one decision and give each its verdict: insufficient evidence when the suite has
    fewer items (clusters) than its declared power needs, else non-inferior when the adjusted p-value is at most α,
    else inferior. The power check is the pre-registered one, on the planned spread: it does not depend on how this
    candidate happened to score."""
    adjusted = holm([r.p_value for r in results])
    decided = []
    for result, p in zip(results, adjusted, strict=True):
        if (result.clusters if result.clusters is not None else result.n) < result.required:
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


def _exact_paired_binary(plan: MetricPlan, design: Design, n: int, b: int, c: int) -> dict[str, object]:
    """b items went pass → fail, c fail → pass, m = b + c discordant (see the module's docstring)."""
    m = b + c
    z = stats.norm.ppf(1 - design.alpha) + stats.norm.ppf(design.power)
    mde = z * math.sqrt(m / n / n)
    if m == 0:
        # Not one item changed: the difference is exactly zero, which no positive margin can call inferior.
        return {"method": "exact-mcnemar", "clusters": None, "interval": (0.0, 0.0), "p_value": 0.0, "mde": mde,
                "mcnemar_p": 1.0}
    low, high = stats.binomtest(b, m).proportion_ci(confidence_level=1 - 2 * design.alpha, method="exact")
    interval = ((m / n) * (1 - 2 * high), (m / n) * (1 - 2 * low))
    # H0: Δ ≤ −margin, i.e. π ≥ π0; few pass → fail flips are the evidence against it.
    pi0 = (1 + plan.margin * n / m) / 2
    p_value = 0.0 if pi0 >= 1 else float(stats.binom.cdf(b, m, pi0))
    return {"method": "exact-mcnemar", "clusters": None, "interval": interval, "p_value": p_value, "mde": mde,
            "mcnemar_p": float(stats.binomtest(b, m, 0.5).pvalue)}


def _paired_t(plan: MetricPlan, design: Design, diffs: list[float]) -> dict[str, object]:
    n = len(diffs)
    if n < 2:
        raise BadInput(f"metric {plan.metric}: a paired t-test needs at least two items")
    mean = _mean(diffs)
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1))
    return _t_based(plan, design, "paired-t", mean, sd / math.sqrt(n), n - 1, None)


def _clustered(plan: MetricPlan, design: Design, diffs: list[float], clusters: tuple[str, ...]) -> dict[str, object]:
    n = len(diffs)
    mean = _mean(diffs)
    totals: dict[str, float] = defaultdict(float)
    for d, cluster in zip(diffs, clusters, strict=True):
        totals[cluster] += d - mean
    g = len(totals)
    if g < 2:
        raise BadInput(f"metric {plan.metric}: a cluster-robust comparison needs at least two clusters")
    if plan.cluster_spread is None:
        raise BadInput(f"metric {plan.metric}: the suite declares clusters, so its plan needs a cluster spread")
    # CR1 (the small-sample factor G / (G − 1)), the variance of the mean of an intercept-only regression.
    se = math.sqrt(g / (g - 1) * math.fsum(t * t for t in totals.values())) / n
    required = _required(MetricKind.CONTINUOUS, plan.margin, plan.cluster_spread, design.alpha, design.power)
    return {**_t_based(plan, design, "cluster-robust", mean, se, g - 1, g), "required": required}


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
    """The fewest independent items (clusters, for a clustered suite) at which the test used here reaches the
    declared power for a candidate that truly did not change, at the planned spread: the exact power of the
    conditional test for a binary metric, the noncentral t for a continuous one."""
    return _required(plan.kind, plan.margin, plan.planning_spread, design.alpha, design.power)


@functools.lru_cache(maxsize=256)
def _required(kind: MetricKind, margin: float, spread: float, alpha: float, power: float) -> int:
    if kind is MetricKind.BINARY:
        z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)
        n = max(2, math.floor(z * z * spread / margin ** 2))
        while _binary_power(n, spread, margin, alpha) < power:
            n += 1
        return n
    n = 2
    while _t_power(n, spread, margin, alpha) < power:
        n += 1
    return n


def _binary_power(n: int, discordance: float, margin: float, alpha: float) -> float:
    """Exact power of the conditional test with n items when nothing truly changed and a share `discordance` of
    items flips either way: the discordant count M is Binomial(n, discordance), and given M = m the pass → fail
    count is Binomial(m, 1/2); the test passes when that count is at or below its critical value."""
    m = np.arange(1, n + 1)
    pi0 = (1 + margin * n / m) / 2
    certain = pi0 >= 1
    pi0 = np.minimum(pi0, 1.0)
    critical = stats.binom.ppf(alpha, m, pi0)
    critical = np.where(stats.binom.cdf(critical, m, pi0) > alpha, critical - 1, critical)
    passes = np.where(certain, 1.0, stats.binom.cdf(critical, m, 0.5))
    return float(stats.binom.pmf(0, n, discordance) + np.sum(stats.binom.pmf(m, n, discordance) * passes))


def _t_power(n: int, spread: float, margin: float, alpha: float) -> float:
    df = n - 1
    return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, margin * math.sqrt(n) / spread))
