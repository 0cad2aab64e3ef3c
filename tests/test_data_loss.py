"""A regularized run logs its data loss (the loss function alone) beside `loss` (which Keras logs
with the l1/l2 penalty added), so runs regularized differently can be ranked on the same figure."""

from __future__ import annotations

import pytest
from helpers import read_metrics, tiny_spec, train_run, write_spec

from dnnlab.results.compare import compare
from dnnlab.spec.checks import run_checks
from dnnlab.spec.models import Spec


def _l2(factor: float) -> dict:
    return tiny_spec(name=f"l2-{factor:g}", model={"regularizer": {"type": "l2", "factor": factor}})


def test_a_regularized_run_logs_its_data_loss_and_compare_ranks_on_it(tmp_path):
    runs = [
        train_run(write_spec(tmp_path, _l2(f), f"l2-{f:g}.yaml"), tmp_path / "runs") for f in (0.1, 0.001)
    ]
    plain = train_run(write_spec(tmp_path, tiny_spec(), "plain.yaml"), tmp_path / "runs")
    for run in runs:
        rows = read_metrics(run)
        assert all(float(r["data_loss"]) < float(r["loss"]) for r in rows)  # the penalty is left out
        assert all(float(r["val_data_loss"]) < float(r["val_loss"]) for r in rows)
    assert "data_loss" not in read_metrics(plain)[0]  # nothing to leave out: no extra column
    ranked = compare(runs, metric="val_data_loss")
    assert ranked.mode == "min"
    values = [min(float(r["val_data_loss"]) for r in read_metrics(run.path)) for run in ranked.runs]
    assert [run.best.value for run in ranked.runs] == pytest.approx(values)
    assert values == sorted(values)
    mixed = compare([*runs, plain], metric="val_data_loss")  # a plain run's data loss is its loss
    by_path = {run.path: run.best.value for run in mixed.runs}
    assert by_path[plain] == pytest.approx(min(float(r["val_loss"]) for r in read_metrics(plain)))
    assert len(by_path) == 3 and all(value is not None for value in by_path.values())


def test_val_data_loss_can_be_monitored_only_when_a_penalty_is_logged():
    def errors(**model):
        spec = Spec.model_validate(tiny_spec(model=model, training={"monitor": "val_data_loss"}))
        return [str(f) for f in run_checks(spec) if f.level == "error"]

    assert errors(regularizer={"type": "l2", "factor": 0.01}) == []
    refused = errors()
    assert len(refused) == 1 and "val_data_loss" in refused[0] and "does not log" in refused[0]
