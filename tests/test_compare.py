"""`dnnlab compare` on fake run directories written by small helpers (no TensorFlow involved)."""

from __future__ import annotations

import copy
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dnnlab.errors import DnnlabError, RunDirError
from dnnlab.results import compare as cmp
from dnnlab.results import formats as fmt
from dnnlab.rundir import loading

BASE_CONFIG = {
    "name": "fashion",
    "seed": 42,
    "data": {"dataset": "fashion_mnist", "validation": 5000, "scaling": "standardize"},
    "model": {
        "hidden": [300, 100],
        "activation": {"type": "elu", "alpha": 1.0},
        "initializer": {"type": "he_normal"},
        "normalization": {"type": "none"},
        "dropout": None,
        "output": {"units": 10, "activation": "softmax"},
    },
    "training": {
        "epochs": 5,
        "batch_size": 32,
        "metrics": ["accuracy"],
        "optimizer": {"type": "nadam", "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999},
        "schedule": {"type": "none"},
    },
}


def spec(**overrides) -> dict:
    """BASE_CONFIG with dotted-key overrides, e.g. spec(**{"model.activation": {...}})."""
    config = copy.deepcopy(BASE_CONFIG)
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[last] = value
    return config


def write_run(
    root: Path,
    name: str,
    config: dict | None = None,
    val_loss: list[float] = (0.9, 0.7, 0.6),
    status: str = "completed",
    run_json: bool = True,
    epochs_planned: int | None = None,
) -> Path:
    """A run directory as `dnnlab train` writes it: config.yaml, run.json, metrics.csv."""
    run = root / f"{name}-20240101-120000"
    run.mkdir(parents=True)
    config = config if config is not None else spec()
    config = {**config, "name": name}
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    lines = ["epoch,lr,loss,accuracy,val_loss,val_accuracy,seconds"]
    for epoch, v in enumerate(val_loss):
        lines.append(f"{epoch},0.001,{v + 0.1},{1 - v / 2},{v},{1 - v / 2 - 0.05},1.5")
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    if run_json:
        finite = [(v, i) for i, v in enumerate(val_loss) if v == v]
        value, epoch = min(finite) if finite else (None, None)
        (run / "run.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "status": status,
                    "started": "2024-01-01T12:00:00",
                    "finished": "2024-01-01T12:01:00" if status != "running" else None,
                    "epochs_done": len(val_loss),
                    "epochs_planned": epochs_planned or len(val_loss),
                    "best": {"metric": "val_loss", "mode": "min", "value": value, "epoch": epoch},
                    "seed": config["seed"],
                    "config_hash": "abc",
                    "versions": {},
                    "host": "test",
                    "command": ["dnnlab", "train"],
                    "wall_seconds": 4.5,
                }
            )
        )
    return run


@pytest.fixture
def activation_runs(tmp_path: Path) -> list[Path]:
    """Three runs that differ only in their activation; relu's val_loss is the best."""
    return [
        write_run(tmp_path, "elu", spec(), [0.9, 0.5, 0.55]),
        write_run(tmp_path, "relu", spec(**{"model.activation": {"type": "relu"}}), [0.8, 0.4, 0.45]),
        write_run(tmp_path, "selu", spec(**{"model.activation": {"type": "selu"}}), [0.9, 0.6, 0.65]),
    ]


def test_keys_only_one_type_has_fold_into_the_type(activation_runs):
    result = cmp.compare(activation_runs)
    assert result.differing_keys == ["model.activation"]  # no `alpha` column blank for relu and selu
    assert [r.params["model.activation"] for r in result.runs] == [
        {"type": "relu"},
        {"type": "elu", "alpha": 1.0},
        {"type": "selu"},
    ]
    headers, rows = fmt.table_rows(result, diff_only=True)
    assert [fmt.format_value(row["model.activation"]) for row in rows] == ["relu", "elu(alpha=1.0)", "selu"]


