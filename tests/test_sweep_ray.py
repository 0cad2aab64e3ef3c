"""`dnnlab sweep --executor ray`: a grid on a real local Ray instance (one per module) gives the
trials a local run gives; without Ray installed, one line and exit 2."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from helpers import read_json, read_metrics, tiny_spec, train_run

ROOT = Path(__file__).resolve().parents[1]
TINY = tiny_spec(training={"epochs": 1})
GRID = ["-g", "model.activation=relu,elu", "-g", "training.optimizer.learning_rate=0.01", "--seeds", "2"]
NOT_INSTALLED = "--executor ray: Ray is not installed; pip install 'dnnlab[ray]'"


def dnnlab(*args, pythonpath: str = str(ROOT), timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    command = [sys.executable, "-m", "dnnlab", *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ray_sweep(spec, tmp_path_factory):
    """The issue's check: a 2 x 1 grid with 2 seeds on a local Ray instance started by the sweep."""
    pytest.importorskip("ray")
    runs = tmp_path_factory.mktemp("ray") / "runs"
    result = dnnlab("sweep", spec, *GRID, "--jobs", "2", "--executor", "ray", "--runs-dir", runs, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = runs.iterdir()
    return result, sweep_dir


@pytest.fixture
def without_ray(tmp_path) -> str:
    """A PYTHONPATH on which `import ray` fails as it does where Ray is not installed."""
    shim = tmp_path / "no-ray"
    shim.mkdir()
    (shim / "ray.py").write_text('raise ModuleNotFoundError("No module named \'ray\'", name="ray")\n')
    return f"{shim}{os.pathsep}{ROOT}"


def test_every_trial_of_the_grid_completes_on_ray(ray_sweep):
    result, sweep_dir = ray_sweep
    record = json.loads(result.stdout)  # stdout is sweep.json alone: nothing of Ray's
    assert record == read_json(sweep_dir / "sweep.json") and record["status"] == "completed"
    combos = {(t["params"]["model.activation"], t["params"]["seed"]) for t in record["trials"]}
    assert combos == {(a, s) for a in ("relu", "elu") for s in (0, 1)} and len(record["trials"]) == 4
    for trial in record["trials"]:
        assert trial["status"] == "completed" and trial["epochs_done"] == 1
        assert read_json(sweep_dir / trial["run"] / "run.json")["status"] == "completed"
    assert "ray: a local Ray instance, " in result.stderr


def test_ray_trials_equal_the_same_trials_trained_alone(ray_sweep, spec, tmp_path):
    result, sweep_dir = ray_sweep
    record = json.loads(result.stdout)
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    for trial in (record["trials"][0], record["trials"][3]):  # relu seed 0, elu seed 1
        overrides = [f"{key}={value}" for key, value in trial["params"].items()]
        alone = train_run(spec, tmp_path / "alone", overrides)
        assert strip(read_metrics(sweep_dir / trial["run"])) == strip(read_metrics(alone)), trial["run"]


def test_without_ray_the_executor_says_how_to_install_it(spec, tmp_path, without_ray):
    runs = tmp_path / "runs"
    result = dnnlab("sweep", spec, *GRID, "--executor", "ray", "--runs-dir", runs, pythonpath=without_ray)
    assert result.returncode == 2, result.stderr
    assert one_line(result.stderr).endswith(NOT_INSTALLED)
    assert result.stdout == "" and not runs.exists()


def test_resume_of_a_ray_sweep_without_ray_writes_nothing(ray_sweep, tmp_path, without_ray):
    _, sweep_dir = ray_sweep
    before = (sweep_dir / "sweep.json").read_bytes()
    result = dnnlab("sweep", "--resume", sweep_dir, pythonpath=without_ray)
    assert result.returncode == 2 and one_line(result.stderr).endswith(NOT_INSTALLED)
    assert (sweep_dir / "sweep.json").read_bytes() == before and not (sweep_dir / ".lock").exists()


def test_an_address_where_nothing_listens_is_refused_and_leaves_no_sweep(spec, tmp_path):
    pytest.importorskip("ray")
    runs = tmp_path / "runs"
    result = dnnlab("sweep", spec, *GRID, "--executor", "ray", "--address", "127.0.0.1:1", "--runs-dir", runs)
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("--address 127.0.0.1:1: nothing answers there (Connection refused)")
    )
    assert result.stdout == "" and not any(runs.glob("*"))


