"""What dnnlab writes outside a run or sweep directory: `export --out` replaces only an export of
its own kind, and only when asked; and commands that read runs a user may have named or edited
(`compare --plot`, `compare --format markdown`, `report`, `mlflow-log`) end in one line or a
note, never a traceback or minutes of retries. Run directories here are written by hand, so only
the export tests that really export train a (tiny) run."""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import threading
from pathlib import Path

import pytest
import yaml
from helpers import assert_one_line_error, train_run, write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app
from dnnlab.inference.export import ExportError, export

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def write_run(folder: Path, metrics: str, status: str = "completed", **record) -> Path:
    """A finished run directory as compare, report and mlflow-log read it (no model)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"name": "hand", "seed": 0}), encoding="utf-8")
    (folder / "metrics.csv").write_text(metrics, encoding="utf-8")
    epochs = max(0, len(metrics.strip().splitlines()) - 1)
    run = {"name": "hand", "status": status, "epochs_done": epochs, "started": "2026-01-01T00:00:00"}
    (folder / "run.json").write_text(json.dumps({**run, **record}), encoding="utf-8")
    return folder


CURVES = "epoch,loss,val_loss\n0,1.0,0.9\n1,0.8,0.7\n"


# --- export --out ------------------------------------------------------------------------------


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    """Enough of a run for export's checks of --out, which come before the model is loaded."""
    run = write_run(tmp_path / "runs" / "fake", CURVES)
    (run / "model.keras").write_bytes(b"")
    return run


def mine(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work", encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("fmt", "name", "content", "says"),
    [
        ("savedmodel", "model", None, "a folder without saved_model.pb"),
        ("tflite", "m.tflite", b"\x00\x00\x00\x00notaflatbuffer", "not a TFLite flat buffer"),
        ("onnx", "m.onnx", b"my notes", "not an ONNX model"),
        ("tflite", "m.tflite", None, "not a file"),
    ],
    ids=["folder as savedmodel", "file as tflite", "file as onnx", "folder as tflite"],
)
@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_export_never_replaces_what_is_not_an_export_of_its_kind(
    fake_run, tmp_path, fmt, name, content, says, force
):
    out = tmp_path / name
    if content is None:
        mine(out)
    else:
        out.write_bytes(content)
    before = sorted((p.name, p.read_bytes()) for p in out.rglob("*")) if out.is_dir() else out.read_bytes()
    with pytest.raises(ExportError, match=re.escape(says)):
        export(fake_run, fmt, out, force=force)
    after = sorted((p.name, p.read_bytes()) for p in out.rglob("*")) if out.is_dir() else out.read_bytes()
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["runs", name])  # no staging, no .old


def test_export_to_a_users_folder_is_one_line_on_the_command_line(fake_run, tmp_path):
    out = mine(tmp_path / "model")
    result = invoke("export", fake_run, "--format", "savedmodel", "--out", out)
    assert_one_line_error(result, "--out", "not a savedmodel export", "choose another path")
    assert (out / "thesis.tex").read_text(encoding="utf-8") == "years of work"


def test_an_existing_export_is_replaced_only_with_force(fake_run, tmp_path):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"\x1c\x00\x00\x00TFL3 an older export")
    assert_one_line_error(invoke("export", fake_run, "--format", "tflite", "--out", out), "pass --force")
    assert out.read_bytes() == b"\x1c\x00\x00\x00TFL3 an older export"
    saved = tmp_path / "savedmodel"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"old")
    assert_one_line_error(invoke("export", fake_run, "--format", "savedmodel", "--out", saved), "--force")
    link = tmp_path / "link.tflite"
    link.symlink_to(tmp_path / "nowhere.tflite")
    assert_one_line_error(invoke("export", fake_run, "--format", "tflite", "--out", link), "dangling")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export-run")
    spec = {
        "name": "tiny",
        "seed": 1,
        "data": {"dataset": {"type": "synthetic", "shape": [4], "classes": 2, "train": 64, "test": 16}},
        "model": {"hidden": [4]},
        "training": {"epochs": 1, "batch_size": 32},
    }
    return train_run(write_spec(root, spec), root / "runs")


