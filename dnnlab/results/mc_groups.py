"""`dnnlab mc-predict` over several runs: each run's calibration table, then mean ± std over the
seeds of each group of runs whose specs differ only in `seed`.

The runs are found and read as `compare` finds them (a folder of runs or a sweep directory
stands for its runs, through `rundir.loading`'s checked reader), grouped by compare's
`group_by_seed` and labelled by its `group_label`, so the groups of `mc-predict SWEEP_DIR` are
those of `compare SWEEP_DIR --group-seeds`. As compare passes over what is not a run, a run that
cannot be scored is skipped with one note: not completed, an autoencoder, the other task in a mix
of classification and regression (the task most runs have is kept), or one that `mc-predict`
refuses (no dropout layer, a damaged model file). A refused write stops the command: it is the
disk's fault, not the run's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnnlab.errors import DnnlabError, PredictError, WriteError
from dnnlab.files.folders import ensure_folder
from dnnlab.inference.mc_predict import MCPrediction, mc_predict
from dnnlab.inference.options import DEFAULT_SAMPLE, DEFAULT_SEED
from dnnlab.inference.run_inputs import recorded_task, refuse_autoencoder
from dnnlab.results.compare import (
    Stat,
    group_by_seed,
    mark_differences,
    run_dirs_in,
    skipped_paths_note,
    stat_of,
)
from dnnlab.results.formats import group_label
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.layout import is_run_dir
from dnnlab.rundir.loading import MISSING, Absent, LoadedRun, find_run_dirs, load_runs

METHODS = ("deterministic", "mc", "temperature_scaled")  # the columns of the calibration table
OUT_SUFFIX = ".npz"  # each run's file in the --out folder: what `report --mc` reads

# called before each run is sampled: (1-based index, number of runs, run directory)
Progress = Callable[[int, int, Path], None]


@dataclass
class MCGroup:
    """The scored runs of one seed group, in the order they were given, with their label."""

    label: str
    params: dict[str, Any]  # the spec keys that differ between the groups, as compare shows them
    seeds: list[Any]
    runs: list[MCPrediction]

    def values(self, method: str, metric: str) -> list[float | None]:
        """Each run's `metric` of `method` (None where a run has no such figure)."""
        return [((run.scores or {}).get(method) or {}).get(metric) for run in self.runs]

    def stat(self, method: str, metric: str) -> Stat:
        """Mean and sample std (ddof=1) over the runs that have the figure."""
        return stat_of(self.values(method, metric))

    @property
    def metrics(self) -> dict[str, list[str]]:
        """Method -> its metric names, in the order a single run's table shows them."""
        found: dict[str, list[str]] = {}
        for method in METHODS:
            for run in self.runs:
                for name in (run.scores or {}).get(method) or {}:
                    found.setdefault(method, [])
                    if name not in found[method]:
                        found[method].append(name)
        return found

    @property
    def temperatures(self) -> list[float | None]:
        return [run.temperature for run in self.runs]

    @property
    def temperature(self) -> Stat:
        return stat_of(self.temperatures)

    def to_json(self) -> dict[str, Any]:
        def summary(values: list[float | None]) -> dict[str, Any]:
            stat = stat_of(values)
            return {"n": stat.n, "mean": stat.mean, "std": stat.std, "values": values}

        metrics = self.metrics
        return {
            "label": self.label,
            "params": self.params,
            "seeds": self.seeds,
            "n": len(self.runs),
            "runs": [run.to_json() for run in self.runs],
            **{
                method: {name: summary(self.values(method, name)) for name in metrics[method]}
                if method in metrics
                else None
                for method in METHODS
            },
            "temperature": summary(self.temperatures),
        }


@dataclass
class MCGroups:
    """What `mc_predict_runs` did: the groups, what was skipped (one note each), the files written."""

    groups: list[MCGroup]
    task: str | None
    samples: int
    seed: int
    sample: str
    data: str
    notes: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"run": path, "reason": ...}
    out: Path | None = None  # the folder of the per-run files

    @property
    def written(self) -> list[Path]:
        return [run.written for group in self.groups for run in group.runs if run.written is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "samples": self.samples,
            "seed": self.seed,
            "sample": self.sample,
            "task": self.task,
            "groups": [group.to_json() for group in self.groups],
            "skipped": self.skipped,
            "written": [str(path) for path in self.written],
        }


def several_runs(paths: list[Path]) -> bool:
    """True when `paths` name more than one path, or one folder that holds runs (a sweep
    directory, runs/): mc-predict then scores each run and aggregates; one run directory, or a
    path that is neither, goes to the single-run command and its messages."""
    if len(paths) != 1:
        return len(paths) > 1
    path = paths[0]
    return path.is_dir() and not is_run_dir(path) and bool(find_run_dirs([path])[0])


