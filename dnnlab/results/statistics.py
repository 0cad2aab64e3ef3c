"""Is the win real? Intervals, tests against the best group, and how many seeds a difference needs.

Pure statistics on plain numbers: `compare` and `report` hand in {group: {seed: value}} and render
what comes back. SciPy does the statistics (paired, Welch and Wilcoxon tests, t quantiles, the
bootstrap, the noncentral t); this module picks the test, corrects for the number of comparisons
(Holm) and answers the cases SciPy answers with NaN: one seed, no spread at all. SciPy is imported
inside the functions: it costs about 0.6 s, which `compare` without seed groups should not pay.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dnnlab.errors import DnnlabError

CI_METHODS = ("t", "bca", "percentile")  # Student's t, or scipy.stats.bootstrap's BCa / percentile
PAIRED_TESTS = ("t", "wilcoxon")
HOLM_FAMILIES = ("pairs", "best")
TEST_NAMES = {"t": "paired t", "wilcoxon": "Wilcoxon signed-rank", "welch": "Welch t"}
BEST, WORSE, BETTER, WITHIN_NOISE, TOO_FEW = "best", "worse", "better", "within noise", "too few seeds"
NO_FINITE = "no finite values"  # every run of the group diverged or lacks the metric
BASELINE = "baseline"  # the reference group of compare_groups(..., reference=NAME)
SEEDS_CAP = 1000


@dataclass(frozen=True)
class Summary:
    """One group's values: mean, sample std (ddof=1) and a confidence interval of the mean."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    ci_method: str | None  # one of CI_METHODS; None when there is no interval
    excluded: int = 0  # values left out: NaN, inf or missing
    note: str | None = None  # why there is no interval


