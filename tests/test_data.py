"""Datasets: shapes without loading, filters, splits, scaling, files and Keras's cache format.

Nothing here downloads: Keras sets are read from tiny files written in Keras's cache layout
under a temporary KERAS_HOME, and the download step is replaced where a test needs it to fail.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from dnnlab.data import datasets, keras_datasets
from dnnlab.data.datasets import Scaling, describe, load
from dnnlab.data.input_files import load_array_file
from dnnlab.errors import DataError
from dnnlab.spec.data import NAMED_DATASETS, DataSpec


def spec(**fields) -> DataSpec:
    return DataSpec.model_validate(fields)


# --- describe ------------------------------------------------------------------------------

EXPECTED = {
    "mnist": ((28, 28), "classification", 10),
    "fashion_mnist": ((28, 28), "classification", 10),
    "cifar10": ((32, 32, 3), "classification", 10),
    "cifar100": ((32, 32, 3), "classification", 100),
    "digits": ((64,), "classification", 10),
    "iris": ((4,), "classification", 3),
    "wine": ((13,), "classification", 3),
    "breast_cancer": ((30,), "classification", 2),
    "diabetes": ((10,), "regression", None),
    # a table: 3 one-hot island columns, 4 measurements, sex as 0/1, year
    "penguins": ((9,), "classification", 3),
}


def test_expected_table_covers_every_named_set():
    assert set(EXPECTED) == set(NAMED_DATASETS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_describe_named_sets(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # empty cache: describe must not need it
    info = describe(spec(dataset=name))
    shape, task, classes = EXPECTED[name]
    assert (info.input_shape, info.task, info.num_classes, info.name) == (shape, task, classes, name)


def test_describe_imports_no_framework_and_is_fast(tmp_path):
    code = (
        "import sys, time\n"
        "from dnnlab.spec.data import DataSpec, NAMED_DATASETS, TABLE_DATASETS\n"
        "from dnnlab.data.datasets import describe\n"
        "t = time.perf_counter()\n"
        "[describe(DataSpec(dataset=n)) for n in NAMED_DATASETS if n not in TABLE_DATASETS]\n"
        "assert time.perf_counter() - t < 0.5\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'sklearn', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "KERAS_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


def test_loading_digits_imports_neither_scikit_learn_nor_scipy():
    """The quick start's data (digits, a stratified hold-out) costs no 0.8 s scikit-learn import."""
    code = (
        "import sys\n"
        "from dnnlab.spec.data import DataSpec\n"
        "from dnnlab.data.datasets import load\n"
        "ds = load(DataSpec(dataset='digits', validation=0.15, test=0.2, scaling='standardize'))\n"
        "assert len(ds.x_test) == 360 and len(ds.x_val) == 216, (len(ds.x_test), len(ds.x_val))\n"
        "heavy = [m for m in ('sklearn', 'scipy', 'tensorflow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_describe_classes_and_task():
    assert describe(spec(dataset="digits", classes=[5, 6])).num_classes == 2
    assert describe(spec(dataset="digits", task="regression")).num_classes is None
    synthetic = {"type": "synthetic", "shape": [3, 4], "classes": 5}
    assert describe(spec(dataset=synthetic)) == datasets.DatasetInfo((3, 4), "classification", 5, "synthetic")
    assert describe(spec(dataset=synthetic, task="regression")).task == "regression"


@pytest.mark.parametrize(
    ("fields", "key", "fragment"),
    [
        (
            {"dataset": "digits", "classes": [5, 12]},
            "data.classes",
            "12 is not a class of digits; allowed: 0..9",
        ),
        ({"dataset": "digits", "classes": [5, 5]}, "data.classes", "listed twice"),
        ({"dataset": "diabetes", "classes": [0, 1]}, "data.classes", "regression"),
        ({"dataset": "diabetes", "task": "classification"}, "data.task", "regression set"),
    ],
)
def test_describe_rejects_bad_filters(fields, key, fragment):
    with pytest.raises(DataError) as caught:
        describe(spec(**fields))
    message = str(caught.value)
    assert message.startswith(key) and fragment in message and "\n" not in message


# --- load: sklearn sets, splits, filters, scaling ------------------------------------------


def test_digits_splits_add_up_and_types():
    ds = load(spec(dataset="digits", validation=100, test=0.2))
    assert ds.x_train.shape[1:] == (64,) and ds.info.input_shape == (64,)
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 1797
    assert len(ds.x_val) == 100 and len(ds.x_test) == 360
    assert ds.x_train.dtype == ds.x_val.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int32 and ds.y_train.shape == (len(ds.x_train),)
    assert set(np.unique(ds.y_test)) == set(range(10))  # stratified hold-out
    assert ds.class_labels is None


def test_validation_fraction_and_none():
    ds = load(spec(dataset="digits", validation=0.25, test=0.2))
    n = len(ds.x_train) + len(ds.x_val)
    assert len(ds.x_val) == round(0.25 * n)
    none = load(spec(dataset="digits", validation=0))
    assert none.x_val is None and none.y_val is None and len(none.x_train) == n


def test_training_rows_are_shuffled_before_validation(tmp_path):
    """A source without a test split is shuffled (seeded) before the validation rows are taken,
    so a file sorted by class still gives validation rows of every class, in no file order."""
    y = np.repeat(np.arange(10), 40)  # sorted by class: an unshuffled slice holds two or three
    x = np.arange(len(y), dtype=np.float64)[:, None]  # each row's position in the file
    np.savez(tmp_path / "sorted.npz", x_train=x, y_train=y)
    source = {"type": "npz", "path": str(tmp_path / "sorted.npz")}
    ds = load(spec(dataset=source, validation=100, scaling="none"))
    assert sorted(np.unique(ds.y_val)) == list(range(10))
    rows = ds.x_val[:, 0]
    assert np.all(y[rows.astype(int)] == ds.y_val)  # the labels travelled with their rows
    assert not np.all(np.diff(rows) > 0)  # not a slice of the file, nor in its order


def test_standardize_uses_training_statistics_only():
    ds = load(spec(dataset="digits", validation=300, scaling="standardize"))
    varying = ds.scaling.scale != 1
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0)[varying], 1, atol=1e-4)
    assert not np.allclose(ds.x_val.mean(axis=0), 0, atol=1e-3)
    assert ds.scaling.offset.shape == (64,)


