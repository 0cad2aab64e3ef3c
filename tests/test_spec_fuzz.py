"""Property-based fuzz of the spec reader: any file is either a valid spec or one DnnlabError line.

Random YAML-ish documents (spec keys, flow and block syntax, anchors and aliases, tags, odd
numbers) and random mutations of the shipped configs (values replaced by arbitrary data, keys
deleted or added, text spliced) go through `check_spec`, as `dnnlab check` runs it. Anything but
a valid spec or a one-line DnnlabError (a TypeError, a RecursionError, a multi-line message) is a
bug. The thorough runs are `slow`; a small deterministic sample runs in the fast suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnnlab.data.checked_spec import check_spec
from dnnlab.errors import DnnlabError

CONFIGS = sorted(
    p for p in (Path(__file__).resolve().parents[1] / "configs").glob("**/*.yaml") if "sweeps" not in p.parts
)
SHIPPED = {p.name: p.read_text(encoding="utf-8") for p in CONFIGS}

TOKENS = [
    "name: ", "data: ", "model: ", "training: ", "dataset: ", "iris", "digits", "hidden: ", "layers: ",
    "type: ", "dense", "units: ", "activation: ", "relu", "selu", "optimizer: ", "sgd", "nadam",
    "learning_rate: ", "epochs: ", "seed: ", "monitor: ", "val_loss", "loss: ", "metrics: ", "schedule: ",
    "plateau", "early_stopping: ", "validation: ", "extends: ", "spec: ",
    "[", "]", "{", "}", ", ", ": ", "- ", "\n", "\n  ", "\n    ", " ", "\t", "'", '"', "#", "? ",
    "&a ", "*a", "&b ", "*b", "<<: ", "!!str ", "!!int ", "!!binary ", "!!python/object:os.system ",
    "!!map ", "!!set ", "---\n", "...\n", "%YAML 1.1\n", "0", "-1", "1e999", ".inf", "-.inf", ".nan",
    "4294967296", "1000000000", "0x1F", "0o7", "1_000", "null", "~", "true", "no", "2024-01-01",
    "\ufeff", "\x00", "\x85", ":x:", "[bold]",
]  # fmt: skip
YAMLISH = st.lists(st.sampled_from(TOKENS) | st.text(max_size=4), max_size=40).map("".join)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["relu", "sgd", "val_loss", "accuracy", "iris", "1e999", ".inf", "none", "type"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

FAST = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
THOROUGH = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def assert_spec_or_one_line(text: str | bytes, folder: Path) -> None:
    """`check_spec` on the text as a file: a spec, or a DnnlabError of one line."""
    path = folder / "fuzz.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        check_spec(path)
    except DnnlabError as exc:
        message = str(exc)
        assert message.strip(), "an empty error message"
        assert "\n" not in message and "\r" not in message, message
        assert len(message) < 2000, message[:300]


def _slots(node) -> list[tuple[object, object]]:
    """Every (container, key or index) of a parsed document, the document itself excluded."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found += [(node, key), *_slots(value)]
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += [(node, index), *_slots(value)]
    return found


def mutate_parsed(data, text: str) -> str:
    """Up to three edits of the parsed document: replace a value, delete it, or add a key."""
    raw = yaml.safe_load(text)
    for _ in range(data.draw(st.integers(1, 3))):
        slots = _slots(raw)
        if not slots:
            break
        container, key = data.draw(st.sampled_from(slots))
        edit = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if edit == "replace":
            container[key] = data.draw(VALUES)
        elif edit == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[data.draw(st.text(max_size=10))] = data.draw(VALUES)
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


def splice_text(data, text: str) -> str:
    """Up to three token insertions or deletions at random places in the file's text."""
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 6))
        text = text[:at] + data.draw(st.sampled_from(TOKENS) | st.just("")) + text[at + cut :]
    return text


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def fuzz_yamlish(text: str, folder: Path) -> None:
    assert_spec_or_one_line(text, folder)


def fuzz_mutated(data, folder: Path) -> None:
    name = data.draw(st.sampled_from(sorted(SHIPPED)))
    edit = data.draw(st.sampled_from([mutate_parsed, splice_text]))
    assert_spec_or_one_line(edit(data, SHIPPED[name]), folder)


@FAST
@given(text=YAMLISH)
def test_yamlish_documents_sample(folder, text):
    fuzz_yamlish(text, folder)


@FAST
@given(data=st.data())
def test_mutated_configs_sample(folder, data):
    fuzz_mutated(data, folder)


@pytest.mark.slow
@THOROUGH
@given(text=YAMLISH)
def test_yamlish_documents(folder, text):
    fuzz_yamlish(text, folder)


@pytest.mark.slow
@THOROUGH
@given(data=st.data())
def test_mutated_configs(folder, data):
    fuzz_mutated(data, folder)
