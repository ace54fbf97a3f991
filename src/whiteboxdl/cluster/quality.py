"""Explanation-quality runs on Ray: every unfinished batch one task, the runner's own run directory.

The driver finds the unfinished batches (:func:`~whiteboxdl.quality.runner.pending_batches`: the
same verification, healing and config check as a local run), loads the task once
(:func:`~whiteboxdl.quality.runner.load_task`) and submits one task per batch. A worker rebuilds
the task from the run's config with the same ``load_task`` (kept per worker process, so a worker
that computes many batches loads once), checks that a digest of the model weights and images
equals the driver's and computes the batch with
:func:`~whiteboxdl.quality.runner.evaluate_batch`, seeded by (seed, batch, explainer, metric).
The driver writes each returned batch with :func:`~whiteboxdl.quality.runner.write_batch` as it
arrives. The files are those of a local run, number for number, so ``merge``, resume and
``--shard`` work unchanged; new explainers, metrics or data sources need nothing here.

Why rebuild rather than ship the model: a worker builds the model where it runs (on its GPU, with
its own weight cache), nothing but a config and a batch index travels, and the code path is that
of a ``--shard`` process on another machine. Every node must see the model and the data at the
same path (a shared file system or the same cache); the digest check makes a node that does not
fail with a message naming it instead of mixing other numbers into the run.

Example
-------
>>> from whiteboxdl.cluster.quality import evaluate_on_ray                # doctest: +SKIP
>>> from whiteboxdl.cluster.session import RayOptions
>>> from whiteboxdl.quality.runner import RunConfig
>>> config = RunConfig(model="mnist-cnn", data="mnist", n=200)
>>> evaluate_on_ray(config, "runs/q", RayOptions(address="auto"))         # doctest: +SKIP
[0, 1, 2, 3]
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from whiteboxdl.cluster.session import RayOptions, ray_session, require_ray
from whiteboxdl.cluster.tasks import in_directory, map_tasks, node_name, setup_worker
from whiteboxdl.quality.runner import (RunConfig, Task, evaluate_batch, load_task, pending_batches,
                                       silence_known_warnings, write_batch)
from whiteboxdl.runfiles import tensor_digest

#: Tasks a worker process keeps loaded (a sweep's runs share one).
KEEP_TASKS = 2
#: Whether the quality runner computes on CUDA (then each task gets a GPU by default). It does not
#: yet: ``evaluate_batch`` keeps the model and images on the CPU.
USES_CUDA = False
_TASKS: OrderedDict[str, Task] = OrderedDict()


def task_digest(task: Task) -> str:
    """A short hash of what a task computes on: the model's weights (and their names), the
    evaluated images and labels and the Focus pool.

    Example
    -------
    >>> import torch
    >>> from whiteboxdl.quality.runner import Task
    >>> x, y = torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])
    >>> t = Task(torch.nn.Linear(16, 2), (0.0, 1.0), 2, x, y, x, y)
    >>> task_digest(t) == task_digest(t), len(task_digest(t))
    (True, 33)
    """
    state = sorted(task.model.state_dict().items())
    names = hashlib.sha256("\n".join(name for name, _ in state).encode()).hexdigest()[:16]
    return tensor_digest(*(t for _, t in state), task.x, task.y, task.pool_x, task.pool_y) + \
        "-" + names


def _worker_task(config: RunConfig, digest: str, cwd: str) -> Task:
    """The task of ``digest`` in this worker: kept from an earlier batch, or loaded from the
    config and checked against the driver's digest."""
    task = _TASKS.get(digest)
    if task is None:
        with in_directory(cwd):
            task = load_task(config)
        task.model.eval()
        got = task_digest(task)
        if got != digest:
            raise ValueError(f"the worker on {node_name()} loaded other model weights or images "
                             f"for --model {config.model} --data {config.data} than the driver "
                             f"(digest {got}, the driver's {digest}); every node must see the "
                             "same model files and data (a shared file system, or the same "
                             "cache and copies)")
        _TASKS[digest] = task
        while len(_TASKS) > KEEP_TASKS:
            _TASKS.popitem(last=False)
    _TASKS.move_to_end(digest)
    return task


def quality_batch(config: RunConfig, b: int, digest: str, cwd: str) -> dict[str, np.ndarray]:
    """The Ray task: batch ``b`` of ``config`` (the arrays of
    :func:`~whiteboxdl.quality.runner.evaluate_batch`)."""
    setup_worker()
    silence_known_warnings()
    return evaluate_batch(_worker_task(config, digest, cwd), config, b)


def evaluate_runs(runs: Sequence[tuple[RunConfig, str | Path]], cluster: RayOptions | None = None,
                  *, shard: tuple[int, int] = (0, 1), task: Task | None = None,
                  progress: bool = True, on_batch: Callable[[int, int], None] | None = None,
                  desc: str = "quality on Ray") -> list[list[int]]:
    """Evaluate the unfinished batches of several runs at once, one Ray task per batch.

    Parameters
    ----------
    runs : ``(config, run_dir)`` pairs; every run is its own run directory, as a local run's.
    cluster : where and how the tasks run (:class:`~whiteboxdl.cluster.session.RayOptions`;
        default: a local instance).
    shard : evaluate only the batches ``b`` with ``b mod N == i`` of each run.
    task : the loaded model and data of *every* run (a sweep over explainer options shares
        one); default: each run's own, loaded once here.
    on_batch : called as ``on_batch(run_index, batch)`` after each batch file is written.

    Returns the batches computed, per run (sorted).
    """
    require_ray()  # before any work: a missing extra is said at once
    silence_known_warnings()
    todo = [pending_batches(config, run_dir, shard) for config, run_dir in runs]
    total = sum(map(len, todo))
    if total == 0:
        return [[] for _ in runs]
    cwd = os.getcwd()
    digests: dict[int, str] = {}
    calls = []
    for r, (config, _run_dir) in enumerate(runs):
        if todo[r]:
            digests[r] = task_digest(task or load_task(config))
            calls += [((r, b), (config, b, digests[r], cwd)) for b in todo[r]]
    done: list[list[int]] = [[] for _ in runs]
    cluster = cluster or RayOptions()
    with ray_session(cluster) as ray:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        bar = tqdm(total=total, unit="batch", disable=not progress,
                   desc=f"{desc} ({cpus} CPUs)")
        if cluster.gpus_per_task and not USES_CUDA:
            warnings.warn(f"{cluster.gpus_per_task:g} GPUs per task are reserved, but the quality "
                          "runner computes on the CPU: they stay idle", stacklevel=2)
        results = map_tasks(quality_batch, calls, cluster, uses_cuda=USES_CUDA,
                            name=lambda key: f"quality-batch-{key[1]}")
        with bar, contextlib.closing(results):  # stopped early: nothing more is submitted
            for (r, b), arrays in results:
                write_batch(runs[r][1], b, arrays)
                done[r].append(b)
                bar.update()
                if on_batch is not None:
                    on_batch(r, b)
    return [sorted(d) for d in done]


def evaluate_on_ray(config: RunConfig, run_dir: str | Path, cluster: RayOptions | None = None,
                    *, shard: tuple[int, int] = (0, 1), task: Task | None = None,
                    progress: bool = True, on_batch: Callable[[int], None] | None = None
                    ) -> list[int]:
    """:func:`whiteboxdl.quality.runner.evaluate` with every batch a Ray task: the same files,
    numbers, resume and return value (the batches computed)."""
    callback = None if on_batch is None else (lambda _r, b: on_batch(b))
    return evaluate_runs([(config, run_dir)], cluster, shard=shard, task=task, progress=progress,
                         on_batch=callback)[0]
