"""Commands that read runs back: compare, report, mlflow-log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from dnnlab.cli.app import RankMetric, ReachOption, app, choices, escape_markup, user_errors
from dnnlab.console import fit_width, stderr_console, stdout_console
from dnnlab.errors import DnnlabError
from dnnlab.results.options import AT_CHOICES, CI_CHOICES, DEFAULT_FORMAT, FORMATS

Format = choices("Format", FORMATS)


Interval = choices("Interval", CI_CHOICES)
At = choices("At", AT_CHOICES)


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
    ] = Format[DEFAULT_FORMAT],
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
        bool,
        typer.Option(
            "--group-seeds",
            help="One row per spec that differs only in seed: mean ± std, a 95% CI, a test against the best.",
        ),
    ] = False,
    ci: Annotated[
        Interval | None,
        typer.Option("--ci", help="With --group-seeds: the interval of each group's mean (default: t)."),
    ] = None,
    at: Annotated[
        At | None,
        typer.Option(
            "--at",
            help="With --group-seeds: test each run's best epoch of the metric or its last (default: best).",
        ),
    ] = None,
    seeds_needed: Annotated[
        float | None,
        typer.Option(
            "--seeds-needed",
            help="With --group-seeds: the seeds each comparison needs to detect this difference "
            "(metric units, e.g. 0.01) with 80% power.",
        ),
    ] = None,
) -> None:
    """Compare run directories: which won, by how much, and what differed (leaf spec keys)."""
    from dnnlab.results import compare as comparing
    from dnnlab.results import formats as compare_format

    given = [
        name
        for name, value in (("--ci", ci), ("--at", at), ("--seeds-needed", seeds_needed))
        if value is not None
    ]
    if given and not group_seeds:
        raise DnnlabError(f"{given[0]} tests seed groups against each other: add --group-seeds.")
    tested = {"ci": (ci or Interval.t).value, "at": (at or At.best).value, "delta": seeds_needed}
    if group_seeds:
        from dnnlab.results import seed_tests

        seed_tests.check_options(**tested, metric=metric)  # before any run is read
    result = comparing.compare(run_dirs, metric=metric, group_seeds=group_seeds, reach=reach)
    if group_seeds:
        seed_tests.attach(result, **tested)
    panels = plot_metrics.split(",") if plot_metrics else None
    if plot is not None:
        from dnnlab.results.plots import check_plot_target, plot_panels

        check_plot_target(plot)
        plot_panels(result, panels)  # a bad --plot-metrics fails before anything is printed
    console = stderr_console()
    for message in comparing.messages(result):
        console.print(f"[yellow]note:[/] {escape_markup(message)}")
    if fmt is Format.table:
        out = stdout_console()
        out.print(compare_format.render_table(result, diff_only, fit_width(out)))
    else:
        sys.stdout.write(compare_format.render(result, fmt.value, diff_only))
    if plot is not None:
        from dnnlab.results.plots import plot_learning_curves

        console.print(f"wrote {escape_markup(str(plot_learning_curves(result, plot, panels, log_y)))}")


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
    from dnnlab.results.html_report import write_report

    path = write_report(run_dirs, out, metric=metric, reach=reach, mc_files=mc)
    console = stderr_console()
    console.print(f"wrote {escape_markup(str(path))}")


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
    from dnnlab.results.tracking import log_runs

    console = stderr_console()
    for logged in log_runs(run_dirs, tracking_uri, experiment):
        detail = f" ({logged.reason})" if logged.reason else f": MLflow run {logged.mlflow_run_id}"
        console.print(f"{logged.outcome} {escape_markup(str(logged.run_dir))}{escape_markup(detail)}")
