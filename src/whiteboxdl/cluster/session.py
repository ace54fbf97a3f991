"""Ray options, addresses and the connection: a local instance or an existing cluster.

Example
-------
>>> parse_address("auto"), parse_address("ray://head:10001"), parse_address(None)
('auto', 'ray://head:10001', None)
>>> parse_address("head")
Traceback (most recent call last):
...
ValueError: --ray 'head' is not a Ray address; use auto, ray://HOST:PORT (Ray client) or ...
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Optional

#: What to install for ``--ray``.
RAY_EXTRA = "pip install 'whiteboxdl[ray]'"
#: ``--ray`` values that mean a local instance started for this run.
LOCAL = ("", "local")


class MissingExtraError(ImportError):
    """An optional extra the call needs is not installed; the message says what to install."""


class ClusterError(ConnectionError):
    """The cluster could not run the work: it cannot be reached, or a task was lost for good (its
    worker died more often than the retries allow, its node left). Finished batches are kept."""


def parse_address(text: Optional[str]) -> Optional[str]:
    """A ``--ray`` value as the address ``ray.init`` takes; ``None`` for a local instance.

    ``auto`` (the cluster this machine belongs to, as ``ray start`` set it up), ``ray://HOST:PORT``
    (Ray client, e.g. port 10001 of the head node), ``HOST:PORT`` (the head node's GCS address,
    port 6379 by default); ``None``, ``""`` or ``local``: a local instance. Anything else raises
    ``ValueError``.
    """
    if text is None or text.strip().lower() in LOCAL:
        return None
    value = text.strip()
    if value.lower() == "auto":
        return "auto"
    hostport = value[len("ray://"):] if value.startswith("ray://") else value
    host, sep, port = hostport.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [IPv6]:port
    ok = bool(sep) and bool(host) and not any(c in host for c in "/ ") and port.isdigit() \
        and 1 <= int(port) <= 65535
    if not ok:
        raise ValueError(f"--ray {text!r} is not a Ray address; use auto, ray://HOST:PORT (Ray "
                         "client) or HOST:PORT (the address `ray start --head` prints), or no "
                         "value for a local instance")
    return value


@dataclass(frozen=True)
class RayOptions:
    """How batches run on Ray.

    Parameters
    ----------
    address : where to run (see :func:`parse_address`); ``None`` starts a local instance.
    cpus_per_task : CPUs each batch task declares (and the torch threads it computes with).
    gpus_per_task : GPUs each task declares; ``None`` (auto): one for work that runs on CUDA
        when the cluster has GPUs, else none.
    max_retries : how often Ray re-runs a task whose worker process died (errors raised by the
        task itself are not retried: they would recur).
    local_cpus : CPUs of a local instance (default: all of this machine's).

    Example
    -------
    >>> RayOptions(cpus_per_task=0)
    Traceback (most recent call last):
    ...
    ValueError: cpus_per_task must be > 0, got 0
    """

    address: Optional[str] = None
    cpus_per_task: float = 1.0
    gpus_per_task: Optional[float] = None
    max_retries: int = 3
    local_cpus: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", parse_address(self.address))
        if not self.cpus_per_task > 0:
            raise ValueError(f"cpus_per_task must be > 0, got {self.cpus_per_task}")
        if self.gpus_per_task is not None and not self.gpus_per_task >= 0:
            raise ValueError(f"gpus_per_task must be >= 0, got {self.gpus_per_task}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) \
                or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        if self.local_cpus is not None and (self.address is not None or self.local_cpus < 1):
            raise ValueError(f"local_cpus ({self.local_cpus}) is for a local instance: an "
                             "integer >= 1 and no address")

    @property
    def where(self) -> str:
        """The address in words, for messages."""
        return "a local Ray instance" if self.address is None else f"the Ray cluster at " \
                                                                    f"{self.address}"


def require_ray() -> ModuleType:
    """The ``ray`` module; :class:`MissingExtraError` naming the extra if it is not installed."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError(f"running on Ray needs Ray, which is not installed: "
                                f"{RAY_EXTRA}") from None
    return ray


@contextlib.contextmanager
def ray_session(options: RayOptions) -> Iterator[ModuleType]:
    """Connect to Ray for the duration of the block (yields the ``ray`` module).

    A session that is already connected (``ray.init`` called by the caller, an outer block) is
    used as it is and left open; otherwise a local instance is started or the cluster at
    ``options.address`` joined, and shut down (disconnected) at the end.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if options.address is None:
        kwargs.update(num_cpus=options.local_cpus, include_dashboard=False,
                      runtime_env={"env_vars": {"PYTHONPATH": worker_pythonpath()}})
    else:
        kwargs["address"] = options.address
    try:
        ray.init(**kwargs)
    except (ConnectionError, TimeoutError) as exc:
        raise ClusterError(f"could not join {options.where}: {exc}; is `ray start --head` "
                           "running there, and is the address the one it printed?") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def worker_pythonpath() -> str:
    """``PYTHONPATH`` for the workers of a local instance: the folder this driver imported
    whiteboxdl from first (a source tree put on ``sys.path`` in-process is not inherited
    otherwise), then the driver's own ``PYTHONPATH``."""
    import whiteboxdl

    here = str(Path(whiteboxdl.__file__).resolve().parents[1])
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]
    return os.pathsep.join([here, *rest])


def task_resources(ray: ModuleType, options: RayOptions, uses_cuda: bool) -> dict[str, float]:
    """``num_cpus`` / ``num_gpus`` of each task, checked against what the cluster has.

    A request the cluster cannot meet is a ``ValueError`` on a local instance (it would wait
    forever) and a warning on a cluster (an autoscaler may add such nodes).
    """
    have = ray.cluster_resources()
    gpus = options.gpus_per_task
    if gpus is None:
        gpus = 1.0 if uses_cuda and have.get("GPU", 0) >= 1 else 0.0
    need = {"CPU": options.cpus_per_task, "GPU": gpus}
    short = [f"{need[k]:g} {k}s per task but the cluster has {have.get(k, 0):g}"
             for k in need if need[k] > have.get(k, 0)]
    if short:
        message = f"{'; '.join(short)} ({options.where})"
        if options.address is None:
            raise ValueError(f"{message}; ask for fewer per task")
        warnings.warn(f"{message}: tasks wait until such a node joins", stacklevel=2)
    return {"num_cpus": float(options.cpus_per_task), "num_gpus": float(gpus)}