@pytest.mark.slow
def test_sigterm_interrupts_every_ray_trial_and_resume_completes_them(spec, tmp_path):
    pytest.importorskip("ray")
    runs = tmp_path / "runs"
    args = ["-o", "training.epochs=6", "-o", "training.batch_size=16", "-g", "model.activation=relu,elu"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "dnnlab", "sweep", str(spec), *args, "--jobs", "2", "--executor", "ray"]
        + ["--runs-dir", str(runs)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not any(
        len(read_metrics(run)) >= 2 for run in runs.glob("*/0*") if (run / "metrics.csv").exists()
    ):
        time.sleep(0.2)
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(timeout=180) == 130
    sweep_dir = next(runs.glob("*"))
    record = read_json(sweep_dir / "sweep.json")
    assert record["status"] == "interrupted"
    assert {t["status"] for t in record["trials"]} == {"interrupted"}
    assert any(0 < t["epochs_done"] < 6 for t in record["trials"])
    for trial in record["trials"]:
        assert read_json(sweep_dir / trial["run"] / "run.json")["status"] == "interrupted"

    resumed = dnnlab("sweep", "--resume", sweep_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = read_json(sweep_dir / "sweep.json")
    assert [t["status"] for t in record["trials"]] == ["completed"] * 2
    for trial in record["trials"]:
        assert [row["epoch"] for row in read_metrics(sweep_dir / trial["run"])] == [str(e) for e in range(6)]


@pytest.mark.slow
def test_a_ray_worker_that_dies_fails_its_trial_and_stdout_stays_clean(spec, tmp_path):
    pytest.importorskip("ray")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DNNLAB_SWEEP_CRASH_TRIAL": "1"}
    args = ["-g", "model.activation=relu,elu,selu", "--jobs", "2", "--executor", "ray", "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "dnnlab", "sweep", str(spec), *args, "--runs-dir", str(tmp_path / "runs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    record = json.loads(result.stdout)  # Ray's message about the dead worker went to stderr
    assert [t["status"] for t in record["trials"]] == ["completed", "failed", "completed"]
    assert "its Ray worker process died" in record["trials"][1]["error"]


# ----------------------------------------------------------------------------- a cluster of two nodes


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ray_node(temp_dir: str, *role: str, cpus: int = 1) -> subprocess.Popen:
    """`ray start --block` in a session of its own: the node's processes (GCS, raylet, workers)
    stay in its process group, which the test ends by id. `ray stop` would end every Ray process of
    this user on the machine, other people's clusters included."""
    ray_cli = Path(sys.executable).with_name("ray")
    ports = ["--node-manager-port", "--object-manager-port", "--metrics-export-port"]
    ports += ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port"]
    command = [str(ray_cli), "start", "--block", *role, "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}"]
    command += [f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    command += [f"{flag}={free_port()}" for flag in ports]
    env = {**os.environ, "RAY_ADDRESS": ""}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def stop_node(node: subprocess.Popen) -> None:
    """SIGTERM to the node's process group (a node drains for up to 30 s), SIGKILL to whatever of
    it is left after 45 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGTERM)
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and group_alive(node.pid):
        node.poll()
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    node.wait(timeout=30)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_listening(port: int, node: subprocess.Popen, timeout: float = 120) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert node.poll() is None, "ray start exited"
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        time.sleep(0.5)
    raise AssertionError(f"no Ray head on 127.0.0.1:{port} after {timeout} s")


def wait_for_nodes(port: int, count: int, timeout: float = 120) -> None:
    """Until the cluster has `count` live nodes (a node that starts joins seconds later)."""
    script = (
        "import logging, sys, time, ray\n"
        f"ray.init(address='127.0.0.1:{port}', logging_level=logging.ERROR, log_to_driver=False)\n"
        f"deadline = time.monotonic() + {timeout}\n"
        f"while sum(n['Alive'] for n in ray.nodes()) < {count} and time.monotonic() < deadline:\n"
        "    time.sleep(0.5)\n"
        f"sys.exit(sum(n['Alive'] for n in ray.nodes()) < {count})\n"
    )
    env = {**os.environ, "RAY_ADDRESS": ""}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"the cluster never had {count} nodes: {done.stderr[-2000:]}"


@pytest.mark.slow
def test_a_search_on_a_two_node_cluster_runs_trials_on_both_and_stops_every_process(
    spec, tmp_path, monkeypatch
):
    pytest.importorskip("ray")
    pytest.importorskip("optuna")
    # Ray turns token authentication on for `ray start --head` when ~/.ray/auth_token exists but
    # not for a driver that connects: the nodes and the sweep share this test's own token.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    port = free_port()
    # Short temp folders: Ray's socket paths must fit in 107 characters.
    temps = [tempfile.mkdtemp(prefix="dnnlab-ray-") for _ in range(2)]
    nodes: list[subprocess.Popen] = []
    try:
        head = ray_node(
            temps[0], "--head", f"--port={port}", "--include-dashboard=false",
            f"--ray-client-server-port={free_port()}",
        )  # fmt: skip
        nodes.append(head)
        wait_listening(port, head)
        nodes.append(ray_node(temps[1], f"--address=127.0.0.1:{port}"))
        wait_for_nodes(port, 2)
        runs = tmp_path / "runs"
        args = ["-o", "training.epochs=3", "-g", "model.activation=relu,elu,selu,tanh"]
        args += ["-g", "training.optimizer.learning_rate=0.003,0.01,0.03"]
        result = dnnlab(
            "sweep", spec, *args, "--search", "random", "--trials", "4", "--jobs", "2", "--executor", "ray",
            "--address", f"127.0.0.1:{port}", "--runs-dir", runs, "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert (
            f"ray: the Ray cluster at 127.0.0.1:{port}, 2 CPU(s): up to 2 trial(s) at a time" in result.stderr
        )
        (sweep_dir,) = runs.iterdir()
        record = json.loads(result.stdout)
        assert record == read_json(sweep_dir / "sweep.json") and record["status"] == "completed"
        assert len(record["configs"]) == 4  # suggestions; a repeat of an earlier one is not trained
        trained = [c for c in record["configs"] if c["status"] != "duplicate"]
        assert len(record["trials"]) == len(trained) >= 2
        assert (sweep_dir / "study.journal").stat().st_size > 0
        for trial in record["trials"]:
            assert trial["status"] == "completed", trial
            assert read_json(sweep_dir / trial["run"] / "run.json")["status"] == "completed"
            assert len(read_metrics(sweep_dir / trial["run"])) == 3
        nodes_used = {trial["node"] for trial in record["trials"]}
        assert len(nodes_used) == 2, nodes_used  # one CPU a node, two trials at a time: both nodes ran
    finally:
        for node in reversed(nodes):
            stop_node(node)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)
    assert not any(group_alive(node.pid) for node in nodes)


def running_trials(runs: Path) -> list[Path]:
    """The trial folders whose run is training (run.json `running`) and has committed an epoch."""
    found = []
    for run in runs.glob("*/0*"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            if read_json(run / "run.json")["status"] == "running" and read_metrics(run):
                found.append(run)
    return found


@pytest.mark.slow
def test_a_node_killed_mid_trial_fails_that_trial_and_resume_completes_the_search(
    spec, tmp_path, monkeypatch
):
    """Two nodes of one trial each; the worker node's processes are SIGKILLed while both train:
    its trial is recorded failed (Ray does not retry it), the search goes on on the head, and
    `sweep --resume` continues the killed run from its last committed epoch to the end."""
    pytest.importorskip("ray")
    pytest.importorskip("optuna")
    from dnnlab.sweep.runner import available_cores

    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    cpus = max(1, available_cores() // 2)  # a trial's threads with --jobs 2: one trial per node
    port = free_port()
    temps = [tempfile.mkdtemp(prefix="dnnlab-ray-") for _ in range(2)]
    nodes: list[subprocess.Popen] = []
    driver = None
    epochs = 30
    try:
        head = ray_node(
            temps[0], "--head", f"--port={port}", "--include-dashboard=false",
            f"--ray-client-server-port={free_port()}", cpus=cpus,
        )  # fmt: skip
        nodes.append(head)
        wait_listening(port, head)
        worker_node = ray_node(temps[1], f"--address=127.0.0.1:{port}", cpus=cpus)
        nodes.append(worker_node)
        wait_for_nodes(port, 2)
        runs = tmp_path / "runs"
        args = ["-o", f"training.epochs={epochs}", "-o", "training.batch_size=8"]
        args += ["-g", "training.optimizer.learning_rate=loguniform(0.001,0.03)"]
        driver = subprocess.Popen(
            [sys.executable, "-m", "dnnlab", "sweep", str(spec), *args, "--search", "random", "--trials", "3"]
            + ["--jobs", "2", "--executor", "ray", "--address", f"127.0.0.1:{port}", "--runs-dir", str(runs)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(running_trials(runs)) < 2 and driver.poll() is None:
            time.sleep(0.2)
        assert len(running_trials(runs)) == 2, "two trials never trained at once"
        os.killpg(worker_node.pid, signal.SIGKILL)  # the node and the trial on it die mid-epoch
        worker_node.wait(timeout=30)
        _, stderr = driver.communicate(timeout=400)
        assert driver.returncode == 1, stderr[-3000:]
        (sweep_dir,) = runs.iterdir()
        record = read_json(sweep_dir / "sweep.json")
        lost = [t for t in record["trials"] if t["status"] == "failed"]
        assert lost and record["status"] == "failed"  # (a task sent to the node as it died is lost too)
        for trial in lost:
            assert "its Ray worker process died" in trial["error"] and "--resume" in trial["error"]
        found = [sweep_dir / t["run"] / "run.json" for t in lost]
        statuses = [read_json(path)["status"] for path in found if path.exists()]
        assert "running" in statuses  # the killed trial, cut mid-training
        assert all(t["status"] == "completed" for t in record["trials"] if t not in lost)  # on the head

        resumed = dnnlab("sweep", "--resume", sweep_dir, timeout=400)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        record = read_json(sweep_dir / "sweep.json")
        assert record["status"] == "completed" and len(record["configs"]) == 3
        assert [t["status"] for t in record["trials"]] == ["completed"] * 3
        for trial in record["trials"]:
            rows = read_metrics(sweep_dir / trial["run"])
            assert [row["epoch"] for row in rows] == [str(e) for e in range(epochs)], trial["run"]
    finally:
        if driver is not None and driver.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=30)
        for node in reversed(nodes):
            stop_node(node)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)
    assert not any(group_alive(node.pid) for node in nodes)
