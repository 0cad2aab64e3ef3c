"""The dnnlab command line: each command parses, calls one library function, renders.

TensorFlow is imported only inside the commands that need it, so `--help`, `check`,
`compare` and `schema` start fast. Results go to stdout; progress, notes, warnings and errors
go to stderr through one console (dnnlab.console) that never hard-wraps off a terminal.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from dnnlab.console import stderr_console, stdout_console
from dnnlab.errors import DnnlabError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any TensorFlow import

# typer >= 0.16 vendors click; older releases use click itself.
_click = getattr(typer.core, "_click", None) or __import__("click")
_ClickException = _click.exceptions.ClickException
_NoArgsIsHelpError = getattr(_click.exceptions, "NoArgsIsHelpError", ())


# ---------------------------------------------------------------- output helpers


def fail(message: str, code: int = 2) -> None:
    """One red `error:` line on stderr, then exit with `code`. `message` is rich markup."""
    stderr_console().print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def print_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def print_warning(message: str) -> None:
    stderr_console().print(f"[yellow]warning:[/] {_escape(message)}")


def print_warnings(findings) -> None:
    for finding in findings:
        if finding.level == "warning":
            print_warning(str(finding))


def user_errors(command: Callable) -> Callable:
    """Turn a DnnlabError into one red line on stderr and exit code 2; bugs keep their traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DnnlabError as exc:
            fail(_escape(str(exc)), exc.exit_code)

    return wrapper


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """A bad option or argument is one `error:` line and exit code 2, like dnnlab's own errors,
    instead of click's usage block or typer's boxed panel."""
    try:
        yield
    except _ClickException as exc:
        if isinstance(exc, _NoArgsIsHelpError):  # `dnnlab` alone prints the help
            raise
        fail(_escape(exc.format_message()), exc.exit_code)


class _OneLineErrorsGroup(TyperGroup):
    def make_context(self, *args: Any, **kwargs: Any):
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _one_line_usage_errors():
            return super().invoke(ctx)


class _WarningLines(logging.Handler):
    """The library reports through the `dnnlab` logger; the CLI shows each record as a warning
    line on whatever stderr is current (a stream bound once would outlive a test's capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        print_warning(record.getMessage())


class _ProcessApp(typer.Typer):
    """The app as a process runs it (the `dnnlab` script, `python -m dnnlab`): after a command
    that imported TensorFlow the process ends without the interpreter's teardown (see
    runtime.exit_without_teardown). Tests invoke the command through CliRunner, not this."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as exc:
            from dnnlab.runtime import exit_without_teardown

            exit_without_teardown(exc.code)
            raise


# ---------------------------------------------------------------- the app and shared options

app = _ProcessApp(
    cls=_OneLineErrorsGroup,
    help="Run deep-learning training experiments from YAML specs.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--override",
        "-o",
        help="Override a key by its dotted path, e.g. -o training.epochs=5 (value parsed as YAML).",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
RankMetric = Annotated[
    str | None, typer.Option("--metric", help="Rank by this metric (default: the one the runs monitor).")
]
ReachOption = Annotated[
    str | None,
    typer.Option(
        "--reach", help="A column of the epochs each run took to reach METRIC=VALUE, e.g. val_accuracy=0.95."
    ),
]
QuietFlag = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress or status lines: only warnings, errors and the result."),
]


