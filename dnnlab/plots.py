"""Plots of run directories, drawn with matplotlib's non-interactive Agg backend.

matplotlib is imported inside the functions: commands that draw nothing should not pay for it.
"""

from __future__ import annotations

from pathlib import Path

from dnnlab.compare import Comparison
from dnnlab.compare_format import run_labels
from dnnlab.errors import DnnlabError

# Room for a legend line at matplotlib's "small" font (8.33 pt): its height, and a character's width.
LEGEND_ROW_INCHES = 0.2
LEGEND_CHAR_INCHES = 0.075


def plot_learning_curves(comparison: Comparison, path: Path) -> Path:
    """Write a PNG of the ranked metric per epoch for every run: validation solid, training dashed.

    One legend entry per run, named by the spec keys that differ between the runs. Epochs are
    counted from 1, as the progress lines count them (metrics.csv keeps its 0-based index).
    """
    if not path.parent.is_dir():
        raise DnnlabError(
            f"Cannot write the plot to {path}: folder {path.parent} does not exist. "
            "Create it or choose another --plot path."
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    base = comparison.metric.removeprefix("val_")
    val_name, train_name = f"val_{base}", base
    labels = run_labels(comparison)
    # The legend goes below the axes and the figure grows to hold it (a line per run, as wide as
    # the longest label); constrained layout makes the room, which tight_layout cannot, and warns.
    longest = max((len(label) for label in labels.values()), default=0)
    size = (max(10.0, LEGEND_CHAR_INCHES * longest), 5 + LEGEND_ROW_INCHES * len(comparison.runs))
    fig, ax = plt.subplots(figsize=size, dpi=100, layout="constrained")
    colors = plt.get_cmap("tab10" if len(comparison.runs) <= 10 else "tab20")
    for i, run in enumerate(comparison.runs):
        color = colors(i % colors.N)
        indices = run.history.get("epoch") or list(range(len(next(iter(run.history.values()), []))))
        epochs = [index + 1 for index in indices]
        drawn = False
        for name, style in ((val_name, "-"), (train_name, "--")):
            values = run.history.get(name)
            if values:
                label = None if drawn else labels[run.path]
                ax.plot(epochs[: len(values)], values, linestyle=style, color=color, label=label)
                drawn = True
        best = run.best
        if best and best.value is not None and best.epoch is not None:
            ax.plot([best.epoch + 1], [best.value], marker="o", color=color)
    ax.set_xlabel("epoch")
    ax.set_ylabel(base)
    ax.set_title(f"{val_name} (solid) and {train_name} (dashed); dot: best {comparison.metric}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside lower center", fontsize="small", frameon=False)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
