"""Sweep axes: the `-g KEY=AXIS` grammar and drawing values from an axis.

An axis is a comma-separated list of YAML values with brackets respected
(`relu,elu,selu`, `[64,32],[128]`), or one of the forms of Hydra's sweep overrides:
`range(a,b[,step])` and `choice(...)` are lists and may be crossed in a grid; `uniform(a,b)`,
`loguniform(a,b)` and `randint(a,b)` are distributions, drawn only with `--random N`.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

import yaml

from dnnlab.errors import ConfigError
from dnnlab.files import safe_yaml
from dnnlab.spec.wording import short

# The most trials a sweep may have, and so the most values one axis or `seeds` may hold: each
# trial is a run directory, and sweep.json (read back on --resume) lists them all.
MAX_TRIALS = 10_000
DISTRIBUTIONS = ("uniform", "loguniform", "randint")
LISTS = ("range", "choice")
_CALL = re.compile(r"^\s*([a-z]+)\((.*)\)\s*$", re.DOTALL)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# YAML 1.1 reads 1e-4 as a string (it wants 1.0e-4); on a command line it means a number.
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


@dataclass(frozen=True)
class Axis:
    """One swept key: a list of values, or a distribution (`kind` uniform, loguniform, randint)."""

    key: str
    kind: str  # "list" or one of DISTRIBUTIONS
    values: tuple[Any, ...] = ()  # the list's values
    low: float = 0.0  # a distribution's bounds
    high: float = 0.0
    text: str = ""  # as given, for sweep.yaml and error messages

    @property
    def is_list(self) -> bool:
        return self.kind == "list"

    def draw(self, rng: random.Random) -> Any:
        """One value: uniform over a list's values, else from the distribution."""
        if self.is_list:
            return self.values[rng.randrange(len(self.values))]
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "loguniform":
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.randrange(int(self.low), int(self.high))  # randint: low <= n < high

    def to_yaml(self) -> Any:
        """What sweep.yaml records: a list's values, or the distribution's text."""
        return list(self.values) if self.is_list else self.text


def split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets, braces, parentheses and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _yaml_value(key: str, text: str) -> Any:
    if not text.strip():
        raise ConfigError(f"-g {key}: an empty value in the list; expected e.g. -g {key}=a,b,c")
    try:
        value = safe_yaml.loads(text)
    except ConfigError as exc:
        raise ConfigError(f"-g {key}: {short(text.strip())}: {exc}") from None
    return as_number(value)


def as_number(value: Any) -> Any:
    """`1e-4` as the float it means (YAML 1.1 leaves it a string); other values unchanged."""
    return float(value) if isinstance(value, str) and _FLOAT.match(value.strip()) else value


def yaml_text(value: Any) -> str:
    """A value as one line of YAML that reads back as the same value (for `-o KEY=VALUE`)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf")).strip()
    return text.removesuffix("...").strip()


def _number(key: str, text: str, kind: str) -> float:
    value = _yaml_value(key, text)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"-g {key}: {kind}(...) takes numbers; received {text.strip()!r}")
    return value


def parse_axis(key: str, text: str) -> Axis:
    """The axis of `-g KEY=TEXT`; every mistake is one ConfigError line naming the key."""
    key = key.strip()
    if not _KEY.match(key):
        raise ConfigError(f"-g {key}={text}: expected a dotted spec key, e.g. -g model.activation=relu,elu")
    if not text.strip():
        raise ConfigError(f"-g {key}=: no values; expected e.g. -g {key}=a,b or -g {key}=range(1,4)")
    call = _CALL.match(text)
    if call and call.group(1) in (*LISTS, *DISTRIBUTIONS):
        return _parse_call(key, call.group(1), call.group(2), text.strip())
    if call:
        known = ", ".join(f"{name}(...)" for name in (*LISTS, *DISTRIBUTIONS))
        raise ConfigError(f"-g {key}: unknown sweep function {call.group(1)}(...); expected one of {known}")
    values = tuple(_yaml_value(key, part) for part in split_top_level(text))
    return _list_axis(key, values, text.strip())


def _list_axis(key: str, values: tuple[Any, ...], text: str) -> Axis:
    if not values:
        raise ConfigError(f"-g {key}: no values; expected at least one")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"-g {key}: a value is listed twice in {text}; each trial must differ")
    return Axis(key, "list", values, text=text)


def _parse_call(key: str, name: str, inner: str, text: str) -> Axis:
    args = [part for part in split_top_level(inner)] if inner.strip() else []
    if name == "choice":
        return _list_axis(key, tuple(_yaml_value(key, a) for a in args), text)
    numbers = [_number(key, a, name) for a in args]
    if name == "range":
        if len(numbers) not in (2, 3) or not all(isinstance(n, int) for n in numbers):
            raise ConfigError(f"-g {key}: range(a,b[,step]) takes two or three integers; received {text}")
        span = range(*numbers) if numbers[-1] != 0 or len(numbers) == 2 else range(0)
        if len(span) > MAX_TRIALS:  # counted before it is built: range(0,10**12) would fill the memory
            raise ConfigError(
                f"-g {key}: {text} has {len(span):,} values; a sweep has at most {MAX_TRIALS:,} trials"
            )
        values = tuple(span)
        if not values:
            raise ConfigError(f"-g {key}: {text} is empty; expected a < b for a positive step")
        return Axis(key, "list", values, text=text)
    if len(numbers) != 2:
        raise ConfigError(f"-g {key}: {name}(a,b) takes two numbers; received {text}")
    low, high = numbers
    if not low < high:
        raise ConfigError(f"-g {key}: {text} needs a < b")
    if name == "loguniform" and low <= 0:
        raise ConfigError(
            f"-g {key}: {text} needs 0 < a < b (a log scale has no 0), e.g. loguniform(1e-4,1e-1)"
        )
    if name == "randint" and not (isinstance(low, int) and isinstance(high, int)):
        raise ConfigError(f"-g {key}: randint(a,b) takes integers; received {text}")
    return Axis(key, name, low=low, high=high, text=text)


def parse_axis_option(option: str) -> Axis:
    """`-g KEY=AXIS` as typed on the command line."""
    key, sep, text = option.partition("=")
    if not sep:
        raise ConfigError(f"-g {option}: expected KEY=AXIS, e.g. -g model.activation=relu,elu")
    return parse_axis(key, text)


def axis_from_yaml(key: str, value: Any) -> Axis:
    """An axis of a sweep file: a YAML list is the list of values; a string is read with the
    `-g` grammar (so `relu,elu` and `loguniform(1e-4,1e-2)` both work); a scalar is one value."""
    if isinstance(value, list):
        return _list_axis(key, tuple(as_number(v) for v in value), yaml_text(value))
    if isinstance(value, str):
        return parse_axis(key, value)
    return Axis(key, "list", (value,), text=yaml_text(value))


def grid_refusal(axes: list[Axis]) -> str | None:
    """Why these axes cannot form a grid (a distribution among them), or None."""
    drawn = [a for a in axes if not a.is_list]
    if not drawn:
        return None
    return (
        f"-g {drawn[0].key}={drawn[0].text} is a distribution: a grid needs lists; draw trials "
        f"with --random N (or `random:` in a sweep file), or give values, e.g. -g {drawn[0].key}=a,b"
    )
