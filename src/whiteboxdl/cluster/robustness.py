"""Robustness runs on Ray: each batch that needs work one task, the same per-(batch, attack) files.

:class:`RayAttacks` is an :data:`~whiteboxdl.robustness.evaluate.Executor` for
:func:`whiteboxdl.robustness.evaluate.evaluate`: the driver plans the batches, reuses every stored
record, and hands this executor only the (batch, missing parts) jobs; each job's inputs travel with
its task (a batch of MNIST digits is a few hundred kilobytes). The worker rebuilds the model from
its name or file through the model registry (never training it: a model that is not cached on the
node is a clear error), checks that its weights hash to the driver's, runs on its GPU when the task
was given one, and returns the records; the driver writes the files, so resume, growing runs,
healing and the report are unchanged and the numbers equal the local run's (on the same kind of
device: a GPU's floating-point results can differ from a CPU's).

Example
-------
>>> from whiteboxdl.cluster.robustness import evaluate_on_ray              # doctest: +SKIP
>>> result = evaluate_on_ray("semantic-3-5", x, y, ["apgd-ce"], eps=0.3,  # doctest: +SKIP
...                          out_dir="runs/r")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from whiteboxdl.cluster.session import RayOptions, ray_session, require_ray
from whiteboxdl.cluster.tasks import in_directory, map_tasks, node_name, setup_worker, worker_device
from whiteboxdl.robustness.evaluate import (BatchJob, EvalConfig, RobustnessResult, compute_records,
                                            evaluate, fingerprint)

_MODELS: dict[str, nn.Module] = {}


def _worker_model(spec: str, expected: str, cwd: str) -> nn.Module:
    """The model ``spec`` in this worker (kept per process), checked against the driver's hash."""
    model = _MODELS.get(expected)
    if model is None:
        from whiteboxdl.models.registry import resolve_model

        with in_directory(cwd):
            model = resolve_model(spec, train_if_missing=False).model.eval()
        got = fingerprint(model)
        if got != expected:
            raise ValueError(f"the worker on {node_name()} loaded other weights for {spec} than "
                             f"the driver (hash {got}, the driver's {expected}); every node must "
                             "see the same model file or cache")
        _MODELS.clear()  # one model per worker process: a second one is a new run
        _MODELS[expected] = model
    return model


def _to_cpu(record: dict) -> dict:
    return {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in record.items()}


def robustness_batch(spec: str, expected: str, cwd: str, x: torch.Tensor, y: torch.Tensor,
                     parts: tuple[str, ...], config: EvalConfig) -> dict[str, dict]:
    """The Ray task: the records of ``parts`` of one batch (see
    :func:`~whiteboxdl.robustness.evaluate.compute_records`)."""
    setup_worker()
    device = worker_device()
    model = _worker_model(spec, expected, cwd).to(device)
    records = compute_records(model, x.to(device), y.to(device), parts, config)
    return {part: _to_cpu(record) for part, record in records.items()}


class RayAttacks:
    """Compute a robustness run's batches as Ray tasks (pass as ``executor=`` to
    :func:`~whiteboxdl.robustness.evaluate.evaluate`).

    ``model`` is what the workers rebuild: a registered name (``semantic-3-5``) or a model file;
    it must be the model given to ``evaluate`` (checked by its weights' hash).
    """

    def __init__(self, model: str | Path, cluster: RayOptions | None = None):
        from whiteboxdl.models.registry import is_model_file

        require_ray()  # before any work: a missing extra is said at once
        spec = str(model)
        self.spec = str(Path(spec).expanduser().resolve()) if is_model_file(spec) else spec
        self.cluster = cluster or RayOptions()

    def __call__(self, model: nn.Module, config: EvalConfig, jobs: Sequence[BatchJob]
                 ) -> Iterator[tuple[int, dict[str, dict]]]:
        if not jobs:
            return
        expected, cwd = fingerprint(model), os.getcwd()
        calls = [(job.index, (self.spec, expected, cwd, job.x, job.y, job.parts, config))
                 for job in jobs]
        with ray_session(self.cluster):
            yield from map_tasks(robustness_batch, calls, self.cluster, uses_cuda=True,
                                 name=lambda b: f"robustness-batch-{b}")


def evaluate_on_ray(model: str | Path, x: torch.Tensor, y: torch.Tensor, attacks: Sequence[str],
                    cluster: RayOptions | None = None, **kwargs: Any) -> RobustnessResult:
    """:func:`whiteboxdl.robustness.evaluate.evaluate` of the model ``model`` names (a registered
    name or a model file) with every batch a Ray task on ``cluster`` (default: a local
    instance); ``kwargs`` as ``evaluate`` takes them (``eps``, ``seed``, ``batch_size``,
    ``out_dir``, ``options`` …)."""
    from whiteboxdl.models.registry import resolve_model

    loaded = resolve_model(model)
    return evaluate(loaded.model, x, y, attacks, executor=RayAttacks(model, cluster), **kwargs)
