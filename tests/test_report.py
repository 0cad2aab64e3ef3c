"""`dnnlab report`: one self-contained HTML page, checked by parsing it and in a headless browser.

The run directories are written file by file (config.yaml, run.json, metrics.csv, layers.csv), as
`dnnlab train` writes them; the report reads nothing else.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_compare import spec, write_run
from typer.testing import CliRunner

from dnnlab.cli.main import app

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ACTIVATION_COST = {"relu": 0.0, "elu": 0.05, "tanh": 0.2}


class Page(HTMLParser):
    """The tables (rows of cell texts), images, links and scripts of an HTML page."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.references: list[str] = []
        self.tags: set[str] = set()
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        for name in ("src", "href", "action", "data"):
            if attrs.get(name):
                self.references.append(attrs[name])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def table_with(self, header: str) -> list[list[str]]:
        return next(t for t in self.tables if header in t[0])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """12 runs: 3 activations x 2 learning rates x 2 seeds; the activation matters most."""
    root = tmp_path_factory.mktemp("sweep")
    index = 0
    for activation, cost in ACTIVATION_COST.items():
        for learning_rate in (0.001, 0.01):
            for seed in (1, 2):
                q = cost + (0.05 if learning_rate == 0.01 else 0) + seed / 100
                config = spec(
                    seed=seed,
                    **{
                        "model.activation": {"type": activation},
                        "training.optimizer.learning_rate": learning_rate,
                    },
                )
                write_run(root, f"t{index:02d}", config, [0.9 + q, 0.6 + q, 0.5 + q])
                index += 1
    (root / "sweep.json").write_text("{}")  # the sweep directory stands for its trials
    return root


