"""The Glorot & Bengio figure of a diagnosis: per-layer activations and gradients."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dnnlab.diagnostics.verdicts import Diagnosis
from dnnlab.files.figures import pyplot, write_png
from dnnlab.files.folders import check_output_folder

# --- the figure ----------------------------------------------------------------------------


def plot_diagnosis(diagnosis: Diagnosis, path: Path) -> Path:
    """Glorot & Bengio's (2010) figure for this model: each layer's activation mean with a band of
    one standard deviation, and each layer's kernel gradient norm (log scale), at initialization
    and at the last measurement."""
    path = Path(path)
    check_output_folder(path, "--plot")
    plt = pyplot()

    chosen = diagnosis.measurements[:1] + diagnosis.measurements[1:][-1:]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for measurement, color in zip(chosen, ("tab:blue", "tab:orange")):
        rows = measurement.rows
        depth = [r["depth"] for r in rows]
        mean = np.array([r["activation_mean"] for r in rows])
        std = np.array([r["activation_std"] for r in rows])
        left.plot(depth, mean, "o-", color=color, label=f"mean {measurement.label}")
        band = f"± std {measurement.label}"
        left.fill_between(depth, mean - std, mean + std, color=color, alpha=0.2, label=band)
        right.semilogy(depth, [r["gradient_norm"] for r in rows], "o-", color=color, label=measurement.label)
    left.set(title="activations per layer", xlabel="dense layer (1 = nearest the input)", ylabel="activation")
    right.set(title="kernel gradient norm per layer", xlabel="dense layer (1 = nearest the input)")
    for axis in (left, right):
        axis.legend(fontsize="small")
        axis.grid(alpha=0.3)
    fig.suptitle(f"{diagnosis.name}: probe batch of the training split")
    fig.tight_layout()
    return write_png(fig, path, dpi=100)
