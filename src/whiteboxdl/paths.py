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
import tempfile
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


def check_output_path(path: str | Path, option: str = "--out", kind: str = "dir") -> Path:
    """Check before any work starts that ``path`` can be written; returns it as a ``Path``.

    ``kind="dir"``: a folder that exists or can be created (not an existing file);
    ``kind="file"``: a file whose folder exists or can be created (not an existing folder).
    Nothing is left behind: writability is probed with a temporary folder that is removed.
    Raises ``FileExistsError``, ``IsADirectoryError``, ``NotADirectoryError`` or
    ``PermissionError`` with one line naming ``option``, the path and the fix.

    Example
    -------
    >>> import tempfile
    >>> check_output_path(tempfile.mkdtemp() + "/new/run").name
    'run'
    >>> check_output_path("/dev/null")
    Traceback (most recent call last):
    FileExistsError: --out /dev/null is an existing file, not a folder; choose a folder ...
    """
    if kind not in ("dir", "file"):
        raise ValueError(f"kind must be 'dir' or 'file', got {kind!r}")
    path = Path(path).expanduser()
    if kind == "dir" and path.exists() and not path.is_dir():
        raise FileExistsError(f"{option} {path} is an existing file, not a folder; choose a "
                              "folder (it is created if missing)")
    if kind == "file" and path.is_dir():
        raise IsADirectoryError(f"{option} {path} is a folder; give a file name inside it, "
                                f"e.g. {path / 'figure.png'}")
    folder = path if kind == "dir" else path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{option} {path}: {existing} is a file, so no folder can be "
                                 "created there; choose another path")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".whiteboxdl-write-test-", dir=existing))
    except OSError as exc:
        raise PermissionError(f"{option} {path} is not writable ({exc.strerror} in {existing}); "
                              "choose a folder you can write to") from None
    return path