def print_version(value: bool) -> None:
    if value:
        from dnnlab import __version__

        print(f"dnnlab {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Run deep-learning training experiments from YAML specs."""
    logger = logging.getLogger("dnnlab")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        logger.addHandler(_WarningLines())
        logger.setLevel(logging.INFO)


# ---------------------------------------------------------------- commands


@app.command()
@user_errors
def check(
    config: Annotated[Path, typer.Argument(help="YAML spec to validate.")],
    override: Overrides = None,
    as_json: JsonFlag = False,
    print_config: Annotated[
        bool,
        typer.Option("--print-config", help="Print the resolved spec (what config.yaml records) on stdout."),
    ] = False,
) -> None:
    """Validate a spec and print the notes' advice; trains nothing."""
    from dnnlab.spec import check_spec, spec_to_dict, spec_to_yaml

    try:
        checked = check_spec(config, override)
    except DnnlabError as exc:
        if as_json:
            print_json({"valid": False, "errors": [str(exc)], "warnings": []})
        raise
    warnings = [f for f in checked.warnings if f.level == "warning"]
    if as_json:
        report = {
            "valid": True,
            "errors": [],
            "warnings": [{"key": f.key, "message": f.message} for f in warnings],
        }
        if print_config:
            report["config"] = spec_to_dict(checked.spec)
        print_json(report)
    elif print_config:
        sys.stdout.write(spec_to_yaml(checked.spec))
    print_warnings(warnings)
    stderr_console().print(f"[green]valid:[/] {_escape(str(config))} ({len(warnings)} warning(s))")


@app.command()
@user_errors
def summary(
    target: Annotated[Path, typer.Argument(help="YAML spec or run directory.")],
    override: Overrides = None,
    as_json: JsonFlag = False,
) -> None:
    """Layers, output shapes and parameter counts of the model a spec builds."""
    from dnnlab.summary import model_summary

    result = model_summary(target, override)
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=result["name"])
    for column in ("Layer", "Type", "Output shape", "Params"):
        table.add_column(column, justify="right" if column == "Params" else "left")
    for layer in result["layers"]:
        shape = "(" + ", ".join("None" if d is None else str(d) for d in layer["output_shape"]) + ")"
        table.add_row(layer["name"], layer["type"], shape, f"{layer['params']:,}")
    console = stdout_console()
    console.print(table)
    console.print(f"Total params: {result['total_params']:,}")
    console.print(f"Trainable params: {result['trainable_params']:,}")
    console.print(f"Non-trainable params: {result['non_trainable_params']:,}")


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
    from dnnlab.faults import sigterm_interrupts

    with sigterm_interrupts():  # before the seconds of imports: a SIGTERM from here on exits 130
        if (config is None) == (resume is None):
            raise DnnlabError("give a CONFIG.yaml to train, or --resume RUN_DIR to continue a run")
        if epochs is not None and resume is None:
            raise DnnlabError("--epochs extends a run with --resume; for a new run use -o training.epochs=N")
        command = ["dnnlab", *sys.argv[1:]]
        try:
            if resume is not None:
                from dnnlab import train as training

                result = training.resume(resume, epochs, command, progress=not quiet)
            else:
                from dnnlab.spec import check_spec

                checked = check_spec(config, override)
                print_warnings(checked.warnings)
                from dnnlab.runs import check_new_run

                check_new_run(runs_dir, name, checked.spec.name)  # before TensorFlow's import: in a second
                from dnnlab import train as training

                result = training.start(checked, runs_dir, name, command, progress=not quiet)
        except KeyboardInterrupt:  # before the run directory existed (or before resuming wrote)
            interrupted("before the run started; nothing was written")
    report_run(result, quiet)
    raise typer.Exit(result.exit_code)


def interrupted(message: str) -> None:
    """Ctrl-C or SIGTERM before there was anything to record: one line and exit 130."""
    stderr_console().print(f"[yellow]interrupted:[/] {_escape(message)}")
    raise typer.Exit(130)


def report_run(result, quiet: bool = False) -> None:
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
    return f"best {_escape(best.metric)} {best.value:.4g} at epoch {best.epoch + 1}"


def _test_text(test: dict[str, float] | None) -> str:
    """`; test accuracy 0.9583 loss 0.1432`: the kept model on the test split, metrics first."""
    if not test:
        return ""
    ordered = sorted(test.items(), key=lambda item: item[0] == "loss")
    return "; test " + " ".join(f"{_escape(name)} {value:.4g}" for name, value in ordered)


