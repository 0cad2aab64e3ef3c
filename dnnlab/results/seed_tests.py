"""Is the win real? `compare --group-seeds`'s intervals and tests: which value of each run is
tested, the groups' seeds, and the seeds a difference would need.

`statistics` does the numbers on {group: {seed: value}}; this module takes those values from a
seed-grouped `Comparison` (each run's best epoch of the ranking metric, its last epoch with
`at="final"`, or run.json's test score for a `test_` metric), keys them by seed so groups that ran
the same seeds are paired, and attaches the results to the comparison for `formats` to render.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from dnnlab.errors import DnnlabError
from dnnlab.results import formats
from dnnlab.results.compare import Comparison, SeedGroup
from dnnlab.results.options import AT_CHOICES, CI_CHOICES
from dnnlab.results.statistics import (
    SEEDS_CAP,
    WITHIN_NOISE,
    GroupResult,
    SeedsNeeded,
    compare_groups,
    seeds_needed,
)
from dnnlab.rundir.loading import MISSING, TEST_PREFIX, LoadedRun

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
TO_SEPARATE_CAP = 100  # past this many seeds, "a difference this size needs more than 100 seeds"


@dataclass(frozen=True)
class GroupTest:
    """One seed group: its interval and test against the best (`result`), the seeds that would
    detect `--seeds-needed DELTA` (`needed`), and, within noise, the seeds that would separate a
    difference of the observed size (`to_separate`)."""

    result: GroupResult
    needed: SeedsNeeded | None = None
    to_separate: SeedsNeeded | None = None

    def cells(self, delta: float | None) -> dict[str, Any]:
        """The columns csv, markdown and the HTML report show (None: no value)."""
        r = self.result
        cells = {
            "n": r.n,
            "mean": r.mean,
            "std": r.std,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "p_value": r.p_value,
            "verdict": r.verdict,
            "test": r.test,
            "difference": r.difference,
            "difference_ci_low": r.difference_ci_low,
            "difference_ci_high": r.difference_ci_high,
        }
        if delta is not None:
            cells["seeds_needed"] = _count(self.needed, SEEDS_CAP)
        cells["seeds_to_separate"] = _count(self.to_separate, TO_SEPARATE_CAP)
        return cells

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: statistics' fields, then the seed counts with their power and wording."""
        return {
            **self.result.as_dict(),
            "seeds_needed": _needed_dict(self.needed),
            "seeds_to_separate": _needed_dict(self.to_separate),
        }

    def line(self, delta: float | None = None) -> str:
        """The sentence for people: the result's, plus what more seeds would take."""
        parts = [self.result.sentence]
        unit = "paired seeds" if self.result.paired else "seeds per group"
        if self.to_separate is not None:
            count = _count(self.to_separate, TO_SEPARATE_CAP, "more than ")
            parts.append(f"a difference this size would need {count} {unit} to show ({POWER:.0%} power)")
        if self.needed is not None:
            count = _count(self.needed, SEEDS_CAP, "more than ")
            parts.append(f"detecting {delta:g} would need {count} {unit}")
        return "; ".join(parts)


@dataclass(frozen=True)
class SeedTests:
    """How the seed groups of a comparison were tested, and the notes on reading the result."""

    metric: str
    at: str  # "best" or "final"; "test" for run.json's test score (measured once, on the kept model)
    ci: str  # a key of CI_CHOICES
    delta: float | None
    best: str | None  # the best group's label
    comparisons: int  # the p-values Holm adjusted over together
    notes: list[str]

    @property
    def tested(self) -> str:
        """The column the values come from: best_val_loss, final_val_loss or test_accuracy."""
        return self.metric if self.at == "test" else f"{self.at}_{self.metric}"

    @property
    def where(self) -> str:
        """Which value of each run was tested, in words."""
        return {
            "best": "at each run's best epoch",
            "final": "at each run's last epoch",
            "test": "of each run's kept model on the test split",
        }[self.at]

    @property
    def method(self) -> str:
        """One line on how the numbers were made."""
        interval = "t" if self.ci == "t" else "BCa bootstrap"
        holm = f", Holm-adjusted over {self.comparisons} comparisons" if self.comparisons > 1 else ""
        return (
            f"tests: {self.metric} {self.where}; each group against the best by mean "
            f"(paired t on the seeds both ran, Welch t otherwise){holm}; {CONFIDENCE:.0%} {interval} "
            "intervals of the mean"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "at": self.at,
            "tested": self.tested,
            "ci": self.ci,
            "confidence": CONFIDENCE,
            "alpha": ALPHA,
            "holm": "every pair of groups",
            "comparisons": self.comparisons,
            "best": self.best,
            "seeds_needed_delta": self.delta,
            "power": POWER,
            "method": self.method,
            "notes": self.notes,
        }