@dataclass(frozen=True)
class GroupResult:
    """One group against the best: its summary, the test, the verdict and a sentence saying it.

    `p_value` is Holm-adjusted (`p_raw` before); `difference` is group - best in the metric's units,
    over the shared seeds when paired; `spread` is the std of the paired differences, or the pooled
    std when unpaired: what `seeds_needed` takes. Comparison fields are None on the best's row and
    where there was no test.
    """

    name: str
    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    verdict: str  # best | worse | better | within noise | too few seeds | no finite values
    test: str | None  # "paired t", "Wilcoxon signed-rank" or "Welch t"
    paired: bool | None
    seeds_compared: int | None  # shared seeds when paired, both groups' seeds when unpaired
    comparisons: int | None  # the p-values Holm adjusted over together
    p_raw: float | None
    difference: float | None
    difference_ci_low: float | None
    difference_ci_high: float | None
    spread: float | None
    ci_method: str | None
    excluded: int
    note: str | None
    sentence: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: plain numbers, strings and None (never NaN)."""
        return asdict(self)


@dataclass(frozen=True)
class SeedsNeeded:
    """The smallest number of seeds (per group when unpaired) with the asked power, or None past the cap."""

    n: int | None
    power: float  # the power at n, or at the cap when n is None
    capped: bool
    note: str


@dataclass(frozen=True)
class _Tested:
    test: str
    paired: bool
    seeds: int
    p: float
    difference: float
    low: float
    high: float
    spread: float
    counts: str  # "5 seeds" or "5 and 4 seeds", for the sentence
    nonzero: int = 0  # paired differences other than 0


# ---------------------------------------------------------------- one group


def summarize(
    values: Iterable[float | None],
    ci: str = "t",
    confidence: float = 0.95,
    seed: int = 0,
    n_resamples: int = 9999,
) -> Summary:
    """Mean, std and a confidence interval of the mean over the finite values of `values` (a list
    or a {seed: value} mapping); the others are counted in `excluded`.

    `ci="t"` is Student's t interval, right for a handful of seeds; "bca" and "percentile" are
    scipy's bootstrap intervals, seeded by `seed` so a report reads the same twice. Few seeds make
    the bootstrap too narrow: with 5 normal values its 95% BCa interval was 2/3 as wide as t's and
    held the true mean 83% of the time (t: 94%, 300 simulated groups).
    """
    _check_choice("ci", ci, CI_METHODS)
    values = list(values.values() if isinstance(values, Mapping) else values)
    data = _finite(values)
    excluded = len(values) - len(data)
    n = len(data)
    if n == 0:
        return Summary(0, None, None, None, None, None, excluded, "no finite values")
    x = np.asarray(data)
    mean = _mean(x)
    if n == 1:
        return Summary(1, mean, None, None, None, None, excluded, "one seed: no spread, so no interval")
    if x.min() == x.max():  # every t interval and every resample is the point itself
        return Summary(n, mean, 0.0, mean, mean, ci, excluded)
    std = float(np.std(x, ddof=1))
    from scipy import stats

    if ci == "t":
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
        return Summary(n, mean, std, mean - half, mean + half, ci, excluded)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's degenerate-data warning: the NaN below says it
        found = stats.bootstrap(
            (x,),
            np.mean,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method=ci,
            random_state=np.random.default_rng(seed),
        ).confidence_interval
    low, high = float(found.low), float(found.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return Summary(n, mean, std, None, None, None, excluded, f"the {ci} bootstrap interval is undefined")
    return Summary(n, mean, std, low, high, ci, excluded)


# ---------------------------------------------------------------- groups against the best


def compare_groups(
    groups: Mapping[str, Mapping[Any, float | None]],
    mode: str = "max",
    *,
    paired_test: str = "t",
    ci: str = "t",
    confidence: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
    points: bool | None = None,
    holm_family: str = "pairs",
    reference: str | None = None,
) -> list[GroupResult]:
    """Each group ({seed: value}) against the best by mean, best first, then by mean.

    `mode` is "max" when higher is better. A group that shares at least 2 seeds with the best is
    compared on those seeds (paired t on the differences, or Wilcoxon signed-rank when
    `paired_test="wilcoxon"`); otherwise by Welch's t-test. A verdict is `worse` (or `better`) when
    the Holm-adjusted p is below `alpha`. `points` shows differences x100 ("points"); None: when
    higher is better and every value is in [0, 1].

    Holm's family is every pair of groups that can be tested (`holm_family="pairs"`), not only the
    comparisons shown: the best is the largest of several noisy means, so testing the others
    against it alone calls equal groups `worse` more often than alpha says (measured with 5-10
    seeds: 6-9% for 3-5 equal groups at alpha 0.05, with `holm_family="best"`; 2 groups: the same).

    `reference` names a group fixed before the data (a baseline, the unchanged spec): each other
    group is tested against it instead of the best, its row's verdict is `baseline`, and Holm's
    family is those comparisons alone (nothing was picked from the data).
    """
    _check_choice("mode", mode, ("max", "min"))
    _check_choice("holm_family", holm_family, HOLM_FAMILIES)
    _check_choice("paired_test", paired_test, PAIRED_TESTS)
    clean = {
        name: {s: float(v) for s, v in values.items() if _is_finite(v)} for name, values in groups.items()
    }
    summaries = {
        name: summarize(list(values.values()), ci, confidence, seed) for name, values in groups.items()
    }
    if points is None:
        every = [v for values in clean.values() for v in values.values()]
        points = mode == "max" and bool(every) and all(0.0 <= v <= 1.0 for v in every)
    style = _Style(points, confidence)
    sign = 1.0 if mode == "max" else -1.0
    candidates = [name for name in groups if summaries[name].n > 0]
    if not candidates:
        return [_untested(name, summaries[name], None) for name in groups]
    if reference is not None and reference not in groups:
        raise ValueError(f"reference {reference!r} is not one of the groups")
    if reference is not None and reference not in candidates:  # no finite value to test against
        return [_untested(name, summaries[name], None) for name in groups]
    best = reference or max(candidates, key=lambda name: sign * summaries[name].mean)  # ties: the first
    tested: dict[str, _Tested] = {}
    for name in candidates:
        if name != best:
            found = _test(clean[name], clean[best], paired_test, confidence)
            if found is not None:
                tested[name] = found
    family = [t.p for t in tested.values()]
    if (
        holm_family == "pairs" and reference is None
    ):  # the best was picked from the data: its rivals are every pair
        for i, first in enumerate(candidates):
            for second in candidates[i + 1 :]:
                if best not in (first, second):
                    found = _family_p(clean[first], clean[second], paired_test)
                    family += [found] if found is not None else []
    adjusted = dict(zip(tested, holm(family)))
    results = []
    for name in groups:
        summary = summaries[name]
        if name == best:
            results.append(_best_result(name, summary, style, BASELINE if reference else BEST))
        elif name in tested:
            results.append(
                _tested_result(
                    name, best, summary, tested[name], adjusted[name], len(family), sign, alpha, style
                )
            )
        else:
            results.append(_untested(name, summary, (best, summaries[best], clean)))
    return sorted(
        results, key=lambda r: (r.verdict not in (BEST, BASELINE), r.mean is None, -sign * (r.mean or 0.0))
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the k-th smallest p times (m - k + 1), kept non-decreasing, at
    most 1. Controls the chance of any false `worse` at alpha, with no assumption between tests."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _test(
    group: dict[Any, float], best: dict[Any, float], paired_test: str, confidence: float
) -> _Tested | None:
    """The test of group - best: paired on the shared seeds when there are 2, else Welch; None
    when neither is possible."""
    shared = [s for s in best if s in group]
    if len(shared) >= 2:
        return _paired(
            np.array([group[s] for s in shared]), np.array([best[s] for s in shared]), paired_test, confidence
        )
    if len(group) >= 2 and len(best) >= 2:
        return _welch(np.array(list(group.values())), np.array(list(best.values())), confidence)
    return None


def _family_p(group: dict[Any, float], other: dict[Any, float], paired_test: str) -> float | None:
    """`_test(...).p` for a pair that only joins Holm's family, from the t formula: k groups make
    k(k-1)/2 such pairs, and scipy's ttest_rel costs about 0.8 ms a call (150 groups: 9 s) where
    this costs some 20 us. Wilcoxon keeps scipy's exact test."""
    if paired_test == "wilcoxon":
        found = _test(group, other, paired_test, 0.95)
        return None if found is None else found.p
    from scipy.special import stdtr  # Student's t cdf as a ufunc

    shared = [s for s in other if s in group]
    if len(shared) >= 2:
        d = np.array([group[s] for s in shared]) - np.array([other[s] for s in shared])
        if d.min() == d.max():
            return 1.0 if d[0] == 0 else 0.0
        t = np.mean(d) / (np.std(d, ddof=1) / math.sqrt(len(d)))
        return float(2 * stdtr(len(d) - 1, -abs(t)))
    if len(group) < 2 or len(other) < 2:
        return None
    g, b = np.array(list(group.values())), np.array(list(other.values()))
    if g.min() == g.max() and b.min() == b.max():
        return 1.0 if g[0] == b[0] else 0.0
    vg, vb = np.var(g, ddof=1) / len(g), np.var(b, ddof=1) / len(b)
    df = (vg + vb) ** 2 / (vg**2 / (len(g) - 1) + vb**2 / (len(b) - 1))
    t = (np.mean(g) - np.mean(b)) / math.sqrt(vg + vb)
    return float(2 * stdtr(df, -abs(t)))


