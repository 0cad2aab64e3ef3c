"""Finding run directories below a folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dnnlab.errors import RunDirError
from dnnlab.rundir.layout import RUN_JSON, is_run_dir
from dnnlab.rundir.reading import parse_json, read_run_file
from dnnlab.rundir.records import RunRecord


def iter_run_dirs(root: Path) -> Iterator[Path]:
    """Run directories directly below `root`."""
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if is_run_dir(child):
                yield child


def latest_completed(root: Path) -> Path | None:
    """The most recently finished completed run under `root` (for `mc-predict`)."""
    best: tuple[str, Path] | None = None
    for path in iter_run_dirs(root):
        try:
            record = RunRecord.from_dict(parse_json(read_run_file(path / RUN_JSON)))
        except (OSError, ValueError, RunDirError):
            continue
        if record.status == "completed":
            key = (record.finished or "", path)
            if best is None or key > best:
                best = key
    return best[1] if best else None