class Format(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


@app.command()
@user_errors
def compare(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run directories, e.g. runs/* (a folder of runs works too).")
    ],
    metric: RankMetric = None,
    diff_only: Annotated[
        bool, typer.Option("--diff-only", help="Show only the spec keys that differ between the runs.")
    ] = False,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            help="table and markdown count epochs from 1; csv and json keep metrics.csv's 0-based epoch.",
        ),
    ] = Format.table,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write learning curves of the metric to this PNG.")
    ] = None,
    plot_metrics: Annotated[
        str | None,
        typer.Option(
            "--plot-metrics", help="Panels of --plot, e.g. loss,val_accuracy,lr (default: the metric, lr)."
        ),
    ] = None,
    log_y: Annotated[bool, typer.Option("--log-y", help="Log scale on the --plot panels' y axes.")] = False,
    reach: ReachOption = None,
    group_seeds: Annotated[
        bool, typer.Option("--group-seeds", help="One row per spec that differs only in seed: mean ± std.")
    ] = False,
) -> None:
    """Compare run directories: which won, by how much, and what differed (leaf spec keys)."""
    from dnnlab import compare as comparing
    from dnnlab import compare_format

    result = comparing.compare(run_dirs, metric=metric, group_seeds=group_seeds, reach=reach)
    panels = plot_metrics.split(",") if plot_metrics else None
    if plot is not None:
        from dnnlab.plots import check_plot_target, plot_panels

        check_plot_target(plot)
        plot_panels(result, panels)  # a bad --plot-metrics fails before anything is printed
    console = stderr_console()
    for message in comparing.messages(result):
        console.print(f"[yellow]note:[/] {_escape(message)}")
    if fmt is Format.table:
        stdout_console().print(compare_format.render_table(result, diff_only))
    else:
        sys.stdout.write(compare_format.render(result, fmt.value, diff_only))
    if plot is not None:
        from dnnlab.plots import plot_learning_curves

        console.print(f"wrote {_escape(str(plot_learning_curves(result, plot, panels, log_y)))}")


@app.command()
@user_errors
def report(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run directories or sweep directories (a folder of runs works too).")
    ],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write (self-contained).")],
    metric: RankMetric = None,
    reach: ReachOption = None,
    mc: Annotated[
        list[Path] | None,
        typer.Option(
            "--mc", help="An `mc-predict --out FILE.npz` file: its reliability diagrams (repeatable)."
        ),
    ] = None,
) -> None:
    """Write one self-contained HTML page: ranking, seed groups, curves, test metrics, details."""
    from dnnlab.report import write_report

    path = write_report(run_dirs, out, metric=metric, reach=reach, mc_files=mc)
    console = stderr_console()
    console.print(f"wrote {_escape(str(path))}")


@app.command("mlflow-log")
@user_errors
def mlflow_log(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories or sweep directories.")],
    tracking_uri: Annotated[
        str, typer.Option("--tracking-uri", help="MLflow tracking store (default: a SQLite file here).")
    ] = "sqlite:///mlflow.db",
    experiment: Annotated[str, typer.Option("--experiment", help="MLflow experiment name.")] = "dnnlab",
) -> None:
    """Log finished runs to MLflow: params, per-epoch metrics, tags, artifacts; never twice."""
    from dnnlab.tracking import log_runs

    console = stderr_console()
    for logged in log_runs(run_dirs, tracking_uri, experiment):
        detail = f" ({logged.reason})" if logged.reason else f": MLflow run {logged.mlflow_run_id}"
        console.print(f"{logged.outcome} {_escape(str(logged.run_dir))}{_escape(detail)}")


class SampleChoice(str, enum.Enum):
    all = "all"
    hidden = "hidden"
    last = "last"


@app.command("mc-predict")
@user_errors
def mc_predict(
    run_dir: Annotated[
        Path | None, typer.Argument(help="Run directory (default: the latest completed run in ./runs).")
    ] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Monte Carlo samples per instance.")] = 100,
    data: Annotated[
        str, typer.Option("--data", help="test, validation, or a .npz (x, optional y) / .csv file.")
    ] = "test",
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Instances per sampling call (default: automatic)."),
    ] = None,
    seed: Annotated[
        int,
        typer.Option("--seed", min=0, help="Seed for the dropout masks: the same seed, the same results."),
    ] = 0,  # prediction.DEFAULT_SEED, written out: importing prediction here would slow --help
    out: Annotated[
        Path | None, typer.Option("--out", help="Write per-instance results to FILE.npz or FILE.csv.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the calibration summary as one JSON object.")
    ] = False,
    sample: Annotated[
        SampleChoice,
        typer.Option(
            "--sample",
            help="Which dropout layers sample: all, hidden (not the input's) or last; the others "
            "act as in inference.",
        ),
    ] = SampleChoice.all,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="Write reliability diagrams (deterministic, MC, temperature-scaled) to this PNG."
        ),
    ] = None,
    quiet: QuietFlag = False,
) -> None:
    """Monte Carlo dropout: predictions with uncertainty, and calibration against the labels
    (beside the deterministic pass and the deterministic pass temperature-scaled on validation)."""
    from dnnlab.prediction import mc_predict as predict

    console = stderr_console()
    status = contextlib.nullcontext() if quiet else console.status(f"sampling {samples} dropout masks ...")
    with status:
        result = predict(run_dir, samples, data, batch_size, seed, out, sample.value, plot)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {_escape(note)}")
    if not quiet:
        for path in (result.written, result.plot):
            if path is not None:
                console.print(f"wrote {_escape(str(path))}")
        console.print(
            f"{_escape(str(result.run))}: {result.instances:,} instances from {_escape(result.source)}, "
            f"{samples} samples, seed {result.seed}"
        )
        console.print(f"sampling dropout layers: {result.sample}")
        if result.temperature is not None:
            console.print(
                f"temperature {result.temperature:.3g}, fitted on the validation split "
                "(T > 1: the deterministic network is overconfident, T < 1: underconfident)"
            )
    if result.report is not None:
        console.print(mc_summary_table(result.report))
    elif not quiet:
        console.print("no labels: calibration metrics need y")
    if as_json:
        print_json(result.to_json())


def mc_summary_table(report: dict):
    from rich.table import Table

    # Title and caption shorter than the table: rich wraps them to its width.
    table = Table(title="deterministic vs MC dropout", caption="lower is better, accuracy aside")
    columns = {
        "deterministic": "deterministic",
        "mc": "MC dropout",
        "temperature_scaled": "temperature-scaled",
    }
    columns = {key: title for key, title in columns.items() if key in report}
    table.add_column("metric")
    for title in columns.values():
        table.add_column(title, justify="right")
    for name in report["deterministic"]:
        table.add_row(name, *(f"{report[key][name]:.4f}" for key in columns))
    return table


@app.command("lr-find")
@user_errors
def lr_find(
    config: Annotated[Path, typer.Argument(help="YAML spec whose model, optimizer, loss and data to test.")],
    override: Overrides = None,
    min_lr: Annotated[float, typer.Option("--min", help="The first rate.")] = 1e-7,
    max_lr: Annotated[
        float, typer.Option("--max", help="The last rate, if the loss has not exploded.")
    ] = 10.0,
    steps: Annotated[int, typer.Option("--steps", help="Steps from --min to --max (one batch each).")] = 300,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the loss against the rate to this PNG.")
    ] = None,
    as_json: JsonFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Learning-rate range test: the rate grows exponentially each step until the loss explodes;
    suggests 1cycle's max_lr. Prints the suggestion on stdout; writes no run directory."""
    from dnnlab.calibration import check_plot_path
    from dnnlab.lr_finder import check_options
    from dnnlab.spec import check_spec

    check_options(min_lr, max_lr, steps)
    if plot is not None:
        check_plot_path(plot)
    checked = check_spec(config, override)
    print_warnings(checked.warnings)
    from dnnlab.lr_finder import lr_find as find

    console = stderr_console()
    status = contextlib.nullcontext() if quiet else console.status(f"range test over {steps} steps ...")
    with status:
        result = find(checked, min_lr, max_lr, steps, plot)
    for note in result.notes:
        print_warning(note)
    if not quiet:
        report_lr_find(result, config, plot)
    if as_json:
        print_json(result.to_json())
    elif result.suggestion is not None:
        print(f"{result.suggestion:.3g}")


def report_lr_find(result, config: Path, plot: Path | None) -> None:
    console = stderr_console()
    stops = {
        "exploded": "the smoothed loss passed 4x its minimum",
        "non_finite": "the loss was no longer finite",
        "max_lr": "every step ran without the loss exploding (try a larger --max)",
    }
    last = result.learning_rates[-1] if result.learning_rates else float("nan")
    console.print(
        f"{len(result.learning_rates)} of {result.planned_steps} steps up to rate {last:.3g}: "
        f"{stops[result.stop]}"
    )
    if result.min_loss_rate is not None:
        console.print(
            f"lowest smoothed loss {min(result.losses):.4g} at rate {result.min_loss_rate:.3g} "
            f"(minimum / 10: {result.min_loss_rate_over_10:.3g})"
        )
    if result.suggestion is None:
        console.print("[yellow]no suggestion:[/] the loss did not fall; try a smaller --min or more --steps")
    else:
        console.print(
            f"[green]suggestion:[/] {result.suggestion:.3g} (steepest descent of the smoothed loss)"
        )
        console.print(
            f"train with 1cycle at that maximum rate: "
            f"dnnlab train {_escape(str(config))} {_escape(result.override)}"
        )
    if plot is not None:
        console.print(f"wrote {_escape(str(plot))}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the YAML spec (for editors)."""
    from dnnlab.spec import json_schema

    print_json(json_schema())


class Executor(str, enum.Enum):
    local = "local"
    ray = "ray"


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
            "choice(...); with --random also uniform(a,b), loguniform(a,b), randint(a,b).",
        ),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="Repeat every trial: N for seeds 0..N-1, or A,B,C.")
    ] = None,
    random_trials: Annotated[
        int | None, typer.Option("--random", min=1, help="Draw N trials from the axes.")
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
    """Run a family of trials (grid, random draws, seeds) on warm workers; prints the sweep directory."""
    if (config is None) == (resume is None):
        raise DnnlabError("give a SPEC.yaml or SWEEP.yaml to sweep, or --resume SWEEP_DIR to continue one")
    command = ["dnnlab", *sys.argv[1:]]
    from dnnlab.faults import sigterm_interrupts

    with sigterm_interrupts():  # the driver's own handler takes over once the trials start
        try:
            from dnnlab import sweep as sweeping

            if resume is not None:
                result = sweeping.resume_sweep(resume, command, jobs, progress=not quiet)
            else:
                definition = sweeping.build_sweep(
                    config,
                    override or [],
                    axis or [],
                    seeds,
                    random_trials,
                    jobs,
                    executor.value if executor else None,
                    address,
                    name,
                )
                result = sweeping.run_sweep(definition, runs_dir, command, progress=not quiet)
        except KeyboardInterrupt:
            interrupted("before the sweep started; nothing was written")
    if not quiet or result.record.status != "completed":
        report_sweep(result)
    if as_json:
        print_json(result.record.to_dict())
    else:
        print(result.path)
    raise typer.Exit(result.exit_code)


def report_sweep(result) -> None:
    """The seed-grouped comparison of the trials on stderr, as `compare DIR --group-seeds` shows it."""
    from dnnlab import compare as comparing
    from dnnlab import compare_format

    console = stderr_console()
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.record.counts().items()))
    colour = {"completed": "green", "interrupted": "yellow"}.get(result.record.status, "red")
    console.print(f"[{colour}]sweep {result.record.status}[/]: {counts}", soft_wrap=True)
    try:
        comparison = comparing.compare([result.path], group_seeds=True)
    except DnnlabError:
        return  # no trial has a run directory yet
    console.print(compare_format.render_table(comparison, True))


@app.command()
@user_errors
def diagnose(
    target: Annotated[Path, typer.Argument(help="YAML spec (measured, nothing written) or run directory.")],
    override: Overrides = None,
    steps: Annotated[
        int, typer.Option("--steps", min=0, help="With a spec: measure again after K training steps.")
    ] = 0,
    as_json: JsonFlag = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write activations and gradient norm per layer to this PNG."),
    ] = None,
) -> None:
    """Per-layer gradients and activations on a fixed probe batch, and the notes' verdicts
    (vanishing or exploding gradients, saturation, dead units, SELU self-normalization)."""
    from dnnlab.diagnostics import diagnose as measure

    result = measure(target, override, steps)
    print_warnings(result.warnings)
    if plot is not None:
        from dnnlab.diagnostics import plot_diagnosis

        written = plot_diagnosis(result, plot)
    if as_json:
        print_json(result.to_dict())
    else:
        render_diagnosis(result)
    if plot is not None:
        stderr_console().print(f"wrote {_escape(str(written))}")


def render_diagnosis(result) -> None:
    from rich.table import Table

    last = result.measurements[-1]
    table = Table(title=f"{result.name}: {last.label}")
    columns = ("Layer", "Act.", "Grad norm", "Weight norm", "Update", "Act. mean", "Act. std", "Sat.", "Dead")
    for column in columns:
        table.add_column(column, justify="left" if column in ("Layer", "Act.") else "right")

    def number(value, fmt="{:.3g}"):
        return "-" if value is None else fmt.format(value)

    for row in last.rows:
        table.add_row(
            row["layer"],
            row["activation"],
            number(row["gradient_norm"], "{:.2e}"),
            number(row["weight_norm"]),
            number(row["update_ratio"], "{:.2e}"),
            number(row["activation_mean"]),
            number(row["activation_std"]),
            number(row["saturated_fraction"], "{:.0%}"),
            number(row["dead_fraction"], "{:.0%}"),
        )
    console = stdout_console()
    console.print(table)
    for verdict in result.verdicts:
        console.print(f"[bold]{verdict['kind']}[/] ({verdict['at']}): {_escape(verdict['message'])}")
    if not result.verdicts:
        console.print("no verdict: gradients and activations look healthy on the probe batch")


class Checkpoint(str, enum.Enum):
    final = "final"
    best = "best"
    last = "last"


@app.command()
@user_errors
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    data: Annotated[
        str, typer.Option("--data", help="test, validation, or a labelled .npz (x, y) / .csv file.")
    ] = "test",
    checkpoint: Annotated[
        Checkpoint,
        typer.Option(
            "--checkpoint", help="final: model.keras; best, last: checkpoints/best.keras, last.keras."
        ),
    ] = Checkpoint.final,
    as_json: JsonFlag = False,
) -> None:
    """Loss and metrics of a run's model on data, scaled as in training."""
    from dnnlab.evaluate import evaluate as evaluating

    result = evaluating(run_dir, data, checkpoint.value)
    if as_json:
        print_json(result.to_json())
        return
    scores = "  ".join(f"{_escape(name)} {value:.4g}" for name, value in result.scores.items())
    stderr_console().print(
        f"{_escape(str(result.run))} ({result.checkpoint}) on {_escape(result.source)}, "
        f"{result.instances:,} instances: {scores}"
    )


@app.command()
@user_errors
def predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    data: Annotated[Path, typer.Option("--data", help="A .npz (x) or .csv file of raw examples.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write FILE.csv or FILE.npz (default: CSV on stdout)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Predictions of a run's final model, one output row per input row, in order."""
    from dnnlab.evaluate import predict as predicting

    result = predicting(run_dir, data, out)
    if as_json:
        print_json(result.to_json())
    elif out is None:
        from dnnlab.evaluate import csv_text

        sys.stdout.write(csv_text(result.arrays))
    if result.written is not None:
        stderr_console().print(f"wrote {_escape(str(result.written))} ({result.instances:,} rows)")


class ExportFormat(str, enum.Enum):
    savedmodel = "savedmodel"
    tflite = "tflite"
    onnx = "onnx"


class Quantization(str, enum.Enum):
    float16 = "float16"
    int8 = "int8"


@app.command()
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="savedmodel, tflite or onnx.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write (default: RUN_DIR/export/...).")
    ] = None,
    fold_batch_norm: Annotated[
        bool, typer.Option("--fold-batch-norm", help="Fold each batch norm into its adjacent Dense layer.")
    ] = False,
    quantize: Annotated[
        Quantization | None, typer.Option("--quantize", help="TFLite weights in float16 or int8.")
    ] = None,
    prune_below: Annotated[
        float | None, typer.Option("--prune-below", help="Zero Dense weights with |w| below EPS.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export a run's model with its scaling built in; verified against the run's model first."""
    from dnnlab.export import export as exporting

    report = exporting(
        run_dir, fmt.value, out, fold_batch_norm, quantize.value if quantize else None, prune_below
    )
    stderr_console().print(export_table(report))
    if as_json:
        print_json(report.to_json())
    else:
        print(report.path)


def export_table(report):
    from rich.table import Table

    kind = report.format + (f" {report.quantize}" if report.quantize else "")
    table = Table(title=f"{kind} vs run model", caption=f"on {report.instances:,} rows of {report.source}")
    table.add_column("")
    table.add_column("run model", justify="right")
    table.add_column(kind, justify="right")

    def score(value):
        return "-" if value is None else f"{value:.4f}"

    table.add_row(report.metric, score(report.run_score), score(report.export_score))
    table.add_row("size", f"{report.run_bytes / 1024:,.1f} KiB", f"{report.export_bytes / 1024:,.1f} KiB")
    table.add_row(
        "latency, 1 instance", f"{report.run_latency_ms:.3f} ms", f"{report.export_latency_ms:.3f} ms"
    )
    table.add_row("max |difference|", "", f"{report.max_abs_diff:.3g}")
    if report.agreement is not None:
        table.add_row("same class", "", f"{report.agreement:.2%}")
    if report.folded:
        table.add_row("folded batch norms", "", str(len(report.folded)))
    if report.sparsity is not None:
        table.add_row("sparsity", "", f"{report.sparsity:.1%}")
    if report.int8_layers is not None:
        layers = ", ".join(report.int8_layers) or "none (kernels under 1,024 weights stay float32)"
        table.add_row("int8 weights (float activations)", "", layers)
    return table
