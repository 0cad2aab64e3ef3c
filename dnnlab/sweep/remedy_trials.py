"""`dnnlab diagnose SPEC --try-remedies`: does the advice hold? The spec unchanged and with each
remedy its verdicts name, trained as one sweep over a few seeds, each remedy tested against the
unchanged spec (the baseline), not against the best group.

The tested value is each run's last-epoch val_accuracy when the runs record it (a diverged run's
accuracy stays finite and low, so it counts against its remedy), else the spec's monitor. Each
remedy gets a paired t-test on the seeds it shares with the baseline, Holm-adjusted over the
remedies tried. A remedy whose runs diverged on more seeds than the baseline's is `worse`
whatever the test says: advice is never called a fix when it broke training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dnnlab.data.checked_spec import check_spec_mapping
from dnnlab.diagnostics.remedies import Remedy, remedies_for
from dnnlab.errors import DnnlabError
from dnnlab.results.statistics import BETTER, WITHIN_NOISE, WORSE, GroupResult, compare_groups
from dnnlab.rundir.loading import load_run
from dnnlab.sweep.definition import build_sweep
from dnnlab.sweep.runner import SweepResult, run_sweep

BASELINE_LABEL = "unchanged"
PREFERRED_METRIC = "val_accuracy"
CONFIDENCE, ALPHA = 0.95, 0.05
OUTCOME = {BETTER: "made it better", WORSE: "made it worse", WITHIN_NOISE: "made no clear difference"}


@dataclass(frozen=True)
class TestedRemedy:
    """One group of the sweep: a remedy (None: the baseline), its values by seed, its test."""

    label: str
    remedy: Remedy | None
    values: dict[int, float | None]
    diverged: int  # seeds whose run diverged
    result: GroupResult
    verdict: str  # baseline, better, worse, within noise, too few seeds

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        finite = [v for v in self.values.values() if v is not None and math.isfinite(v)]
        return {
            "remedy": self.label,
            "overrides": self.remedy.overrides if self.remedy else [],
            "because": list(self.remedy.because) if self.remedy else [],
            "seeds": len(self.values),
            "values": {str(s): _plain(v) for s, v in self.values.items()},
            "diverged": self.diverged,
            "mean": _plain(sum(finite) / len(finite)) if finite else None,
            "std": r.std,
            "difference": r.difference,
            "difference_ci_low": r.difference_ci_low,
            "difference_ci_high": r.difference_ci_high,
            "p_value": r.p_value,
            "test": r.test,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class RemedyTrial:
    """The sweep that tried the remedies and what it found, baseline first."""

    sweep_dir: Path
    status: str
    metric: str
    mode: str  # "max" or "min"
    groups: list[TestedRemedy]

    @property
    def baseline(self) -> TestedRemedy:
        return self.groups[0]

    def phrase(self, group: TestedRemedy) -> str:
        """`clipnorm 1 made it worse (0.16 vs 0.51, 3 seeds)`: for the verdict texts."""
        base, n = self.baseline, len(group.values)
        if group.verdict == WORSE and group.diverged > base.diverged:
            return f"{group.label} made it worse (diverged on {group.diverged} of {n} seeds)"
        if group.verdict not in OUTCOME:
            return f"{group.label} could not be tested ({group.result.sentence})"
        return (
            f"{group.label} {OUTCOME[group.verdict]} ({_num(group.result.mean)} vs "
            f"{_num(base.result.mean)} {self.metric}, {n} seeds)"
        )

    def tested(self, label: str) -> TestedRemedy | None:
        return next((g for g in self.groups[1:] if g.label == label), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sweep": str(self.sweep_dir),
            "status": self.status,
            "metric": self.metric,
            "at": "final",
            "mode": self.mode,
            "against": BASELINE_LABEL,
            "method": (
                f"{self.metric} at each run's last epoch; each remedy against the unchanged spec (paired t "
                f"on shared seeds, Welch t otherwise), Holm-adjusted over the remedies, {CONFIDENCE:.0%} "
                "interval of the difference; a remedy that diverged on more seeds than the baseline is worse"
            ),
            "groups": [g.as_dict() for g in self.groups],
        }


def plan(
    source: Path, kinds: list[str], overrides: list[str] = (), epochs: int | None = None
) -> list[Remedy]:
    """The remedies the verdicts `kinds` name for the spec at `source` (with `overrides`), trained
    for `epochs` when given (twice the epochs is twice those)."""
    sweep = build_sweep(source, _fixed(overrides, epochs))
    checked = check_spec_mapping(sweep.spec, sweep.override_texts(), f"spec {sweep.name}")
    return remedies_for(kinds, checked.spec)


def try_remedies(
    source: Path,
    remedies: list[Remedy],
    runs_dir: Path,
    command: list[str],
    overrides: list[str] = (),
    seeds: str = "3",
    epochs: int | None = None,
    jobs: int | None = None,
    progress: bool = True,
) -> RemedyTrial:
    """Train the spec at `source` unchanged and with each remedy, `seeds` seeds each (innermost),
    as one sweep `<name>-remedies` under `runs_dir`; then test each remedy against the baseline."""
    if not remedies:
        raise DnnlabError("no remedy to try: the diagnosis has no verdict that names one")
    sweep = build_sweep(source, _fixed(overrides, epochs), seeds=seeds, jobs=jobs)
    sweep = replace(sweep, name=f"{sweep.name}-remedies")
    combos = [{}] + [dict(r.params) for r in remedies]
    result = run_sweep(sweep, runs_dir, command, progress=progress, combos=combos)
    return analyse(result, remedies)


def _fixed(overrides: list[str], epochs: int | None) -> list[str]:
    """The overrides every run of the trial gets: the user's, and `--epochs`."""
    return list(overrides) + ([f"training.epochs={epochs}"] if epochs is not None else [])