def test_types_fold_their_own_keys_and_keys_every_type_has_stay_columns(tmp_path):
    sgd = {"type": "sgd", "learning_rate": 0.01, "momentum": 0.9}
    runs = [
        write_run(tmp_path, "nadam", spec()),
        write_run(tmp_path, "sgd", spec(**{"training.optimizer": sgd}), [0.8, 0.4]),
    ]
    result = cmp.compare(runs, group_seeds=True)
    # in the order of the ranked runs' configs: sgd won
    assert result.differing_keys == ["training.optimizer", "training.optimizer.learning_rate"]
    sgd_run, nadam_run = result.runs
    assert sgd_run.params["training.optimizer"] == {"type": "sgd", "momentum": 0.9}
    assert nadam_run.params["training.optimizer"] == {"type": "nadam", "beta_1": 0.9, "beta_2": 0.999}
    assert [fmt.group_label(g, result) for g in result.groups] == [
        "optimizer=sgd(momentum=0.9), learning_rate=0.01",
        "optimizer=nadam(beta_1=0.9, beta_2=0.999), learning_rate=0.001",
    ]
    csv_rows = list(csv.DictReader(io.StringIO(fmt.render_csv(result, diff_only=True))))
    assert [r["training.optimizer"] for r in csv_rows] == [
        "sgd(momentum=0.9)",
        "nadam(beta_1=0.9, beta_2=0.999)",
    ]
    assert "training.optimizer.momentum" not in csv_rows[0]


def test_a_type_against_null_folds_and_a_plain_section_against_null_is_null_at_each_leaf(tmp_path):
    dropout = {"type": "dropout", "rate": 0.2, "where": "all"}
    runs = [
        write_run(tmp_path, "plain", spec(**{"training.early_stopping": None})),
        write_run(
            tmp_path,
            "both",
            spec(**{"model.dropout": dropout, "training.early_stopping": {"patience": 3}}),
            [0.8, 0.4],
        ),
    ]
    result = cmp.compare(runs)
    assert result.differing_keys == ["model.dropout", "training.early_stopping.patience"]
    both, plain = result.runs
    assert fmt.format_value(both.params["model.dropout"]) == "dropout(rate=0.2, where=all)"
    assert fmt.format_value(plain.params["model.dropout"]) == "none"
    assert plain.params["training.early_stopping.patience"] is None


def test_a_mapping_against_null_is_null_at_every_leaf(tmp_path):
    stopping = {"monitor": "val_loss", "patience": 6}
    runs = [
        write_run(tmp_path, "none", spec(**{"training.early_stopping": None})),
        write_run(tmp_path, "stop", spec(**{"training.early_stopping": stopping}), [0.8, 0.4]),
    ]
    result = cmp.compare(runs)
    assert result.differing_keys == ["training.early_stopping.monitor", "training.early_stopping.patience"]
    by_name = {r.path.name.split("-")[0]: r.params for r in result.runs}
    assert [by_name["none"][k] for k in result.differing_keys] == [None, None]
    assert [by_name["stop"][k] for k in result.differing_keys] == ["val_loss", 6]


def test_best_run_has_the_best_value_in_metrics_csv(activation_runs):
    result = cmp.compare(activation_runs)
    assert result.best_run.path == activation_runs[1]
    assert (result.best_run.best.value, result.best_run.best.epoch) == (0.4, 1)
    assert result.metric == "val_loss" and result.mode == "min"


def test_rows_sorted_by_chosen_metric_best_first(tmp_path):
    runs = [write_run(tmp_path, f"r{i}", spec(seed=i), v) for i, v in enumerate(([0.5], [0.3], [0.7]))]
    result = cmp.compare(runs, metric="val_accuracy")
    assert result.mode == "max"
    values = [r.best.value for r in result.runs]
    assert values == sorted(values, reverse=True)
    assert result.best_run.path == runs[1]


