"""The dnnlab command line: each command parses, calls one library function, renders.

TensorFlow is imported only inside the commands that need it, so `--help`, `check`,
`compare` and `schema` start fast.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from dnnlab.errors import DnnlabError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any TensorFlow import

app = typer.Typer(
    help="Run deep-learning training experiments from YAML specs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> None:
    stderr_console().print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def user_errors(command: Callable) -> Callable:
    """Turn a DnnlabError into one red line on stderr and exit code 2; bugs keep their traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DnnlabError as exc:
            fail(_escape(str(exc)), exc.exit_code)

    return wrapper


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def print_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def print_warnings(findings) -> None:
    console = stderr_console()
    for finding in findings:
        if finding.level == "warning":
            console.print(f"[yellow]warning:[/] {_escape(str(finding))}", soft_wrap=True)


def print_version(value: bool) -> None:
    if value:
        from dnnlab import __version__

        print(f"dnnlab {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", callback=print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run deep-learning training experiments from YAML specs."""
    show_library_warnings()


def show_library_warnings() -> None:
    """The library reports through the `dnnlab` logger; the CLI shows it as warning lines."""
    import logging

    logger = logging.getLogger("dnnlab")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


OVERRIDE_HELP = "Override a key by its dotted path, e.g. -o training.epochs=5 (value parsed as YAML)."


@app.command()
@user_errors
def check(
    config: Path = typer.Argument(..., help="YAML spec to validate."),
    override: list[str] = typer.Option([], "--override", "-o", help=OVERRIDE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    print_config: bool = typer.Option(
        False, "--print-config", help="Print the resolved spec (what config.yaml records) on stdout."
    ),
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
    stderr_console().print(
        f"[green]valid:[/] {_escape(str(config))} ({len(warnings)} warning(s))", soft_wrap=True
    )


@app.command()
@user_errors
def summary(
    target: Path = typer.Argument(..., help="YAML spec or run directory."),
    override: list[str] = typer.Option([], "--override", "-o", help=OVERRIDE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Layers, output shapes and parameter counts of the model a spec builds."""
    from dnnlab.summary import model_summary

    result = model_summary(target, override)
    if as_json:
        print_json(result)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=result["name"])
    for column in ("Layer", "Type", "Output shape", "Params"):
        table.add_column(column, justify="right" if column == "Params" else "left")
    for layer in result["layers"]:
        shape = "(" + ", ".join("None" if d is None else str(d) for d in layer["output_shape"]) + ")"
        table.add_row(layer["name"], layer["type"], shape, f"{layer['params']:,}")
    console = Console()
    console.print(table)
    console.print(f"Total params: {result['total_params']:,}")
    console.print(f"Trainable params: {result['trainable_params']:,}")
    console.print(f"Non-trainable params: {result['non_trainable_params']:,}")


@app.command()
@user_errors
def train(
    config: Path | None = typer.Argument(None, help="YAML spec to train."),
    override: list[str] = typer.Option([], "--override", "-o", help=OVERRIDE_HELP),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run directories go."),
    name: str | None = typer.Option(None, "--name", help="Run name (default: the spec's name)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue this run directory."),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="With --resume: train to N epochs in total."
    ),
) -> None:
    """Train the model a spec describes; prints the run directory."""
    if (config is None) == (resume is None):
        raise DnnlabError("give a CONFIG.yaml to train, or --resume RUN_DIR to continue a run")
    if epochs is not None and resume is None:
        raise DnnlabError("--epochs extends a run with --resume; for a new run use -o training.epochs=N")
    command = ["dnnlab", *sys.argv[1:]]
    if resume is not None:
        from dnnlab import train as training

        result = training.resume(resume, epochs, command)
    else:
        from dnnlab.spec import check_spec

        checked = check_spec(config, override)
        print_warnings(checked.warnings)
        from dnnlab import train as training

        result = training.start(checked, runs_dir, name, command)
    report_run(result)
    raise typer.Exit(result.exit_code)


def report_run(result) -> None:
    console = stderr_console()
    best = result.best or {}
    value = best.get("value")
    best_text = (
        f"best {best.get('metric')} {value:.4g} at epoch {best.get('epoch')}"
        if value is not None
        else "no best yet"
    )
    colour = {"completed": "green", "interrupted": "yellow"}.get(result.status, "red")
    console.print(
        f"[{colour}]{result.status}[/] after {result.epochs_done} epoch(s); {best_text}", soft_wrap=True
    )
    print(result.run_dir)


@app.command()
@user_errors
def compare(
    run_dirs: list[Path] = typer.Argument(
        ..., help="Run directories, e.g. runs/* (a folder of runs works too)."
    ),
    metric: str | None = typer.Option(
        None, "--metric", help="Rank by this metric (default: the one the runs monitor)."
    ),
    diff_only: bool = typer.Option(
        False, "--diff-only", help="Show only the spec keys that differ between the runs."
    ),
    fmt: str = typer.Option("table", "--format", help="table, csv, json or markdown."),
    plot: Path | None = typer.Option(None, "--plot", help="Write learning curves of the metric to this PNG."),
    group_seeds: bool = typer.Option(
        False, "--group-seeds", help="One row per spec that differs only in seed: mean ± std."
    ),
) -> None:
    """Compare run directories: which won, by how much, and what differed."""
    from dnnlab import compare as comparing
    from dnnlab import compare_format

    if fmt not in comparing.FORMATS:
        raise DnnlabError(f"Received --format {fmt}, expected one of: {', '.join(comparing.FORMATS)}.")
    result = comparing.compare(run_dirs, metric=metric, group_seeds=group_seeds)
    console = stderr_console()
    for message in comparing.messages(result):
        console.print(f"[yellow]note:[/] {_escape(message)}", soft_wrap=True)
    if fmt == "table":
        from rich.console import Console

        # A pipe has no width of its own: give the table room rather than folding every cell.
        Console(width=None if sys.stdout.isatty() else 200).print(
            compare_format.render_table(result, diff_only)
        )
    else:
        sys.stdout.write(compare_format.render(result, fmt, diff_only))
    if plot is not None:
        from dnnlab.plots import plot_learning_curves

        console.print(f"wrote {_escape(str(plot_learning_curves(result, plot)))}", soft_wrap=True)


