"""The Palmer penguins table, shipped inside dnnlab so that `dataset: penguins` works offline.

A small real table with what the tutorials' arrays lack: text columns (species, island, sex),
missing values ("NA") and a mix of units. 344 rows; the target is `species` (3 classes). The data
is CC0; PENGUINS-LICENSE.txt beside this file says where it comes from.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from dnnlab.data.table_files import read_table

PATH = Path(__file__).with_name("penguins.csv")
TARGET = "species"


def load_penguins(text_columns: Iterable[str] = ()) -> pd.DataFrame:
    """The table as `read_table` reads any CSV: 344 rows, 8 columns, NaN where the file says NA."""
    return read_table(PATH, key="data.dataset", text_columns=text_columns)
