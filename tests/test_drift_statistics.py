"""The statistics the drift gate decides on (issue 13, deliverable 4): checked against scipy and statsmodels, and by
seeded simulation of the error rates the design declares."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from forgegov.evaluation.statistics import (
    Design,
    MetricKind,
    MetricPlan,
    PairedScores,
    Verdict,
    compare,
    decide,
    holm,
    required_items,
)
from forgegov.foundation.errors import BadInput

statsmodels = pytest.importorskip("statsmodels")
from statsmodels.stats.contingency_tables import mcnemar  # noqa: E402
from statsmodels.stats.multitest import multipletests  # noqa: E402

DESIGN = Design(alpha=0.05, power=0.8)
REFUSAL = MetricPlan("harmful refusal", MetricKind.BINARY, margin=0.05, planning_spread=0.2)


def _binary(b: int, c: int, same: int) -> PairedScores:
    """b items pass → fail, c fail → pass, `same` unchanged (passing)."""
    n = b + c + same
    base = (1.0,) * b + (0.0,) * c + (1.0,) * same
    candidate = (0.0,) * b + (1.0,) * c + (1.0,) * same
    return PairedScores(tuple(f"item-{i}" for i in range(n)), base, candidate)


@pytest.mark.parametrize(("b", "c"), [(7, 1), (3, 12), (20, 20), (0, 5), (1, 0)])
def test_the_exact_mcnemar_p_value_is_statsmodels(b, c):
    result = compare(REFUSAL, DESIGN, _binary(b, c, 100))
    assert result.mcnemar_p == pytest.approx(mcnemar([[100, b], [c, 0]], exact=True).pvalue, rel=1e-12)
    assert result.flipped_to_fail == tuple(f"item-{i}" for i in range(b))
    assert result.difference == pytest.approx((c - b) / (b + c + 100))


@pytest.mark.parametrize(("b", "c", "same"), [(30, 20, 450), (10, 10, 80), (25, 5, 470), (5, 25, 470), (25, 0, 493)])
def test_the_binary_interval_and_test_agree(b, c, same):
    # The test passes exactly when the interval's lower end lies above −margin: both come from the same statistic.
    result = compare(REFUSAL, DESIGN, _binary(b, c, same))
    assert result.interval[0] <= result.difference <= result.interval[1]
    assert (result.p_value <= DESIGN.alpha) == (result.interval[0] > -REFUSAL.margin)


@pytest.mark.parametrize(("n", "b", "c", "delta0"), [(500, 30, 20, -0.05), (100, 0, 0, -0.05), (80, 12, 3, -0.1),
                                                     (300, 7, 40, 0.02)])
def test_the_score_statistic_uses_the_restricted_maximum_likelihood(n, b, c, delta0):
    # Independently: maximise the multinomial likelihood under Δ = Δ0 numerically and build the statistic from it.
    from scipy.optimize import minimize_scalar

    from forgegov.evaluation.statistics import _score_statistic

    low, high = max(0.0, -delta0), (1 - delta0) / 2

    def negative_log_likelihood(p12: float) -> float:
        p21, rest = p12 + delta0, 1 - 2 * p12 - delta0
        return -sum(k * math.log(max(q, 1e-300)) for k, q in ((b, p12), (c, p21), (n - b - c, rest)) if k)

    p12 = minimize_scalar(negative_log_likelihood, bounds=(low, high), method="bounded",
                          options={"xatol": 1e-12}).x
    variance = (2 * p12 + delta0 - delta0 ** 2) / n
    expected = ((c - b - 0.5) / n - delta0) / math.sqrt(variance)
    assert _score_statistic(n, b, c, delta0) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("n", [60, 200, 521])
def test_a_regression_at_the_margin_passes_at_most_at_alpha_whatever_flips(n):
    """Exactly, summed over every outcome: the chance that a candidate truly worse by the margin passes, for flip
    rates from "every flip is a regression" upwards (the exact conditional test passed 48 % of them at the first)."""
    from forgegov.evaluation.statistics import _score_statistics

    z = stats.norm.ppf(1 - DESIGN.alpha)
    for flips in (0.05, 0.055, 0.07, 0.1, 0.2, 0.4):
        to_fail = (flips + REFUSAL.margin) / 2
        size = 0.0
        for m in range(n + 1):
            b = np.arange(m + 1)
            passes = _score_statistics(n, b, m - b, -REFUSAL.margin) > z
            size += stats.binom.pmf(m, n, flips) * np.sum(stats.binom.pmf(b, m, to_fail / flips)[passes])
        assert size <= DESIGN.alpha, (n, flips, size)


def test_the_paired_t_test_is_scipys():
    rng = np.random.default_rng(3)
    base = rng.normal(-2.0, 0.5, 60)
    candidate = base + rng.normal(-0.02, 0.1, 60)
    plan = MetricPlan("log-likelihood", MetricKind.CONTINUOUS, margin=0.05, planning_spread=0.1)
    result = compare(plan, DESIGN, PairedScores(tuple(map(str, range(60))), tuple(base), tuple(candidate)))
    expected = stats.ttest_1samp(candidate - base, -plan.margin, alternative="greater")
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    se = np.std(candidate - base, ddof=1) / math.sqrt(60)
    t = stats.t.ppf(0.95, 59)
    assert result.interval == pytest.approx((np.mean(candidate - base) - t * se, np.mean(candidate - base) + t * se))


def test_the_cluster_robust_standard_error_is_statsmodels():
    import statsmodels.api as sm

    rng = np.random.default_rng(5)
    clusters = np.repeat(np.arange(12), 8)
    shared = rng.normal(0, 0.3, 12)[clusters]  # items of one template move together
    diffs = shared + rng.normal(0, 0.1, len(clusters))
    plan = MetricPlan("domain", MetricKind.CONTINUOUS, margin=0.1, planning_spread=0.3, cluster_spread=0.3)
    scores = PairedScores(tuple(map(str, range(len(diffs)))), (0.0,) * len(diffs), tuple(diffs),
                          tuple(f"template-{c}" for c in clusters))
    result = compare(plan, DESIGN, scores)
    fitted = sm.OLS(diffs, np.ones(len(diffs))).fit(cov_type="cluster", cov_kwds={"groups": clusters})
    t = stats.t.ppf(0.95, 11)
    se = (result.interval[1] - result.interval[0]) / (2 * t)
    assert se == pytest.approx(float(fitted.bse[0]), rel=1e-9)
    assert result.method == "cluster-robust" and result.clusters == 12
    # Counted as 96 independent items, the same differences would look far more certain.
    independent = compare(plan, DESIGN, PairedScores(scores.item_ids, scores.base, scores.candidate))
    assert independent.interval[1] - independent.interval[0] < 0.6 * (result.interval[1] - result.interval[0])


def test_holm_is_statsmodels():
    p = [0.01, 0.04, 0.03, 0.005, 0.2]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))


def test_the_base_against_itself_passes_and_a_small_suite_is_insufficient():
    n = required_items(REFUSAL, DESIGN)
    same = PairedScores(tuple(map(str, range(n))), (1.0,) * (n // 2) + (0.0,) * (n - n // 2),
                        (1.0,) * (n // 2) + (0.0,) * (n - n // 2))
    [itself] = decide([compare(REFUSAL, DESIGN, same)], DESIGN)
    assert itself.verdict is Verdict.NON_INFERIOR and itself.difference == 0 and itself.power >= DESIGN.power
    # Half the items the declared power needs: identical outputs, yet never a pass.
    [short] = decide([compare(REFUSAL, DESIGN, _binary(0, 0, n // 2))], DESIGN)
    assert short.verdict is Verdict.INSUFFICIENT and short.power < DESIGN.power and short.required == n


def test_a_clear_regression_is_inferior_and_holm_spans_the_metrics():
    n = required_items(REFUSAL, DESIGN)
    regressed = compare(REFUSAL, DESIGN, _binary(80, 10, n - 90))
    sound = compare(MetricPlan("instructions", MetricKind.BINARY, 0.05, 0.2), DESIGN, _binary(20, 22, n - 42))
    decided = decide([regressed, sound], DESIGN)
    assert [r.verdict for r in decided] == [Verdict.INFERIOR, Verdict.NON_INFERIOR]
    assert [r.adjusted_p for r in decided] == pytest.approx(
        list(multipletests([regressed.p_value, sound.p_value], method="holm")[1]))


def test_simulated_error_rates_match_the_design():
    """Seeded: a true regression exactly at the margin passes at most at α, when 20 % of items flip and when barely
    more than the margin does; a candidate that truly did not change passes at least at the declared power, at the
    sample size the design asks for."""
    n, sims = required_items(REFUSAL, DESIGN), 1000
    rng = np.random.default_rng(20261201)

    def pass_rate(to_fail: float, to_pass: float) -> float:
        passed = 0
        for b, c, same in rng.multinomial(n, [to_fail, to_pass, 1 - to_fail - to_pass], size=sims):
            [result] = decide([compare(REFUSAL, DESIGN, _binary(int(b), int(c), int(same)))], DESIGN)
            passed += result.verdict is Verdict.NON_INFERIOR
        return passed / sims

    at_margin = pass_rate(0.125, 0.075)  # difference −0.05, 20 % of items flip
    at_margin_few_flips = pass_rate(0.055, 0.005)  # difference −0.05, 6 % flip
    unchanged = pass_rate(0.1, 0.1)
    slack = 3 * math.sqrt(0.05 * 0.95 / sims), 3 * math.sqrt(0.8 * 0.2 / sims)
    print(f"n={n}: at the margin passed {at_margin:.3f} (20 % flip) and {at_margin_few_flips:.3f} (6 % flip); "
          f"no change passed {unchanged:.3f}")
    assert at_margin <= DESIGN.alpha + slack[0] and at_margin_few_flips <= DESIGN.alpha + slack[0]
    assert unchanged >= DESIGN.power - slack[1]


@pytest.mark.parametrize("bad", [
    lambda: MetricPlan("m", MetricKind.BINARY, margin=0, planning_spread=0.2),
    lambda: MetricPlan("m", MetricKind.BINARY, margin=0.05, planning_spread=1.5),
    lambda: MetricPlan("m", MetricKind.BINARY, margin=1.0, planning_spread=0.5),
    lambda: Design(alpha=0.5, power=0.8),
    lambda: compare(REFUSAL, DESIGN, PairedScores(("a",), (0.5,), (1.0,))),
    lambda: compare(REFUSAL, DESIGN, PairedScores(("a", "a"), (1.0, 1.0), (1.0, 0.0))),
    lambda: compare(REFUSAL, DESIGN, PairedScores(("a",), (1.0,), (float("nan"),))),
    lambda: compare(REFUSAL, DESIGN, PairedScores(("a", "b"), (1.0, 1.0), (1.0, 0.0), ("t", "t"))),
])
def test_bad_plans_and_scores_are_refused(bad):
    with pytest.raises(BadInput):
        bad()
