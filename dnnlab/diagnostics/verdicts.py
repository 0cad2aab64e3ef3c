"""Verdicts about per-layer statistics: vanishing and exploding gradients, saturation, dying
ReLUs, SELU's self-normalization (the phenomena of Géron, Hands-On Machine Learning, ch. 11).

TensorFlow-free: `dnnlab diagnose RUN_DIR` reads a run's layers.csv without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnnlab.diagnostics import over_training
from dnnlab.errors import RunDirError
from dnnlab.rundir.directory import RunDir
from dnnlab.rundir.layers_csv import SATURATION_LEVEL, Measurement, read_layers_csv
from dnnlab.rundir.loading import read_metrics_columns
from dnnlab.spec.checks import uses_batch_norm
from dnnlab.spec.loading import read_run_spec
from dnnlab.spec.models import Spec

VANISHING_RATIO = 1e-3


EXPLODING_RATIO = 1e2


EXPLODING_NORM = 1e3


SELU_MEAN = 0.1


SELU_STD = (0.8, 1.25)


BOOK = "Géron, Hands-On Machine Learning, ch. 11"


def rule_of_thumb(advice: str) -> str:
    """Advice from the book, labelled as such: nothing in a verdict's measurements shows it works on
    this network. Whether it was tested is each remedy's `status` (suggested until `diagnose
    --try-remedies` tests it), so the message stays true after a test."""
    return f"Rule of thumb ({BOOK}), not a measurement: {advice}"


# --- verdicts ------------------------------------------------------------------------------


def _g(value: float) -> str:
    return f"{value:.2g}"


def verdicts(rows: list[dict[str, Any]], spec: Spec | None = None) -> list[dict[str, Any]]:
    """Géron's verdicts on one measurement (rows in depth order): each names the layers, the
    evidence and the remedy."""
    found: list[dict[str, Any]] = []
    grads = [r["gradient_norm"] for r in rows]
    names = [r["layer"] for r in rows]
    if len(rows) >= 2 and all(math.isfinite(g) for g in grads):
        first, last = grads[0], grads[-1]
        per_layer = (last / first) ** (1 / (len(rows) - 1)) if first > 0 and last > 0 else math.inf
        if last > 0 and first < VANISHING_RATIO * last:
            low = [n for n, g in zip(names, grads) if g < VANISHING_RATIO * last]
            found.append(
                {
                    "kind": "vanishing_gradients",
                    "layers": low,
                    "message": (
                        f"gradient norm shrinks with depth: {names[0]} {_g(first)} against "
                        f"{names[-1]} {_g(last)} (about {per_layer:.1f}x smaller per layer); "
                        f"{', '.join(low)}, with less than {VANISHING_RATIO:g} of {names[-1]}'s "
                        "gradient, barely learn. "
                        + rule_of_thumb(
                            "ReLU with He initialization, batch norm, or a non-saturating activation"
                        )
                    ),
                }
            )
        large = [n for n, g in zip(names, grads) if g > EXPLODING_NORM]
        grown = [n for n, g in zip(names, grads) if last > 0 and g > EXPLODING_RATIO * last]
        if (last > 0 and first > EXPLODING_RATIO * last) or large:
            evidence = []
            if grown:
                evidence.append(
                    f"gradient norm grows towards the input: {names[0]} {_g(first)} against "
                    f"{names[-1]} {_g(last)}, above {EXPLODING_RATIO:g}x in {', '.join(grown)}"
                )
            if large:
                evidence.append(f"gradient norm above {EXPLODING_NORM:g} in {', '.join(large)}")
            found.append(
                {
                    "kind": "exploding_gradients",
                    "layers": [n for n in names if n in grown or n in large],
                    "message": "; ".join(evidence)
                    + ". "
                    + rule_of_thumb(
                        "gradient clipping (training.optimizer.clipnorm), a lower learning rate, or the "
                        "initializer paired with the activation"
                    ),
                }
            )
    elif not all(math.isfinite(g) for g in grads):
        bad = [n for n, g in zip(names, grads) if not math.isfinite(g)]
        found.append(
            {
                "kind": "exploding_gradients",
                "layers": bad,
                "message": f"gradient norm not finite in {', '.join(bad)}. "
                + rule_of_thumb("gradient clipping and a lower learning rate"),
            }
        )
    diverged = _diverged(rows)
    if diverged and not any(v["kind"] == "exploding_gradients" for v in found):
        found.append(
            {
                "kind": "exploding_gradients",
                "layers": diverged,
                "message": f"weights or activations not finite in {', '.join(diverged)}: training "
                "diverged, so no verdict on saturation or dead units is drawn from them. "
                + rule_of_thumb("gradient clipping (training.optimizer.clipnorm) and a lower learning rate"),
            }
        )
    if not diverged:
        found += _activation_verdicts(rows)
    found += _selu_verdicts(rows, spec)
    return found


def _diverged(rows: list[dict[str, Any]]) -> list[str]:
    """The layers whose weight norm or activation statistics are NaN or infinite: a diverged
    network, whose zero outputs are overflow, not dead units."""
    keys = ("weight_norm", "activation_mean", "activation_std")
    return [r["layer"] for r in rows if any(r.get(k) is not None and not math.isfinite(r[k]) for k in keys)]


def _activation_verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    output = rows[-1]
    found = _majority_verdict(
        rows,
        "saturated_fraction",
        "saturation",
        "on the probe batch more than half of a layer's activations are saturated, their derivative below "
        f"{SATURATION_LEVEL:.0%} of its maximum ({{evidence}}); kernel gradient norm {{gradients}} against "
        f"{output['layer']} {_g(output['gradient_norm'])}. "
        + rule_of_thumb(
            "saturated units pass little gradient back; Glorot initialization, a non-saturating "
            "activation (ReLU family, ELU, SELU), or batch norm"
        ),
    )
    found += _majority_verdict(
        rows,
        "dead_fraction",
        "dead_units",
        "more than half the units output zero for every probe row ({evidence}). "
        + rule_of_thumb("leaky ReLU, ELU or SELU, He initialization, a lower learning rate"),
    )
    return found


def _majority_verdict(
    rows: list[dict[str, Any]], fraction: str, kind: str, message: str
) -> list[dict[str, Any]]:
    """One verdict naming the layers where more than half the units are `fraction` (saturated,
    dead); `message` gets the per-layer evidence as {evidence}."""
    hit = [r for r in rows if (r[fraction] or 0) > 0.5]
    if not hit:
        return []
    evidence = ", ".join(f"{r['layer']} {r[fraction]:.0%}" for r in hit)
    gradients = ", ".join(f"{r['layer']} {_g(r['gradient_norm'])}" for r in hit)
    text = message.format(evidence=evidence, gradients=gradients)
    return [{"kind": kind, "layers": [r["layer"] for r in hit], "message": text}]


def _selu_verdicts(rows: list[dict[str, Any]], spec: Spec | None) -> list[dict[str, Any]]:
    hidden = rows[:-1]  # the output layer is not part of the stack
    if len(hidden) < 2 or any(r["activation"] != "selu" for r in hidden):
        return []
    low, high = SELU_STD
    out = [
        r
        for r in hidden
        if not (abs(r["activation_mean"]) <= SELU_MEAN and low <= r["activation_std"] <= high)
    ]
    band = f"mean within ±{SELU_MEAN:g} and std within [{low:g}, {high:g}]"
    if not out:
        worst = max(hidden, key=lambda r: abs(r["activation_std"] - 1))
        return [
            {
                "kind": "self_normalizing",
                "layers": [r["layer"] for r in hidden],
                "message": f"every one of {len(hidden)} SELU layers keeps its activations at {band} "
                f"(furthest: {worst['layer']} mean {worst['activation_mean']:.2f}, std "
                f"{worst['activation_std']:.2f})",
            }
        ]
    evidence = ", ".join(
        f"{r['layer']} mean {r['activation_mean']:.2f} std {r['activation_std']:.2f}" for r in out[:3]
    )
    more = f" and {len(out) - 3} more" if len(out) > 3 else ""
    conditions = _violated_selu_conditions(spec)
    cause = (
        "conditions for self-normalization it violates: " + "; ".join(conditions)
        if conditions
        else "the spec meets the conditions for self-normalization, so training moved it "
        "(try a lower learning rate)"
    )
    return [
        {
            "kind": "self_normalization_broken",
            "layers": [r["layer"] for r in out],
            "message": f"SELU activations leave the band {band}: {evidence}{more}. {cause}",
            "conditions": conditions,
        }
    ]


def _violated_selu_conditions(spec: Spec | None) -> list[str]:
    """Géron's conditions for self-normalization that the spec breaks (lecun_normal, standardized
    input, a plain sequential stack, alpha dropout, no l1/l2 or max-norm, no batch norm)."""
    if spec is None:
        return []
    from dnnlab.spec.checks import check_selu_self_normalization

    return [f"{finding.key}: {finding.message}" for finding in check_selu_self_normalization(spec)]


@dataclass
class Diagnosis:
    name: str
    source: str  # "spec" or "run"
    measurements: list[Measurement]
    verdicts: list[dict[str, Any]]
    warnings: list[Any] = field(default_factory=list)  # `check`'s findings for a spec

    def to_dict(self) -> dict[str, Any]:
        last = self.measurements[-1]
        return {
            "name": self.name,
            "source": self.source,
            "epoch": last.epoch,
            "step": last.step,
            "layers": [_named(row) for row in last.rows],
            "initial_layers": [_named(row) for row in self.measurements[0].rows],
            "verdicts": self.verdicts,
        }


def _named(row: dict[str, Any]) -> dict[str, Any]:
    """A row of layers.csv as `diagnose --json` gives it: the layer's name under `name`."""
    return {"name": row["layer"], **{k: v for k, v in row.items() if k != "layer"}}


def all_verdicts(
    measurements: list[Measurement],
    spec: Spec | None,
    history: dict[str, list[float]] | None = None,
    epoch_steps: int | None = None,
) -> list[dict[str, Any]]:
    """Verdicts at initialization and, when training happened, at the last measurement; then
    those drawn across the measurements and, for a finished run, from its `history` (metrics.csv).
    Each says when (`at`) and lists its remedies, suggested. `epoch_steps`: a spec's steps per
    epoch, for the `--steps` a verdict measured at initialization only suggests."""
    each = [verdicts(m.rows, spec) for m in measurements]
    chosen = [0] if len(measurements) == 1 else [0, len(measurements) - 1]
    found = [
        {**verdict, "at": measurements[i].label, "step": measurements[i].step}
        for i in chosen
        for verdict in each[i]
    ]
    if len(measurements) == 1 and measurements[0].step == 0:
        found = [_at_initialization_only(v, epoch_steps) for v in found]
    last = measurements[-1]
    exploding = [any(v["kind"] == "exploding_gradients" for v in found_) for found_ in each]
    across = over_training.exploding_subsided(measurements, exploding)
    found += [{**v, "at": f"from initialization to step {last.step}", "step": last.step} for v in across]
    if history is not None:
        learning = over_training.still_learning(history, spec is not None and uses_batch_norm(spec))
        found += [{**v, "at": "at the end of training", "step": last.step} for v in learning]
    return [{**v, "remedies": suggested(v["kind"], spec)} for v in found]


def _at_initialization_only(verdict: dict[str, Any], epoch_steps: int | None) -> dict[str, Any]:
    """An exploding verdict measured only at initialization says how to see whether it lasts."""
    if verdict["kind"] != "exploding_gradients":
        return verdict
    steps = f"`--steps {epoch_steps}` measures again after one epoch" if epoch_steps else (
        "`--steps N` measures again after N training steps"
    )  # fmt: skip
    return {
        **verdict,
        "message": verdict["message"] + f". Measured at initialization only: {steps} (a run trained "
        "with training.diagnostics measures every epoch)",
    }


def suggested(kind: str, spec: Spec | None) -> list[dict[str, Any]]:
    """The concrete remedies a verdict names, untested (`diagnose --try-remedies` tests them)."""
    if spec is None:
        return []
    from dnnlab.diagnostics.remedies import remedies_for

    return [
        {"remedy": r.label, "overrides": r.overrides, "status": "suggested"}
        for r in remedies_for([kind], spec)
    ]


def diagnose_run(path: Path) -> Diagnosis:
    run = RunDir.open(path)
    spec, _ = read_run_spec(run.config)
    if not run.layers_csv.exists():
        raise RunDirError(
            f"{run.path}: no layers.csv (trained without training.diagnostics); train with "
            "-o 'training.diagnostics={every: 1}', or diagnose its config.yaml"
        )
    measurements = read_layers_csv(run.layers_csv)
    if not measurements:
        raise RunDirError(f"{run.layers_csv}: holds no measurement yet")
    history = read_metrics_columns(run.metrics_csv, [])  # the curves only: the spec is read above
    return Diagnosis(spec.name, "run", measurements, all_verdicts(measurements, spec, history))
