"""The persistent XLA cache: compiled train steps reused across runs, a broken entry never fatal,
and `dnnlab cache info|clear` touching only dnnlab's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dnnlab import xla_cache
from dnnlab.cli.main import app


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    tag, length, out = (number << 3) | 2, len(payload), bytearray()
    for value in (tag, length):
        while value >= 0x80:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out) + payload


def entry(key: str, device: str = "XLA_CPU_JIT", executable: bytes = b"\x7fELF" * 100) -> bytes:
    """An XlaSerializedCacheEntry as TensorFlow frames it: {key {.., device, prefix}, hlo, executable}."""
    cache_key = b"\x08\x01\x10\x02" + field(3, device.encode()) + field(4, key.encode())
    return field(1, cache_key) + field(2, b"\x0a\x03hlo" * 50) + field(3, executable)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "xla"
    monkeypatch.setenv(xla_cache.ENV, str(folder))
    monkeypatch.setenv("TF_XLA_FLAGS", "")  # so that what enable() sets is undone after the test
    monkeypatch.setattr(xla_cache, "_active", None)
    return folder


def name(key: str, signature: int = 1) -> str:
    return f"{key}__{signature}__2__XLA_CPU_JIT.pb"


def test_only_a_whole_entry_of_this_key_is_sound(tmp_path):
    key = xla_cache.prefix()
    whole = entry(key)
    cases = {
        "whole": (name(key), whole, True),
        "truncated": (name(key), whole[:-7], False),
        "garbage": (name(key), b"garbage\n", False),
        "empty": (name(key), b"", False),
        "no executable": (name(key), entry(key, executable=b""), False),
        "another key inside": (name(key), entry("dnnlab-0000000000000000"), False),
        "another device inside": (name(key), entry(key, device="XLA_GPU_JIT"), False),
        "another key's name": (name("dnnlab-0000000000000000"), whole, False),
    }
    for label, (file_name, data, sound) in cases.items():
        path = tmp_path / label / file_name
        path.parent.mkdir()
        path.write_bytes(data)
        assert xla_cache.entry_is_sound(path, key) is sound, label


def test_enable_points_tensorflow_at_the_cache_and_deletes_broken_entries(cache):
    key = xla_cache.prefix()
    cache.mkdir()
    (cache / name(key, 1)).write_bytes(entry(key))
    (cache / name(key, 2)).write_bytes(b"garbage")
    (cache / "someone-elses.pb").write_bytes(b"garbage")
    assert xla_cache.enable() == cache
    flags = os.environ["TF_XLA_FLAGS"].split()
    assert f"--tf_xla_persistent_cache_directory={cache}" in flags
    assert f"--tf_xla_persistent_cache_prefix={key}" in flags
    assert sorted(p.name for p in cache.iterdir()) == sorted([name(key, 1), "someone-elses.pb"])


def test_a_step_compiled_before_is_known_only_while_its_entries_are_there(cache):
    assert xla_cache.enable() == cache
    assert not xla_cache.compiled_before("step A")
    xla_cache.remember_compiled("step A")
    assert not xla_cache.compiled_before("step A")  # no executable in the cache yet
    (cache / name(xla_cache.prefix())).write_bytes(entry(xla_cache.prefix()))
    assert xla_cache.compiled_before("step A") and not xla_cache.compiled_before("step B")
    assert xla_cache.clear() == (2, len(entry(xla_cache.prefix())))  # the marker goes too
    assert not xla_cache.compiled_before("step A")


def test_the_key_changes_with_the_xla_flags(monkeypatch):
    before = xla_cache.prefix()
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true")
    assert xla_cache.prefix() != before


def test_off_or_a_cache_of_the_users_own_is_left_alone(cache, monkeypatch):
    monkeypatch.setenv(xla_cache.ENV, "off")
    assert xla_cache.enable() is None and os.environ["TF_XLA_FLAGS"] == ""
    monkeypatch.setenv(xla_cache.ENV, str(cache))
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_persistent_cache_directory=/elsewhere")
    assert xla_cache.enable() is None
    assert os.environ["TF_XLA_FLAGS"] == "--tf_xla_persistent_cache_directory=/elsewhere"


def test_cache_info_and_clear_count_and_remove_only_dnnlabs_files(cache):
    key = xla_cache.prefix()
    cache.mkdir()
    (cache / name(key)).write_bytes(entry(key))
    (cache / name("dnnlab-0123456789abcdef")).write_bytes(entry("dnnlab-0123456789abcdef"))
    (cache / "xla_compile_cache__1__2__XLA_CPU_JIT.pb").write_bytes(b"not ours")
    runner = CliRunner()
    shown = runner.invoke(app, ["cache", "info", "--json"])
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    assert (info["directory"], info["entries"], info["stale_entries"]) == (str(cache), 1, 1)
    assert "`dnnlab cache clear --stale` removes them" in runner.invoke(app, ["cache", "info"]).stdout
    stale = runner.invoke(app, ["cache", "clear", "--stale"])
    assert stale.exit_code == 0 and "removed 1 stale cache file(s)" in stale.stdout
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [name(key), "xla_compile_cache__1__2__XLA_CPU_JIT.pb"]
    )
    cleared = runner.invoke(app, ["cache", "clear"])
    assert cleared.exit_code == 0 and "removed 1 cache file(s)" in cleared.stdout
    assert [p.name for p in cache.iterdir()] == ["xla_compile_cache__1__2__XLA_CPU_JIT.pb"]


def train(spec: Path, runs: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, xla_cache.ENV: str(cache)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("TF_XLA_FLAGS", None)
    command = [sys.executable, "-m", "dnnlab", "train", str(spec), "--runs-dir", str(runs), "-q"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.mark.slow
def test_runs_write_the_cache_and_a_corrupt_cache_still_trains(tmp_path):
    """The first process writes its executables, which are then overwritten with garbage
    (TensorFlow alone would stop the second run on them); the second trains, silently, and
    writes sound entries again; the third loads them, silently too. That loading is faster is
    measured (docs/keras3.md), not asserted."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "cached",
                "data": {"dataset": {"type": "synthetic", "shape": [6], "classes": 3, "train": 96}},
                "model": {"hidden": [8]},
                "training": {"epochs": 2, "batch_size": 16, "jit_compile": True},
            }
        )
    )
    cache = tmp_path / "xla"
    first = train(spec, tmp_path / "runs", cache)
    assert first.returncode == 0, first.stderr[-3000:]
    entries = list(cache.glob("dnnlab-*.pb"))
    assert entries and all(xla_cache.entry_is_sound(p, xla_cache.prefix()) for p in entries)
    for path in entries:
        path.write_bytes(b"garbage")
    second = train(spec, tmp_path / "runs", cache)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr == ""
    assert all(xla_cache.entry_is_sound(p, xla_cache.prefix()) for p in entries)
    third = train(spec, tmp_path / "runs", cache)  # loads them: TensorFlow's spurious lines stay off
    assert third.returncode == 0 and third.stderr == "", third.stderr[-3000:]
