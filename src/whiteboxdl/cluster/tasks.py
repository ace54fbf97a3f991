"""Ray tasks as they finish, and what a worker process sets up before it computes a batch.

:func:`map_tasks` submits one task per call with the declared resources and Ray's retries, and
yields the results in the order they finish, so that the driver writes each batch at once; it
keeps only about as many tasks in flight as the cluster runs at once, so that stopping early
leaves little work behind.

Example
-------
>>> import ray                                                  # doctest: +SKIP
>>> from whiteboxdl.cluster.session import RayOptions, ray_session
>>> with ray_session(RayOptions(local_cpus=2)):                 # doctest: +SKIP
...     sorted(map_tasks(pow, [(k, (k, 2)) for k in range(3)], RayOptions()))
[(0, 0), (1, 1), (2, 4)]
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any, Callable, Generator, Hashable, Iterator, Sequence, TypeVar

from whiteboxdl.cluster.session import ClusterError, RayOptions, require_ray, task_resources

K = TypeVar("K", bound=Hashable)


def map_tasks(function: Callable[..., Any], calls: Sequence[tuple[K, tuple]],
              options: RayOptions, *, uses_cuda: bool = False,
              name: Callable[[K], str] = str) -> Generator[tuple[K, Any], None, None]:
    """Run ``function(*args)`` as one Ray task per ``(key, args)`` in ``calls``; yield
    ``(key, result)`` as the tasks finish.

    Needs a connected session (:func:`~whiteboxdl.cluster.session.ray_session`). Each task
    declares :func:`~whiteboxdl.cluster.session.task_resources` and is named ``name(key)`` (its
    worker process is titled ``ray::NAME`` while it runs). A task whose worker process dies is
    re-run up to ``options.max_retries`` times; beyond that :class:`ClusterError`. An exception
    raised by ``function`` is not retried and is raised here as itself (the remote traceback
    chained to it).

    Tasks are submitted as the cluster can take them (:func:`in_flight_limit`: twice the tasks
    its resources run at once, re-read as nodes come and go), Ray's pattern for bounding pending
    work: results never pile up, and when the caller stops early (an error, Ctrl-C) nothing more
    is submitted and no task is cancelled (cancelling a task that is being handed to a worker
    can crash Ray's driver): the few in flight finish unseen, or end with the session.
    """
    ray = require_ray()
    if not calls:
        return
    remote = ray.remote(function)
    settings = dict(task_resources(ray, options, uses_cuda), max_retries=options.max_retries,
                    retry_exceptions=False)
    queue = list(reversed(calls))
    keys: dict[Any, K] = {}

    def submit() -> None:
        limit = in_flight_limit(ray, settings)
        while queue and len(keys) < limit:
            key, args = queue.pop()
            keys[remote.options(name=name(key), **settings).remote(*args)] = key

    submit()
    while keys:
        done, _ = ray.wait(list(keys), num_returns=1)
        for ref in done:
            key = keys.pop(ref)
            result = _result(ray, ref, name(key), options)
            submit()  # before the caller writes this result: the workers stay busy
            yield key, result


def in_flight_limit(ray: Any, settings: dict[str, Any]) -> int:
    """Twice the tasks of ``settings`` (``num_cpus``, ``num_gpus``) that the cluster's current
    resources run at once, and at least 2."""
    have = ray.cluster_resources()
    slots = [have.get("CPU", 0) / settings["num_cpus"]]
    if settings["num_gpus"]:
        slots.append(have.get("GPU", 0) / settings["num_gpus"])
    return max(2, 2 * int(min(slots)))


def _result(ray: Any, ref: Any, what: str, options: RayOptions) -> Any:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # raised by the task's own code
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from exc
        raise
    except ray.exceptions.RayError as exc:      # the worker or its node was lost, for good
        raise ClusterError(f"task {what} failed on {options.where} after "
                           f"{options.max_retries} retries: {type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:300]}; finished batches are kept, "
                           "re-run the command to resume") from None


# ----------------------------------------------------------------------------- worker side
_SET_UP = False


def setup_worker() -> None:
    """Before each task: torch threads = the task's CPUs (Ray's ``OMP_NUM_THREADS`` is set once
    per worker process, and rounds fractions), and once per process the allocator setting of the
    command line (:func:`whiteboxdl.runtime.keep_freed_memory`), since the work runs here."""
    global _SET_UP
    import torch

    cpus = require_ray().get_runtime_context().get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))
    if not _SET_UP:
        from whiteboxdl.runtime import keep_freed_memory

        keep_freed_memory()
        _SET_UP = True


def worker_device() -> str:
    """``"cuda"`` in a task that was given a GPU (Ray sets ``CUDA_VISIBLE_DEVICES`` to it), else
    ``"cpu"``."""
    import torch

    ray = require_ray()
    return "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def in_directory(path: str | None) -> Iterator[None]:
    """Run the block in the driver's working directory ``path`` when this node has it, so that
    relative model files and data folders of the command line resolve as they did there."""
    if not path or not Path(path).is_dir():
        yield
        return
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def node_name() -> str:
    """This worker's host name and process id, for messages."""
    return f"{socket.gethostname()} (pid {os.getpid()})"
