"""Commands that use a trained model or probe one: mc-predict, evaluate, predict, export,
diagnose, lr-find.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from dnnlab.cli.app import (
    JsonFlag,
    Overrides,
    QuietFlag,
    app,
    choices,
    escape_markup,
    print_json,
    print_warning,
    print_warnings,
    user_errors,
)
from dnnlab.console import stderr_console, stdout_console
from dnnlab.errors import DnnlabError
from dnnlab.inference.options import (
    CHECKPOINTS,
    DEFAULT_CHECKPOINT,
    DEFAULT_SAMPLE,
    DEFAULT_SEED,
    EXPORT_FORMATS,
    QUANTIZATIONS,
    SAMPLE_CHOICES,
)

SampleChoice = choices("SampleChoice", SAMPLE_CHOICES)


@app.command("mc-predict")
@user_errors
def mc_predict(
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Run directory (default: the latest completed run in ./runs); several runs or a sweep "
            "directory: mean ± std per group of runs that differ only in seed.",
            show_default=False,
        ),
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
    ] = DEFAULT_SEED,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write per-instance results to FILE.npz or FILE.csv; with several runs, to FOLDER/RUN.npz.",
        ),
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
    ] = SampleChoice[DEFAULT_SAMPLE],
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
    from dnnlab.results import mc_groups

    if run_dirs and mc_groups.several_runs(run_dirs):
        mc_groups.check_options(out, plot)
        result = mc_groups.mc_predict_runs(
            run_dirs, samples, data, batch_size, seed, out, sample.value, None if quiet else _mc_progress
        )
        _print_mc_groups(result, quiet)
        if as_json:
            print_json(result.to_json())
        return
    from dnnlab.inference.mc_predict import mc_predict as mc_predicting

    run_dir = run_dirs[0] if run_dirs else None
    console = stderr_console()
    status = contextlib.nullcontext() if quiet else console.status(f"sampling {samples} dropout masks ...")
    with status:
        result = mc_predicting(run_dir, samples, data, batch_size, seed, out, sample.value, plot)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape_markup(note)}")
    if not quiet:
        for path in (result.written, result.plot):
            if path is not None:
                console.print(f"wrote {escape_markup(str(path))}")
        console.print(
            f"{escape_markup(str(result.run))}: {result.instances:,} instances from "
            f"{escape_markup(result.source)}, "
            f"{samples} samples, seed {result.seed}"
        )
        console.print(f"sampling dropout layers: {result.sample}")
        if result.temperature is not None:
            console.print(
                f"temperature {result.temperature:.3g}, fitted on the validation split "
                "(T > 1: the deterministic network is overconfident, T < 1: underconfident)"
            )
    if result.scores is not None:
        console.print(mc_scores_table(result.scores))
    elif not quiet:
        console.print("no labels: calibration metrics need y")
    if as_json:
        print_json(result.to_json())


def mc_scores_table(scores: dict, title: str = "deterministic vs MC dropout"):
    """Metric rows, one column per method; `scores`: method -> metric -> a number, or the text
    of a cell."""
    from rich.table import Table

    # Title and caption shorter than the table: rich wraps them to its width.
    table = Table(title=title, caption="lower is better, accuracy aside")
    columns = {
        "deterministic": "deterministic",
        "mc": "MC dropout",
        "temperature_scaled": "temperature-scaled",
    }
    columns = {key: title for key, title in columns.items() if key in scores}
    table.add_column("metric")
    for title in columns.values():
        table.add_column(title, justify="right")
    for name in scores["deterministic"]:
        table.add_row(name, *(_cell(scores[key].get(name)) for key in columns))
    return table


def _cell(value) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else f"{value:.4f}"


def _stat_text(stat, runs: int, spec: str = ".4f") -> str:
    """`0.9361 ± 0.0123`; one value without ±; `(n=2)` where fewer than the group's runs have one."""
    if stat.mean is None:
        return "-"
    text = f"{stat.mean:{spec}}" + ("" if stat.std is None else f" ± {stat.std:{spec}}")
    return text if stat.n == runs else f"{text} (n={stat.n})"