@app.command("mc-predict")
@user_errors
def mc_predict(
    run_dir: Path | None = typer.Argument(
        None, help="Run directory (default: the latest completed run in ./runs)."
    ),
    samples: int = typer.Option(100, "--samples", help="Monte Carlo samples per instance."),
    data: str = typer.Option(
        "test", "--data", help="test, validation, or a .npz (x, optional y) / .csv file."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Instances per sampling call (default: automatic)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed for the dropout masks (default: random, printed)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write per-instance results to FILE.npz or FILE.csv."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the calibration summary as one JSON object."),
) -> None:
    """Monte Carlo dropout: predictions with uncertainty, and calibration against the labels."""
    from dnnlab.errors import PredictError

    if samples < 1:
        raise PredictError(f"--samples: expected a positive number of samples; received {samples}")
    from dnnlab import prediction, runtime

    run = prediction.find_run(run_dir)
    dataset = prediction.prediction_set(run, data)
    runtime.quiet_tensorflow()
    from dnnlab import mc
    from dnnlab.build import load_model

    model = load_model(prediction.model_file(run), compile=False)
    console = stderr_console()
    with console.status(f"sampling {len(dataset.x):,} instances x {samples} ..."):
        result = mc.predict(
            model, dataset.x, samples=samples, batch_size=batch_size, seed=seed, task=dataset.task
        )
        report = mc.summary(model, dataset.x, dataset.y, result) if dataset.y is not None else None
    if out is not None:
        console.print(f"wrote {_escape(str(mc.save(result, out)))}", soft_wrap=True)
    console.print(
        f"{_escape(str(run.path))}: {len(dataset.x):,} instances from {_escape(dataset.source)}, "
        f"{samples} samples, seed {result.seed}",
        soft_wrap=True,
    )
    if report is not None:
        console.print(mc_summary_table(report))
    else:
        console.print("no labels: calibration metrics need y")
    if as_json:
        print_json(
            {
                "run": str(run.path),
                "data": dataset.source,
                "instances": len(dataset.x),
                "samples": samples,
                "seed": result.seed,
                "deterministic": report["deterministic"] if report else None,
                "mc": report["mc"] if report else None,
            }
        )


def mc_summary_table(report: dict):
    from rich.table import Table

    table = Table(title="deterministic vs MC dropout (lower is better, accuracy aside)")
    table.add_column("metric")
    table.add_column("deterministic", justify="right")
    table.add_column("MC dropout", justify="right")
    for name, value in report["deterministic"].items():
        table.add_row(name, f"{value:.4f}", f"{report['mc'][name]:.4f}")
    return table


@app.command()
def schema() -> None:
    """Print the JSON Schema of the YAML spec (for editors)."""
    from dnnlab.spec import json_schema

    print_json(json_schema())


@app.command()
@user_errors
def sweep(
    config: Path | None = typer.Argument(None, help="YAML spec, or a sweep file (one with spec:)."),
    override: list[str] = typer.Option(
        [], "--override", "-o", help=OVERRIDE_HELP + " Fixed for every trial."
    ),
    axis: list[str] = typer.Option(
        [],
        "--grid",
        "-g",
        help="Add an axis: KEY=a,b,c (YAML values, brackets respected), range(a,b[,step]), choice(...); "
        "with --random also uniform(a,b), loguniform(a,b), randint(a,b).",
    ),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Repeat every trial: N for seeds 0..N-1, or A,B,C."
    ),
    random_trials: int | None = typer.Option(None, "--random", help="Draw N trials from the axes."),
    jobs: int | None = typer.Option(None, "--jobs", help="Workers (default: from the cores and model size)."),
    executor: str | None = typer.Option(None, "--executor", help="local (default) or ray."),
    address: str | None = typer.Option(None, "--address", help="The Ray cluster's address."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the sweep directory goes."),
    name: str | None = typer.Option(None, "--name", help="Sweep name (default: the spec's name)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue this sweep directory."),
    as_json: bool = typer.Option(
        False, "--json", help="Print sweep.json's content instead of the directory."
    ),
) -> None:
    """Run a family of trials (grid, random draws, seeds) on warm workers; prints the sweep directory."""
    if (config is None) == (resume is None):
        raise DnnlabError("give a SPEC.yaml or SWEEP.yaml to sweep, or --resume SWEEP_DIR to continue one")
    command = ["dnnlab", *sys.argv[1:]]
    from dnnlab import sweep as sweeping

    if resume is not None:
        result = sweeping.resume_sweep(resume, command, jobs)
    else:
        definition = sweeping.build_sweep(
            config, override, axis, seeds, random_trials, jobs, executor, address, name
        )
        result = sweeping.run_sweep(definition, runs_dir, command)
    report_sweep(result)
    if as_json:
        print_json(result.record.to_dict())
    else:
        print(result.path)
    raise typer.Exit(result.exit_code)


def report_sweep(result) -> None:
    """The seed-grouped comparison of the trials on stderr, as `compare DIR --group-seeds` shows it."""
    from rich.console import Console

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
    Console(stderr=True, width=None if sys.stderr.isatty() else 200).print(
        compare_format.render_table(comparison, True)
    )