def test_same_type_mapping_splits_into_subkeys_and_seed_counts(tmp_path):
    runs = [
        write_run(tmp_path, "a", spec(seed=1)),
        write_run(tmp_path, "b", spec(seed=2, **{"training.optimizer.learning_rate": 0.01})),
        write_run(
            tmp_path, "c", spec(seed=3, **{"model.dropout": {"type": "dropout", "rate": 0.2, "where": "all"}})
        ),
    ]
    result = cmp.compare(runs)
    assert set(result.differing_keys) == {"seed", "training.optimizer.learning_rate", "model.dropout"}
    assert "name" not in result.differing_keys


def test_identical_specs_have_no_differing_keys(tmp_path):
    runs = [write_run(tmp_path, "a"), write_run(tmp_path, "b")]
    assert cmp.compare(runs).differing_keys == []


def test_context_keys_shown_unless_diff_only(activation_runs):
    result = cmp.compare(activation_runs)
    full, _ = fmt.table_rows(result)
    diff_only, _ = fmt.table_rows(result, diff_only=True)
    assert "training.optimizer" in full and "model.initializer" in full
    assert "model.activation" in diff_only and "training.optimizer" not in diff_only
    assert "model.activation.type" not in full  # folded into model.activation


def test_truncated_metrics_csv_is_marked_and_keeps_good_epochs(activation_runs):
    metrics = activation_runs[0] / "metrics.csv"
    metrics.write_text(metrics.read_text() + "3,0.001,0.4")
    (activation_runs[0] / "run.json").unlink()
    result = cmp.compare(activation_runs)
    run = next(r for r in result.runs if r.path == activation_runs[0])
    assert "truncated metrics.csv" in run.notes and "missing run.json" in run.notes
    assert run.epochs == 3 and run.status == "unknown"
    assert run.best.value == 0.5


def test_unparsable_number_on_last_line_is_dropped(tmp_path):
    run = write_run(tmp_path, "a", val_loss=[0.5, 0.4])
    (run / "metrics.csv").write_text((run / "metrics.csv").read_text() + "2,0.001,0.3,0.8,0.2x,0.7,1.5\n")
    loaded = loading.load_run(run)
    assert loaded.history["val_loss"] == [0.5, 0.4]
    assert "truncated metrics.csv" in loaded.notes


def test_broken_config_yaml_still_gets_a_marked_row(activation_runs):
    (activation_runs[2] / "config.yaml").write_text("model: {activation: [unclosed\n")
    result = cmp.compare(activation_runs)
    broken = next(r for r in result.runs if r.path == activation_runs[2])
    assert "config.yaml unreadable" in broken.notes
    assert result.differing_keys == ["model.activation"]
    headers, rows = fmt.table_rows(result)
    row = next(row for row in rows if row["run"] == activation_runs[2].name)
    assert fmt.format_value(row["model.activation"]) == "?"
    assert "config.yaml unreadable" in row["notes"]
    assert "notes" in headers


def test_run_dir_with_only_metrics_csv_derives_status_and_best(tmp_path):
    run = write_run(tmp_path, "a", val_loss=[0.5, 0.3, 0.4], run_json=False)
    (run / "config.yaml").unlink()
    result = cmp.compare([run])
    only = result.runs[0]
    assert (only.status, only.epochs, only.best.value, only.best.epoch) == ("unknown", 3, 0.3, 1)
    assert only.wall_seconds == pytest.approx(4.5)


def test_unfinished_runs_show_status_and_epochs(tmp_path):
    runs = [
        write_run(tmp_path, "done", val_loss=[0.5, 0.4, 0.3]),
        write_run(tmp_path, "stopped", spec(seed=1), [0.6], status="interrupted", epochs_planned=3),
        write_run(tmp_path, "nan", spec(seed=2), [0.6, float("nan")], status="diverged"),
    ]
    result = cmp.compare(runs)
    by_name = {r.name: r for r in result.runs}
    assert (by_name["stopped"].status, by_name["stopped"].epochs) == ("interrupted", 1)
    assert by_name["nan"].status == "diverged" and by_name["nan"].best.value == 0.6
    assert json.loads(fmt.render_json(result))  # nan in final metrics is still valid JSON


