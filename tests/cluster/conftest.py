"""A local Ray cluster of 2 CPUs for the session, tiny real models, and a way to kill a running task.

Workers import this tree's whiteboxdl: ``PYTHONPATH`` is set before the cluster starts, so the
raylet, every worker it starts and drivers in subprocesses that join it all see this ``src``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

import whiteboxdl
from whiteboxdl.models.checkpoint import save_model
from whiteboxdl.models.cnn import mnist_cnn

SRC = str(Path(whiteboxdl.__file__).resolve().parents[1])


@pytest.fixture(scope="session")
def ray_cluster():
    """Yield the GCS address of a local Ray instance with 2 CPUs (shut down at the end)."""
    ray = pytest.importorskip("ray")
    from whiteboxdl.cluster.session import RayOptions, ray_session

    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, before) if p)
    try:
        with ray_session(RayOptions(local_cpus=2)):
            yield ray.get_runtime_context().gcs_address
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def _model_file(path: Path, classes: int) -> Path:
    torch.manual_seed(0)
    save_model(path, mnist_cnn(classes=classes, width=2), "whiteboxdl.models.cnn:mnist_cnn",
               {"classes": classes, "width": 2})
    return path


@pytest.fixture(scope="session")
def cnn10_file(tmp_path_factory) -> Path:
    """A small (random) MNIST CNN with 10 classes as a whiteboxdl model file."""
    return _model_file(tmp_path_factory.mktemp("models") / "cnn10.pt", 10)


@pytest.fixture(scope="session")
def cnn2_file(tmp_path_factory) -> Path:
    """A small (random) 3-vs-5 CNN as a whiteboxdl model file."""
    return _model_file(tmp_path_factory.mktemp("models") / "cnn2.pt", 2)


def running_tasks(prefix: str) -> list[tuple[int, str]]:
    """``(pid, title)`` of the Ray worker processes running a task named ``prefix...`` (Ray
    titles a worker ``ray::TASK_NAME`` while it runs that task)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith(f"ray::{prefix}"):
            found.append((int(entry.name), title))
    return found


class Killer(threading.Thread):
    """Kill (SIGKILL) the first worker process seen running a task named ``prefix...``."""

    def __init__(self, prefix: str, timeout: float = 240.0):
        super().__init__(daemon=True)
        self.prefix, self.timeout = prefix, timeout
        self.killed: tuple[int, str] | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        end = time.monotonic() + self.timeout
        while not self.stop.is_set() and time.monotonic() < end:
            for pid, title in running_tasks(self.prefix):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                self.killed = (pid, title)
                return
            time.sleep(0.02)


def wait_gone(pid: int, timeout: float = 30.0) -> bool:
    """Whether process ``pid`` is gone (reaped or a zombie) within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False
