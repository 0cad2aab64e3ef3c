"""dnnlab's tables (read, infer, fit, encode) against pandas + scikit-learn's ColumnTransformer, one CSV.

    PYTHONPATH=. python benchmarks/tabular.py [--rows 1000000] [--rounds 3] [--write]

A generated CSV of `--rows` rows and 30 columns (11 float columns of varied scale, 2 integer
counts, 10 text columns of 20 categories each, 3 binary 0/1 and 3 binary yes/no columns, an integer
class target; 5% of every feature cell empty) in a temporary folder. In one process, the sides
alternate in each round, each from the file to the float32 matrix a Dense network takes:

  dnnlab    read_table + infer_columns + TablePreprocessing.fit + transform + encode_target, then
            the numeric columns standardized in place (what dnnlab's Scaling does after it, with
            the one-hot and binary columns left 0/1)
  sklearn   pandas.read_csv + ColumnTransformer: numeric SimpleImputer(mean) + StandardScaler;
            text SimpleImputer(most_frequent) + OneHotEncoder(handle_unknown='ignore'), dense;
            yes/no the same with drop='if_binary'; 0/1 SimpleImputer(most_frequent); the result
            cast to float32

Both fill text and binary columns with the commonest value (dnnlab's categorical default would
leave an all-zero row), so the two matrices hold the same numbers in another column order, which
the script checks (sorted per-column means and standard deviations agree). Peak memory is
measured in a fresh child process per side: its peak resident set (VmHWM) less its resident set
before reading, against the bytes of the encoded float32 matrix.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared import machine, write_section  # noqa: E402

HEADING = "## tabular"
MISSING = 0.05
FLOATS, COUNTS, CATEGORICAL, BINARY_01, BINARY_TEXT = 11, 2, 10, 3, 3
CATEGORIES = 20
TARGET = "target"
TARGETS = {"ratio": 1.5, "memory": 3.0}


def columns() -> dict[str, list[str]]:
    return {
        "floats": [f"f{i:02d}" for i in range(FLOATS)],
        "counts": [f"n{i}" for i in range(COUNTS)],
        "text": [f"cat {i}" for i in range(CATEGORICAL)],  # names with a space, as real headers have
        "binary_01": [f"b{i}" for i in range(BINARY_01)],
        "binary_text": [f"yes_no {i}" for i in range(BINARY_TEXT)],
    }


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """The benchmark's CSV: 29 feature columns and the target, 5% of feature cells empty."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = columns()
    data: dict[str, object] = {}
    for i, name in enumerate(names["floats"]):
        data[name] = rng.normal(10.0**i % 1000, 1 + i, rows).round(3)
    for name in names["counts"]:
        data[name] = pd.array(rng.poisson(40, rows), dtype="Int64")
    labels = np.array([f"k{j:02d}" for j in range(CATEGORIES)], dtype=object)
    for name in names["text"]:
        data[name] = labels[rng.integers(0, CATEGORIES, rows)]
    for name in names["binary_01"]:
        data[name] = pd.array(rng.integers(0, 2, rows), dtype="Int64")
    for name in names["binary_text"]:
        data[name] = np.where(rng.random(rows) < 0.3, "yes", "no").astype(object)
    frame = pd.DataFrame(data)
    for name in frame.columns:
        frame.loc[rng.random(rows) < MISSING, name] = None
    frame[TARGET] = rng.integers(0, 3, rows)
    frame.to_csv(path, index=False)


def dnnlab_side(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from dnnlab.data.table_files import read_table
    from dnnlab.data.tables import TablePreprocessing, infer_columns

    frame = read_table(path)
    declared = {name: {"missing": "most_frequent"} for name in columns()["text"]}
    rules = infer_columns(frame, TARGET, declared=declared)
    prep = TablePreprocessing.fit(frame, rules, TARGET)
    x, y = prep.transform(frame), prep.encode_target(frame)
    del frame
    standardize_in_place(x, prep.scaled_features())
    return x, y


def standardize_in_place(x: np.ndarray, scaled: np.ndarray) -> None:
    """Scaling's standardize (float64 moments of the training rows; std 0 -> 1) on the marked columns."""
    for column in np.flatnonzero(scaled):
        values = x[:, column].astype(np.float64)
        mean, std = values.mean(), values.std()
        x[:, column] = (values - mean) / (std or 1.0)


def sklearn_side(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.read_csv(path)
    names = columns()
    transformer = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), names["floats"] + names["counts"]),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                names["text"],
            ),
            (
                "yes_no",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", drop="if_binary", sparse_output=False),
                ),
                names["binary_text"],
            ),
            ("bin", SimpleImputer(strategy="most_frequent"), names["binary_01"]),
        ],
        sparse_threshold=0.0,
    )
    x = transformer.fit_transform(frame).astype(np.float32)
    return x, frame[TARGET].to_numpy()


SIDES = {"dnnlab": dnnlab_side, "pandas + scikit-learn": sklearn_side}


def fingerprint(x: np.ndarray) -> np.ndarray:
    """Sorted per-column means and standard deviations: equal for the same columns in any order."""
    means, stds = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)
    return np.concatenate([np.sort(means), np.sort(stds)])


def rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(side: str, path: Path) -> None:
    """Run one side once and print its memory figures as JSON (a fresh process per side)."""
    import pandas  # noqa: F401  (imports count as the baseline, not as the work)
    import sklearn.compose  # noqa: F401

    import dnnlab.data.tables  # noqa: F401

    before = rss_mib("VmRSS")
    x, _ = SIDES[side](path)
    print(json.dumps({"before": before, "peak": rss_mib("VmHWM"), "encoded": x.nbytes / 2**20}))


def measure_memory(side: str, path: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--memory-child", side, "--csv", str(path)]
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{side} memory child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed_rounds(path: Path, rounds: int) -> tuple[dict[str, list[float]], tuple[int, int]]:
    """Wall seconds per round of each side, alternating which goes first; and the matrix's shape,
    once both sides are checked to give the same columns."""
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    shapes, prints = {}, {}
    for round_ in range(rounds):
        for side in list(SIDES)[:: 1 if round_ % 2 == 0 else -1]:
            started = time.perf_counter()
            x, _ = SIDES[side](path)
            times[side].append(time.perf_counter() - started)
            shapes[side], prints[side] = x.shape, fingerprint(x)
            del x
        latest = ", ".join(f"{side} {values[-1]:.2f} s" for side, values in times.items())
        print(f"round {round_ + 1}: {latest}", file=sys.stderr)
    if len(set(shapes.values())) != 1 or not np.allclose(*prints.values(), rtol=1e-4, atol=1e-4):
        raise SystemExit(f"the two sides' matrices differ: shapes {shapes}")
    return times, shapes["dnnlab"]


def versions() -> str:
    import pandas
    import sklearn

    try:
        import pyarrow  # pandas's text columns are Arrow strings when it is installed

        arrow = f", pyarrow {pyarrow.__version__}"
    except ImportError:
        arrow = ", no pyarrow"
    return f"pandas {pandas.__version__}, scikit-learn {sklearn.__version__}{arrow}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="replace the tabular section of RESULTS.md")
    parser.add_argument("--memory-child", choices=list(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.csv)
        return

    setting = f"{machine()}, {versions()}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        started = time.perf_counter()
        generate(path, args.rows)
        size = path.stat().st_size / 2**20
        print(f"generated {size:.0f} MiB in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        times, (rows, width) = timed_rounds(path, args.rounds)
        memory = {side: measure_memory(side, path) for side in SIDES}

    medians = {side: statistics.median(values) for side, values in times.items()}
    baseline = medians["pandas + scikit-learn"]
    growth = {side: (m["peak"] - m["before"]) / m["encoded"] for side, m in memory.items()}
    table = "\n".join(
        f"| {side} | {' / '.join(f'{t:.2f}' for t in times[side])} | {medians[side]:.2f} | "
        f"{medians[side] / baseline:.2f} | {memory[side]['peak']:.0f} | "
        f"{memory[side]['peak'] - memory[side]['before']:.0f} | {growth[side]:.2f} |"
        for side in SIDES
    )
    ratio, encoded = medians["dnnlab"] / baseline, memory["dnnlab"]["encoded"]
    target_ratio, target_memory = TARGETS["ratio"], TARGETS["memory"]
    text = f"""{HEADING}

`PYTHONPATH=. python benchmarks/tabular.py --rows {args.rows} --rounds {args.rounds}`: a generated CSV
of {args.rows:,} rows x 30 columns ({size:.0f} MiB: 11 float and 2 count columns, 10 text columns of
{CATEGORIES} categories, 3 binary 0/1 and 3 yes/no columns, an integer class target; 5% of feature
cells empty), from the file to the float32 matrix ({rows:,} x {width}, {encoded:.0f} MiB), the sides
alternating in each round in one process. dnnlab: `read_table` + `infer_columns` +
`TablePreprocessing.fit` + `transform` + `encode_target`, then the numeric columns standardized in
place. pandas + scikit-learn: `pandas.read_csv` + `ColumnTransformer` (SimpleImputer(mean) +
StandardScaler; SimpleImputer(most_frequent) + OneHotEncoder(handle_unknown='ignore', dense),
drop='if_binary' for yes/no; SimpleImputer(most_frequent) for 0/1), cast to float32. Both fill text
columns with the commonest category, so the matrices hold the same columns (checked: sorted column
means and standard deviations agree). Memory: a fresh child process per side, its peak resident set
(VmHWM) and the growth from before the read, against the encoded matrix. {setting}; the machine is
shared, so compare within this table.

| side | seconds per round | median | x pandas + scikit-learn | peak RSS MiB | growth MiB | growth / matrix |
| --- | --- | ---: | ---: | ---: | ---: | ---: |
{table}

dnnlab took **{ratio:.2f}x** the time of pandas + scikit-learn (target: at most {target_ratio}x), and
its memory grew by **{growth["dnnlab"]:.2f}x** the encoded matrix (target: under {target_memory:.0f}x).
"""
    print(text)
    if args.write:
        write_section(HEADING, text)


if __name__ == "__main__":
    main()