def test_non_run_paths_are_skipped_and_parent_folder_expands(tmp_path, activation_runs):
    stray = tmp_path / "README.txt"
    stray.write_text("hi")
    result = cmp.compare([*activation_runs, stray])
    assert result.skipped == [stray] and len(result.runs) == 3
    assert len(cmp.compare([tmp_path]).runs) == 3


def test_no_runs_raises_dnnlab_error(tmp_path):
    with pytest.raises(RunDirError, match="No run directories"):
        cmp.compare([tmp_path])
    assert RunDirError.exit_code == 2


def test_unknown_metric_lists_the_recorded_ones(activation_runs):
    with pytest.raises(DnnlabError, match="val_accuracy"):
        cmp.compare(activation_runs, metric="val_acc")


def test_json_has_the_documented_keys(activation_runs):
    out = json.loads(fmt.render(cmp.compare(activation_runs), "json"))
    assert {"runs", "differing_keys", "best_run"} <= set(out)
    assert out["best_run"] == str(activation_runs[1])
    first = out["runs"][0]
    assert {"run", "status", "epochs", "best", "final", "params"} <= set(first)
    assert first["best"] == {"metric": "val_loss", "value": 0.4, "epoch": 1}
    assert first["final"]["val_loss"] == 0.45 and "epoch" not in first["final"]
    assert first["params"] == {"model.activation": {"type": "relu"}}


def test_csv_and_markdown_have_every_run(activation_runs):
    result = cmp.compare(activation_runs)
    rows = list(csv.DictReader(io.StringIO(fmt.render(result, "csv"))))
    assert [r["run"] for r in rows] == [
        p.name for p in (activation_runs[1], activation_runs[0], activation_runs[2])
    ]
    assert rows[0]["best_val_loss"] == "0.4" and rows[0]["model.activation"] == "relu"
    assert rows[0]["best_epoch"] == "1"  # machine formats keep metrics.csv's 0-based epoch
    markdown = fmt.render(result, "markdown").splitlines()
    assert len(markdown) == 2 + 3
    assert f"**{activation_runs[1].name}**" in markdown[2]
    headers = [cell.strip() for cell in markdown[0].strip("|").split("|")]
    cells = [cell.strip() for cell in markdown[2].strip("|").split("|")]
    assert cells[headers.index("best_epoch")] == "2"  # for people epochs count from 1


def test_the_terminal_table_counts_epochs_from_one(activation_runs):
    from rich.console import Console

    console = Console(file=io.StringIO(), width=250)
    console.print(fmt.render_table(cmp.compare(activation_runs)))
    best_line = next(line for line in console.file.getvalue().splitlines() if activation_runs[1].name in line)
    assert best_line.split()[:6] == ["1", activation_runs[1].name, "completed", "3", "0.4", "2"]


