"""`dnnlab compare --group-seeds` says whether a difference is real: intervals, tests, seeds needed.

The run directories are written file by file (no training): each group's val_loss per seed is
chosen here, so the expected numbers come from SciPy on the same values.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console
from scipy import stats
from test_compare import spec, write_run
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.results import compare as comparing
from dnnlab.results import formats, seed_tests
from dnnlab.results.statistics import holm, seeds_needed, summarize

runner = CliRunner()

SEEDS = (1, 2, 3, 4, 5)
# Each run's best val_loss by seed: nadam is best, adam within noise of it, sgd clearly worse.
NADAM = [0.30, 0.32, 0.29, 0.31, 0.33]
ADAM = [v + d for v, d in zip(NADAM, (0.03, -0.01, 0.02, -0.015, 0.025))]
SGD = [v + d for v, d in zip(NADAM, (0.10, 0.12, 0.09, 0.11, 0.105))]


def write_group(
    root: Path, name: str, values, seeds=SEEDS, final_step: float = 0.05, **optimizer
) -> list[Path]:
    """One run per seed whose val_loss is best at epoch 1 (the value) and `final_step` above it
    at epoch 2, the last; the group's optimizer is `name` (learning rate 0.001 unless given)."""
    optimizer = {"type": name, "learning_rate": 0.001, **optimizer}
    return [
        write_run(
            root,
            f"{name}{seed}",
            spec(seed=seed, **{"training.optimizer": optimizer}),
            [v + 0.2, v, v + final_step],
        )
        for v, seed in zip(values, seeds)
    ]


@pytest.fixture
def sweep(tmp_path) -> Path:
    root = tmp_path / "sweep"
    write_group(root, "nadam", NADAM)
    write_group(root, "adam", ADAM)
    write_group(root, "sgd", SGD)
    return root


def compare(*args):
    return runner.invoke(app, ["compare", *map(str, args)])