def _mc_progress(done: int, total: int, run: Path) -> None:
    stderr_console().print(f"[{done}/{total}] {run}", markup=False, highlight=False)


def _print_mc_groups(result, quiet: bool) -> None:
    """The calibration table of each seed group, mean ± std over its runs, on stderr."""
    console = stderr_console()
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape_markup(note)}")
    if not quiet:
        if result.out is not None:
            console.print(f"wrote {len(result.written)} file(s) to {escape_markup(str(result.out))}")
        console.print(
            f"{result.data}, {result.samples} samples, seed {result.seed}, sampling dropout layers: "
            f"{result.sample}",
            markup=False,
        )
    for group in result.groups:
        seeds = ", ".join(map(str, group.seeds))
        first = group.runs[0]
        console.print(
            f"{escape_markup(group.label)}: {len(group.runs)} run(s), seeds {escape_markup(seeds)}; "
            f"{first.instances:,} instances"
        )
        temperatures = _stat_text(group.temperature, len(group.runs), ".3f")
        if temperatures != "-" and not quiet:
            console.print(f"temperature {temperatures}, fitted on each run's validation split")
        metrics = group.metrics
        if not metrics:
            if not quiet:
                console.print("no labels: calibration metrics need y")
            continue
        cells = {
            method: {name: _stat_text(group.stat(method, name), len(group.runs)) for name in names}
            for method, names in metrics.items()
        }
        console.print(mc_scores_table(cells, f"mean ± std over {len(group.runs)} run(s)"))


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
    from dnnlab.data.checked_spec import check_spec
    from dnnlab.diagnostics.lr_finder import check_options
    from dnnlab.files.figures import check_plot_path

    check_options(min_lr, max_lr, steps)
    if plot is not None:
        check_plot_path(plot)
    checked = check_spec(config, override)
    print_warnings(checked.warnings)
    from dnnlab.diagnostics.lr_finder import lr_find as find

    console = stderr_console()
    status = contextlib.nullcontext() if quiet else console.status(f"range test over {steps} steps ...")
    with status:
        result = find(checked, min_lr, max_lr, steps, plot)
    for note in result.notes:
        print_warning(note)
    if not quiet:
        render_lr_find(result, config, plot)
    if as_json:
        print_json(result.to_json())
    elif result.suggestion is not None:
        print(f"{result.suggestion:.3g}")


def render_lr_find(result, config: Path, plot: Path | None) -> None:
    console = stderr_console()
    stops = {
        "exploded": "the running loss (moving average) passed 4x its minimum",
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
            f"[green]suggestion:[/] {result.suggestion:.3g} (the largest rate at which the smoothed loss "
            f"still falls clearly; steepest descent at {result.steepest_rate:.3g})"
        )
        console.print(
            f"train with 1cycle at that maximum rate: "
            f"dnnlab train {escape_markup(str(config))} {escape_markup(result.override)}"
        )
    if plot is not None:
        console.print(f"wrote {escape_markup(str(plot))}")


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
    try_remedies: Annotated[
        bool,
        typer.Option(
            "--try-remedies",
            help="Train the spec unchanged and with each remedy the verdicts name (one sweep), and "
            "test each remedy against the unchanged spec.",
        ),
    ] = False,
    seeds: Annotated[
        str, typer.Option("--seeds", help="With --try-remedies: N (seeds 0..N-1) or A,B,C.")
    ] = "3",
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", min=1, help="With --try-remedies: epochs per run (default: the spec's)."),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", min=1, help="With --try-remedies: sweep workers.")
    ] = None,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="With --try-remedies: where the sweep directory goes.")
    ] = Path("runs"),
    quiet: QuietFlag = False,
) -> None:
    """Per-layer gradients and activations on a fixed probe batch, and the verdicts of Géron,
    Hands-On Machine Learning, ch. 11 (vanishing or exploding gradients, saturation, dead units,
    SELU self-normalization), each with its remedies: suggested, or tested with --try-remedies."""
    if target.is_dir():  # a run's layers.csv: no TensorFlow
        from dnnlab.diagnostics.verdicts import diagnose_run

        if override or steps:
            raise DnnlabError("diagnose RUN_DIR reads layers.csv; -o and --steps apply to a spec")
        result = diagnose_run(target)
        source = target / "config.yaml"
    else:
        from dnnlab.diagnostics.diagnose import diagnose_spec

        result = diagnose_spec(target, override, steps)
        source = target
    print_warnings(result.warnings)
    trial = (
        _try_remedies(result, source, override, seeds, epochs, jobs, runs_dir, quiet)
        if try_remedies
        else None
    )
    if plot is not None:
        from dnnlab.diagnostics.plot import plot_diagnosis

        written = plot_diagnosis(result, plot)
    if as_json:
        print_json({**result.to_dict(), **({"remedy_trial": trial.as_dict()} if trial else {})})
    else:
        render_diagnosis(result)
        if trial is not None:
            render_remedy_trial(trial)
    if plot is not None:
        stderr_console().print(f"wrote {escape_markup(str(written))}")
    if trial is not None and trial.status != "completed":
        raise typer.Exit(1)


def _try_remedies(result, source, override, seeds, epochs, jobs, runs_dir, quiet):
    """Train and test the remedies the verdicts name; each verdict's remedies marked tested."""
    from dnnlab.sweep import remedy_trials

    kinds = list(dict.fromkeys(v["kind"] for v in result.verdicts))
    remedies = remedy_trials.plan(source, kinds, override or [], epochs)
    if not remedies:
        stderr_console().print("no remedy to try: no verdict names one this spec does not already have")
        return None
    command = ["dnnlab", *sys.argv[1:]]
    trial = remedy_trials.try_remedies(
        source, remedies, runs_dir, command, override or [], seeds, epochs, jobs, progress=not quiet
    )
    for verdict in result.verdicts:
        for entry in verdict.get("remedies", []):
            group = trial.tested(entry["remedy"])
            if group is not None:
                numbers = group.as_dict()
                entry.update(
                    status="tested",
                    overrides=group.remedy.overrides,  # as trained (twice the epochs: of --epochs)
                    verdict=group.verdict,
                    text=trial.phrase(group),
                    mean=numbers["mean"],
                    baseline_mean=trial.baseline.as_dict()["mean"],
                    difference=numbers["difference"],
                    p_value=numbers["p_value"],
                    seeds=numbers["seeds"],
                    metric=trial.metric,
                )
    return trial


def render_remedy_trial(trial) -> None:
    from rich.table import Table

    table = Table(title=f"remedies against the unchanged spec: {trial.metric} at the last epoch")
    for column in ("Remedy", "Seeds", "Mean ± std", "Difference [95% CI]", "p", "Verdict"):
        table.add_column(column, justify="left" if column in ("Remedy", "Verdict") else "right")

    def num(value, fmt="{:.3g}"):
        return "-" if value is None else fmt.format(value)

    for group in trial.groups:
        d = group.as_dict()
        diff = (
            f"{num(d['difference'], '{:+.3g}')} "
            f"[{num(d['difference_ci_low'])}, {num(d['difference_ci_high'])}]"
            if d["difference"] is not None
            else "-"
        )
        diverged = f" ({d['diverged']} diverged)" if d["diverged"] else ""
        table.add_row(
            escape_markup(group.label),
            str(d["seeds"]),
            f"{num(d['mean'])} ± {num(d['std'])}",
            diff,
            num(d["p_value"], "{:.2g}"),
            group.verdict + diverged,
        )
    console = stdout_console()
    console.print(table)
    console.print(f"sweep: {escape_markup(str(trial.sweep_dir))}")


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
        console.print(f"[bold]{verdict['kind']}[/] ({verdict['at']}): {escape_markup(verdict['message'])}")
        remedies = verdict.get("remedies") or []
        tested = [r["text"] for r in remedies if r["status"] == "tested"]
        untested = [
            f"{r['remedy']} ({' '.join('-o ' + o for o in r['overrides'])})"
            for r in remedies
            if r["status"] != "tested"
        ]
        if tested:
            console.print(f"  tested: {escape_markup('; '.join(tested))}")
        if untested:
            console.print(
                f"  suggested, untested (--try-remedies tests them): {escape_markup('; '.join(untested))}"
            )
    if not result.verdicts:
        console.print("no verdict: gradients and activations look healthy on the probe batch")


