"""Is the win real? Intervals, tests against the best, Holm, calibration and seed counts.

The numbers are checked against hand calculations (t quantiles, Welch-Satterthwaite), SciPy's own
tests, a worked Holm example, G*Power's sample sizes, and simulations of equal and unequal groups.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from dnnlab.errors import DnnlabError
from dnnlab.results.statistics import (
    compare_groups,
    holm,
    seeds_needed,
    summarize,
    t_test_power,
)

RELU = {1: 0.921, 2: 0.934, 3: 0.917, 4: 0.928, 5: 0.925}
ELU = {1: 0.915, 2: 0.922, 3: 0.911, 4: 0.921, 5: 0.914}


def by_name(results):
    return {r.name: r for r in results}


# ---------------------------------------------------------------- intervals


def test_t_interval_is_the_hand_calculation():
    values = [0.90, 0.92, 0.91, 0.95, 0.93]
    mean = sum(values) / 5
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)
    half = stats.t.ppf(0.975, 4) * std / math.sqrt(5)
    s = summarize(values)
    assert (s.n, s.ci_method, s.note) == (5, "t", None)
    assert s.mean == pytest.approx(0.922) and s.std == pytest.approx(0.0192354, abs=1e-7)
    assert (s.ci_low, s.ci_high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert (s.ci_low, s.ci_high) == (pytest.approx(0.898116, abs=1e-6), pytest.approx(0.945884, abs=1e-6))
    s90 = summarize(values, confidence=0.90)
    assert s90.ci_high - s90.mean == pytest.approx(stats.t.ppf(0.95, 4) * std / math.sqrt(5))


def test_one_seed_has_no_interval_and_says_why():
    s = summarize([0.9])
    assert (s.n, s.mean, s.std, s.ci_low, s.ci_high) == (1, 0.9, None, None, None)
    assert "one seed" in s.note


def test_nan_inf_and_missing_values_are_left_out_and_counted():
    s = summarize([1.0, float("nan"), 2.0, None, float("inf"), 3.0])
    assert (s.n, s.mean, s.std, s.excluded) == (3, 2.0, 1.0, 3)
    assert summarize([float("nan")]).n == 0


def test_identical_values_give_the_point_as_interval():
    s = summarize([0.1, 0.1, 0.1], ci="bca")
    assert (s.mean, s.std, s.ci_low, s.ci_high) == (0.1, 0.0, 0.1, 0.1)


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_bootstrap_interval_is_reproducible_with_a_seed(method):
    values = [0.9012, 0.9234, 0.9101, 0.9487, 0.9322, 0.8911, 0.9405, 0.9158, 0.9263, 0.9077]
    first = summarize(values, ci=method, seed=3)
    assert first == summarize(values, ci=method, seed=3)
    assert first.ci_method == method and first.ci_low < first.mean < first.ci_high
    assert min(values) <= first.ci_low and first.ci_high <= max(values)
    other = summarize(values, ci=method, seed=4)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)


# ---------------------------------------------------------------- choosing and naming the test


def test_same_seeds_are_paired_and_the_interval_is_of_the_mean_difference():
    elu = by_name(compare_groups({"relu": RELU, "elu": ELU}))["elu"]
    d = np.array([ELU[s] - RELU[s] for s in RELU])
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert (elu.test, elu.paired, elu.seeds_compared, elu.comparisons) == ("paired t", True, 5, 1)
    assert elu.p_value == pytest.approx(stats.ttest_rel(d, np.zeros(5)).pvalue)
    assert elu.difference == pytest.approx(d.mean())
    assert (elu.difference_ci_low, elu.difference_ci_high) == (
        pytest.approx(d.mean() - half),
        pytest.approx(d.mean() + half),
    )
    assert elu.verdict == "worse"
    assert (
        elu.sentence
        == "elu vs relu: -0.84 points, 95% CI [-1.2, -0.482], p = 0.0029 (paired t, 5 seeds): worse"
    )


def test_different_seeds_use_welch_with_the_welch_satterthwaite_interval():
    a = {1: 0.50, 2: 0.58, 3: 0.55, 4: 0.61}
    b = {11: 0.40, 12: 0.52, 13: 0.47, 1: 0.35, 14: 0.44, 15: 0.49}  # one shared seed is not a pairing
    r = by_name(compare_groups({"a": a, "b": b}))["b"]
    x, y = np.array(list(b.values())), np.array(list(a.values()))
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    diff = x.mean() - y.mean()
    half = stats.t.ppf(0.975, df) * math.sqrt(vx + vy)
    assert (r.test, r.paired) == ("Welch t", False)
    assert r.p_value == pytest.approx(stats.ttest_ind(x, y, equal_var=False).pvalue)
    assert (r.difference, r.difference_ci_low, r.difference_ci_high) == (
        pytest.approx(diff),
        pytest.approx(diff - half),
        pytest.approx(diff + half),
    )
    assert "(Welch t, 6 and 4 seeds)" in r.sentence


def test_wilcoxon_when_asked_and_its_floor_with_few_seeds_is_said():
    elu = by_name(compare_groups({"relu": RELU, "elu": ELU}, paired_test="wilcoxon"))["elu"]
    d = [ELU[s] - RELU[s] for s in RELU]
    assert elu.test == "Wilcoxon signed-rank"
    assert elu.p_value == pytest.approx(stats.wilcoxon(d).pvalue) == pytest.approx(0.0625)
    assert elu.verdict == "within noise"
    assert "cannot reach p < 0.05" in elu.sentence and "cannot reach" in elu.note


def test_lower_is_better_picks_the_smallest_mean_and_shows_metric_units():
    loss = {"a": {1: 0.35, 2: 0.36, 3: 0.34}, "b": {1: 0.31, 2: 0.29, 3: 0.33}}
    results = compare_groups(loss, "min")
    assert [(r.name, r.verdict) for r in results] == [("b", "best"), ("a", "within noise")]
    assert results[1].sentence.startswith("a vs b: +0.04, 95% CI [")
    assert "points" not in results[1].sentence
    big = compare_groups({"a": {1: 1234.5, 2: 1240.1, 3: 1229.9}, "b": {1: 1200.2, 2: 1210.9, 3: 1190.0}})
    assert big[0].sentence == "a: best, mean 1235 (95% CI [1222, 1248], 3 seeds)"


# ---------------------------------------------------------------- Holm


def test_holm_matches_the_worked_example():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1, never below an earlier step
    assert holm([]) == []


def test_holm_adjusts_over_every_pair_when_the_best_is_picked_from_the_data():
    rng = np.random.default_rng(0)
    groups = {f"g{i}": dict(enumerate(rng.normal(i, 1, 6))) for i in range(4)}
    results = compare_groups(groups, points=False)
    assert {r.comparisons for r in results[1:]} == {6}
    narrow = compare_groups(groups, points=False, holm_family="best")
    assert {r.comparisons for r in narrow[1:]} == {3}
    raw = sorted(r.p_raw for r in narrow[1:])
    assert sorted(r.p_value for r in narrow[1:]) == pytest.approx(holm(raw))
    assert all(r.p_value >= n.p_value for r, n in zip(results[1:], narrow[1:]))


def test_the_pairs_that_only_join_holm_s_family_have_scipy_s_p_values():
    a = {1: 0.50, 2: 0.58, 3: 0.55, 4: 0.61}
    b = {11: 0.40, 12: 0.52, 13: 0.47, 14: 0.44, 15: 0.49}
    c = {21: 0.38, 22: 0.36, 23: 0.41}  # b - c then sets b's adjusted p: Holm's second step
    results = by_name(compare_groups({"a": a, "b": b, "c": c}))
    welch = [stats.ttest_ind(list(x.values()), list(y.values()), equal_var=False).pvalue for x, y in
             ((b, a), (c, a), (b, c))]  # fmt: skip
    assert [results["b"].p_value, results["c"].p_value] == pytest.approx(holm(welch)[:2], rel=1e-9)


# ---------------------------------------------------------------- verdicts at the edges


def test_identical_groups_are_within_noise_with_p_1():
    r = compare_groups({"a": RELU, "b": dict(RELU)})[1]
    assert (r.verdict, r.p_value, r.difference, r.spread) == ("within noise", 1.0, 0.0, 0.0)


def test_a_constant_difference_is_certain_and_its_sign_gives_the_verdict():
    best = {1: 1.0, 2: 2.0, 3: 3.0}
    lower = compare_groups({"best": best, "lower": {s: v - 0.5 for s, v in best.items()}})[1]
    assert (lower.verdict, lower.p_value, lower.difference) == ("worse", 0.0, -0.5)
    assert (lower.difference_ci_low, lower.difference_ci_high) == (-0.5, -0.5)
    # Best by mean over six seeds, yet beaten on each of the three seeds both ran.
    best = {1: 0.5, 2: 0.625, 3: 0.75, 4: 0.875, 5: 0.875, 6: 0.875}
    rival = {1: 0.625, 2: 0.75, 3: 0.875}
    r = by_name(compare_groups({"best": best, "rival": rival}))["rival"]
    assert (r.verdict, r.p_value, r.difference, r.seeds_compared) == ("better", 0.0, 0.125, 3)


def test_too_few_seeds_and_all_nan_groups_get_no_test():
    results = by_name(
        compare_groups({"a": RELU, "one": {9: 0.5}, "lost": {1: float("nan"), 2: None}, "pair": {1: 0.9}})
    )
    assert results["a"].verdict == "best"
    for name in ("one", "pair"):
        assert results[name].verdict == "too few seeds" and results[name].p_value is None
    assert results["lost"].verdict == "no finite values" and results["lost"].p_value is None  # all diverged
    assert "1 and 5 seeds, 0 shared" in results["one"].sentence
    assert "1 and 5 seeds, 1 shared" in results["pair"].sentence
    assert results["lost"].sentence == "lost: no finite values (2 NaN excluded)"
    assert compare_groups({"a": {1: 0.9}, "b": {2: 0.8}})[1].verdict == "too few seeds"
    assert [r.verdict for r in compare_groups({"x": {1: float("nan")}})] == ["no finite values"]


def test_nan_seeds_are_left_out_of_the_pairing_and_counted():
    elu = {**ELU, 3: float("nan")}
    r = by_name(compare_groups({"relu": RELU, "elu": elu}))["elu"]
    assert (r.n, r.excluded, r.seeds_compared) == (4, 1, 4)
    assert "(paired t, 4 seeds; 1 NaN excluded)" in r.sentence


def test_every_result_is_json_ready_with_the_agreed_keys():
    groups = {"a": RELU, "b": ELU, "c": {7: 0.9, 8: 0.91}, "d": {9: 0.5}, "e": {1: float("nan")}}
    for r in compare_groups(groups, ci="bca"):
        row = r.as_dict()
        json.dumps(row, allow_nan=False)
        assert {"n", "mean", "std", "ci_low", "ci_high", "p_value", "verdict", "sentence"} <= set(row)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="paired_test"):
        compare_groups({"a": RELU}, paired_test="sign")
    with pytest.raises(ValueError, match="mode"):
        compare_groups({"a": RELU}, mode="higher")
    with pytest.raises(ValueError, match="ci"):
        summarize([1.0, 2.0], ci="bootstrap-ish")


# ---------------------------------------------------------------- calibration by simulation


def test_equal_groups_are_called_worse_at_most_alpha_of_the_time():
    rng = np.random.default_rng(20240601)
    repetitions, worse = 2000, 0
    for rep in range(repetitions):
        n = int(rng.integers(5, 11))
        offset = 0 if rep % 2 else 100  # every other repetition: different seeds, so Welch
        a = dict(enumerate(rng.normal(0, 1, n)))
        b = {s + offset: v for s, v in enumerate(rng.normal(0, 1, n))}
        worse += compare_groups({"a": a, "b": b}, points=False)[1].verdict == "worse"
    tolerance = 3 * math.sqrt(0.05 * 0.95 / repetitions)
    assert worse / repetitions <= 0.05 + tolerance


@pytest.mark.parametrize(("paired", "paired_test"), [(False, "t"), (True, "t"), (True, "wilcoxon")])
def test_two_standard_deviations_with_ten_seeds_are_found(paired, paired_test):
    rng = np.random.default_rng(7)
    repetitions, found = 300, 0
    for _ in range(repetitions):
        best = dict(enumerate(rng.normal(2, 1, 10)))
        other = {s + (0 if paired else 100): v for s, v in enumerate(rng.normal(0, 1, 10))}
        r = compare_groups({"best": best, "other": other}, paired_test=paired_test, points=False)
        found += r[0].name == "best" and r[1].verdict == "worse"
    assert found / repetitions >= 0.8


@pytest.mark.slow
@pytest.mark.parametrize("paired", [True, False])
def test_picking_the_best_of_five_equal_groups_keeps_false_worse_at_alpha(paired):
    rng = np.random.default_rng(11)
    repetitions, any_worse = 2000, 0
    for _ in range(repetitions):
        n = int(rng.integers(5, 11))
        groups = {f"g{i}": {s + (0 if paired else 100 * i): v for s, v in enumerate(rng.normal(0, 1, n))}
                  for i in range(5)}  # fmt: skip
        any_worse += any(r.verdict == "worse" for r in compare_groups(groups, points=False))
    assert any_worse / repetitions <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / repetitions)


# ---------------------------------------------------------------- how many seeds


@pytest.mark.parametrize(
    ("effect", "paired", "n"),
    # G*Power / Cohen's tables, two-sided alpha 0.05, power 0.8: one-sample (paired) and per group.
    [(1.0, True, 10), (0.8, True, 15), (0.5, True, 34), (1.0, False, 17), (0.8, False, 26), (0.5, False, 64)],
)
def test_seeds_needed_matches_the_textbook_values(effect, paired, n):
    found = seeds_needed(2.0, 2.0 * effect, paired=paired)
    assert (found.n, found.capped) == (n, False)
    assert found.power >= 0.8 > t_test_power(effect, n - 1, paired=paired)


def test_power_is_g_power_s_number():
    assert t_test_power(0.5, 64, paired=False) == pytest.approx(0.8014596, abs=1e-6)
    assert t_test_power(-1.0, 10) == pytest.approx(0.8030969, abs=1e-6)
    assert t_test_power(0.0, 7, alpha=0.05) == pytest.approx(0.05)  # no effect: both tails, alpha


def test_seeds_needed_says_when_the_cap_is_hit_and_refuses_a_zero_delta():
    found = seeds_needed(1.0, 0.01)
    assert (found.n, found.capped) == (None, True) and "more than 1000" in found.note
    assert seeds_needed(0.0, 0.1).n == 2
    with pytest.raises(DnnlabError, match="delta=0"):
        seeds_needed(1.0, 0.0)
    with pytest.raises(DnnlabError, match="power=1.5"):
        seeds_needed(1.0, 0.5, power=1.5)


def test_importing_the_module_leaves_scipy_for_when_it_computes():
    code = "import sys, dnnlab.results.statistics; print('scipy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
