"""The one way dnnlab reads YAML: safe loading within caps, so no input can hang it or exhaust memory.

PyYAML's safe loader still expands aliases (a "billion laughs" document of a few hundred bytes
stands for billions of values), recurses once per nesting level, and reads whatever a path
opens, a FIFO or /dev/zero included. Here a file must be a regular file of at most MAX_BYTES of
UTF-8 text, and its event stream is checked for nesting depth and for the number of values it
stands for (aliases expanded) before any Python object is built. Specs, `extends:` files, `-o`
and `-g` values, sweep files and a run's config.yaml are all read through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dnnlab.errors import ConfigError
from dnnlab.files.bounded import Refused, read_capped

MAX_BYTES = 1 << 20  # 1 MiB: a spec is a few hundred bytes, a sweep file a few kilobytes
MAX_DEPTH = 64  # nesting levels; a spec needs five or six
MAX_VALUES = 100_000  # values the document stands for, every alias (*name) expanded

_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when installed: same result, faster
_START = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_END = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class _Loader(_BASE_LOADER):
    """The safe loader, reporting a tagged value its constructor cannot read (`!!int ''`,
    `!!bool x`, an integer of thousands of digits) as a YAML error at its line, where PyYAML
    raises an IndexError, a KeyError or a ValueError."""

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError):
            value = repr(node.value) if isinstance(node.value, str) else "this value"
            value = value if len(value) <= 40 else value[:37] + "..."
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(
                problem=f"cannot read {value} as {tag}", problem_mark=node.start_mark
            ) from None


_LOADER = _Loader


def read_yaml_file(path: Path | str) -> Any:
    """Safe-load a YAML file within the caps; anything else is one ConfigError line naming the file."""
    return loads(read_text(Path(path)), str(path))


def read_text(path: Path) -> str:
    """The UTF-8 text of a regular file of at most MAX_BYTES, never blocking on a FIFO or device."""
    try:
        content = read_capped(path, MAX_BYTES)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except Refused as refused:
        if refused.size is not None:
            raise ConfigError(
                f"{path}: larger than {_MIB} MiB, the most dnnlab reads from a YAML file"
            ) from None
        raise ConfigError(f"{path}: {refused}; expected a YAML file") from None
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{content[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None


_MIB = MAX_BYTES >> 20


def loads(text: str, source: str = "") -> Any:
    """Safe-load YAML text within the caps; `source` (a file name) starts the error line."""
    prefix = f"{source}:" if source else ""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{prefix or 'YAML text:'} longer than {_MIB} MiB, the most dnnlab reads")
    try:
        _check_shape(text)
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        label = "" if isinstance(exc, _TooLarge) else "not valid YAML: "
        raise ConfigError(f"{prefix}{where} {label}{problem}".lstrip()) from None


class _TooLarge(yaml.MarkedYAMLError):
    """A document beyond MAX_DEPTH or MAX_VALUES, reported like any YAML error, with its line."""


def _check_shape(text: str) -> None:
    """Walk the event stream (no objects built) and refuse a document nested deeper than
    MAX_DEPTH or standing for more than MAX_VALUES values once its aliases are expanded.

    Each anchor remembers the expanded size of its node, so an alias costs its size without
    being expanded: a billion-laughs document is refused after reading it once.
    """
    sizes: dict[str, int] = {}  # anchor -> values its node stands for
    open_nodes: list[list[Any]] = [[None, 0]]  # [anchor, values so far] per open collection
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, _START):
            open_nodes.append([event.anchor, 1])
            if len(open_nodes) - 1 > MAX_DEPTH:
                raise _TooLarge(
                    problem=f"nested deeper than {MAX_DEPTH} levels, the most dnnlab reads",
                    problem_mark=event.start_mark,
                )
            continue
        if isinstance(event, _END):
            anchor, size = open_nodes.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            anchor, size = None, sizes.get(event.anchor, 1)
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        open_nodes[-1][1] += size
        if open_nodes[-1][1] > MAX_VALUES:
            raise _TooLarge(
                problem=f"more than {MAX_VALUES} values once aliases (*name) are expanded, "
                "the most dnnlab reads",
                problem_mark=event.start_mark,
            )
