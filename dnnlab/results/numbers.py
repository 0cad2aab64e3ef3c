"""How a mean ± std and its interval read for people: the std to 3 significant digits, the mean
and the interval to the same decimal place, so the digits shown are the ones the spread vouches
for (`0.1961 ± 0.0436 [0.1420, 0.2502]`, not `0.1961 ± 0.04359 [0.142, 0.2502]`). The table,
markdown, the report and the sweep summary show them so; csv and json keep every digit.
"""

from __future__ import annotations

import math

from dnnlab.results.compare import Stat
from dnnlab.rundir.loading import MISSING

MEAN_DIGITS = 6  # a mean never shows more significant digits than this, however small its std


def format_stat(stat: Stat) -> str:
    """`0.1961 ± 0.0436`: the std to 3 significant digits and the mean to the same decimal place
    (at most MEAN_DIGITS significant digits); one seed: the mean alone, to 4; no spread: `± 0`."""
    if stat.mean is None:
        return MISSING.label
    if stat.std is None:
        return _short(stat.mean)
    places = decimal_places(stat.std)
    if places is None:
        return f"{_short(stat.mean)} ± {_short(stat.std)}"
    shown = _capped(places, stat.mean)
    std = _fixed(stat.std, places) if shown == places else f"{stat.std:.3g}"
    return f"{_fixed(stat.mean, shown)} ± {std}"


def format_interval(low: float | None, high: float | None, std: float | None, mean: float | None) -> str:
    """`[0.142, 0.250]`: an interval of a mean, to the decimal place `format_stat` shows the mean."""
    if low is None or high is None:
        return MISSING.label
    places = decimal_places(std) if std is not None else None
    if places is None:
        return f"[{_short(low)}, {_short(high)}]"
    shown = _capped(places, mean if mean is not None else low)
    return f"[{_fixed(low, shown)}, {_fixed(high, shown)}]"


def decimal_places(std: float) -> int | None:
    """The decimal place of the std's third significant digit (0.04359: 4; 1234: -1), once
    rounded (0.09996 reads 0.100: 3); None for a std of 0 or not finite."""
    if not (math.isfinite(std) and std > 0):
        return None
    rounded = float(f"{std:.3g}")
    return 2 - math.floor(math.log10(rounded))


def _capped(places: int, mean: float) -> int:
    if not math.isfinite(mean) or mean == 0:
        return places
    return min(places, MEAN_DIGITS - 1 - math.floor(math.log10(abs(mean))))


def _fixed(value: float, places: int) -> str:
    """`value` rounded to `places` decimals (negative: to tens, hundreds, ...)."""
    if not math.isfinite(value):
        return f"{value:.4g}"
    return f"{value:.{places}f}" if places > 0 else f"{round(value, places):.0f}"


def _short(value: float) -> str:
    """A lone number: 4 significant digits, as every other number of a table."""
    return f"{value:.4g}"