def test_force_replaces_an_export_and_a_symlinked_savedmodel_leaves_no_old_link(tiny_run, tmp_path):
    flat = tmp_path / "m.tflite"
    flat.write_bytes(b"\x1c\x00\x00\x00TFL3 an older export")
    export(tiny_run, "tflite", flat, force=True)
    assert flat.read_bytes()[4:8] == b"TFL3" and b"an older export" not in flat.read_bytes()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "saved_model.pb").write_bytes(b"an older export")
    link = tmp_path / "served"
    link.symlink_to(elsewhere, target_is_directory=True)
    export(tiny_run, "savedmodel", link, force=True)
    assert link.is_dir() and not link.is_symlink() and (link / "saved_model.pb").stat().st_size > 100
    assert (elsewhere / "saved_model.pb").read_bytes() == b"an older export"  # what it pointed to: kept
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no .served.old-* link, no staging folder

    default = export(tiny_run, "tflite").path  # RUN_DIR/export/: dnnlab's own, replaced without --force
    default.write_bytes(b"\x1c\x00\x00\x00TFL3 stale")
    assert export(tiny_run, "tflite").path == default and b"stale" not in default.read_bytes()


# --- user text reaches matplotlib as plain text -----------------------------------------------


@pytest.fixture
def dollar_runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    write_run(root / "r$\\frac{$", "epoch,loss,val_loss,val_a$\\sqrt{$\n0,1.0,0.9,0.5\n1,0.8,0.7,0.6\n")
    write_run(root / "price$x$", CURVES)
    return root


def test_compare_plot_of_runs_with_dollars_in_names_and_columns(dollar_runs, tmp_path):
    png = tmp_path / "curves.png"
    result = invoke("compare", dollar_runs, "--plot", png, "--plot-metrics", "loss,a$\\sqrt{$")
    assert result.exit_code == 0, (result.output, result.exception)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_of_runs_with_dollars_in_names_and_columns(dollar_runs, tmp_path):
    out = tmp_path / "report.html"
    result = invoke("report", dollar_runs, "--out", out)
    assert result.exit_code == 0, (result.output, result.exception)
    page = out.read_text(encoding="utf-8")
    assert "r$\\frac{$" in page and "price$x$" in page


# --- a damaged layers.csv is a note ------------------------------------------------------------

LAYERS_HEADER = "epoch,step,depth,layer,activation,gradient_norm\n"


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ("0,10,1,dense,relu,0.5\n0,10,2,dense_1\n", "line 3 has 4 cells, expected 6"),
        ("x,10,1,dense,relu,0.5\n", "line 2"),
        ("²,10,1,dense,relu,0.5\n", "line 2"),
        ("0,٣,1,dense,relu,0.5\n0,2,1,dense,relu,0.25\n", "line 2"),
        ("0,10,1,dense,relu,0.5,extra\n", "line 2 has 7 cells, expected 6"),
    ],
    ids=["short row", "word epoch", "superscript epoch", "arabic step", "long row"],
)
def test_report_notes_a_damaged_layers_csv(tmp_path, rows, says):
    """The one layers.csv reader refuses a damaged file; the report says so in a note and goes on."""
    run = write_run(tmp_path / "runs" / "diag", CURVES)
    (run / "layers.csv").write_text(LAYERS_HEADER + rows, encoding="utf-8")
    out = tmp_path / "report.html"
    result = invoke("report", run, "--out", out)
    assert result.exit_code == 0, (result.output, result.exception)
    page = out.read_text(encoding="utf-8")
    assert "layers.csv unreadable" in page and says in page, page[-600:]


# --- markdown ----------------------------------------------------------------------------------