def check_options(out: Path | None, plot: Path | None) -> None:
    """The options whose meaning changes with several runs, checked before any run is read."""
    if plot is not None:
        raise PredictError(
            f"--plot {plot}: the reliability diagram is one run's; with several runs write "
            "--out FOLDER and pass its files to `dnnlab report --mc`, or pass one run"
        )
    if out is not None and out.suffix.lower() in (".npz", ".csv"):
        raise PredictError(
            f"--out {out}: several runs write one file each; name a folder (it gets RUN_NAME.npz per run)"
        )


def mc_predict_runs(
    paths: list[Path],
    samples: int,
    data: str = "test",
    batch_size: int | None = None,
    seed: int = DEFAULT_SEED,
    out: Path | None = None,
    sample: str = DEFAULT_SAMPLE,
    progress: Progress | None = None,
) -> MCGroups:
    """`inference.mc_predict` on each run found in `paths` (every run with the same data, samples
    and seed), the runs grouped by seed; with `out`, a folder, each run's per-instance file is
    written to `out/<run folder name>.npz`. Runs that cannot be scored are skipped with a note; a
    RunDirError or PredictError when no run is left."""
    check_options(out, None)
    run_dirs, not_runs = run_dirs_in(paths, "mc-predict")
    result = MCGroups([], None, samples, seed, sample, data)
    if not_runs:
        result.notes.append(skipped_paths_note(not_runs))
    runs = _scorable(load_runs(run_dirs), result)
    if not runs:
        raise PredictError(f"no run to score among the {len(run_dirs)} found; {_first_skip(result)}")
    files = _out_files(runs, out)
    if out is not None:
        ensure_folder(out, "--out", "the runs' files")
        result.out = out
    keys = mark_differences([run for run in runs if run.config is not None], ("name", "seed"))
    groups = group_by_seed(runs, "max")  # no metric is ranked: the groups keep the order given
    done = 0
    for group in groups:
        scored: list[MCPrediction] = []
        seeds: list[Any] = []
        for run, run_seed in zip(group.runs, group.seeds):
            done += 1
            if progress is not None:
                progress(done, len(runs), run.path)
            try:
                scored.append(
                    mc_predict(run.path, samples, data, batch_size, seed, files.get(run.path), sample)
                )
            except WriteError:
                raise  # the disk, not the run: every run after it would fail the same way
            except DnnlabError as exc:
                _skip(result, run.path, str(exc))
                continue
            seeds.append(run_seed)
            result.notes.extend(note for note in scored[-1].notes if note not in result.notes)
        if scored:
            params = {key: _json_value(group.params.get(key, MISSING)) for key in keys}
            result.groups.append(MCGroup(group_label(group, None, keys), params, seeds, scored))
    if not result.groups:
        raise PredictError(f"no run could be scored; {_first_skip(result)}")
    return result


def _scorable(runs: list[LoadedRun], result: MCGroups) -> list[LoadedRun]:
    """The completed classifiers or regressors of the task most runs have; the others are noted."""
    tasks: dict[Path, str | None] = {}
    for run in runs:
        if run.status != "completed":
            _skip(result, run.path, f"status {run.status}, not completed")
            continue
        try:
            folder = RunDir(run.path)
            refuse_autoencoder(folder, "mc-predict")
            tasks[run.path] = recorded_task(folder)
        except DnnlabError as exc:
            _skip(result, run.path, str(exc))
    counts = Counter(task for task in tasks.values() if task is not None)
    result.task = counts.most_common(1)[0][0] if counts else None
    kept = []
    for run in runs:
        if run.path not in tasks:
            continue
        task = tasks[run.path]
        if task is not None and task != result.task:
            _skip(
                result,
                run.path,
                f"a {task} run among {counts[result.task]} {result.task} run(s); one command scores "
                f"one task: pass the {task} runs on their own",
            )
            continue
        kept.append(run)
    return kept


def _out_files(runs: list[LoadedRun], out: Path | None) -> dict[Path, Path]:
    """Each run's file in the --out folder; two runs of the same folder name are refused."""
    if out is None:
        return {}
    files: dict[Path, Path] = {}
    owners: dict[str, Path] = {}
    for run in runs:
        name = run.path.name
        if name in owners:
            raise PredictError(
                f"--out {out}: {owners[name]} and {run.path} would both write {name}{OUT_SUFFIX}; "
                "score them with two commands and two folders"
            )
        owners[name] = run.path
        files[run.path] = out / f"{name}{OUT_SUFFIX}"
    return files


def _json_value(value: Any) -> Any:
    """A key a run's spec lacks is null in the JSON."""
    return None if isinstance(value, Absent) else value


def _first_skip(result: MCGroups) -> str:
    first = result.skipped[0]
    return f"skipped {first['run']}: {first['reason']}"


def _skip(result: MCGroups, path: Path, reason: str) -> None:
    """Note a run left out; a reason that names the run already does not name it twice."""
    reason = reason.removeprefix(f"{path}: ")
    result.skipped.append({"run": str(path), "reason": reason})
    result.notes.append(f"skipped {path}: {reason}")