def test_every_human_column_counts_epochs_from_one_and_machine_formats_say_their_base(tmp_path):
    """The best epoch, the epochs to --reach and the diverged epoch, in the terminal table (also the
    sweep's summary, seed-grouped), markdown, csv and json."""
    from rich.console import Console

    same = [write_run(tmp_path, f"same{seed}", spec(seed=seed), [0.9, 0.5, 0.55]) for seed in (1, 2)]
    relu = spec(**{"model.activation": {"type": "relu"}})
    diverged = write_run(tmp_path, "diverged", relu, [0.8, 0.7], "diverged")
    # A metrics.csv whose rows start at epoch 2 (a partial file): both columns follow its epochs.
    late = write_run(tmp_path, "late", spec(seed=3), [0.9, 0.45])
    header, *rows = (late / "metrics.csv").read_text().splitlines()
    (late / "metrics.csv").write_text("\n".join([header, *(f"{i + 2}{r[1:]}" for i, r in enumerate(rows))]))
    result = cmp.compare([*same, diverged, late], reach="val_loss=0.6")

    console = Console(file=io.StringIO(), width=300)
    console.print(fmt.render_table(result))
    text = console.file.getvalue()
    results = text[: text.index("what differs")].splitlines()
    cells = {line.split()[1].split("-")[0]: line.split() for line in results if "-20240101-" in line}
    # rank, run, status, epochs, best val_loss, best epoch, final loss and accuracy, epochs_to_val_loss
    assert cells["late"][3:6] == ["4", "0.45", "4"] and cells["same1"][3:6] == ["3", "0.5", "2"]
    assert [cells[name][12] for name in ("late", "same1", "diverged")] == ["4", "2", "-"]
    assert "training diverged in epoch 3" in text  # it committed 2 epochs

    markdown = [[c.strip().strip("*") for c in line.strip("|").split("|")] for line in
                fmt.render(result, "markdown").splitlines()]  # fmt: skip
    by_run = {row[1].split("-")[0]: dict(zip(markdown[0], row)) for row in markdown[2:]}
    assert (by_run["late"]["best_epoch"], by_run["late"]["epochs_to_val_loss"]) == ("4", "4")
    assert (by_run["same1"]["best_epoch"], by_run["same1"]["epochs_to_val_loss"]) == ("2", "2")

    # csv and json: the best epoch is metrics.csv's 0-based `epoch`; epochs_to_* is a count
    csv_rows = {r["run"].split("-")[0]: r for r in csv.DictReader(io.StringIO(fmt.render(result, "csv")))}
    assert (csv_rows["late"]["best_epoch"], csv_rows["late"]["epochs_to_val_loss"]) == ("3", "4")
    runs_json = {r["name"]: r for r in json.loads(fmt.render(result, "json"))["runs"]}
    assert runs_json["late"]["best"]["epoch"] == 3 and runs_json["late"]["epochs_to_reach"] == 4

    grouped = cmp.compare(same, group_seeds=True, reach="val_loss=0.6")
    console = Console(file=io.StringIO(), width=300)
    console.print(fmt.render_table(grouped, True))  # as `dnnlab sweep` ends
    group = next(line.split() for line in console.file.getvalue().splitlines() if " same1 " in line)
    # rank, group, seeds, status, epochs, best val_loss, best epoch (mean ± std over the seeds)
    assert group[:4] == ["1", "same1", "2", "completed"] and group[10:13] == ["2", "±", "0"]


def seed_groups(root: Path) -> cmp.Comparison:
    """Two seed groups with long names, tested, as `dnnlab sweep` ends with them."""
    from dnnlab.results import seed_tests

    relu = {"model.activation": {"type": "relu"}}
    for seed, (elu, rel) in enumerate([(0.5, 0.3), (0.7, 0.4), (0.6, 0.5)], 1):
        write_run(root, f"a-long-run-name-elu-s{seed}", spec(seed=seed), [0.9, elu])
        write_run(root, f"a-long-run-name-relu-s{seed}", spec(seed=seed, **relu), [0.8, rel])
    comparison = cmp.compare([root], group_seeds=True)
    seed_tests.attach(comparison)
    return comparison


def test_a_table_wider_than_the_terminal_leaves_columns_out_and_says_which(tmp_path):
    from rich.console import Console

    comparison = seed_groups(tmp_path)
    console = Console(file=io.StringIO(), width=80)
    console.print(fmt.render_table(comparison, False, width=80))
    text = console.file.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "0.400 ± 0.100" in text  # a number is never folded across lines
    left_out = " ".join(text[text.index("left out to fit") :].split())
    assert left_out.startswith("left out to fit the terminal's 80 columns: wall_seconds, epochs, final_")
    assert "--format csv` (or json) shows every column, as does a wider terminal" in left_out
    assert "wall" not in text[: text.index("left out")]  # the first column to go
    wide = Console(file=io.StringIO(), width=400)
    wide.print(fmt.render_table(comparison, False, width=400))
    assert "left out" not in wide.file.getvalue() and "wall" in wide.file.getvalue()