Checkpoint = choices("Checkpoint", CHECKPOINTS)


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
    ] = Checkpoint[DEFAULT_CHECKPOINT],
    as_json: JsonFlag = False,
) -> None:
    """Loss and metrics of a run's model on data, scaled as in training."""
    from dnnlab.inference.evaluate import evaluate as evaluating

    result = evaluating(run_dir, data, checkpoint.value)
    if as_json:
        print_json(result.to_json())
        return
    scores = "  ".join(f"{escape_markup(name)} {value:.4g}" for name, value in result.scores.items())
    stderr_console().print(
        f"{escape_markup(str(result.run))} ({result.checkpoint}) on {escape_markup(result.source)}, "
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
    from dnnlab.inference.predict import predict as predicting

    result = predicting(run_dir, data, out)
    if as_json:
        print_json(result.to_json())
    elif out is None:
        from dnnlab.files.array_csv import arrays_csv_text

        sys.stdout.write(arrays_csv_text(result.arrays))
    if result.written is not None:
        stderr_console().print(f"wrote {escape_markup(str(result.written))} ({result.instances:,} rows)")


ExportFormat = choices("ExportFormat", EXPORT_FORMATS)
Quantization = choices("Quantization", QUANTIZATIONS)


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
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing export of this format at --out.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Export a run's model with its scaling built in; verified against the run's model first."""
    from dnnlab.inference.export import export as exporting

    result = exporting(
        run_dir,
        fmt.value,
        out,
        fold_batch_norm,
        quantize.value if quantize else None,
        prune_below,
        force=force,
    )
    stderr_console().print(export_table(result))
    if as_json:
        print_json(result.to_json())
    else:
        print(result.path)


def export_table(result):
    from rich.table import Table

    kind = result.format + (f" {result.quantize}" if result.quantize else "")
    caption = f"on {result.instances:,} rows of {result.source}\ninputs: {result.inputs}"
    table = Table(title=f"{kind} vs run model", caption=escape_markup(caption))
    table.add_column("")
    table.add_column("run model", justify="right")
    table.add_column(kind, justify="right")

    def score(value):
        return "-" if value is None else f"{value:.4f}"

    table.add_row(result.metric, score(result.run_score), score(result.export_score))
    table.add_row("size", f"{result.run_bytes / 1024:,.1f} KiB", f"{result.export_bytes / 1024:,.1f} KiB")
    table.add_row(
        "latency, 1 instance", f"{result.run_latency_ms:.3f} ms", f"{result.export_latency_ms:.3f} ms"
    )
    table.add_row("max |difference|", "", f"{result.max_abs_diff:.3g}")
    if result.agreement is not None:
        table.add_row("same class", "", f"{result.agreement:.2%}")
    if result.folded:
        table.add_row("folded batch norms", "", str(len(result.folded)))
    if result.sparsity is not None:
        table.add_row("sparsity", "", f"{result.sparsity:.1%}")
    if result.int8_layers is not None:
        layers = ", ".join(result.int8_layers) or "none (kernels under 1,024 weights stay float32)"
        table.add_row("int8 weights (float activations)", "", layers)
    return table
