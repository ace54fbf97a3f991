"""Files of a run directory: written atomically, verified when read, set aside when damaged.

Run directories (quality and robustness runs, training checkpoints, stability recordings) hold
work that took minutes to compute, so their files are never trusted blindly:

* every write goes to a hidden temporary file in the same folder, is flushed to disk and renamed
  into place (:func:`atomic_write`), so an interruption never leaves half a file under the real
  name;
* every read is verified (:func:`load_torch`, :func:`load_npz`, :func:`read_json`): zip
  containers (``.pt``, ``.npz``) by the CRC-32 checksum of each member, JSON by parsing; the
  caller then checks the contents (keys, lengths, the run's config :func:`fingerprint`). A
  damaged file raises :class:`DamagedFileError`, which names it;
* :func:`read_verified` turns a damaged file into "not there": it moves the file aside
  (``NAME.damaged``, never deleted), prints one warning line naming it, and the caller recomputes
  it.

Example
-------
>>> import tempfile, pathlib
>>> from whiteboxdl.runfiles import read_json, read_verified, write_json
>>> path = pathlib.Path(tempfile.mkdtemp()) / "config.json"
>>> _ = write_json(path, {"n": 3})
>>> read_json(path)
{'n': 3}
>>> _ = path.write_text("{trunc")
>>> read_verified(path, read_json, action="writing it again") is None  # warns, moves it aside
True
>>> sorted(p.name for p in path.parent.iterdir())
['config.json.damaged']
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
import zipfile
from pathlib import Path
from typing import IO, Any, Callable, Optional, TypeVar

import numpy as np

T = TypeVar("T")

#: Suffix a damaged file is renamed to (kept for inspection, ignored by every reader).
DAMAGED_SUFFIX = ".damaged"


class DamagedFileError(ValueError):
    """A run file that cannot be trusted: empty, truncated, a bad checksum or wrong contents."""

    def __init__(self, path: str | Path, reason: str, fix: str = ""):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path} is damaged ({reason})" + (f"; {fix}" if fix else ""))


# ----------------------------------------------------------------------------- writing
def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(binary_file)`` on a temporary file next to ``path``, then rename it there.

    The temporary file is hidden (``.NAME.<id>.partial``), flushed and fsynced before the rename
    and removed if ``write`` fails, so ``path`` holds either the old or the complete new file.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = atomic_write(pathlib.Path(tempfile.mkdtemp()) / "a.bin", lambda f: f.write(b"xy"))
    >>> p.read_bytes()
    b'xy'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with open(tmp, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return write_text(path, json.dumps(obj, indent=1) + "\n")


def save_torch(path: str | Path, obj: Any) -> Path:
    """``torch.save(obj)`` atomically (readable with :func:`load_torch`)."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """``numpy.savez`` atomically, uncompressed (readable with :func:`load_npz`)."""
    return atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- reading
def verify_zip(path: str | Path, fix: str = "") -> None:
    """Raise :class:`DamagedFileError` unless ``path`` is a complete zip archive whose members
    all match their CRC-32 checksums (``.pt`` and ``.npz`` files are zip archives)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    if path.stat().st_size == 0:
        raise DamagedFileError(path, "empty file", fix)
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise DamagedFileError(path, f"truncated or not a zip archive: {exc}", fix) from None
    if bad is not None:
        raise DamagedFileError(path, f"checksum mismatch in its member {bad!r}", fix)


def load_torch(path: str | Path, fix: str = "") -> Any:
    """A verified ``torch.load(path, weights_only=True)`` on the CPU (no code is ever run)."""
    import torch

    verify_zip(path, fix)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an intact zip with contents torch refuses
        raise DamagedFileError(path, f"not a loadable tensor file: {exc}", fix) from None


