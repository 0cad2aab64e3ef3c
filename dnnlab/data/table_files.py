"""Reading a CSV or Parquet table that a spec or `--data` names, as untrusted input, into a DataFrame.

The rules of dnnlab's other data files hold: only a regular file under a size cap, read without
blocking, and one-line errors that name the file, the row and the column but never a cell's
contents. pandas's C parser reads CSV (no parser of our own); pyarrow reads Parquet when it is
installed (`pip install 'dnnlab[parquet]'`).

Rows are numbered as a spreadsheet shows them: the header is row 1, so the frame's index label i
is row i + 2 (`row_number`). Rows whose cells are all empty are dropped, keeping the numbering of
the others. Cells that read as missing: MISSING_MARKERS (and nulls and NaN in Parquet). A CSV row
with fewer cells than the header reads its absent cells as missing (pandas's rule); one with more
is refused. Text cells lose surrounding spaces; True/False columns become 1.0/0.0.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from dnnlab.data.user_files import MAX_CSV_BYTES, refusals_as_data_errors
from dnnlab.errors import DataError
from dnnlab.files.bounded import read_capped

MISSING_MARKERS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?")
MAX_TABLE_BYTES = MAX_CSV_BYTES  # the file; a Parquet file's data, uncompressed, may be 4x that
MAX_PARQUET_DATA_BYTES = 4 * MAX_CSV_BYTES
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
_PANDAS_LINE = re.compile(r"line (\d+)")


def read_table(
    path: str | Path, key: str = "data.dataset.path", text_columns: Iterable[str] = ()
) -> pd.DataFrame:
    """The table at `path` (.csv, .parquet or .pq) with `attrs["source"]` set to the path, for messages.

    `text_columns` are read as text whatever they look like, so that a categorical column of
    codes keeps the file's spelling ("007", not 7.0): pass the declared categorical columns when
    training, and `TablePreprocessing.text_columns()` when predicting."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        allowed, received = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES), suffix or "no suffix"
        raise DataError(f"{key}: {path}: expected a table file ({allowed}), received '{received}'")
    advice = "; keep only the columns the model needs, or save it as Parquet (compressed)"
    with refusals_as_data_errors(path, key, MAX_TABLE_BYTES, "a table", advice):
        content = read_capped(path, MAX_TABLE_BYTES)  # a FIFO or a device is refused unopened
    text_columns = set(text_columns)
    if suffix in PARQUET_SUFFIXES:
        frame = _read_parquet(content, path, key, text_columns)
    else:
        frame = _read_csv(content, path, key, text_columns)
    del content
    if not len(frame.columns):
        raise DataError(f"{key}: {path} has no columns; expected a header row and data rows")
    frame = _booleans_as_numbers(frame)
    frame = _without_empty_rows(frame)
    if not len(frame):
        raise DataError(f"{key}: {path} has a header but no data rows")
    frame.attrs["source"] = str(path)
    return frame


def located(frame: pd.DataFrame, name: str, position: int | None = None) -> str:
    """`data.csv row 7, column 3`: a cell, or without `position` a column, located as a spreadsheet
    counts rather than named, since the header is the file's contents (docs/architecture.md, "Data
    files"). Names that the spec or the run's record gives are quoted by their callers instead."""
    column = f"column {list(frame.columns).index(name) + 1}"
    if position is None:
        return f"{source_of(frame)}, {column}"
    return f"{source_of(frame)} {row_number(frame, position)}, {column}"


def row_number(frame: pd.DataFrame, position: int) -> str:
    """`row 7`: where the frame's row at `position` is in the file, as a spreadsheet counts."""
    label = frame.index[position]
    try:
        return f"row {int(label) + 2}"
    except (TypeError, ValueError):
        return f"row {label!r}"


def source_of(frame: pd.DataFrame) -> str:
    """The file a frame came from (read_table's `attrs`), for messages."""
    return str(frame.attrs.get("source", "the table"))


def quoted(name: object) -> str:
    """A column name the spec or the run's record gives, in a message: quoted with escapes, short."""
    text = repr(str(name))
    return text if len(text) <= 80 else text[:76] + "...'"


# --- csv -----------------------------------------------------------------------------------


