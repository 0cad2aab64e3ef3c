"""Commands that train: train, sweep."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from dnnlab.cli.app import (
    Overrides,
    QuietFlag,
    app,
    choices,
    escape_markup,
    print_json,
    print_warnings,
    user_errors,
)
from dnnlab.console import fit_width, stderr_console
from dnnlab.errors import DnnlabError
from dnnlab.sweep.executors import EXECUTORS


@app.command()
@user_errors
def train(
    config: Annotated[Path | None, typer.Argument(help="YAML spec to train.")] = None,
    override: Overrides = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where run directories go.")] = Path("runs"),
    name: Annotated[str | None, typer.Option("--name", help="Run name (default: the spec's name).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue this run directory.")] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="With --resume: train to N epochs in total.")
    ] = None,
    quiet: QuietFlag = False,
) -> None:
    """Train the model a spec describes; prints the run directory on stdout.

    Epochs count from 1 in everything printed here; metrics.csv and run.json keep the 0-based
    index.
    """
    from dnnlab.training.faults import sigterm_interrupts

    with sigterm_interrupts():  # before the seconds of imports: a SIGTERM from here on exits 130
        if (config is None) == (resume is None):
            raise DnnlabError("give a CONFIG.yaml to train, or --resume RUN_DIR to continue a run")
        if epochs is not None and resume is None:
            raise DnnlabError("--epochs extends a run with --resume; for a new run use -o training.epochs=N")
        command = ["dnnlab", *sys.argv[1:]]
        try:
            if resume is not None:
                from dnnlab.training import lifecycle

                result = lifecycle.resume(resume, epochs, command, progress=not quiet)
            else:
                from dnnlab.data.checked_spec import check_spec

                checked = check_spec(config, override)
                print_warnings(checked.warnings)
                from dnnlab.rundir.layout import check_new_run

                check_new_run(runs_dir, name, checked.spec.name)  # before TensorFlow's import: in a second
                from dnnlab.training import lifecycle

                result = lifecycle.start(checked, runs_dir, name, command, progress=not quiet)
        except KeyboardInterrupt:  # before the run directory existed (or before resuming wrote)
            interrupted("before the run started; nothing was written")
    render_run(result, quiet)
    raise typer.Exit(result.exit_code)


def interrupted(message: str) -> None:
    """Ctrl-C or SIGTERM before there was anything to record: one line and exit 130."""
    stderr_console().print(f"[yellow]interrupted:[/] {escape_markup(message)}")
    raise typer.Exit(130)


def render_run(result, quiet: bool = False) -> None:
    """The end line on stderr (under --quiet only when the run did not complete), then the run
    directory alone on stdout."""
    if not quiet or result.status != "completed":
        colour = {"completed": "green", "interrupted": "yellow"}.get(result.status, "red")
        stderr_console().print(
            f"[{colour}]{result.status}[/] after {result.epochs_done} epoch(s); {_best_text(result.best)}"
            + _test_text(result.test)
        )
    if result.message:
        stderr_console().print(result.message, markup=False)
    print(result.run_dir)


def _best_text(best) -> str:
    """`best val_loss 0.3657 at epoch 3`: the run's BestRecord, its 0-based epoch counted from 1
    like the progress lines."""
    if best.value is None or best.epoch is None:
        return "no best yet"
    return f"best {escape_markup(best.metric)} {best.value:.4g} at epoch {best.epoch + 1}"


def _test_text(test: dict[str, float] | None) -> str:
    """`; test accuracy 0.9583 loss 0.1432`: the kept model on the test split, metrics first."""
    if not test:
        return ""
    ordered = sorted(test.items(), key=lambda item: item[0] == "loss")
    return "; test " + " ".join(f"{escape_markup(name)} {value:.4g}" for name, value in ordered)


Executor = choices("Executor", EXECUTORS)


@app.command()
@user_errors
def sweep(
    config: Annotated[
        Path | None, typer.Argument(help="YAML spec, or a sweep file (one with spec:).")
    ] = None,
    override: Overrides = None,
    axis: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            "-g",
            help="Add an axis: KEY=a,b,c (YAML values, brackets respected), range(a,b[,step]), "
            "choice(...); with --random or --search also uniform(a,b), loguniform(a,b), randint(a,b).",
        ),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            help="Repeat every trial: N for seeds 0..N-1, or A,B,C; auto[:MAX]: start with 3 seeds and add "
            "seeds to the configurations not yet separated from the best, up to MAX (default 10).",
        ),
    ] = None,
    random_trials: Annotated[
        int | None, typer.Option("--random", min=1, help="Draw N trials from the axes.")
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--search",
            help="A search that learns (Optuna): tpe, cmaes, gp or random; each configuration is "
            "suggested from the results so far. Needs pip install 'dnnlab[search]'.",
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            min=1,
            help="Configurations a search suggests in all, a repeat of an earlier one included (not "
            "trained again); with --resume: the new total.",
        ),
    ] = None,
    prune: Annotated[
        str | None,
        typer.Option(
            "--prune",
            help="none, median (stop for good), asha or hyperband (pause at rungs, promote the best; "
            "a promoted trial continues from its checkpoint). Default: none.",
        ),
    ] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="What a search optimizes (default: training.monitor).")
    ] = None,
    goal: Annotated[
        str | None, typer.Option("--goal", help="minimize or maximize (default: from the metric).")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="Seconds after which a search starts nothing new."),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", min=1, help="Workers (default: from the cores and model size).")
    ] = None,
    executor: Annotated[
        Executor | None, typer.Option("--executor", help="Where trials run (default: local).")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Ray cluster: auto, HOST:PORT, ray://HOST:PORT (default: local)."),
    ] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where the sweep directory goes.")] = Path(
        "runs"
    ),
    name: Annotated[str | None, typer.Option("--name", help="Sweep name (default: the spec's name).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue this sweep directory.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print sweep.json's content instead of the directory.")
    ] = False,
    quiet: QuietFlag = False,
) -> None:
    """Run a family of trials (grid, random draws, seeds, a search) on warm workers; prints the sweep
    directory."""
    if (config is None) == (resume is None):
        raise DnnlabError("give a SPEC.yaml or SWEEP.yaml to sweep, or --resume SWEEP_DIR to continue one")
    command = ["dnnlab", *sys.argv[1:]]
    from dnnlab.training.faults import sigterm_interrupts

    with sigterm_interrupts():  # the driver's own handler takes over once the trials start
        try:
            from dnnlab.sweep import definition, runner

            if resume is not None:
                result = runner.resume_sweep(resume, command, jobs, progress=not quiet, trials=trials)
            else:
                definition = definition.build_sweep(
                    config,
                    override or [],
                    axis or [],
                    seeds,
                    random_trials,
                    jobs,
                    executor.value if executor else None,
                    address,
                    name,
                    search=search,
                    trials=trials,
                    prune=prune,
                    metric=metric,
                    goal=goal,
                    timeout=timeout,
                )
                result = runner.run_sweep(definition, runs_dir, command, progress=not quiet)
        except KeyboardInterrupt:
            interrupted("before the sweep started; nothing was written")
    if not quiet or result.record.status != "completed":
        render_sweep(result)
    if as_json:
        print_json(result.record.to_dict())
    else:
        print(result.path)
    raise typer.Exit(result.exit_code)


def render_sweep(result) -> None:
    """The seed-grouped comparison of the trials on stderr, as `compare DIR --group-seeds` shows it."""
    from dnnlab.results import compare as comparing
    from dnnlab.results import formats as compare_format
    from dnnlab.results import seed_tests

    console = stderr_console()
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.record.counts().items()))
    colour = {"completed": "green", "interrupted": "yellow"}.get(result.record.status, "red")
    console.print(f"[{colour}]sweep {result.record.status}[/]: {counts}", soft_wrap=True)
    configs = result.record.configs
    repeats = sum(c.duplicate_of is not None for c in configs)
    if repeats:
        console.print(
            f"{repeats} of the {len(configs)} suggested configurations repeated an earlier one: "
            "not trained again, the study was told the earlier one's result",
            soft_wrap=True,
        )
    try:
        comparison = comparing.compare([result.path], group_seeds=True)
    except DnnlabError:
        return  # no trial has a run directory yet
    seed_tests.attach(comparison)
    console.print(compare_format.render_table(comparison, True, fit_width(console)))