def test_unit_scaling_uses_training_min_and_max():
    ds = load(spec(dataset="digits", scaling="unit"))
    assert ds.x_train.min() == 0 and ds.x_train.max() == 1
    assert float(ds.scaling.scale) == 16.0


def test_preprocessing_round_trip_gives_identical_transform():
    ds = load(spec(dataset="digits", scaling="standardize"))
    record = json.loads(json.dumps(ds.preprocessing()))
    assert record["input_shape"] == [64] and record["task"] == "classification"
    assert record["num_classes"] == 10 and record["dataset"] == "digits"
    raw = np.random.default_rng(0).uniform(0, 16, size=(5, 64))
    np.testing.assert_array_equal(Scaling.from_dict(record["scaling"]).apply(raw), ds.scaling.apply(raw))


def test_scaling_rejects_a_wrong_shape():
    scaling = Scaling.fit("standardize", np.ones((4, 3)))
    with pytest.raises(DataError, match=r"input shape \(5,\) does not match the training data's \(3,\)"):
        scaling.apply(np.ones((2, 5)))
    assert Scaling.fit("none", np.ones((4, 3), dtype=np.int64)).apply(np.ones((1, 3))).dtype == np.float32


def test_classes_filter_relabels_in_the_given_order():
    full = load(spec(dataset="digits", validation=0))
    ds = load(spec(dataset="digits", classes=[6, 5], validation=0))
    assert set(np.unique(ds.y_train)) == {0, 1} and set(np.unique(ds.y_test)) == {0, 1}
    assert ds.info.num_classes == 2 and ds.class_labels == [6, 5]
    assert len(ds.y_train) == np.isin(full.y_train, [5, 6]).sum()
    assert ds.preprocessing()["class_labels"] == [6, 5]
    # relabelled rows are the original 6s then 5s, in the original order
    original = full.y_train[np.isin(full.y_train, [5, 6])]
    np.testing.assert_array_equal(ds.y_train, np.where(original == 6, 0, 1))


def test_train_size_keeps_the_first_rows_after_validation():
    big = load(spec(dataset="digits", classes=[5, 6], validation=40))
    ds = load(spec(dataset="digits", classes=[5, 6], validation=40, train_size=100))
    assert len(ds.x_train) == 100 and len(ds.x_val) == 40
    np.testing.assert_array_equal(ds.y_train, big.y_train[:100])
    np.testing.assert_array_equal(ds.y_val, big.y_val)


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"validation": 5000}, "data.validation"),
        ({"classes": [5, 6], "validation": 0.1, "train_size": 5000}, "data.train_size"),
    ],
)
def test_load_rejects_impossible_sizes(fields, key):
    with pytest.raises(DataError) as caught:
        load(spec(dataset="digits", **fields))
    assert str(caught.value).startswith(key)


def test_load_is_deterministic_for_a_seed():
    a, b = (load(spec(dataset="wine", split_seed=7)) for _ in range(2))
    c = load(spec(dataset="wine", split_seed=8))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_train, c.y_train)


def test_diabetes_is_regression_with_float_targets():
    ds = load(spec(dataset="diabetes"))
    assert ds.info.task == "regression" and ds.info.num_classes is None
    assert ds.y_train.dtype == np.float32 and ds.y_train.ndim == 1


# --- synthetic -----------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_shaped():
    source = {"type": "synthetic", "shape": [6, 5], "classes": 4, "train": 300, "test": 50}
    a = load(spec(dataset=source, validation=30, split_seed=1))
    b = load(spec(dataset=source, validation=30, split_seed=1))
    c = load(spec(dataset=source, validation=30, split_seed=2))
    assert a.x_train.shape == (270, 6, 5) and a.x_test.shape == (50, 6, 5)
    assert a.info == datasets.DatasetInfo((6, 5), "classification", 4, "synthetic")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.y_train.dtype == np.int32 and set(np.unique(a.y_train)) <= set(range(4))


def test_synthetic_regression():
    source = {"type": "synthetic", "shape": [8], "train": 100, "test": 20, "task": "regression"}
    ds = load(spec(dataset=source))
    assert ds.info.task == "regression" and ds.y_train.dtype == np.float32


def test_synthetic_without_test_rows():
    ds = load(spec(dataset={"type": "synthetic", "shape": [4], "train": 50, "test": 0}))
    assert ds.x_test is None and ds.y_test is None


# --- npz and csv files ---------------------------------------------------------------------


def write_npz(path: Path, with_test: bool = True, float_labels: bool = False) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.normal(size=(40, 3, 2)), "y_train": np.arange(40) % 4}
    if with_test:
        arrays.update(x_test=rng.normal(size=(10, 3, 2)), y_test=np.arange(10) % 4)
    if float_labels:
        arrays["y_train"] = rng.normal(size=40)
        arrays.pop("x_test", None), arrays.pop("y_test", None)
    np.savez(path, **arrays)
    return path


def test_npz_describe_and_load(tmp_path):
    path = write_npz(tmp_path / "set.npz")
    source = {"type": "npz", "path": str(path)}
    info = describe(spec(dataset=source))
    assert info == datasets.DatasetInfo((3, 2), "classification", 4, f"npz:{path}")
    ds = load(spec(dataset=source, validation=5, classes=[3, 1]))
    assert ds.x_train.shape == (15, 3, 2) and len(ds.x_val) == 5 and len(ds.x_test) == 5
    assert ds.class_labels == [3, 1] and set(np.unique(ds.y_train)) == {0, 1}


def test_npz_without_test_holds_out_a_fraction(tmp_path):
    path = write_npz(tmp_path / "set.npz", with_test=False)
    ds = load(spec(dataset={"type": "npz", "path": str(path)}, test=0.25, validation=0))
    assert len(ds.x_test) == 10 and len(ds.x_train) == 30


def test_npz_float_labels_infer_regression(tmp_path):
    path = write_npz(tmp_path / "reg.npz", float_labels=True)
    ds = load(spec(dataset={"type": "npz", "path": str(path)}))
    assert ds.info.task == "regression" and ds.y_train.dtype == np.float32


@pytest.mark.parametrize(
    ("arrays", "fields", "key", "fragment"),
    [
        (None, {}, "data.dataset.path", "no such file"),
        ({"x_train": np.ones((3, 2))}, {}, "data.dataset", "has no labels"),  # inputs for an autoencoder
        ({"y_train": np.ones(3)}, {}, "data.dataset.path", "needs arrays x_train and y_train"),
        (
            {"x_train": np.ones((3, 2)), "y_train": np.array([0, 1, 1])},
            {"classes": [0, 2]},
            "data.classes",
            "allowed: 0..1",
        ),
        (
            {"x_train": np.ones((3, 2)), "y_train": np.array([0.5, 1, 1])},
            {"task": "classification"},
            "data.task",
            "0.5",
        ),
    ],
)
def test_npz_errors(tmp_path, arrays, fields, key, fragment):
    path = tmp_path / "bad.npz"
    if arrays is not None:
        np.savez(path, **arrays)
    with pytest.raises(DataError) as caught:
        load(spec(dataset={"type": "npz", "path": str(path)}, **fields))
    assert str(caught.value).startswith(key) and fragment in str(caught.value)


def write_csv(path: Path, labels: list) -> Path:
    lines = ["a,b,species,c"] + [f"{i},{i * 2},{label},{i % 3}" for i, label in enumerate(labels)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_numeric_target(tmp_path):
    path = write_csv(tmp_path / "t.csv", [i % 3 for i in range(30)])
    source = {"type": "csv", "path": str(path), "target": "species"}
    assert describe(spec(dataset=source)) == datasets.DatasetInfo((3,), "classification", 3, f"csv:{path}")
    ds = load(spec(dataset=source, validation=0, test=0.2, scaling="none"))
    assert ds.x_train.shape == (24, 3) and len(ds.x_test) == 6
    # the target column is not among the features: b is always 2 * a
    np.testing.assert_array_equal(ds.x_train[:, 1], ds.x_train[:, 0] * 2)


def test_csv_text_target_becomes_classes(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["setosa", "virginica", "versicolor"] * 10)
    source = {"type": "csv", "path": str(path), "target": "species"}
    assert describe(spec(dataset=source)).num_classes == 3
    ds = load(spec(dataset=source, classes=[2, 0]))
    assert ds.class_labels == ["virginica", "setosa"] and set(np.unique(ds.y_train)) == {0, 1}
    with pytest.raises(DataError, match=r"data.classes: 3 is not a class .*0 \(setosa\)"):
        describe(spec(dataset=source, classes=[0, 3]))


@pytest.mark.parametrize(
    ("text", "target", "key", "fragment"),
    [
        ("a,b,y\n1,2,0\n", "label", "data.dataset.target", "no column 'label' in the header row"),
        ("a,b,y\n1,x,0\n3,4,1\n", "y", "data.dataset.path", "line 2, column 2 is not a number"),
        ("a,b,y\n1,2\n", "y", "data.dataset.path", "line 2 has 2 cells, but the header has 3"),
        ("", "y", "data.dataset.path", "empty"),
    ],
)
def test_csv_errors(tmp_path, text, target, key, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError) as caught:
        load(spec(dataset={"type": "csv", "path": str(path), "target": target}))
    assert str(caught.value).startswith(key) and fragment in str(caught.value)


def test_csv_missing_file(tmp_path):
    missing = {"type": "csv", "path": str(tmp_path / "nope.csv"), "target": "y"}
    with pytest.raises(DataError, match="^data.dataset.path: .*nope.csv: no such file"):
        describe(spec(dataset=missing))


# --- load_array_file -----------------------------------------------------------------------


def test_load_array_file_npz_and_csv(tmp_path):
    np.savez(tmp_path / "p.npz", x=np.ones((3, 2)), y=np.array([0, 1, 0]))
    x, y = load_array_file(tmp_path / "p.npz")
    assert x.shape == (3, 2) and list(y) == [0, 1, 0]
    np.savez(tmp_path / "q.npz", x=np.ones((3, 2)))
    assert load_array_file(tmp_path / "q.npz")[1] is None

    (tmp_path / "l.csv").write_text("f1,label,f2\n1,0,2\n3,1,4\n")
    x, y = load_array_file(tmp_path / "l.csv")
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])
    assert list(y) == [0, 1] and x.dtype == np.float32
    (tmp_path / "n.csv").write_text("1,2\n3,4\n")
    x, y = load_array_file(tmp_path / "n.csv")
    assert x.shape == (2, 2) and y is None


def test_load_array_file_errors(tmp_path):
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(DataError, match=r"--data: .*x.txt: expected a .npz or .csv file"):
        load_array_file(tmp_path / "x.txt")
    with pytest.raises(DataError, match="no such file"):
        load_array_file(tmp_path / "gone.npz")
    np.savez(tmp_path / "w.npz", z=np.ones(2))
    with pytest.raises(DataError, match="needs an array named x; it has: z"):
        load_array_file(tmp_path / "w.npz")


# --- Keras's cache format ------------------------------------------------------------------


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache; any download attempt fails the test's expectations loudly."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def no_download(name, host):
        raise OSError(f"test forbids downloading {name} from {host}")

    monkeypatch.setattr(keras_datasets, "_download_keras", no_download)
    (tmp_path / "datasets").mkdir()
    return tmp_path / "datasets"


def images(n: int, shape: tuple[int, ...], start: int = 0) -> np.ndarray:
    return ((np.arange(n * int(np.prod(shape))) + start) % 256).astype(np.uint8).reshape(n, *shape)


