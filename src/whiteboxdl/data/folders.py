"""Labelled image folders: a ``labels.csv`` beside the images, or an ImageFolder tree.

Two layouts, named by a data spec (the quality runner's ``--data`` and ``explain``'s images):

``csv:PATH``
    ``PATH`` is a folder holding ``labels.csv`` (or the CSV itself). The header names at least
    ``file`` and ``class_index``; other columns (``wnid``, ``class_name`` …) are ignored. Files
    are relative to the CSV's folder or to an ``images/`` folder beside it (the layout of the
    shared ImageNet sample).
``imagefolder:PATH``
    One sub-folder per class. When every folder is named by a WordNet id (``n01440764`` …),
    its label is that id's **canonical ImageNet-1k index**, not its position among the folders
    present, so a tree with a subset of the classes keeps the model's class numbering. Folders
    with other names are numbered in sorted order (torchvision's ``ImageFolder``); a mix of the
    two is refused.

Example
-------
>>> from whiteboxdl.data.folders import labelled_images
>>> images = labelled_images("csv:../shared/data/imagenet-sample")    # doctest: +SKIP
>>> images.paths[0].name, images.labels[0]                            # doctest: +SKIP
('000_n01440764.jpg', 0)
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

#: Data-spec prefixes of the labelled folder layouts.
FOLDER_SPECS = ("csv:", "imagefolder:")
#: A WordNet noun synset id, as ImageNet names its classes.
WNID = re.compile(r"^n\d{8}$")
#: File endings read as images (those of torchvision's ``ImageFolder``).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class LabelledImages:
    """Image files and their class indices, in a fixed order (the CSV's rows, or class folders
    then file names sorted)."""

    paths: tuple[Path, ...]
    labels: tuple[int, ...]
    source: str

    def __len__(self) -> int:
        return len(self.paths)

    def rows(self) -> list[tuple[Path, int]]:
        """``[(path, class index), ...]`` in order."""
        return list(zip(self.paths, self.labels))


def is_folder_spec(spec: str) -> bool:
    """Whether ``spec`` names a labelled folder (``csv:PATH`` or ``imagefolder:PATH``)."""
    return isinstance(spec, str) and spec.startswith(FOLDER_SPECS)


def labelled_images(spec: str) -> LabelledImages:
    """The images and labels a ``csv:PATH`` or ``imagefolder:PATH`` spec names.

    ``FileNotFoundError`` / ``ValueError`` name the file or folder and what is wrong.
    """
    kind, _, rest = spec.partition(":")
    if not rest:
        raise ValueError(f"data spec {spec!r} names no path; use csv:PATH or imagefolder:PATH")
    if kind == "csv":
        return read_labels_csv(rest)
    if kind == "imagefolder":
        return read_image_tree(rest)
    raise ValueError(f"unknown folder spec {spec!r}; use csv:PATH or imagefolder:PATH")


def read_labels_csv(source: str | Path) -> LabelledImages:
    """The rows of a ``labels.csv`` (``source``: the CSV or the folder holding it).

    Example
    -------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (4, 4)).save(root / "a.png")
    >>> _ = (root / "labels.csv").write_text("file,class_index,wnid\\na.png,207,n02099601\\n")
    >>> read_labels_csv(root).labels
    (207,)
    """
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "labels.csv"
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path} (expected a labels.csv with the "
                                "columns file,class_index)")
    paths, labels = [], []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"file", "class_index"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: the header must name the columns file and class_index, "
                             f"got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            try:
                label = int(row["class_index"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: class_index must be a whole number, got "
                                 f"{row['class_index']!r}") from None
            if label < 0:
                raise ValueError(f"{path}:{line}: class_index must be >= 0, got {label}")
            name = (row["file"] or "").strip()
            found = next((c for c in (path.parent / name, path.parent / "images" / name)
                          if name and c.is_file()), None)
            if found is None:
                raise FileNotFoundError(f"{path}:{line}: image {name!r} is neither next to the "
                                        "CSV nor in its images/ folder")
            paths.append(found)
            labels.append(label)
    if not paths:
        raise ValueError(f"{path} lists no images")
    return LabelledImages(tuple(paths), tuple(labels), f"csv:{path.parent}")


def read_image_tree(root: str | Path) -> LabelledImages:
    """An ImageFolder tree: WordNet-id folders get their canonical ImageNet index.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for wnid in ("n02099601", "n01440764"):        # golden retriever (207), tench (0)
    ...     (root / wnid).mkdir()
    ...     Image.new("RGB", (4, 4)).save(root / wnid / "x.png")
    >>> read_image_tree(root).labels
    (0, 207)
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root} (expected class sub-folders)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class sub-folders")
    index = _class_indices(root, classes)
    paths, labels = [], []
    for name in classes:
        files = sorted(p for p in (root / name).rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [index[name]] * len(files)
    if not paths:
        raise ValueError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    return LabelledImages(tuple(paths), tuple(labels), f"imagefolder:{root}")


def _class_indices(root: Path, classes: list[str]) -> dict[str, int]:
    """Folder name -> label: canonical ImageNet indices for WordNet ids, else sorted order."""
    wnid = [bool(WNID.match(c)) for c in classes]
    if not any(wnid):
        return {c: i for i, c in enumerate(classes)}
    if not all(wnid):
        odd = next(c for c, w in zip(classes, wnid) if not w)
        raise ValueError(f"{root}: class folders mix WordNet ids and other names (e.g. {odd!r}); "
                         "name every folder by its WordNet id, or none")
    from whiteboxdl.data.imagenet import imagenet_wnids

    canonical = {w: i for i, w in enumerate(imagenet_wnids())}
    unknown = [c for c in classes if c not in canonical]
    if unknown:
        raise ValueError(f"{root}: {unknown[0]!r} is not one of the 1000 ImageNet-1k classes")
    return {c: canonical[c] for c in classes}
