"""`dnnlab summary` on a spec that reuses layers of an earlier run: which layers are transferred,
which start frozen, and the parameter counts of the first epoch."""

from __future__ import annotations

import json

from helpers import tiny_spec, train_run, write_spec
from typer.testing import CliRunner

from dnnlab.cli.main import app


def test_summary_marks_transferred_and_frozen_layers(tmp_path):
    source = train_run(
        write_spec(tmp_path, tiny_spec(model={"hidden": [8, 6]}, training={"epochs": 1})), tmp_path / "runs"
    )
    transfer = {"run": str(source), "layers": 1, "freeze_epochs": 2}
    spec = write_spec(tmp_path, tiny_spec(model={"hidden": [8, 6], "transfer": transfer}), "b.yaml")
    result = CliRunner().invoke(app, ["summary", str(spec), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    out = json.loads(result.stdout)
    marked = {layer["name"]: (layer["transferred"], layer["frozen"]) for layer in out["layers"]}
    dense = [layer for layer in out["layers"] if layer["type"] == "Dense"]
    first = dense[0]["name"]
    assert marked[first] == (True, True)
    assert all(marked[layer["name"]] == (False, False) for layer in dense[1:])
    assert out["transfer"] == {"run": str(source), "layers": [first], "freeze_epochs": 2}
    assert out["non_trainable_params"] == dense[0]["params"]  # 64 * 8 + 8, frozen at the start
    text = CliRunner().invoke(app, ["summary", str(spec)])
    assert "transferred, frozen 2 epoch(s)" in text.stdout and "1 layer(s) transferred" in text.stdout
    thawed = write_spec(
        tmp_path, tiny_spec(model={"hidden": [8, 6], "transfer": {**transfer, "freeze_epochs": 0}}), "c.yaml"
    )
    plain = json.loads(CliRunner().invoke(app, ["summary", str(thawed), "--json"]).stdout)
    assert [
        (layer["transferred"], layer["frozen"]) for layer in plain["layers"] if layer["name"] == first
    ] == [(True, False)]
    assert plain["non_trainable_params"] == 0