def _cells(line: str) -> int:
    return len(re.split(r"(?<!\\)\|", line))


def test_markdown_escapes_pipes_in_headers_as_in_cells(tmp_path):
    root = tmp_path / "runs"
    write_run(root / "a|b", "epoch,loss,val_loss,val_x|y\n0,1.0,0.9,0.5\n")
    write_run(root / "c", "epoch,loss,val_loss,val_x|y\n0,1.0,0.8,0.4\n")
    result = invoke("compare", root, "--format", "markdown")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert "final_val_x\\|y" in lines[0] and "a\\|b" in result.stdout
    assert len({_cells(line) for line in lines}) == 1, lines  # every row has the header's columns


# --- a diverged run in compare ------------------------------------------------------------------


def test_compare_says_in_which_epoch_a_run_diverged_instead_of_empty_metrics(tmp_path):
    root = tmp_path / "runs"
    write_run(root / "older", "\n", status="diverged")
    message = "training diverged in epoch 1: loss nan, val_loss nan. Try a lower learning rate."
    record = {"epoch": 0, "values": {"loss": "nan"}, "learning_rate": 1e5, "message": message}
    write_run(root / "recorded", CURVES, status="diverged", divergence=record)
    result = invoke("compare", root, "--format", "json")
    assert result.exit_code == 0, result.output
    notes = {Path(r["run"]).name: r["notes"] for r in json.loads(result.stdout)["runs"]}
    assert notes["older"] == ["training diverged in epoch 1 (run.json does not record its values)"]
    assert notes["recorded"] == [message]


# --- mlflow-log: a store that cannot be used is one line, at once -------------------------------


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "runs" / "done", CURVES, finished="2026-01-01T00:01:00")


@pytest.fixture
def bounded_http(monkeypatch):
    """MLflow's HTTP settings restored after the test (mlflow-log sets bounded defaults)."""
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("sqlite:////proc/m.db", "cannot write in /proc"),
        ("file:///proc/mlruns", "cannot write in /proc"),
        ("sqlite:///TMP/missing/m.db", "does not exist"),
        ("http://127.0.0.1:PORT", "no MLflow tracking server answers there"),
    ],
    ids=["sqlite in proc", "file in proc", "sqlite no folder", "nothing listening"],
)
def test_a_tracking_store_that_cannot_be_used_is_one_line(finished_run, tmp_path, bounded_http, uri, says):
    pytest.importorskip("mlflow")
    uri = uri.replace("PORT", str(free_port())).replace("TMP", str(tmp_path))
    assert_one_line_error(invoke("mlflow-log", finished_run, "--tracking-uri", uri), uri, says)


def test_a_sqlite_file_that_is_not_a_database_is_one_line(finished_run, tmp_path):
    pytest.importorskip("mlflow")
    store = tmp_path / "notes.db"
    store.write_text("my notes, not a database\n" * 100, encoding="utf-8")
    result = invoke("mlflow-log", finished_run, "--tracking-uri", f"sqlite:///{store}")
    assert_one_line_error(result, "MLflow cannot use this tracking store")
    assert store.read_text(encoding="utf-8") == "my notes, not a database\n" * 100


class _NotMlflow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_error(404)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


def test_a_server_that_is_not_mlflow_is_one_line(finished_run, bounded_http):
    pytest.importorskip("mlflow")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotMlflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        assert_one_line_error(invoke("mlflow-log", finished_run, "--tracking-uri", uri), uri)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_predict_out_onto_a_pipe_is_refused_and_the_pipe_left_alone(tiny_run, tmp_path):
    """An --out that exists as something other than a file (a device, a pipe) is never replaced."""
    import stat

    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,c,d\n0,0,0,0\n")
    pipe = tmp_path / "out.csv"
    os.mkfifo(pipe)
    result = invoke("predict", tiny_run, "--data", rows, "--out", pipe)
    assert_one_line_error(result, f"--out {pipe}: exists and is not a regular file")
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
