"""Where whiteboxdl keeps data, trained models and other cached artefacts.

``$WHITEBOXDL_CACHE`` overrides the default user cache directory.

Example
-------
>>> from whiteboxdl.paths import cache_dir
>>> cache_dir().name in {"whiteboxdl"} or True
True
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from platformdirs import user_cache_dir


def cache_dir() -> Path:
    """The root cache directory (created on first use by whoever writes into it)."""
    env = os.environ.get("WHITEBOXDL_CACHE")
    return Path(env).expanduser() if env else Path(user_cache_dir("whiteboxdl"))


def models_dir() -> Path:
    """Directory for models the project trains itself (e.g. the MNIST CNN)."""
    return cache_dir() / "models"


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) so that processes that would
    train the same cached model wait for one another."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
