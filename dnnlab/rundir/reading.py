"""Run files read as untrusted input: regular files only, capped, parsed without trusting
their contents.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dnnlab.errors import RunDirError
from dnnlab.files.bounded import Refused, read_capped

# Run directories may come from anywhere (copied, downloaded, damaged), so their files are read
# with a cap: a real run.json is a few kilobytes and metrics.csv about 150 bytes an epoch, so
# 16 MiB holds 100,000 epochs.
MAX_RUN_FILE_BYTES = 16 << 20


class RunFileUnreadable(RunDirError):
    """A run file that cannot be read: not a regular file, too large, or not UTF-8 text.
    `reason` says why without the path, for compare's and report's notes on a run."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def read_run_file(path: Path, limit: int = MAX_RUN_FILE_BYTES) -> str:
    """The UTF-8 text of a run file; FileNotFoundError when it is missing, RunFileUnreadable when
    it is not a regular file (a FIFO would block), is over `limit` bytes or is not UTF-8."""
    path = Path(path)
    try:
        raw = read_capped(path, limit)
    except Refused as refused:
        if refused.size is not None:
            reason = f"{refused.size:,} bytes, more than the {limit:,} a run file may have"
            raise RunFileUnreadable(path, reason) from None
        # compare's notes name the problem; a special file's kind (a FIFO, a device) adds nothing there
        reason = refused.reason if refused.reason == "not a regular file" else str(refused)
        raise RunFileUnreadable(path, reason) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RunFileUnreadable(path, "not UTF-8 text") from None


def parse_json(text: str) -> Any:
    """json.loads, with nesting too deep for the parser (RecursionError) a ValueError like any
    other malformed JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