def check_options(ci: str = "t", at: str = "best", delta: float | None = None, metric: str | None = None):
    """Refuse bad test options with one line, before any run is read."""
    if ci not in CI_CHOICES:
        raise DnnlabError(f"Received --ci {ci}, expected one of: {', '.join(CI_CHOICES)}.")
    if at not in AT_CHOICES:
        raise DnnlabError(f"Received --at {at}, expected one of: {', '.join(AT_CHOICES)}.")
    if delta is not None and not (math.isfinite(delta) and delta > 0):
        raise DnnlabError(
            f"Received --seeds-needed {delta:g}, expected a difference > 0 in the metric's units "
            "(0.01 is one point of accuracy)."
        )
    if at == "final" and metric is not None and metric.startswith(TEST_PREFIX):
        raise DnnlabError(
            f"Received --at final with --metric {metric}: the test split is scored once, on the kept "
            "model, not every epoch; drop --at or test a per-epoch metric."
        )


def attach(comparison: Comparison, ci: str = "t", at: str = "best", delta: float | None = None) -> SeedTests:
    """Test the seed groups of `comparison` (compare(..., group_seeds=True)) against the best and
    attach the results: `group.test` on each group, `comparison.tests`; the groups are re-ranked
    by the tested value, so rank 1 is the group the tests call best."""
    check_options(ci, at, delta, comparison.metric)
    if comparison.groups is None:
        raise ValueError("attach needs a comparison made with group_seeds=True")
    metric = comparison.metric
    source = "test" if metric.startswith(TEST_PREFIX) and not _per_epoch(comparison, metric) else at
    labels = _labels(comparison)
    notes: list[str] = []
    values = {}
    for label, group in zip(labels, comparison.groups):
        values[label] = _seed_values(group, metric, source, label, notes)
    results = compare_groups(values, comparison.mode, ci=CI_CHOICES[ci], confidence=CONFIDENCE, alpha=ALPHA)
    by_label = dict(zip(labels, comparison.groups))
    comparison.groups = [by_label[r.name] for r in results]
    for result, group in zip(results, comparison.groups):
        group.test = GroupTest(result, _needed(result, delta), _to_separate(result))
    best = results[0].name if results and results[0].verdict == "best" else None
    comparisons = max((r.comparisons or 0 for r in results), default=0)
    notes += _notes(comparison, source, results)
    comparison.tests = SeedTests(metric, source, ci, delta, best, comparisons, notes)
    return comparison.tests


def _tested_value(run: LoadedRun, metric: str, at: str) -> float | None:
    """The value of `metric` that the tests take from one run (None: the run has none)."""
    if at == "test":
        return run.test.get(metric.removeprefix(TEST_PREFIX))
    if at == "final":
        history = run.history.get(metric)
        return history[-1] if history else None
    return run.best.value if run.best else None


def _per_epoch(comparison: Comparison, metric: str) -> bool:
    return any(metric in run.history for run in comparison.runs)


def _seed_values(group: SeedGroup, metric: str, at: str, label: str, notes: list[str]) -> dict[Any, Any]:
    """{seed: value}: a seed that two runs of the group share (or none) is keyed by the run's
    path instead, so it is never paired with another group's seed."""
    seeds = [_seed(run) for run in group.runs]
    counts = Counter(s for s in seeds if s is not None)
    repeated = sorted((str(s) for s, n in counts.items() if n > 1))
    if repeated:
        notes.append(
            f"{label}: runs share seed {', '.join(repeated)}: repeats of one run rather than independent "
            "seeds, so they are not paired and make the spread look smaller"
        )
    values = {
        (seed if seed is not None and counts[seed] == 1 else f"run:{run.path}"): _tested_value(
            run, metric, at
        )
        for run, seed in zip(group.runs, seeds)
    }
    # In seed order, not the ranking's: a bootstrap interval depends on the order of its values.
    return dict(sorted(values.items(), key=lambda item: (isinstance(item[0], str), item[0])))


