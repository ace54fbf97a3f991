"""The ``--ray`` flags the evaluation commands share (Ray itself is imported only when used).

Example
-------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_ray_arguments(parser)
>>> ray_options(parser.parse_args(["--ray", "auto", "--ray-cpus", "2"]))  # doctest: +SKIP
RayOptions(address='auto', cpus_per_task=2.0, gpus_per_task=None, max_retries=3, local_cpus=None)
>>> ray_options(parser.parse_args([])) is None
True
"""

from __future__ import annotations

import argparse
from typing import Optional

from whiteboxdl.cluster.session import RayOptions, require_ray


def add_ray_arguments(parser: argparse.ArgumentParser, gpus: str = "auto") -> None:
    """Add ``--ray [ADDRESS]``, ``--ray-cpus``, ``--ray-gpus`` and ``--ray-retries``; ``gpus``
    says in the help what the GPU default means for this command."""
    group = parser.add_argument_group("Ray cluster (extra [ray])")
    group.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run every batch as a Ray task: no value starts a local Ray "
                            "instance; auto joins the cluster of this machine (`ray start`), "
                            "ray://HOST:PORT or HOST:PORT a given one. Put it after the "
                            "positional arguments, or write --ray=ADDRESS")
    group.add_argument("--ray-cpus", type=float, default=1.0, metavar="N",
                       help="CPUs per batch task, also its torch threads (default 1)")
    group.add_argument("--ray-gpus", type=float, default=None, metavar="N",
                       help=f"GPUs per batch task (default: {gpus})")
    group.add_argument("--ray-retries", type=int, default=3, metavar="N",
                       help="re-runs of a task whose worker process died (default 3)")


def ray_options(args: argparse.Namespace) -> Optional[RayOptions]:
    """The :class:`RayOptions` of the parsed flags, or ``None`` without ``--ray`` (``ValueError``
    for bad values, :class:`~whiteboxdl.cluster.session.MissingExtraError` when Ray is not
    installed)."""
    if getattr(args, "ray", None) is None:
        return None
    require_ray()
    return RayOptions(address=args.ray, cpus_per_task=args.ray_cpus, gpus_per_task=args.ray_gpus,
                      max_retries=args.ray_retries)