def test_off_a_terminal_every_column_keeps_its_width_whatever_columns_says(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dnnlab.cli.main import app
    from dnnlab.console import fit_width, stdout_console

    seed_groups(tmp_path)
    monkeypatch.setenv("COLUMNS", "60")
    assert fit_width(stdout_console()) is None  # CliRunner's stdout is no terminal
    out = CliRunner().invoke(app, ["compare", str(tmp_path), "--group-seeds"]).stdout
    assert "left out" not in out and "wall" in out
    assert max(len(line.rstrip()) for line in out.splitlines()) > 100  # one line per row, as before


def test_rich_table_renders_every_row(activation_runs):
    from rich.console import Console

    console = Console(file=io.StringIO(), width=250)
    console.print(fmt.render_table(cmp.compare(activation_runs)))
    text = console.file.getvalue()
    assert all(p.name in text for p in activation_runs)
    assert "activation" in text and "selu" in text  # the header breaks `model.activation` at its dot
    assert "same in every run: model.initializer=he_normal" in text


def test_large_comparisons_render_as_aligned_plain_columns(tmp_path):
    """Past LARGE_TABLE_ROWS runs the terminal table is fixed-width text: every run is a line,
    ranked best first, with the differing key beside it."""
    from rich.console import Console

    count = fmt.LARGE_TABLE_ROWS + 5
    paths = [
        write_run(
            tmp_path,
            f"r{i:03d}",
            spec(**{"training.optimizer.learning_rate": 0.001 * (i + 1)}),
            [0.9, 0.5 + i / 1000],
        )
        for i in range(count)
    ]
    console = Console(file=io.StringIO(), width=250)
    console.print(fmt.render_table(cmp.compare(paths)))
    lines = console.file.getvalue().splitlines()
    ranked = [line for line in lines if line.lstrip().startswith("1  ")]
    assert ranked and "r000-" in ranked[0]  # the best run is rank 1 in both tables
    assert sum("r104-" in line for line in lines) == 2  # a line in results, one in what differs
    assert any("learning_rate" in line for line in lines)


def test_group_seeds_gives_mean_std_and_count(tmp_path):
    runs = [
        write_run(tmp_path, "elu1", spec(seed=1), [0.5]),
        write_run(tmp_path, "elu2", spec(seed=2), [0.7]),
        write_run(tmp_path, "relu1", spec(seed=1, **{"model.activation": {"type": "relu"}}), [0.3]),
        write_run(tmp_path, "relu2", spec(seed=2, **{"model.activation": {"type": "relu"}}), [0.4]),
        write_run(tmp_path, "relu3", spec(seed=3, **{"model.activation": {"type": "relu"}}), [0.5]),
    ]
    result = cmp.compare(runs, group_seeds=True)
    assert result.differing_keys == ["model.activation"]
    relu, elu = result.groups
    assert (relu.best.n, elu.best.n) == (3, 2)
    assert relu.best.mean == pytest.approx(0.4) and relu.best.std == pytest.approx(0.1)
    assert elu.best.mean == pytest.approx(0.6) and elu.best.std == pytest.approx(0.1414, abs=1e-4)
    headers, rows = fmt.table_rows(result)
    assert rows[0]["seeds"] == 3 and fmt.format_value(rows[0]["best_val_loss"]) == "0.400 ± 0.100"
    csv_rows = list(csv.DictReader(io.StringIO(fmt.render_csv(result))))
    assert float(csv_rows[0]["best_val_loss_std"]) == pytest.approx(0.1)
    groups = json.loads(fmt.render_json(result))["groups"]
    assert groups[0]["n"] == 3 and groups[0]["best"]["std"] == pytest.approx(0.1)


def test_plot_writes_a_png(activation_runs, tmp_path):
    from dnnlab.results.plots import plot_learning_curves

    out = plot_learning_curves(cmp.compare(activation_runs), tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("mean", "std", "text"),
    [
        (0.19608, 0.043587, "0.1961 ± 0.0436"),  # the std to 3 significant digits, the mean to its place
        (0.9, 0.018109, "0.9000 ± 0.0181"),  # trailing zeros kept: they are digits the std vouches for
        (0.4, 0.1, "0.400 ± 0.100"),
        (1.0, 0.09996, "1.000 ± 0.100"),  # the std rounds up a place
        (45678.9, 1234.5, "45680 ± 1230"),
        (12.0, 0.0, "12 ± 0"),  # no spread at all
        (0.5, 1e-12, "0.500000 ± 1e-12"),  # at most 6 significant digits of the mean
        (0.3, None, "0.3"),  # one seed: the mean alone
    ],
)
def test_a_mean_shows_the_decimals_of_its_std_s_third_significant_digit(mean, std, text):
    assert fmt.format_value(cmp.Stat(mean, std, 3)) == text


def test_an_interval_shows_the_decimals_of_its_mean(tmp_path):
    assert fmt.format_interval(0.142, 0.2502, 0.043587, 0.19608) == "[0.1420, 0.2502]"
    assert fmt.format_interval(None, None, None, 0.5) == "-"


def test_legend_labels_name_what_differs(activation_runs):
    labels = fmt.run_labels(cmp.compare(activation_runs))
    assert labels[activation_runs[0]] == "activation=elu(alpha=1.0)"


def test_importing_compare_does_not_import_tensorflow():
    code = (
        "import sys, dnnlab.results.compare, dnnlab.results.plots, dnnlab.results.html_report; "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize(
    "text",
    [
        "# a comment\nname: a\nseed: 1\nmodel:\n  hidden: [3, 2]\n  activation: {type: elu, alpha: 1.0}\n",
        "name: a\nbase: &b {x: 1}\nother: *b\n",  # an anchor shared across sections
        "{name: a, seed: 1}\n",  # flow style
        "---\nname: a\nseed: 2\n",  # a document marker
        "name: a\ntext: |\n  line one\n\n  line two\n",  # a block scalar with a blank line
    ],
)
def test_parse_spec_matches_yaml(text):
    sections: dict = {}
    assert loading.parse_spec(text, sections) == yaml.safe_load(text)
    assert loading.parse_spec(text, sections) == yaml.safe_load(text)  # again, from the memo


def test_malformed_middle_line_is_dropped_and_named(tmp_path):
    run = write_run(tmp_path, "a", val_loss=[0.5, 0.4, 0.3])
    lines = (run / "metrics.csv").read_text().splitlines()
    lines[2] = "1,0.001,oops,0.8,0.4,0.7,1.5"
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    loaded = loading.load_run(run)
    assert loaded.history["epoch"] == [0.0, 2.0] and loaded.epochs == 3
    assert loaded.notes == ["metrics.csv: dropped malformed line(s) 3"]


def _cli_has_compare() -> bool:
    try:
        from dnnlab.cli.main import app
    except ImportError:
        return False
    return any(
        c.name == "compare" or getattr(c.callback, "__name__", "") == "compare"
        for c in app.registered_commands
    )


@pytest.mark.skipif(not _cli_has_compare(), reason="`dnnlab compare` is not wired into the CLI yet")
def test_cli_json_on_stdout_notes_on_stderr_and_exit_2_without_runs(activation_runs, tmp_path):
    from typer.testing import CliRunner

    from dnnlab.cli.main import app

    stray = tmp_path / "notes.txt"
    stray.write_text("not a run")
    result = CliRunner().invoke(app, ["compare", *map(str, activation_runs), str(stray), "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["best_run"] == str(activation_runs[1])
    assert "skipped 1 path" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["compare", str(empty)])
    assert result.exit_code == 2 and "No run directories" in result.stderr