def _seed(run: LoadedRun) -> int | str | None:
    seed = run.config.get("seed") if run.config else None
    return seed if isinstance(seed, (int, str)) and not isinstance(seed, bool) else None


def _labels(comparison: Comparison) -> list[str]:
    """Each group's label, short enough for a sentence: the keys on which two groups that both
    have them disagree, a type with only the keys that tell it from another group of that type
    (sgd against adam: `optimizer=sgd, learning_rate=0.01`, not adam's betas beside sgd's
    momentum), all the differing keys where that leaves two groups alike, and the rank where even
    those do."""
    full = [formats.group_label(g, comparison) or g.runs[0].name for g in comparison.groups]
    keys = [key for key in comparison.differing_keys if _disagree(comparison.groups, key)]
    brief = _brief_params(comparison.groups, keys)
    short = [
        formats.group_label(g, comparison, keys, values) or g.runs[0].name
        for g, values in zip(comparison.groups, brief)
    ]
    labels = short if len(set(short)) == len(set(full)) else full
    counts = Counter(labels)
    return [f"{label} (#{i})" if counts[label] > 1 else label for i, label in enumerate(labels, 1)]


def _brief_params(groups: list[SeedGroup], keys: list[str]) -> list[dict[str, Any]]:
    """Each group's values of `keys`, a type (`{type: sgd, momentum: 0.9}`) cut to the keys on
    which groups of that type differ: `sgd` while one group runs sgd."""
    params = [dict(g.runs[0].params) for g in groups]
    for key in keys:
        typed = [p[key] for p in params if isinstance(p.get(key), dict) and "type" in p[key]]
        for values in params:
            value = values.get(key)
            if isinstance(value, dict) and "type" in value:
                alike = [t for t in typed if t["type"] == value["type"]]
                values[key] = {
                    k: v
                    for k, v in value.items()
                    if k == "type" or len({repr(t.get(k, MISSING)) for t in alike}) > 1
                }
    return params


def _disagree(groups: list[SeedGroup], key: str) -> bool:
    """Whether two groups whose runs have `key` give it different values."""
    values = {repr(g.runs[0].params.get(key, MISSING)) for g in groups if g.runs[0].config is not None}
    return len(values - {repr(MISSING)}) > 1


def _needed(result: GroupResult, delta: float | None) -> SeedsNeeded | None:
    """The seeds that detect `delta` with POWER at Holm's strictest step (alpha / comparisons)."""
    if delta is None or result.test is None:
        return None
    return seeds_needed(result.spread, delta, POWER, ALPHA / result.comparisons, result.paired)


def _to_separate(result: GroupResult) -> SeedsNeeded | None:
    """Within noise: the seeds that would show a difference of the size observed."""
    if result.verdict != WITHIN_NOISE or result.test is None or not result.difference:
        return None
    alpha = ALPHA / result.comparisons
    return seeds_needed(result.spread, result.difference, POWER, alpha, result.paired, TO_SEPARATE_CAP)


def _notes(comparison: Comparison, at: str, results: list[GroupResult]) -> list[str]:
    notes = []
    if all(len(group.runs) < 2 for group in comparison.groups):
        notes.append("one run per group: an interval or a test needs 2 seeds or more (sweep with --seeds 3)")
    metric = comparison.metric
    if metric.startswith("val_") and len(results) > 1 and results[0].verdict == "best":
        name = metric.removeprefix("val_")
        split = (
            f"--metric test_{name}"
            if any(name in run.test for run in comparison.runs)
            else "the test split (dnnlab evaluate RUN_DIR --data test)"
        )
        epoch = " and each run's best epoch" if at == "best" else ""
        notes.append(
            f"{metric} chose the best group{epoch}, so the best's validation score is optimistic; "
            f"for an unbiased estimate of the winner use {split}"
        )
    return notes


def _count(needed: SeedsNeeded | None, cap: int, more: str = ">") -> int | str | None:
    """The number of seeds, or `>CAP` when the cap was reached first."""
    if needed is None:
        return None
    return needed.n if needed.n is not None else f"{more}{cap}"


def _needed_dict(needed: SeedsNeeded | None) -> dict[str, Any] | None:
    if needed is None:
        return None
    return {"n": needed.n, "power": needed.power, "capped": needed.capped, "note": needed.note}
