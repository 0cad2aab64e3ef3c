"""What independent checkpoint files cost per epoch: the epoch's `.keras` save, which dnnlab
always paid, against the copies that replaced the hard links (last.keras every epoch, best.keras
when the epoch improves), and the hard link they replaced.

    python benchmarks/checkpoint_copy.py [--repeats 20] [--write]

The model is train_throughput's (Géron's batch-norm model, Nadam), fitted one step so that the
optimizer's slots exist: the file holds the weights and two slots per weight.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from peers import geron_model
from shared import machine, median_seconds, write_section

from dnnlab.files.atomic import atomic_copy, atomic_save_model, fsync_dir


def hard_link(source: Path, target: Path) -> None:
    """The replaced runs.atomic_link: a hard link swapped in by rename."""
    tmp = target.with_name(f".{target.name}.{os.urandom(8).hex()}.link")
    os.link(source, tmp)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    header = machine()
    model = geron_model()
    model.fit(np.zeros((32, 28, 28), "float32"), np.zeros(32, "int64"), epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as folder:
        epoch, last = Path(folder) / "epoch-00001.keras", Path(folder) / "last.keras"
        save = 1000 * median_seconds(lambda: atomic_save_model(model, epoch), args.repeats)
        copy = 1000 * median_seconds(lambda: atomic_copy(epoch, last), args.repeats)
        link = 1000 * median_seconds(lambda: hard_link(epoch, last), args.repeats)
        size = epoch.stat().st_size
    text = (
        "## checkpoint_copy\n\n"
        f"`python benchmarks/checkpoint_copy.py --repeats {args.repeats}`: per-epoch checkpoint cost of the "
        f"Géron's batch-norm model with Nadam ({size / 1e6:.1f} MB `.keras` file), median of "
        f"{args.repeats}, each write fsynced and renamed into place.\n\nMachine: {header}.\n\n"
        "| epoch `.keras` save ms | copy (last.keras; best.keras too when improved) ms | "
        "hard link it replaced ms | copy / save |\n| ---: | ---: | ---: | ---: |\n"
        f"| {save:.1f} | {copy:.1f} | {link:.1f} | {copy / save:.0%} |\n"
    )
    print(text)
    if args.write:
        write_section("## checkpoint_copy", text)


if __name__ == "__main__":
    main()
