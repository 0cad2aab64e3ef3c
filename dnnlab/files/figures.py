"""Figures as files: matplotlib without a display, PNG bytes, written atomically.

Every figure dnnlab draws (learning curves, reliability diagrams, the diagnosis, the lr-find
curve) goes through here, so the backend, the closing of the figure and the atomic write are
decided once.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from dnnlab.errors import DnnlabError
from dnnlab.files.atomic import atomic_write_bytes
from dnnlab.files.folders import check_output_folder


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend: no window on a server or in a test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any, dpi: float | None = None) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    plt = pyplot()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def write_png(fig: Any, path: Path, dpi: float | None = None) -> Path:
    """Write the figure to `path` atomically (never half a file, never through a planted link)."""
    atomic_write_bytes(path, png_bytes(fig, dpi))
    return path


def check_plot_path(path: Path) -> None:
    """Refuse a plot path before any work is done: wrong suffix or a missing folder."""
    if path.suffix.lower() != ".png":
        raise DnnlabError(f"--plot {path}: expected a file name ending in .png")
    check_output_folder(path, "--plot")