def analyse(result: SweepResult, remedies: list[Remedy]) -> RemedyTrial:
    """Each trial's run read back, grouped by remedy, and tested against the baseline."""
    labels = [BASELINE_LABEL] + [r.label for r in remedies]
    keyed = {_key({}): BASELINE_LABEL} | {_key(r.params): r.label for r in remedies}
    runs: dict[str, list[tuple[int, Any, bool]]] = {label: [] for label in labels}
    for trial in result.record.trials:
        params = {k: v for k, v in trial.params.items() if k != "seed"}
        label = keyed.get(_key(params))
        if label is None:
            continue
        folder = result.path / trial.run
        run = load_run(folder) if folder.is_dir() else None
        runs[label].append((trial.params.get("seed"), run, trial.status == "diverged"))
    metric = _metric([run for _, run, _ in runs[BASELINE_LABEL] if run is not None])
    mode = "min" if "loss" in metric else "max"
    values = {
        label: {seed: _final(run, metric) for seed, run, _ in entries} for label, entries in runs.items()
    }
    tested = {
        r.name: r
        for r in compare_groups(
            values, mode, confidence=CONFIDENCE, alpha=ALPHA, reference=BASELINE_LABEL, points=False
        )
    }
    by_label = {BASELINE_LABEL: None} | {r.label: r for r in remedies}
    diverged = {
        label: sum(1 for _, run, bad in runs[label] if _diverged(run, bad, metric)) for label in labels
    }
    groups = []
    for label in labels:
        verdict = tested[label].verdict
        if label != BASELINE_LABEL and diverged[label] > diverged[BASELINE_LABEL]:
            verdict = WORSE  # broke training on some seed: never a fix, whatever the mean says
        groups.append(
            TestedRemedy(label, by_label[label], values[label], diverged[label], tested[label], verdict)
        )
    return RemedyTrial(result.path, result.record.status, metric, mode, groups)


def _diverged(run: Any, recorded_diverged: bool, metric: str) -> bool:
    """A run the sweep recorded as diverged, or whose last value is NaN or infinite; a trial that
    failed (its worker crashed, no run to read) is missing, not diverged."""
    if recorded_diverged:
        return True
    value = _final(run, metric)
    return run is not None and value is not None and not _finite(value)


def _key(params: dict[str, Any]) -> str:
    return repr(sorted(params.items()))


def _metric(runs: list[Any]) -> str:
    if runs and all(PREFERRED_METRIC in run.history for run in runs):
        return PREFERRED_METRIC
    monitors = [((run.config or {}).get("training") or {}).get("monitor") for run in runs]
    return next((m for m in monitors if isinstance(m, str)), "val_loss")


def _final(run: Any, metric: str) -> float | None:
    if run is None:
        return None
    history = run.history.get(metric) or []
    return history[-1] if history else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _plain(value: Any) -> Any:
    return value if _finite(value) else None


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