def _read_csv(content: bytes, path: Path, key: str, text_columns: set[str]) -> pd.DataFrame:
    header = _csv_header(content, path, key)
    dtype = {i: "str" for i, name in enumerate(header) if name.strip() in text_columns}
    try:
        frame = pd.read_csv(
            io.BytesIO(content),
            dtype=dtype or None,
            na_values=list(MISSING_MARKERS),
            keep_default_na=False,
            skip_blank_lines=False,  # blank rows read as empty, keeping the row numbers
            skipinitialspace=True,
            encoding="utf-8",
            low_memory=False,  # one type per column, not one per chunk
        )
    except UnicodeDecodeError:
        raise DataError(f"{key}: {path} is not UTF-8 text; expected a CSV file") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{key}: {path} is empty; expected a header row and data rows") from None
    except (pd.errors.ParserError, ValueError, OverflowError) as error:
        found = _PANDAS_LINE.search(str(error))
        where = f" row {found.group(1)} has more cells than the header, or" if found else ""
        raise DataError(f"{key}: {path}{where} is not valid CSV (check quotes and separators)") from None
    frame.columns = [str(name).strip() for name in frame.columns]
    return _stripped(frame)


def _csv_header(content: bytes, path: Path, key: str) -> list[str]:
    """The header's names, refusing duplicates (pandas would rename the second 'a' to 'a.1')."""
    first = content[: content.find(b"\n") if b"\n" in content else len(content)]
    try:
        names = next(csv.reader([first.decode("utf-8-sig")]), [])
    except (UnicodeDecodeError, csv.Error):
        raise DataError(f"{key}: {path} row 1 is not a valid CSV header of UTF-8 text") from None
    _refuse_duplicates([name.strip() for name in names], path, key)
    return names


def _refuse_duplicates(names: list[str], path: Path, key: str) -> None:
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(f"{key}: {path}: columns {seen[name]} and {number} of the header share a name")
        seen[name] = number


# --- parquet -------------------------------------------------------------------------------


def _read_parquet(content: bytes, path: Path, key: str, text_columns: set[str]) -> pd.DataFrame:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{key}: {path}: Parquet needs pyarrow: pip install 'dnnlab[parquet]'") from None
    try:
        parquet = pq.ParquetFile(io.BytesIO(content))
        meta = parquet.metadata
        data_bytes = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if data_bytes > MAX_PARQUET_DATA_BYTES:
            raise DataError(
                f"{key}: {path} holds {data_bytes:,} bytes of data uncompressed, more than the "
                f"{MAX_PARQUET_DATA_BYTES:,} allowed"
            )
        table = parquet.read()
    except DataError:
        raise
    except (pa.ArrowException, OSError, ValueError):
        raise DataError(f"{key}: {path} is not a readable Parquet file") from None
    names = [str(name).strip() for name in table.column_names]
    _refuse_duplicates(names, path, key)
    for i, name in enumerate(names):
        column = table.column(i)
        if pa.types.is_dictionary(column.type):  # pandas would make it a 'category' column
            column = column.cast(column.type.value_type)
        if name in text_columns or pa.types.is_large_string(column.type):
            try:
                column = column.cast(pa.string())
            except pa.ArrowException:
                raise DataError(f"{key}: {path}: column {i + 1} cannot be read as text") from None
        table = table.set_column(i, name, column)
    return _stripped(table.to_pandas())


# --- shared --------------------------------------------------------------------------------


def _stripped(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells without surrounding spaces ("Biscoe " is "Biscoe"); pandas 2 holds text as object."""
    for name in frame.columns:
        dtype = frame[name].dtype
        if isinstance(dtype, pd.StringDtype) or (
            pd.api.types.is_object_dtype(dtype)
            and pd.api.types.infer_dtype(frame[name], skipna=True) == "string"
        ):
            frame[name] = frame[name].str.strip()
    return frame


def _booleans_as_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """True/False columns (bool, or object when some cells are missing) as 1.0/0.0/NaN, so that
    they are numbers like the 0/1 columns they mean."""
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column.dtype) or (
            pd.api.types.is_object_dtype(column.dtype)
            and pd.api.types.infer_dtype(column, skipna=True) == "boolean"
        ):
            frame[name] = column.astype("float64")
    return frame


def _without_empty_rows(frame: pd.DataFrame) -> pd.DataFrame:
    empty = frame.isna().all(axis=1).to_numpy()
    return frame[~empty] if empty.any() else frame