def load_npz(path: str | Path, fix: str = "") -> dict[str, np.ndarray]:
    """All arrays of a verified ``.npz`` file, read without pickle (no code is ever run)."""
    verify_zip(path, fix)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except Exception as exc:  # e.g. object arrays, which would need pickle: refused
        raise DamagedFileError(path, f"not a plain array file: {exc}", fix) from None


def read_json(path: str | Path, fix: str = "") -> Any:
    """Parse the JSON file ``path``; :class:`DamagedFileError` naming it if it is not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = "empty file" if path.stat().st_size == 0 else f"not valid JSON: {exc}"
        raise DamagedFileError(path, reason, fix) from None


def warn(message: str) -> None:
    """One ``whiteboxdl: warning:`` line on stderr (kept clear of progress bars)."""
    from tqdm.auto import tqdm

    tqdm.write(f"whiteboxdl: warning: {message}", file=sys.stderr)


def set_aside(error: DamagedFileError, action: str = "recomputing it") -> Optional[Path]:
    """Move the damaged file to ``NAME.damaged`` and print one warning line naming it."""
    path = error.path
    target = path.with_name(path.name + DAMAGED_SUFFIX)
    try:
        os.replace(path, target)
        moved = f"moved to {target.name}"
    except OSError as exc:  # cannot move it: leave it, the recomputed file replaces it
        target, moved = None, f"could not move it aside: {exc.strerror}"
    warn(f"{path} is damaged ({error.reason}); {moved}; {action}")
    return target


def read_verified(path: str | Path, load: Callable[[Path], T],
                  check: Callable[[T], None] | None = None,
                  action: str = "recomputing it") -> Optional[T]:
    """The contents of ``path`` if it is there and intact, else ``None``.

    ``load(path)`` reads and verifies the file (e.g. :func:`load_torch`); ``check(contents)``
    raises :class:`DamagedFileError` for wrong contents. A damaged file is set aside and reported
    (:func:`set_aside`, with ``action`` saying what happens instead); any other error (such as a
    ``ValueError`` for a file of another run) propagates.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        contents = load(path)
        if check is not None:
            check(contents)
        return contents
    except DamagedFileError as exc:
        set_aside(exc, action)
        return None


# ----------------------------------------------------------------------------- fingerprints
def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-able object (dict keys sorted; tuples count as lists).

    Example
    -------
    >>> fingerprint({"b": (1, 2), "a": 1}) == fingerprint({"a": 1, "b": [1, 2]})
    True
    """
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tensor_digest(*tensors: Any) -> str:
    """A short SHA-256 of the tensors' bytes (torch tensors or numpy arrays), in order."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = tensor.detach().cpu().contiguous().numpy() if hasattr(tensor, "detach") \
            else np.ascontiguousarray(tensor)
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def as_json(obj: Any) -> Any:
    """``obj`` as JSON would give it back (tuples become lists), for comparisons with files."""
    return json.loads(json.dumps(obj, default=str))


def check_run_config(path: str | Path, config: dict, fix: str) -> bool:
    """Compare a run's settings with the ones stored in ``path`` (``config.json`` / ``run.json``).

    Returns ``True`` when the stored settings equal ``config`` and ``False`` when there are none
    (missing, or damaged: then reported and set aside); the caller writes ``config`` with
    :func:`write_json` once the run's other files proved to belong to it (they carry the
    config's :func:`fingerprint`). Other stored settings raise ``ValueError`` naming the
    differences and ``fix``.
    """
    path = Path(path)
    new = as_json(config)
    old = read_verified(path, read_json, action="writing it again from this command's settings")
    if old is None:
        return False
    if old != new:
        keys = sorted(set(old) | set(new)) if isinstance(old, dict) else list(new)
        diff = {k: (old.get(k) if isinstance(old, dict) else None, new.get(k)) for k in keys
                if not isinstance(old, dict) or old.get(k) != new.get(k)}
        raise ValueError(f"{path.parent} holds a run with different settings "
                         f"(stored → now: {diff}); {fix}")
    return True