def _paired(g: np.ndarray, b: np.ndarray, paired_test: str, confidence: float) -> _Tested:
    from scipy import stats

    d = g - b
    name, nonzero = TEST_NAMES[paired_test], int(np.count_nonzero(d))
    if d.min() == d.max():  # the same difference on every seed: nothing to weigh it against
        diff = float(d[0])
        if paired_test == "wilcoxon" and diff != 0:
            p = float(stats.wilcoxon(d).pvalue)  # its ranks still say something: 2 / 2**n
        else:
            p = 1.0 if diff == 0 else 0.0
        return _Tested(name, True, len(d), p, diff, diff, diff, 0.0, f"{len(d)} seeds", nonzero)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "precision loss" when the differences nearly agree
        result = stats.ttest_rel(g, b)
        low, high = (float(v) for v in result.confidence_interval(confidence))
        p = float(stats.wilcoxon(d).pvalue) if paired_test == "wilcoxon" else float(result.pvalue)
    spread = float(np.std(d, ddof=1))
    return _Tested(name, True, len(d), p, float(np.mean(d)), low, high, spread, f"{len(d)} seeds", nonzero)


def _welch(g: np.ndarray, b: np.ndarray, confidence: float) -> _Tested:
    from scipy import stats

    n, counts = len(g) + len(b), f"{len(g)} and {len(b)} seeds"
    pooled = math.sqrt(((len(g) - 1) * np.var(g, ddof=1) + (len(b) - 1) * np.var(b, ddof=1)) / (n - 2))
    diff = _mean(g) - _mean(b)
    if g.min() == g.max() and b.min() == b.max():  # no spread on either side
        return _Tested(
            TEST_NAMES["welch"], False, n, 1.0 if diff == 0 else 0.0, diff, diff, diff, 0.0, counts
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.ttest_ind(g, b, equal_var=False)
        low, high = (float(v) for v in result.confidence_interval(confidence))
    return _Tested(TEST_NAMES["welch"], False, n, float(result.pvalue), diff, low, high, pooled, counts)


def _wilcoxon_floor(t: _Tested, alpha: float) -> str | None:
    """Wilcoxon's smallest p with k nonzero differences is 2 / 2**k: 5 seeds never reach 0.05."""
    floor = 2 * 0.5**t.nonzero
    if t.test != TEST_NAMES["wilcoxon"] or floor < alpha:
        return None
    return (
        f"Wilcoxon cannot reach p < {alpha:g} with {t.nonzero} nonzero differences (smallest p {floor:.3g})"
    )


# ---------------------------------------------------------------- results and sentences


@dataclass(frozen=True)
class _Style:
    points: bool
    confidence: float

    def num(self, value: float, signed: bool = False) -> str:
        """3 significant digits, but whole numbers from 1000 on (1234, not 1.23e+03)."""
        value *= 100 if self.points else 1
        return f"{value:{'+' if signed else ''}{'.0f' if abs(value) >= 1000 else '.3g'}}"

    @property
    def unit(self) -> str:
        return " points" if self.points else ""

    @property
    def ci(self) -> str:
        return f"{self.confidence * 100:g}% CI"


def _best_result(name: str, s: Summary, style: _Style, verdict: str = BEST) -> GroupResult:
    mean = style.num(s.mean) + ("%" if style.points else "")
    if s.ci_low is None:
        detail = "1 seed, no interval" if s.n == 1 else s.note
    else:
        detail = f"{style.ci} [{style.num(s.ci_low)}, {style.num(s.ci_high)}], {s.n} seeds"
    sentence = f"{name}: {verdict}, mean {mean} ({detail}{_excluded(s)})"
    return _result(name, s, verdict, None, sentence)


def _tested_result(
    name: str, best: str, s: Summary, t: _Tested, p: float, m: int, sign: float, alpha: float, style: _Style
) -> GroupResult:
    if p < alpha and t.difference != 0:
        verdict = WORSE if sign * t.difference < 0 else BETTER
    else:
        verdict = WITHIN_NOISE
    shown_p = "p < 0.001" if p < 0.001 else f"p = {p:.2g}"
    how = ", ".join([t.test, t.counts] + (["Holm"] if m > 1 else []))
    sentence = (
        f"{name} vs {best}: {style.num(t.difference, signed=True)}{style.unit}, "
        f"{style.ci} [{style.num(t.low)}, {style.num(t.high)}], {shown_p} ({how}{_excluded(s)}): {verdict}"
    )
    note = _wilcoxon_floor(t, alpha)
    if note:
        sentence += f"; {note}"
    return GroupResult(
        name, s.n, s.mean, s.std, s.ci_low, s.ci_high, p, verdict, t.test, t.paired, t.seeds, m, t.p,
        t.difference, t.low, t.high, t.spread, s.ci_method, s.excluded, note or s.note, sentence,
    )  # fmt: skip


def _untested(name: str, s: Summary, against: tuple[str, Summary, dict] | None) -> GroupResult:
    if s.n == 0 or against is None:
        verdict = NO_FINITE if s.n == 0 and s.excluded else TOO_FEW
        return _result(name, s, verdict, None, f"{name}: no finite values ({s.excluded} NaN excluded)")
    best, b, clean = against
    shared = sum(1 for seed in clean[name] if seed in clean[best])
    sentence = (
        f"{name} vs {best}: too few seeds to test ({s.n} and {b.n} seeds, {shared} shared; a test needs "
        f"2 shared seeds or 2 in each group{_excluded(s)})"
    )
    return _result(name, s, TOO_FEW, None, sentence)


def _result(name: str, s: Summary, verdict: str, p: float | None, sentence: str) -> GroupResult:
    return GroupResult(
        name, s.n, s.mean, s.std, s.ci_low, s.ci_high, p, verdict, None, None, None, None, None,
        None, None, None, None, s.ci_method, s.excluded, s.note, sentence,
    )  # fmt: skip


def _excluded(s: Summary) -> str:
    return f"; {s.excluded} NaN excluded" if s.excluded else ""


# ---------------------------------------------------------------- how many seeds


def t_test_power(effect_size: float, n: int, alpha: float = 0.05, paired: bool = True) -> float:
    """The power of a two-sided t-test to detect `effect_size` (difference / std): one-sample on n
    paired differences, or two groups of n each, from the noncentral t distribution."""
    return float(_power(abs(effect_size), np.asarray([n]), alpha, paired)[0])


def seeds_needed(
    std_of_differences: float,
    delta: float,
    power: float = 0.8,
    alpha: float = 0.05,
    paired: bool = True,
    cap: int = SEEDS_CAP,
) -> SeedsNeeded:
    """The smallest n whose two-sided t-test detects a mean difference `delta` (metric units) with
    at least `power`: n paired seeds when paired (std of the per-seed differences), else n seeds in
    each of two groups (their pooled std): `GroupResult.spread` and `.paired`. With several groups,
    pass the alpha Holm uses on the smallest p (alpha / `GroupResult.comparisons`) to plan for it."""
    if not (math.isfinite(delta) and delta != 0):
        raise DnnlabError(
            f"Received delta={delta}, expected a finite difference other than 0 (metric units)."
        )
    if not (math.isfinite(std_of_differences) and std_of_differences >= 0):
        raise DnnlabError(f"Received std={std_of_differences}, expected a finite standard deviation >= 0.")
    for key, value in (("power", power), ("alpha", alpha)):
        if not 0 < value < 1:
            raise DnnlabError(f"Received {key}={value}, expected a number between 0 and 1.")
    unit = "paired seeds" if paired else "seeds per group"
    if std_of_differences == 0:
        return SeedsNeeded(2, 1.0, False, f"2 {unit}: the values do not vary, so any difference shows")
    ns = np.arange(2, max(cap, 2) + 1)
    powers = _power(abs(delta) / std_of_differences, ns, alpha, paired)
    enough = np.flatnonzero(powers >= power)
    if enough.size == 0:
        return SeedsNeeded(
            None, float(powers[-1]), True, f"more than {ns[-1]} {unit} (power at {ns[-1]}: {powers[-1]:.2f})"
        )
    n = int(ns[enough[0]])
    return SeedsNeeded(
        n,
        float(powers[enough[0]]),
        False,
        f"{n} {unit} give power {powers[enough[0]]:.2f} at alpha {alpha:g}",
    )


def _power(effect: float, ns: np.ndarray, alpha: float, paired: bool) -> np.ndarray:
    from scipy import stats

    ns = ns.astype(float)
    df = ns - 1 if paired else 2 * ns - 2
    noncentrality = effect * np.sqrt(ns if paired else ns / 2)
    critical = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality)


# ---------------------------------------------------------------- helpers


def _is_finite(value: Any) -> bool:
    """A real number that is not NaN or inf (numpy scalars included; bools and strings are not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _finite(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if _is_finite(v)]


def _mean(x: np.ndarray) -> float:
    """The mean, exact when all values are equal (np.mean of [0.1] * 3 is not 0.1)."""
    return float(x[0]) if x.min() == x.max() else float(np.mean(x))


def _check_choice(key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"Received {key}={value!r}, expected one of: {', '.join(allowed)}.")
