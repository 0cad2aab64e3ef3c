"""Which columns of a table are features, and of which type: the spec's choices (`features` or
`drop`, `columns: {NAME: {type, missing, indicator}}`, passed as plain values, not spec models)
checked against the header, and inference for what is not declared: text is categorical, numbers
are numeric, a column with exactly two distinct values is binary. Default missing policies:
numeric mean, binary most_frequent, categorical constant (an all-zero one-hot row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dnnlab.data.table_cells import has_two_values, is_numbers, is_text, numbers_of
from dnnlab.data.table_files import located, quoted, source_of
from dnnlab.errors import DataError

NUMERIC, CATEGORICAL, BINARY = "numeric", "categorical", "binary"
COLUMN_TYPES = (NUMERIC, CATEGORICAL, BINARY)
MISSING_POLICIES = ("mean", "median", "most_frequent", "constant", "drop")
DEFAULT_MISSING = {NUMERIC: "mean", BINARY: "most_frequent", CATEGORICAL: "constant"}
RULE_KEYS = ("type", "missing", "indicator")


@dataclass(frozen=True)
class ColumnRule:
    """One feature column as the spec and inference settle it, before anything is fitted."""

    name: str
    type: str
    missing: str
    indicator: bool = False


def infer_columns(
    frame: pd.DataFrame,
    target: str | None,
    features: Sequence[str] | None = None,
    drop: Sequence[str] | None = None,
    declared: Mapping[str, Mapping[str, Any]] | None = None,
    key: str = "data.dataset",
) -> list[ColumnRule]:
    """The feature columns in order (`features` as listed, else the file's order without `drop`
    and the target), each with its declared or inferred type and missing-value policy.

    Checks every name against the header, each declared rule's values, that no feature is empty,
    and that a declared numeric column holds numbers in every row."""
    source = source_of(frame)
    names = [str(name) for name in frame.columns]
    if target is not None:
        _require_column(target, names, f"{key}.target", source)
    chosen = _chosen(names, target, features, drop, key, source)
    declared = dict(declared or {})
    for name in declared:
        if name not in chosen:
            why = "it is the target" if name == target else "it is not among the features"
            if name not in names:
                why = f"{source} has no such column"
            raise DataError(f"{key}.columns.{quoted(name)}: {why}; declare only feature columns")
    return [_rule(frame, name, declared.get(name), f"{key}.columns.{quoted(name)}") for name in chosen]


def declared_text_columns(declared: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    """The columns declared categorical, which `read_table` should read as text."""
    return [name for name, rule in (declared or {}).items() if (rule or {}).get("type") == CATEGORICAL]


def drop_missing_rows(frame: pd.DataFrame, columns: Sequence[ColumnRule]) -> pd.DataFrame:
    """The frame without the rows missing a value in a `missing: drop` column; call it on the whole
    table before the split, so that training, validation and test rows follow the same rule."""
    dropping = [rule.name for rule in columns if rule.missing == "drop"]
    if not dropping:
        return frame
    kept = frame[~frame[dropping].isna().any(axis=1).to_numpy()]
    if not len(kept):
        raise DataError(
            f"{source_of(frame)}: every row misses a value in a column with missing: drop "
            f"({', '.join(quoted(name) for name in dropping)}); choose another missing policy"
        )
    return kept


def _chosen(names: list[str], target, features, drop, key: str, source: str) -> list[str]:
    if features is not None and drop is not None:
        raise DataError(f"{key}: set only one of features, drop")
    listed = features if features is not None else drop or []
    which = "features" if features is not None else "drop"
    for name in listed:
        _require_column(name, names, f"{key}.{which}", source)
        if list(listed).count(name) > 1:
            raise DataError(f"{key}.{which}: {quoted(name)} is listed twice; list each column once")
    if features is not None and target in features:
        raise DataError(f"{key}.features: {quoted(target)} is the target; it cannot be a feature as well")
    chosen = list(features) if features is not None else [n for n in names if n != target and n not in listed]
    if not chosen:
        raise DataError(f"{key}: {source} has no feature columns left besides the target")
    return chosen


def _require_column(name: str, names: list[str], key: str, source: str) -> None:
    if name not in names:
        raise DataError(
            f"{key}: no column {quoted(name)} in {source} ({len(names)} columns); "
            "name it exactly as the header row does"
        )


def _rule(frame: pd.DataFrame, name: str, declared: Mapping[str, Any] | None, key: str) -> ColumnRule:
    kind, missing, indicator = _declared(declared, key)
    column = frame[name]
    if column.isna().all():
        raise DataError(f"{located(frame, name)} has no values, every row misses it; drop the column")
    if kind is None:
        kind = _inferred_type(frame, name)
    elif kind == NUMERIC and not is_numbers(column):
        numbers_of(frame, name)  # names the first cell that is not a number
    missing = missing or DEFAULT_MISSING[kind]
    if kind == CATEGORICAL and missing in ("mean", "median"):
        raise DataError(
            f"{key}.missing: {missing} needs numbers, but {quoted(name)} is categorical; "
            "use most_frequent, constant or drop"
        )
    if indicator and missing == "drop":
        raise DataError(
            f"{key}.indicator: rows missing {quoted(name)} are dropped: nothing is left to indicate"
        )
    return ColumnRule(name, kind, missing, indicator)


def _declared(declared: Mapping[str, Any] | None, key: str) -> tuple[str | None, str | None, bool]:
    declared = declared or {}
    if not isinstance(declared, Mapping):
        raise DataError(f"{key}: expected a mapping with keys {', '.join(RULE_KEYS)}")
    unknown = sorted(set(declared) - set(RULE_KEYS))
    if unknown:
        raise DataError(f"{key}: unknown key {unknown[0]!r}; allowed: {', '.join(RULE_KEYS)}")
    kind, missing, indicator = declared.get("type"), declared.get("missing"), declared.get("indicator")
    if kind is not None and kind not in COLUMN_TYPES:
        raise DataError(f"{key}.type: {kind!r} is not a column type; allowed: {', '.join(COLUMN_TYPES)}")
    if missing is not None and missing not in MISSING_POLICIES:
        raise DataError(f"{key}.missing: {missing!r} is not a policy; allowed: {', '.join(MISSING_POLICIES)}")
    if indicator is not None and not isinstance(indicator, bool):
        raise DataError(f"{key}.indicator: expected true or false, received {indicator!r}")
    return kind, missing, bool(indicator)


def _inferred_type(frame: pd.DataFrame, name: str) -> str:
    column = frame[name]
    if is_numbers(column):
        return BINARY if has_two_values(column) else NUMERIC
    if is_text(column):
        return BINARY if has_two_values(column) else CATEGORICAL
    raise DataError(
        f"{located(frame, name)} holds {column.dtype} values; expected numbers or text; drop it or convert it"
    )