def groups_json(*args) -> tuple[dict[str, dict], dict]:
    result = compare(*args, "--group-seeds", "--format", "json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    return {g["name"]: g for g in out["groups"]}, out["tests"]


def t_interval(values) -> tuple[float, float]:
    x = np.array(values)
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean() - half, x.mean() + half


# ---------------------------------------------------------------- json: intervals and tests


def test_paired_groups_get_the_paired_t_test_and_its_interval_in_json(sweep):
    groups, tests = groups_json(sweep)
    assert list(groups) == ["optimizer=nadam", "optimizer=adam", "optimizer=sgd"]
    adam = groups["optimizer=adam"]
    assert (adam["n"], adam["test"], adam["paired"], adam["seeds_compared"]) == (5, "paired t", True, 5)
    assert adam["mean"] == pytest.approx(np.mean(ADAM)) and adam["std"] == pytest.approx(np.std(ADAM, ddof=1))
    assert (adam["ci_low"], adam["ci_high"]) == pytest.approx(t_interval(ADAM))
    d = np.array(ADAM) - np.array(NADAM)
    raw = {
        "adam": stats.ttest_rel(ADAM, NADAM).pvalue,
        "sgd": stats.ttest_rel(SGD, NADAM).pvalue,
        "adam-sgd": stats.ttest_rel(ADAM, SGD).pvalue,  # Holm's family: every pair of groups
    }
    assert adam["p_raw"] == pytest.approx(raw["adam"])
    assert adam["p_value"] == pytest.approx(holm(list(raw.values()))[0]) and adam["comparisons"] == 3
    assert adam["difference"] == pytest.approx(d.mean())
    assert (adam["difference_ci_low"], adam["difference_ci_high"]) == pytest.approx(t_interval(d))
    assert adam["verdict"] == "within noise" and groups["optimizer=sgd"]["verdict"] == "worse"
    assert adam["sentence"].startswith("optimizer=adam vs optimizer=nadam: +0.01, 95% CI [")
    assert "(paired t, 5 seeds, Holm): within noise" in adam["sentence"]
    best = groups["optimizer=nadam"]
    assert (best["verdict"], best["p_value"], best["test"]) == ("best", None, None)
    assert (best["ci_low"], best["ci_high"]) == pytest.approx(t_interval(NADAM))
    assert (tests["tested"], tests["ci"], tests["best"]) == ("best_val_loss", "t", "optimizer=nadam")
    json.dumps(groups, allow_nan=False)


def test_groups_that_ran_other_seeds_get_welch(tmp_path):
    write_group(tmp_path, "nadam", NADAM)
    write_group(tmp_path, "sgd", SGD[:4], seeds=(11, 12, 13, 14))
    groups, _ = groups_json(tmp_path)
    sgd = groups["optimizer=sgd"]
    assert (sgd["test"], sgd["paired"], sgd["n"], sgd["seeds_compared"]) == ("Welch t", False, 4, 9)
    assert sgd["p_value"] == pytest.approx(stats.ttest_ind(SGD[:4], NADAM, equal_var=False).pvalue)
    assert sgd["verdict"] == "worse" and "(Welch t, 4 and 5 seeds)" in sgd["sentence"]


def test_one_seed_is_too_few_and_nan_runs_are_left_out_and_counted(tmp_path):
    write_group(tmp_path, "nadam", NADAM)
    write_group(tmp_path, "adam", [0.35])
    write_group(tmp_path, "sgd", [*SGD[:4], float("nan")])  # the fifth seed diverged: no finite val_loss
    groups, _ = groups_json(tmp_path)
    assert (
        groups["optimizer=adam"]["verdict"] == "too few seeds" and groups["optimizer=adam"]["ci_low"] is None
    )
    sgd = groups["optimizer=sgd"]
    assert (sgd["n"], sgd["excluded"], sgd["seeds_compared"], sgd["verdict"]) == (4, 1, 4, "worse")


def test_bootstrap_intervals_are_scipy_s_bca_and_reproducible(sweep):
    groups, tests = groups_json(sweep, "--ci", "bootstrap")
    adam = groups["optimizer=adam"]
    expected = summarize(ADAM, ci="bca")
    assert adam["ci_method"] == "bca" and tests["ci"] == "bootstrap"
    assert (adam["ci_low"], adam["ci_high"]) == pytest.approx((expected.ci_low, expected.ci_high))
    assert (adam["ci_low"], adam["ci_high"]) != pytest.approx(t_interval(ADAM))
    assert groups_json(sweep, "--ci", "bootstrap")[0] == groups
    assert "95% BCa bootstrap intervals" in tests["method"]


def test_seeds_needed_plans_each_comparison_from_its_observed_spread(sweep):
    groups, tests = groups_json(sweep, "--seeds-needed", "0.01")
    adam = groups["optimizer=adam"]
    spread = np.std(np.array(ADAM) - np.array(NADAM), ddof=1)
    expected = seeds_needed(spread, 0.01, alpha=0.05 / 3)
    assert adam["spread"] == pytest.approx(spread)
    assert adam["seeds_needed"]["n"] == expected.n and adam["seeds_needed"]["power"] >= 0.8
    assert groups["optimizer=sgd"]["seeds_needed"]["n"] is not None
    assert groups["optimizer=nadam"]["seeds_needed"] is None and tests["seeds_needed_delta"] == 0.01
    # Within noise: the seeds a difference of the observed size would need, capped at 100.
    separate = seeds_needed(spread, adam["difference"], alpha=0.05 / 3, cap=100)
    assert adam["seeds_to_separate"]["n"] == separate.n
    assert groups["optimizer=sgd"]["seeds_to_separate"] is None  # already separated
    table = compare(sweep, "--group-seeds", "--seeds-needed", "0.01")
    line = next(li for li in table.stdout.splitlines() if li.startswith("optimizer=adam vs"))
    assert f"a difference this size would need {separate.n} paired seeds to show (80% power)" in line
    assert f"detecting 0.01 would need {expected.n} paired seeds" in line


def test_a_tiny_difference_says_more_seeds_than_the_cap(tmp_path):
    write_group(tmp_path, "nadam", NADAM)
    write_group(tmp_path, "adam", [v + d for v, d in zip(NADAM, (0.03, -0.03, 0.02, -0.02, 0.0001))])
    groups, _ = groups_json(tmp_path)
    assert groups["optimizer=adam"]["seeds_to_separate"]["capped"] is True
    rows = list(csv.DictReader(io.StringIO(compare(tmp_path, "--group-seeds", "--format", "csv").stdout)))
    assert [row["seeds_to_separate"] for row in rows] == ["", ">100"]  # the best has no comparison
    table = compare(tmp_path, "--group-seeds").stdout
    assert "a difference this size would need more than 100 paired seeds to show" in table


def test_at_final_tests_the_last_epoch_and_reranks_the_groups(tmp_path):
    write_group(tmp_path, "nadam", NADAM, final_step=0.3)  # best at its best epoch, worst at its last
    write_group(tmp_path, "adam", ADAM)
    best, _ = groups_json(tmp_path)
    assert list(best)[0] == "optimizer=nadam"
    final, tests = groups_json(tmp_path, "--at", "final")
    assert list(final)[0] == "optimizer=adam" and final["optimizer=adam"]["verdict"] == "best"
    assert final["optimizer=nadam"]["mean"] == pytest.approx(np.mean(NADAM) + 0.3)
    assert final["optimizer=nadam"]["verdict"] == "worse"
    assert (tests["at"], tests["tested"]) == ("final", "final_val_loss")


def test_test_split_metrics_are_tested_from_run_json(sweep):
    for run in sweep.iterdir():
        record = json.loads((run / "run.json").read_text())
        record["test"] = {
            "loss": 0.5,
            "accuracy": 0.9 if run.name.startswith("sgd") else 0.95 + record["seed"] / 1000,
        }
        (run / "run.json").write_text(json.dumps(record))
    groups, tests = groups_json(sweep, "--metric", "test_accuracy")
    assert tests["at"] == "test" and groups["optimizer=sgd"]["verdict"] == "worse"
    assert groups["optimizer=sgd"]["mean"] == pytest.approx(0.9)
    # Ranked by a validation metric, the note points at the test split the runs have.
    assert any("--metric test_loss" in note for note in groups_json(sweep)[1]["notes"])


def test_a_validation_metric_gets_the_optimism_note(sweep):
    result = compare(sweep, "--group-seeds")
    assert "val_loss chose the best group and each run's best epoch" in result.stdout
    assert "dnnlab evaluate RUN_DIR --data test" in result.stdout  # these runs have no test record


# ---------------------------------------------------------------- the other formats


def test_csv_and_markdown_carry_the_same_numbers(sweep):
    groups, _ = groups_json(sweep)
    rows = list(csv.DictReader(io.StringIO(compare(sweep, "--group-seeds", "--format", "csv").stdout)))
    assert [r["run"] for r in rows] == list(groups)
    for row, group in zip(rows, groups.values()):
        for key in ("n", "mean", "std", "ci_low", "ci_high", "p_value", "difference"):
            assert (float(row[key]) if row[key] else None) == (
                pytest.approx(group[key]) if group[key] is not None else None
            ), key
        assert (row["verdict"], row["test"]) == (group["verdict"], group["test"] or "")
    markdown = compare(sweep, "--group-seeds", "--format", "markdown").stdout
    header = markdown.splitlines()[0]
    assert all(
        f" {key} |" in header for key in ("n", "mean", "std", "ci_low", "ci_high", "p_value", "verdict")
    )
    assert f"- {groups['optimizer=adam']['sentence']}" in markdown


def test_the_terminal_table_fits_80_columns_with_a_sentence_per_group(sweep):
    comparison = comparing.compare([sweep], group_seeds=True)
    seed_tests.attach(comparison)
    console = Console(width=80, record=True)
    console.print(formats.render_table(comparison, True))
    text = console.export_text()
    start = text.index("is the difference real?")
    table = text[start:].splitlines()
    rows = [li for li in table if li.strip().startswith(("1 ", "2 ", "3 "))]
    assert len(rows) == 3 and "optimizer=nadam" in rows[0]  # one line each: nothing folded
    assert "best" in rows[0] and "within noise" in rows[1] and "worse" in rows[2]
    interval = t_interval(NADAM)
    assert f"[{interval[0]:.4g}, {interval[1]:.4g}]" in rows[0]
    joined = " ".join(li.strip() for li in table)
    assert "ci_low" not in text and "difference_ci" not in text  # not as columns of the wide table
    assert "optimizer=adam vs optimizer=nadam:" in joined and "optimizer=sgd vs optimizer=nadam:" in joined
    assert "paired t on the seeds both ran, Welch t otherwise" in joined


def test_the_sweep_ends_with_the_tested_groups(sweep, capsys):
    from dnnlab.cli.run_commands import render_sweep

    record = SimpleNamespace(status="completed", counts=lambda: {"completed": 15}, configs=[])
    render_sweep(SimpleNamespace(record=record, path=sweep))
    err = capsys.readouterr().err
    assert "sweep completed" in err and "is the difference real?" in err
    assert "optimizer=sgd vs optimizer=nadam:" in err and ": worse" in err


def test_the_html_report_shows_intervals_verdicts_and_sentences(sweep, tmp_path):
    from dnnlab.results.html_report import render_report

    page = render_report([sweep])
    groups, _ = groups_json(sweep)
    section = page[page.index("<h2>Seed groups</h2>") : page.index("<h2>Learning curves</h2>")]
    for header in ("n", "mean", "std", "ci_low", "ci_high", "p_value", "verdict"):
        assert f"<th>{header}</th>" in section
    assert f"{groups['optimizer=sgd']['ci_low']:.4g}" in section and ">within noise<" in section
    assert "optimizer=adam vs optimizer=nadam: +0.01," in section


# ---------------------------------------------------------------- odd groups and bad input


def test_labels_name_the_keys_groups_disagree_on(tmp_path):
    write_group(tmp_path, "adam", NADAM, beta_1=0.9, beta_2=0.999)
    write_group(tmp_path, "nadam", ADAM, beta_1=0.9, beta_2=0.999)
    write_group(tmp_path, "sgd", SGD, learning_rate=0.01, momentum=0.9)
    groups, _ = groups_json(tmp_path)
    # Not adam's betas beside sgd's momentum: only these keys tell the groups apart.
    assert list(groups) == [
        "optimizer=adam, learning_rate=0.001",
        "optimizer=nadam, learning_rate=0.001",
        "optimizer=sgd, learning_rate=0.01",
    ]
    rows = list(csv.DictReader(io.StringIO(compare(tmp_path, "--group-seeds", "--format", "csv").stdout)))
    assert "beta_1=0.9" in rows[0]["run"]  # the table's label keeps every differing key


def test_groups_of_one_run_get_a_note_instead_of_a_table_of_untested_groups(tmp_path):
    write_group(tmp_path, "nadam", NADAM[:1])
    write_group(tmp_path, "adam", ADAM[:1])
    out = compare(tmp_path, "--group-seeds").stdout
    assert "one run per group: an interval or a test needs 2 seeds or more" in out
    assert "is the difference real?" not in out and "too few seeds" not in out


def test_a_repeated_seed_is_not_paired_and_gets_a_note(tmp_path):
    write_group(tmp_path / "a", "nadam", NADAM)
    write_group(tmp_path / "a", "adam", ADAM[2:], seeds=(3, 4, 5))
    write_group(tmp_path / "b", "adam", ADAM[:1], seeds=(1,))
    write_group(tmp_path / "c", "adam", ADAM[1:2], seeds=(1,))  # trained again with the same seed
    groups, tests = groups_json(tmp_path / "a", tmp_path / "b", tmp_path / "c")
    adam = groups["optimizer=adam"]
    assert adam["n"] == 5 and adam["seeds_compared"] == 3  # seeds 3, 4, 5 pair; the two seed-1 runs do not
    assert any("optimizer=adam: runs share seed 1" in note for note in tests["notes"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--group-seeds", "--seeds-needed", "0"], "Received --seeds-needed 0, expected a difference > 0"),
        (["--group-seeds", "--seeds-needed", "-0.5"], "Received --seeds-needed -0.5"),
        (["--group-seeds", "--seeds-needed", "nan"], "Received --seeds-needed nan"),
        (["--group-seeds", "--ci", "x"], "'x' is not one of 't', 'bootstrap'"),
        (["--group-seeds", "--at", "last"], "'last' is not one of 'best', 'final'"),
        (["--ci", "bootstrap"], "--ci tests seed groups against each other: add --group-seeds"),
        (["--seeds-needed", "0.01"], "--seeds-needed tests seed groups"),
        (["--group-seeds", "--at", "final", "--metric", "test_accuracy"], "the test split is scored once"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(sweep, args, expected):
    result = compare(sweep, *args)
    assert result.exit_code == 2 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr
