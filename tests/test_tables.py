"""Real tables: column types, features chosen by the spec, encoders fitted on the training rows
only, missing values, the preprocessing.json record, and one-line errors that locate the cell."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from dnnlab.data import table_files, tables
from dnnlab.data.penguins import TARGET, load_penguins
from dnnlab.data.table_files import read_table
from dnnlab.data.tables import (
    REGRESSION,
    ColumnRule,
    TablePreprocessing,
    declared_text_columns,
    drop_missing_rows,
    infer_columns,
)
from dnnlab.errors import DataError, RunDirError

SECRET = "SECRET_TOKEN=hunter2"


def table(tmp_path, text: str, name: str = "table.csv", **read) -> pd.DataFrame:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return read_table(path, **read)


def fitted(frame: pd.DataFrame, target: str | None = "y", **choices) -> TablePreprocessing:
    return TablePreprocessing.fit(frame, infer_columns(frame, target, **choices), target)


PEOPLE = '''age,"home town",smoker,"it's ""ok""",y
31,Oslo,yes,1,a
45,Bergen,no,0,b
,Oslo,yes,1,a
52,Troms,NA,0,b
'''


# --- types and features ------------------------------------------------------------------


def test_types_are_inferred_and_names_may_hold_spaces_and_quotes(tmp_path):
    frame = table(tmp_path, PEOPLE)
    rules = infer_columns(frame, "y")
    assert [(r.name, r.type, r.missing) for r in rules] == [
        ("age", "numeric", "mean"),
        ("home town", "categorical", "constant"),
        ("smoker", "binary", "most_frequent"),
        ('it\'s "ok"', "binary", "most_frequent"),
    ]
    prep = TablePreprocessing.fit(frame, rules, "y")
    assert prep.feature_names() == [
        "age",
        "home town=Bergen",
        "home town=Oslo",
        "home town=Troms",
        "smoker=yes",
        'it\'s "ok"=1',
    ]


def test_declared_types_win_and_true_false_columns_are_binary(tmp_path):
    frame = table(tmp_path, "code,flag,y\n1,True,0\n2,False,1\n3,,0\n", text_columns=["code"])
    rules = infer_columns(frame, "y", declared={"code": {"type": "categorical"}})
    assert [(r.name, r.type) for r in rules] == [("code", "categorical"), ("flag", "binary")]
    assert fitted(frame, declared={"code": {"type": "categorical"}}).feature_names() == [
        "code=1",
        "code=2",
        "code=3",
        "flag=1",
    ]


def test_features_keep_their_order_and_drop_keeps_the_files(tmp_path):
    frame = table(tmp_path, PEOPLE)
    assert [r.name for r in infer_columns(frame, "y", features=["smoker", "age"])] == ["smoker", "age"]
    assert [r.name for r in infer_columns(frame, "y", drop=["home town"])] == ["age", "smoker", 'it\'s "ok"']


@pytest.mark.parametrize(
    ("choices", "fragment"),
    [
        ({"features": ["age", "size"]}, "data.dataset.features: no column 'size'"),
        ({"drop": ["nope"]}, "data.dataset.drop: no column 'nope'"),
        ({"features": ["age"], "drop": ["smoker"]}, "set only one of features, drop"),
        ({"features": ["age", "y"]}, "'y' is the target"),
        ({"features": ["age", "age"]}, "'age' is listed twice"),
        ({"features": ["age"], "declared": {"smoker": {"type": "binary"}}}, "not among the features"),
        ({"declared": {"age": {"type": "text"}}}, "'text' is not a column type"),
        ({"declared": {"age": {"kind": "numeric"}}}, "unknown key 'kind'"),
        ({"declared": {"home town": {"missing": "mean"}}}, "mean needs numbers, but 'home town' is"),
        ({"declared": {"age": {"missing": "drop", "indicator": True}}}, "nothing is left to indicate"),
    ],
)
def test_spec_choices_are_checked_against_the_header(tmp_path, choices, fragment):
    frame = table(tmp_path, PEOPLE)
    with pytest.raises(DataError, match=".*") as error:
        infer_columns(frame, "y", **choices)
    assert fragment in str(error.value)


def test_an_unknown_target_is_named(tmp_path):
    with pytest.raises(DataError, match=r"dataset.target: no column 'label' in .*table.csv \(5 columns\)"):
        infer_columns(table(tmp_path, PEOPLE), "label")


# --- fitting on training rows ----------------------------------------------------------------


def test_categories_come_from_the_training_rows_only_and_unseen_ones_encode_as_zeros(tmp_path):
    frame = table(tmp_path, "city,y\nOslo,0\nBergen,1\nOslo,0\nTroms,1\nParis,0\n")
    rules = infer_columns(frame, "y")
    prep = TablePreprocessing.fit(frame.iloc[:3], rules, "y")
    assert prep.columns[0].categories == ("Bergen", "Oslo")  # sorted; Troms and Paris are test rows
    np.testing.assert_array_equal(prep.transform(frame), [[0, 1], [1, 0], [0, 1], [0, 0], [0, 0]])


def test_fill_values_come_from_the_training_rows(tmp_path):
    frame = table(tmp_path, "a,b,c,d,e,y\n1,x,p,u,v,0\n2,x,q,u,v,1\n6,z,q,w,t,0\n,,,,,1\n100,y,q,w,w,0\n")
    declared = {
        "a": {"missing": "median", "indicator": True},
        "b": {"missing": "most_frequent"},
        "c": {"missing": "mean"},
        "d": {"missing": "constant"},
    }
    rules = infer_columns(frame, "y", declared=declared)
    assert [r.type for r in rules] == ["numeric", "categorical", "binary", "binary", "categorical"]
    train = frame.iloc[:4]
    prep = TablePreprocessing.fit(train, rules, "y")
    assert [c.fill for c in prep.columns] == [2.0, "x", pytest.approx(2 / 3), 0.0, None]
    assert prep.feature_names() == ["a", "a (missing)", "b=x", "b=z", "c=q", "d=w", "e=t", "e=v"]
    # row 5 (all missing but y): a's median and its indicator, b's commonest x, c's share of q,
    # d's constant 0, e's all-zero one-hot
    np.testing.assert_allclose(prep.transform(train)[3], [2, 1, 1, 0, 2 / 3, 0, 0, 0], rtol=1e-6)
    mean_of_a = TablePreprocessing.fit(train, [ColumnRule("a", "numeric", "mean")])
    assert mean_of_a.columns[0].fill == 3.0  # the training rows 1, 2, 6: not the test row's 100


def test_missing_drop_drops_training_rows_and_refuses_them_at_predict_time(tmp_path):
    frame = table(tmp_path, "a,b,y\n1,2,0\n,3,1\n4,5,0\n7,8,1\n")
    rules = infer_columns(frame, "y", declared={"a": {"missing": "drop"}})
    kept = drop_missing_rows(frame, rules)
    assert kept["b"].tolist() == [2, 5, 8]
    prep = TablePreprocessing.fit(kept, rules, "y")
    with pytest.raises(DataError, match=r"table.csv row 3, column 1: missing, .* missing: drop"):
        prep.transform(frame)


def test_a_missing_column_is_named_and_extra_columns_are_ignored(tmp_path):
    prep = fitted(table(tmp_path, PEOPLE))
    predict = table(tmp_path, 'extra,smoker,"home town",age,"it\'s ""ok"""\n9,no,Oslo,40,1\n', name="new.csv")
    np.testing.assert_array_equal(prep.transform(predict), [[40, 0, 1, 0, 0, 1]])
    with pytest.raises(DataError, match=r"new.csv: no column 'age'; the model was trained on it"):
        prep.transform(predict.drop(columns=["age"]))


def test_whole_numbers_declared_categorical_read_as_whole_numbers(tmp_path):
    frame = table(tmp_path, "grade,y\n1,a\n,b\n3,a\n")  # float: a cell is missing
    assert fitted(frame, declared={"grade": {"type": "categorical"}}).feature_names() == [
        "grade=1",
        "grade=3",
    ]


def test_scaled_features_mark_the_numeric_columns_only(tmp_path):
    prep = fitted(table(tmp_path, PEOPLE), declared={"age": {"indicator": True}})
    assert prep.scaled_features().tolist() == [True, False, False, False, False, False, False]


def test_codes_read_as_text_keep_their_spelling_at_predict_time(tmp_path):
    declared = {"zip": {"type": "categorical"}}
    frame = table(tmp_path, "zip,y\n007,a\n010,b\n", text_columns=declared_text_columns(declared))
    prep = fitted(frame, declared=declared)
    assert prep.columns[0].categories == ("007", "010")
    assert prep.text_columns() == ["zip", "y"]
    again = table(tmp_path, "zip\n010\n7\n", name="new.csv", text_columns=prep.text_columns())
    np.testing.assert_array_equal(prep.transform(again), [[0, 1], [0, 0]])


# --- the target ----------------------------------------------------------------------------


def test_a_text_target_becomes_class_indices_with_its_names_recorded(tmp_path):
    frame = table(tmp_path, PEOPLE)
    prep = fitted(frame)
    assert prep.target == tables.TargetEncoding("y", "classification", ("a", "b"))
    assert prep.encode_target(frame).tolist() == [0, 1, 0, 1]
    assert prep.encode_target(frame).dtype == np.int32


def test_numeric_targets_are_classes_when_whole_numbers_else_regression(tmp_path):
    frame = table(tmp_path, "x,k,r\n1,3,0.5\n2,5,1.5\n3,3,2.25\n")
    classes = TablePreprocessing.fit(frame, [ColumnRule("x", "numeric", "mean")], "k")
    assert classes.target.classes == (3.0, 5.0)
    assert classes.encode_target(frame).tolist() == [0, 1, 0]
    regression = TablePreprocessing.fit(frame, [ColumnRule("x", "numeric", "mean")], "r")
    assert regression.target.task == "regression"
    np.testing.assert_array_equal(regression.encode_target(frame), np.float32([0.5, 1.5, 2.25]))
    with pytest.raises(DataError, match="regression needs a numeric target"):
        TablePreprocessing.fit(
            table(tmp_path, PEOPLE), [ColumnRule("age", "numeric", "mean")], "y", REGRESSION
        )


# --- preprocessing.json ----------------------------------------------------------------------


def test_the_record_round_trips_through_json(tmp_path):
    frame = table(tmp_path, PEOPLE)
    prep = fitted(frame, declared={"age": {"indicator": True, "missing": "median"}})
    record = json.loads(json.dumps(prep.to_json()))
    assert record["format"] == "dnnlab-table" and record["version"] == 1
    assert record["features"] == prep.feature_names()
    again = TablePreprocessing.from_json(record)
    assert again == prep
    np.testing.assert_array_equal(again.transform(frame), prep.transform(frame))


def _damaged(record, path, value):
    *keys, last = path
    place = record
    for key in keys:
        place = place[key]
    place[last] = value
    return record


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (["version"], 2, "table.format"),
        (["columns"], [], "table.columns"),
        (["columns", 0, "type"], "text", "table.columns[0].type"),
        (["columns", 0, "fill"], "NaN", "table.columns[0].fill"),
        (["columns", 0, "fill"], True, "table.columns[0].fill"),
        (["columns", 1, "categories"], ["Oslo", "Oslo"], "table.columns[1].categories"),
        (["columns", 1, "categories"], [str(i) for i in range(101)], "table.columns[1].categories"),
        (["columns", 1, "missing"], "mean", "table.columns[1].missing"),
        (["columns", 2, "categories"], ["no", 1], "table.columns[2].categories"),
        (["columns", 0, "name"], "x" * 1001, "table.columns[0].name"),
        (["columns", 0, "extra"], 1, "table.columns[0]"),
        (["target", "classes"], ["a"], "table.target"),
        (["features"], ["age"], "table.features"),
    ],
)
def test_a_damaged_record_is_one_line_naming_the_key(tmp_path, path, value, fragment):
    record = _damaged(fitted(table(tmp_path, PEOPLE)).to_json(), path, value)
    with pytest.raises(RunDirError) as error:
        TablePreprocessing.from_json(record, where="run/preprocessing.json")
    message = str(error.value)
    assert message.startswith(f"run/preprocessing.json: {fragment}") and "\n" not in message


def test_a_categorical_fill_must_be_one_of_its_categories(tmp_path):
    record = fitted(table(tmp_path, PEOPLE), declared={"home town": {"missing": "most_frequent"}}).to_json()
    record["columns"][1]["fill"] = "Paris"
    with pytest.raises(RunDirError, match=r"table.columns\[1\].fill"):
        TablePreprocessing.from_json(record)


# --- bad tables ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "declared", "fragment"),
    [
        ("a,y\n1,0\n2,0\n", {}, "the target 'y' has one class in the training rows"),
        ("a,b,y\n1,,0\n2,,1\n", {}, "table.csv, column 2 has no values"),
        ("a,y\n1,0\n2.5,1\nx,0\n", {"a": {"type": "numeric"}}, "table.csv row 4, column 1: not a number"),
        ("a,y\n1,0\ninf,1\n", {}, "table.csv row 3, column 1: infinite"),
        ("a,y\n1,0\n2,\n3,1\n", {}, "table.csv row 3, column 2 ('y'): the target is missing"),
        ("a,b,y\n1,u,0\n2,v,1\n3,w,1\n", {"b": {"type": "binary"}}, "column 2 is binary but has 3 distinct"),
    ],
)
def test_bad_tables_are_one_line_naming_the_row_and_column(tmp_path, text, declared, fragment):
    frame = table(tmp_path, text)
    with pytest.raises(DataError) as error:
        fitted(frame, declared=declared)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_a_test_label_unseen_in_training_is_located(tmp_path):
    frame = table(tmp_path, "a,y\n1,cat\n2,dog\n3,cat\n4,bird\n")
    prep = fitted(frame.iloc[:3])
    with pytest.raises(DataError, match=r"table.csv row 5, column 2 \('y'\): a class the training rows"):
        prep.encode_target(frame)


def test_row_numbers_count_blank_rows_as_a_spreadsheet_does(tmp_path):
    frame = table(tmp_path, "a,y\n1,0\n\n2,1\n,\nx,0\n\n")
    assert len(frame) == 3
    with pytest.raises(DataError, match="row 6, column 1: not a number"):
        infer_columns(frame, "y", declared={"a": {"type": "numeric"}})


def test_high_cardinality_categorical_columns_are_refused_with_advice(tmp_path):
    rows = "".join(f"id{i},{i % 2}\n" for i in range(101))
    with pytest.raises(DataError, match=r"column 1 has 101 categories .* drop it, or declare it numeric"):
        fitted(table(tmp_path, "code,y\n" + rows))


def test_a_binary_column_refuses_a_third_value_at_predict_time(tmp_path):
    prep = fitted(table(tmp_path, PEOPLE))
    new = table(tmp_path, 'age,"home town",smoker,"it\'s ""ok"""\n3,Oslo,maybe,1\n', name="new.csv")
    with pytest.raises(DataError, match=r"new.csv row 2, column 3: a value other than the two"):
        prep.transform(new)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"a,b\n1,2\n3,4,5\n", "row 3 has more cells than the header"),
        (b"a,a,y\n1,2,3\n", "columns 1 and 2 of the header share a name"),
        (b"a,y\n\xff\xfe,1\n", "is not UTF-8 text"),
        (b"", "is empty"),
        (b"a,y\n", "has a header but no data rows"),
    ],
)
def test_unreadable_files_are_one_line(tmp_path, content, fragment):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=fragment):
        read_table(path)


def test_a_file_over_the_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(table_files, "MAX_TABLE_BYTES", 16)
    path = tmp_path / "big.csv"
    path.write_text("a,y\n" + "1,0\n" * 10)
    with pytest.raises(DataError, match=r"big.csv has 44 bytes, more than the 16 allowed"):
        read_table(path)


def test_a_fifo_or_another_suffix_is_refused(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        read_table(fifo)
    with pytest.raises(DataError, match=r"expected a table file \(.csv, .parquet, .pq\), received '.xlsx'"):
        read_table(tmp_path / "data.xlsx")


def test_a_header_from_the_file_is_located_never_quoted(tmp_path):
    """Errors about columns the spec does not name show their position, not their header text."""
    rows = "".join(f"v{i},{i % 2}\n" for i in range(101))
    with pytest.raises(DataError) as error:
        fitted(table(tmp_path, f"{SECRET},y\n{rows}"))
    assert SECRET not in str(error.value) and "column 1" in str(error.value)


# --- parquet and the penguins ----------------------------------------------------------------


def test_parquet_reads_as_the_csv_does(tmp_path):
    pytest.importorskip("pyarrow")
    frame = table(tmp_path, PEOPLE)
    frame.to_parquet(tmp_path / "table.parquet")
    from_parquet = read_table(tmp_path / "table.parquet")
    prep = fitted(frame)
    assert fitted(from_parquet) == prep
    np.testing.assert_array_equal(prep.transform(from_parquet), prep.transform(frame))


def test_the_penguins_ship_with_dnnlab_and_encode_to_nine_columns():
    frame = load_penguins()
    assert frame.shape == (344, 8)
    assert int(frame["sex"].isna().sum()) == 11 and int(frame["bill_length_mm"].isna().sum()) == 2
    rules = infer_columns(frame, TARGET)
    prep = TablePreprocessing.fit(frame, rules, TARGET)
    assert prep.target.classes == ("Adelie", "Chinstrap", "Gentoo")
    assert prep.feature_names()[:3] == ["island=Biscoe", "island=Dream", "island=Torgersen"]
    assert prep.feature_names()[7] == "sex=male"
    x = prep.transform(frame)
    assert x.shape == (344, 9) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.bincount(prep.encode_target(frame)).tolist() == [152, 68, 124]
