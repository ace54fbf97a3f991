"""Benchmark: the overhead of running quality and robustness batches as Ray tasks on one machine.

A small workload of each kind (a random MNIST CNN from a model file, so nothing trains) runs
five ways into fresh run directories: locally in one process with 2 and with 1 torch threads,
and through ``--ray`` on a local 2-CPU Ray instance (2 tasks of 1 CPU at a time), once *cold*
(starting the instance and its workers inside the timing: what one ``--ray`` command costs) and
once *warm* (the same instance again), and warm on a 1-CPU instance (one task at a time, so its
difference to the 1-thread local run is what Ray adds per batch: scheduling, moving the results,
the driver writing them). A first local run warms up imports and caches and is not counted. Every
Ray run is checked to give the local run's numbers. Prints a Markdown section; ``--append`` adds
it to BENCHMARKS.md (do that on an idle machine only).

    PYTHONPATH=src .venv/bin/python benchmarks/ray_overhead.py [--n 64] [--batch-size 8]

Multi-node / GPU scaling is not measured here (one machine, no GPU).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

WORKLOADS = ("quality", "robustness")


def _model_file(out: Path, classes: int) -> Path:
    from whiteboxdl.models.checkpoint import save_model
    from whiteboxdl.models.cnn import mnist_cnn

    torch.manual_seed(0)
    path = out / f"cnn{classes}.pt"
    save_model(path, mnist_cnn(classes=classes, width=8), "whiteboxdl.models.cnn:mnist_cnn",
               {"classes": classes, "width": 8})
    return path


def _quality(out: Path, n: int, batch_size: int):
    """``run(where, cluster) -> scores`` of a small quality run (a fresh run dir each call)."""
    from whiteboxdl.cluster.quality import evaluate_on_ray
    from whiteboxdl.quality.report import merge
    from whiteboxdl.quality.runner import RunConfig, evaluate

    config = RunConfig(model=str(_model_file(out, 10)), data="mnist", n=n, batch_size=batch_size,
                       explainers=["Gradient", "SoftPullback", "SmoothGrad"],
                       metrics=["Infidelity", "MaxSensitivity", "RandomLogit", "Focus"],
                       options={"SmoothGrad": {"samples": 5}},
                       metric_options={"MaxSensitivity": {"nr_samples": 3}})

    def run(where: Path, cluster) -> dict:
        if cluster is None:
            evaluate(config, where, progress=False)
        else:
            evaluate_on_ray(config, where, cluster, progress=False)
        merged = merge(where, write=False)
        return {f"{e}/{m}": v for e, d in merged.scores.items() for m, v in d.items()}

    return run


def _robustness(out: Path, n: int, batch_size: int):
    from whiteboxdl.cluster.robustness import evaluate_on_ray
    from whiteboxdl.data.mnist import digit_subset
    from whiteboxdl.models.registry import resolve_model
    from whiteboxdl.robustness.evaluate import evaluate

    path = _model_file(out, 2)
    x, y = digit_subset((3, 5), "test")
    x, y = x[:n], y[:n]

    def run(where: Path, cluster) -> dict:
        kwargs = dict(eps=0.3, batch_size=batch_size, out_dir=where, progress=False)
        if cluster is None:
            result = evaluate(resolve_model(path).model, x, y, ["fgsm", "pgd"], **kwargs)
        else:
            result = evaluate_on_ray(path, x, y, ["fgsm", "pgd"], cluster, **kwargs)
        return {f"{k}/{a}": v.numpy() for k, d in (("pred", result.preds), ("x_adv", result.x_adv))
                for a, v in d.items()}

    return run


def _timed(run: Callable[[Path, object], dict], where: Path, cluster) -> tuple[float, dict]:
    """Seconds and numbers of ``run(where, cluster)``."""
    start = time.perf_counter()
    values = run(where, cluster)
    return time.perf_counter() - start, values


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def measure(out: Path, n: int, batch_size: int) -> list[list[str]]:
    import ray

    from whiteboxdl.cluster.session import RayOptions, ray_session

    rows = []
    for name in WORKLOADS:
        run = {"quality": _quality, "robustness": _robustness}[name](out, n, batch_size)
        seconds, values = {}, {}
        torch.set_num_threads(1)
        run(out / name / "warm-up", None)  # imports, the data cache, first calls: not counted
        for threads in (2, 1):
            torch.set_num_threads(threads)
            seconds[threads], values[threads] = _timed(run, out / name / f"local{threads}", None)
        options = RayOptions(local_cpus=2, cpus_per_task=1)
        start = time.perf_counter()
        with ray_session(options):
            started = time.perf_counter() - start
            cold, cold_values = _timed(run, out / name / "ray-cold", options)
            warm, warm_values = _timed(run, out / name / "ray-warm", options)
        serial = RayOptions(local_cpus=1, cpus_per_task=1)  # one task at a time: pure overhead
        with ray_session(serial):
            run(out / name / "ray1-cold", serial)
            warm1, warm1_values = _timed(run, out / name / "ray1-warm", serial)
        assert not ray.is_initialized()
        same = all(_same(v, values[1]) for v in (cold_values, warm_values, warm1_values))
        batches = -(-n // batch_size)
        rows.append([name, f"{n} / {batches}", f"{seconds[2]:.1f}", f"{seconds[1]:.1f}",
                     f"{started:.1f}", f"{started + cold:.1f}", f"{warm:.1f}",
                     f"{min(seconds.values()) / warm:.2f}×", f"{warm1:.1f}",
                     f"{(warm1 - seconds[1]) / batches * 1000:+.0f}", "yes" if same else "NO"])
    return rows


def section(rows: list[list[str]], command: str) -> str:
    import ray

    from whiteboxdl.viz.report import markdown_table

    header = ["workload", "images / batches", "local, 2 threads s", "local, 1 thread s",
              "Ray start s", "Ray cold s (start incl.)", "Ray warm s", "speed-up warm vs best local",
              "Ray warm, 1 CPU s", "overhead per batch ms (1 CPU vs local 1 thread)",
              "same numbers"]
    head = ["## Ray: overhead of `--ray` on one machine (issue 20)", "",
            f"- date: {datetime.date.today()}, machine: {platform.machine()} {os.cpu_count()} "
            f"CPU cores, torch {torch.__version__}, ray {ray.__version__}",
            f"- command: `{command}`",
            "- local Ray instance with 2 CPUs, one CPU (one torch thread) per batch task; cold = "
            "a fresh instance and workers (one `--ray` command), warm = the same instance again; "
            "1 CPU = an instance running one task at a time, against the local run with one "
            "thread: what Ray adds per batch",
            ""]
    return "\n".join(head + [markdown_table(header, rows)]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="images per workload (default 64)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default="runs/bench-ray", help="scratch folder (emptied)")
    parser.add_argument("--append", action="store_true", help="append the section to BENCHMARKS.md")
    args = parser.parse_args()
    import shutil

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = "PYTHONPATH=src python benchmarks/ray_overhead.py " + " ".join(sys.argv[1:])
    text = section(measure(out, args.n, args.batch_size), command.strip())
    print(text)
    if args.append:
        with open("BENCHMARKS.md", "a", encoding="utf-8") as handle:
            handle.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