@pytest.fixture(scope="module")
def page(sweep, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = runner.invoke(app, ["report", str(sweep), "--out", str(out), "--reach", "val_accuracy=0.6"])
    assert result.exit_code == 0, result.stderr
    assert str(out) in result.stderr and result.stdout == ""
    return out, out.read_text(encoding="utf-8")


def test_the_page_references_nothing_outside_itself(page):
    _, text = page
    parsed = Page(text)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    assert parsed.references and all(ref.startswith("data:image/png;base64,") for ref in parsed.references)
    assert "http://" not in text and "https://" not in text
    assert len(parsed.images) == 2  # the runs' curves and the seed groups' mean ± std
    for src in parsed.images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC


def test_ranking_table_shows_each_run_and_what_differs_key_by_key(page, sweep):
    parsed = Page(page[1])
    ranking = parsed.table_with("best_val_loss")
    header, rows = ranking[0], ranking[1:]
    assert len(rows) == 12
    assert {"model.activation", "training.optimizer.learning_rate", "seed"} <= set(header)
    assert rows[0][header.index("run")] == "t00-20240101-120000"  # relu, 0.001, seed 1: lowest
    assert rows[0][header.index("model.activation")] == "relu"
    # --reach: epochs to val_accuracy >= 0.6, counted from 1; val_accuracy = 0.95 - val_loss / 2
    reach = header.index("epochs_to_val_accuracy")
    assert rows[0][reach] == "2" and rows[-1][reach] == "-"


def test_seed_groups_show_mean_std_and_the_number_of_seeds(page):
    parsed = Page(page[1])
    groups = parsed.table_with("seeds")
    header, rows = groups[0], groups[1:]
    assert len(rows) == 6 and {row[header.index("seeds")] for row in rows} == {"2"}
    best = rows[0][header.index("best_val_loss")]
    assert best == "0.51500 ± 0.00707", best  # relu at 0.001: seeds 1 and 2 reach 0.51 and 0.52


def test_hyperparameter_importance_ranks_the_keys_and_says_how(page):
    _, text = page
    parsed = Page(text)
    table = parsed.table_with("importance (drop in R²)")
    keys = [row[0] for row in table[1:]]
    assert keys == ["model.activation", "training.optimizer.learning_rate"]
    assert "random forest" in text and "permutation importance" in text


def test_per_run_details_hold_the_spec_and_run_json(page):
    _, text = page
    assert text.count("<details>") == 12
    assert "config.yaml: the resolved spec" in text and "&quot;config_hash&quot;" in text


def test_fewer_than_ten_runs_skip_importance_test_metrics_and_layers_show(tmp_path):
    runs = [write_run(tmp_path, n, spec(**{"model.activation": {"type": n}})) for n in ("relu", "elu")]
    record = json.loads((runs[0] / "run.json").read_text())
    (runs[0] / "run.json").write_text(json.dumps({**record, "test": {"loss": 0.42, "accuracy": 0.875}}))
    (runs[0] / "layers.csv").write_text(
        "epoch,step,depth,layer,activation,units,gradient_norm,weight_norm,update_ratio,"
        "activation_mean,activation_std,saturated_fraction,dead_fraction\n"
        "0,10,1,dense,relu,300,0.5,1,0.001,0.2,0.3,0,0.1\n"
        "2,30,1,dense,relu,300,0.25,1,0.001,0.2,0.3,0,0.123456\n"
    )
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", *map(str, runs), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    parsed = Page(text)
    assert "Needs at least 10 runs" in text
    tests = next(t for t in parsed.tables if t[0] == ["run", "test_loss", "test_accuracy"])
    assert tests[1:] == [["relu-20240101-120000", "0.42", "0.875"], ["elu-20240101-120000", "-", "-"]]
    layers = parsed.table_with("dead_fraction")
    assert layers[1][:3] == ["1", "dense", "relu"] and layers[1][-1] == "0.1235"  # the last step
    assert "epoch 3, step 30" in text


def test_bad_input_exits_2_with_one_line_and_writes_nothing(sweep, tmp_path):
    for args, expected in (
        (["--out", str(tmp_path / "missing" / "r.html")], "does not exist"),
        (["--out", str(tmp_path / "r.html"), "--reach", "val_accuracy"], "METRIC=VALUE"),
        (["--out", str(tmp_path / "r.html"), "--reach", "f1=0.9"], "no run records f1"),
    ):
        result = runner.invoke(app, ["report", str(sweep), *args])
        assert result.exit_code == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_compare_reach_column(sweep):
    result = runner.invoke(app, ["compare", str(sweep), "--reach", "val_loss=0.7", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["reach"] == {"metric": "val_loss", "threshold": 0.7}
    by_name = {Path(r["run"]).name.split("-")[0]: r["epochs_to_reach"] for r in out["runs"]}
    assert by_name["t00"] == 2 and by_name["t11"] is None  # tanh, 0.01, seed 2: 0.77 at best


def test_compare_reach_counts_the_seeds_of_each_group_that_got_there(sweep):
    # val_loss = 0.5 + q at epoch 3: tanh at 0.001 reaches 0.71 with seed 1 and 0.72 with seed 2.
    args = ["compare", str(sweep), "--group-seeds", "--reach", "val_loss=0.715", "--format"]
    groups = {g["runs"][0].rsplit("/", 1)[-1][:3]: g for g in json.loads(invoke(*args, "json"))["groups"]}
    assert groups["t08"]["reach"] == {  # tanh, 0.001
        "metric": "val_loss",
        "threshold": 0.715,
        "seeds_reached": 1,
        "seeds": 2,
        "epochs": {"mean": 3.0, "std": None, "n": 1},
    }
    assert groups["t00"]["reach"]["seeds_reached"] == 2 and groups["t00"]["reach"]["epochs"]["mean"] == 2
    assert groups["t10"]["reach"]["seeds_reached"] == 0  # tanh, 0.01: 0.76 at best
    assert groups["t00"]["verdict"] == "best"  # beside the test fields
    rows = {r["run"]: r for r in csv.DictReader(io.StringIO(invoke(*args, "csv")))}
    tanh = rows["activation=tanh, learning_rate=0.001"]
    assert (tanh["seeds"], tanh["seeds_reached"], tanh["epochs_to_val_loss"]) == ("2", "1", "3.0")
    markdown = [line.strip("|").split("|") for line in invoke(*args, "markdown").splitlines()[:8]]
    headers = [h.strip() for h in markdown[0]]
    tanh = next(row for row in markdown if "activation=tanh, learning_rate=0.001" in row[1])
    assert tanh[headers.index("seeds_reached")].strip() == "1"
    table = invoke("compare", str(sweep), "--group-seeds", "--reach", "val_loss=0.715")
    assert "seeds" in table and "reached" in table  # the terminal's column, under two lines of header


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_report_does_not_import_tensorflow(sweep, tmp_path):
    code = (
        "import sys; from pathlib import Path; from dnnlab.results.html_report import write_report; "
        f"write_report([Path({str(sweep)!r})], Path({str(tmp_path / 'r.html')!r})); "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert (tmp_path / "r.html").stat().st_size > 10_000


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium binary on PATH")
def test_headless_chromium_renders_the_tables_and_curves(page, tmp_path):
    import matplotlib.image

    out, _ = page
    shot = tmp_path / "shot.png"
    command = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,2000",
        f"--screenshot={shot}",
        out.as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    pixels = matplotlib.image.imread(shot)[..., :3]
    ink = (pixels.mean(axis=2) < 0.9).mean()  # not white: text, table rules, curves
    colour = (pixels.max(axis=2) - pixels.min(axis=2) > 0.3).mean()  # the curves' and best row's colours
    assert ink > 0.03 and colour > 0.002, (ink, colour)


def test_runs_without_epochs_still_get_a_page_but_no_plot(tmp_path):
    run = write_run(tmp_path, "fresh", spec(), [], status="running")
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "No run has finished an epoch" in out.read_text(encoding="utf-8")
    plot = runner.invoke(app, ["compare", str(run), "--plot", str(tmp_path / "c.png")])
    assert plot.exit_code == 2 and "Nothing to plot" in plot.stderr
    assert not (tmp_path / "c.png").exists()


LAYERS_HEADER = (
    "epoch,step,depth,layer,activation,units,gradient_norm,weight_norm,update_ratio,"
    "activation_mean,activation_std,saturated_fraction,dead_fraction\n"
)
LAYERS_ROW = "0,10,1,dense,relu,300,0.5,1,0.001,0.2,0.3,0,0.1\n"


@pytest.mark.parametrize(
    ("rows", "note"),
    [
        (LAYERS_ROW + "0,20,1,dense\n", "line 3 has 4 cells, expected 13"),
        ("one" + LAYERS_ROW[1:], "line 2: epoch is 'one', expected an integer"),
        (LAYERS_ROW[:-4] + "lots\n", "line 2: dead_fraction is 'lots', expected a number"),
    ],
)
def test_a_damaged_layers_csv_is_a_note_on_the_page(tmp_path, rows, note):
    run = write_run(tmp_path, "relu", spec())
    (run / "layers.csv").write_text(LAYERS_HEADER + rows)
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert f'<p class="note">layers.csv unreadable: {note}</p>'.replace("'", "&#x27;") in text
    assert "Layer diagnostics" not in text
