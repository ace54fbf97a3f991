"""Quality runs on a local 2-CPU Ray cluster: the same files and numbers as the local run, a killed
worker retried, an interrupted driver resumed, a sweep fanned out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from whiteboxdl.cli import main
from whiteboxdl.cluster.quality import evaluate_on_ray
from whiteboxdl.cluster.session import RayOptions
from whiteboxdl.quality.runner import RunConfig, evaluate
from whiteboxdl.runfiles import load_npz, read_json

from .conftest import SRC, Killer, wait_gone

pytestmark = pytest.mark.slow

#: 16 MNIST test images in 8 batches; three cheap explainers (one stochastic) and three metrics
#: (one with seeded extra inputs, the Focus mosaics).
ARGS = ["--data", "mnist", "--n", "16", "--batch-size", "2", "--explainers",
        "Gradient,SoftPullback,SmoothGrad", "--metrics", "Infidelity,RandomLogit,Focus",
        "--options", '{"SmoothGrad": {"samples": 2}}']
BATCHES = 8


def _config(model: Path) -> RunConfig:
    return RunConfig(model=str(model), data="mnist", n=16, batch_size=2,
                     explainers=["Gradient", "SoftPullback", "SmoothGrad"],
                     metrics=["Infidelity", "RandomLogit", "Focus"],
                     options={"SmoothGrad": {"samples": 2}})


@pytest.fixture(scope="module")
def reference(mnist_available, cnn10_file, tmp_path_factory) -> Path:
    """The local, single-process run (this process, one torch thread like a 1-CPU task)."""
    if not mnist_available:
        pytest.skip("MNIST cache is empty: run `make test` (it fetches MNIST first)")
    run_dir = tmp_path_factory.mktemp("quality") / "local"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert evaluate(_config(cnn10_file), run_dir, progress=False) == list(range(BATCHES))
    finally:
        torch.set_num_threads(threads)
    return run_dir


def _batches(run_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    return {p.name: load_npz(p) for p in sorted((run_dir / "batches").glob("batch_*.npz"))}


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """Same config and batch files, every array equal (scores, targets, examples, the run's
    fingerprint) except the timings."""
    assert read_json(run_dir / "config.json") == read_json(reference / "config.json")
    got, want = _batches(run_dir), _batches(reference)
    assert sorted(got) == sorted(want) and len(want) == BATCHES
    for name, arrays in want.items():
        keys = sorted(k for k in arrays if not k.startswith("time/"))
        assert sorted(k for k in got[name] if not k.startswith("time/")) == keys
        assert any(k.startswith("score/") for k in keys)
        for key in keys:
            np.testing.assert_array_equal(got[name][key], arrays[key], err_msg=f"{name}: {key}")


def _mtimes(run_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (run_dir / "batches").glob("batch_*.npz")}


def test_cli_on_ray_gives_the_local_run_file_for_file(ray_cluster, reference, cnn10_file,
                                                      tmp_path, capsys):
    out = tmp_path / "ray"
    assert main(["quality", "evaluate", "--model", str(cnn10_file), *ARGS, "--out", str(out),
                 f"--ray={ray_cluster}"]) == 0
    printed = capsys.readouterr()
    assert f"shard 0/1: {BATCHES} batches computed" in printed.out   # the same summary
    assert "Means over images" in printed.out and (out / "report.html").is_file()
    assert "quality on Ray (2 CPUs)" in printed.err                    # one bar over all batches
    assert_same_run(out, reference)
    # resume: a second run finds every batch done and computes nothing
    stamps = _mtimes(out)
    assert evaluate_on_ray(_config(cnn10_file), out, RayOptions(ray_cluster), progress=False) == []
    assert _mtimes(out) == stamps


def test_a_killed_worker_is_retried_and_the_numbers_are_the_same(ray_cluster, reference,
                                                                 cnn10_file, tmp_path):
    killer = Killer("quality-batch-")
    killer.start()
    try:
        done = evaluate_on_ray(_config(cnn10_file), tmp_path, RayOptions(ray_cluster),
                               progress=False)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed is not None, "no running batch task was seen to kill"
    pid, title = killer.killed
    assert title.startswith("ray::quality-batch-") and wait_gone(pid)
    assert done == list(range(BATCHES))
    assert_same_run(tmp_path, reference)


def test_an_interrupted_driver_resumes_without_recomputing(ray_cluster, reference, cnn10_file,
                                                           tmp_path):
    out = tmp_path / "run"
    driver = subprocess.Popen(
        [sys.executable, "-m", "whiteboxdl.cli", "quality", "evaluate", "--model",
         str(cnn10_file), *ARGS, "--out", str(out), "--no-merge", f"--ray={ray_cluster}"],
        env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 240
        while not _mtimes(out) and driver.poll() is None and time.monotonic() < end:
            time.sleep(0.02)
        driver.send_signal(signal.SIGINT)                 # Ctrl-C after the first batch file
        _, err = driver.communicate(timeout=120)
    finally:
        driver.kill()
    assert driver.returncode == 130, err[:4000] + "\n...\n" + err[-1000:]
    assert "interrupted; finished work is kept" in err
    finished = _mtimes(out)
    assert 1 <= len(finished) < BATCHES, f"{len(finished)} batches finished before the interrupt"
    time.sleep(2)
    assert _mtimes(out) == finished       # nothing lands after the driver is gone: it writes all
    done = evaluate_on_ray(_config(cnn10_file), out, RayOptions(ray_cluster), progress=False)
    assert sorted(f"batch_{b:05d}.npz" for b in done) == sorted(
        f"batch_{b:05d}.npz" for b in range(BATCHES) if f"batch_{b:05d}.npz" not in finished)
    after = _mtimes(out)
    assert {k: after[k] for k in finished} == finished           # finished batches untouched
    assert_same_run(out, reference)


def test_sweep_fans_the_configurations_out_and_each_equals_its_local_run(ray_cluster, cnn10_file,
                                                                         tmp_path, capsys):
    args = ["--model", str(cnn10_file), "--data", "mnist", "--n", "4", "--batch-size", "2",
            "--explainers", "Gradient,SoftPullback", "--metrics", "Infidelity,RandomLogit"]
    out = tmp_path / "sweep"
    assert main(["quality", "sweep", *args, "--vary", "SoftPullback.temperature=0.3,3",
                 "--out", str(out), f"--ray={ray_cluster}"]) == 0
    printed = capsys.readouterr()
    assert "2 configurations, 4 batches computed" in printed.out
    assert "sweep of 2 runs on Ray" in printed.err
    table = (out / "sweep.md").read_text()
    assert "SoftPullback.temperature=0.3" in table and "SoftPullback.temperature=3" in table
    base = RunConfig(model=str(cnn10_file), data="mnist", n=4, batch_size=2,
                     explainers=["Gradient", "SoftPullback"], metrics=["Infidelity", "RandomLogit"])
    scores = {}
    for t in (0.3, 3):
        local = tmp_path / f"local-{t}"
        evaluate(replace(base, options={"SoftPullback": {"temperature": t}}), local, progress=False)
        run = out / f"SoftPullback.temperature={t}"
        assert (run / "report.html").is_file()
        for name, arrays in _batches(local).items():
            got = load_npz(run / "batches" / name)
            for key in (k for k in arrays if k.startswith("score/")):
                np.testing.assert_array_equal(got[key], arrays[key], err_msg=f"T={t} {key}")
        scores[t] = load_npz(run / "batches" / "batch_00000.npz")["score/SoftPullback/RandomLogit"]
    assert not np.array_equal(scores[0.3], scores[3])           # the option reached the explainer


def test_an_error_in_a_batch_is_raised_as_itself_and_not_retried(ray_cluster, cnn10_file,
                                                                 tmp_path, capsys):
    # a layer the model lacks passes the driver's checks and fails in the task
    config = replace(_config(cnn10_file), explainers=["GuidedGradCam"], metrics=["Infidelity"],
                     options={"GuidedGradCam": {"layer": "nope"}})
    import ray

    with pytest.raises(ValueError, match="no layer 'nope'") as raised:
        evaluate_on_ray(config, tmp_path, RayOptions(ray_cluster), progress=False)
    assert isinstance(raised.value.__cause__, ray.exceptions.RayTaskError)   # raised in a task
    assert not _mtimes(tmp_path)
    assert "retries remaining" not in capsys.readouterr().err


def test_a_worker_that_loads_other_weights_stops_the_run(ray_cluster, cnn10_file, tmp_path):
    """The driver's task (here: other weights than the model file holds) must be what every
    worker rebuilds from the config; a node that differs is named, nothing is written."""
    from whiteboxdl.quality.runner import load_task

    config = replace(_config(cnn10_file), explainers=["Gradient"], metrics=["Infidelity"],
                     options={})
    task = load_task(config)
    with torch.no_grad():
        next(task.model.parameters()).add_(1.0)
    with pytest.raises(ValueError, match="loaded other model weights or images .* every node "
                                         "must see the same model files and data"):
        evaluate_on_ray(config, tmp_path, RayOptions(ray_cluster), task=task, progress=False)
    assert not _mtimes(tmp_path)


def test_tasks_in_flight_are_bounded_by_what_the_cluster_runs_at_once(ray_cluster):
    import ray

    from whiteboxdl.cluster.tasks import in_flight_limit

    assert in_flight_limit(ray, {"num_cpus": 1.0, "num_gpus": 0.0}) == 4     # 2 CPUs, twice
    assert in_flight_limit(ray, {"num_cpus": 2.0, "num_gpus": 0.0}) == 2
    assert in_flight_limit(ray, {"num_cpus": 1.0, "num_gpus": 1.0}) == 2     # no GPU: at least 2