def test_keras_mnist_from_cache(keras_home):
    np.savez(
        keras_home / "mnist.npz",
        x_train=images(12, (28, 28)),
        y_train=np.arange(12, dtype=np.uint8) % 10,
        x_test=images(4, (28, 28)),
        y_test=np.arange(4, dtype=np.uint8),
    )
    ds = load(spec(dataset="mnist", validation=2, scaling="unit"))
    assert ds.x_train.shape == (10, 28, 28) and ds.x_val.shape == (2, 28, 28)
    assert ds.x_test.shape == (4, 28, 28) and ds.info.num_classes == 10
    np.testing.assert_allclose(ds.x_val, images(2, (28, 28)) / 255.0, rtol=1e-6)  # first rows
    assert ds.scaling.to_dict()["scale"] == 255.0


def write_idx(path: Path, array: np.ndarray) -> None:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())


def test_keras_fashion_mnist_from_cache(keras_home):
    folder = keras_home / "fashion-mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", images(6, (28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 4, 5], np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images(3, (28, 28), start=7))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([9, 8, 7], np.uint8))
    ds = load(spec(dataset="fashion_mnist", validation=0, scaling="none", classes=[9, 1]))
    assert ds.x_train.shape == (1, 28, 28) and list(ds.y_test) == [0]
    np.testing.assert_array_equal(ds.x_train[0], images(6, (28, 28))[1])


def cifar_batch(path: Path, n: int, label_key: bytes, start: int) -> None:
    batch = {b"data": images(n, (3072,), start), label_key: [(start + i) % 10 for i in range(n)]}
    with open(path, "wb") as handle:
        pickle.dump(batch, handle)


def test_keras_cifar10_from_extracted_cache(keras_home):
    folder = keras_home / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        cifar_batch(folder / f"data_batch_{i}", 2, b"labels", start=i)
    cifar_batch(folder / "test_batch", 3, b"labels", start=0)
    ds = load(spec(dataset="cifar10", validation=0, scaling="none"))
    assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
    assert ds.y_train.shape == (10,) and ds.y_train.dtype == np.int32
    # channels last: pixel (row 1, col 2) of channel 2 is data[2 * 1024 + 1 * 32 + 2]
    assert ds.x_test[0, 1, 2, 2] == images(1, (3072,))[0, 2 * 1024 + 32 + 2]


def test_keras_cifar100_from_downloaded_archive(keras_home, tmp_path):
    staging = tmp_path / "staging" / "cifar-100-python"
    staging.mkdir(parents=True)
    cifar_batch(staging / "train", 4, b"fine_labels", start=0)
    cifar_batch(staging / "test", 2, b"fine_labels", start=50)
    with tarfile.open(keras_home / "cifar-100-python.tar.gz", "w:gz") as tar:
        tar.add(staging, arcname="cifar-100-python")
    ds = load(spec(dataset="cifar100", validation=1))
    assert ds.x_train.shape == (3, 32, 32, 3) and ds.info.num_classes == 100
    assert (keras_home / "cifar-100-python-target" / "cifar-100-python" / "train").is_file()


def test_cifar_pickle_refuses_code(keras_home):
    folder = keras_home / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps(os.getcwd))  # a global outside numpy
    with pytest.raises(DataError, match="cached cifar10 files .* cannot be read"):
        load(spec(dataset="cifar10"))


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("mnist", "mnist.npz"),
        ("fashion_mnist", "train-images-idx3-ubyte.gz"),
        ("cifar10", "cifar-10-python.tar.gz"),
        ("cifar100", "cifar-100-python.tar.gz"),
    ],
)
def test_offline_error_names_file_and_directory(keras_home, name, files):
    started = time.perf_counter()
    with pytest.raises(DataError) as caught:
        load(spec(dataset=name))
    message = str(caught.value)
    assert time.perf_counter() - started < 2
    assert message.startswith(f"data.dataset: {name} is not in the Keras cache")
    assert files in message and str(keras_home) in message and "\n" not in message


def test_keras_cache_dir_follows_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_datasets.cache_dirs() == [tmp_path / "datasets"]
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert keras_datasets.cache_dirs()[0] == tmp_path / ".keras" / "datasets"


def test_download_fails_fast_when_the_host_is_unreachable(monkeypatch):
    for proxy in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    started = time.perf_counter()
    with pytest.raises(OSError):
        keras_datasets._download_keras("mnist", "dnnlab-test.invalid")  # .invalid never resolves
    assert time.perf_counter() - started < 6
