"""ImageNet class names (offline, from torchvision's weights metadata) and the [-1, 1] wrapper.

The paper's explainer works on inputs in [-1, 1]; ImageNet models expect inputs normalised with the
ImageNet mean and standard deviation. :class:`SignedImageNetInput` bridges the two.

Example
-------
>>> from whiteboxdl.data.imagenet import imagenet_classes, SignedImageNetInput
>>> imagenet_classes()[207]
'golden retriever'
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order (shipped inside torchvision)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def class_choices(names: tuple[str, ...] | list[str]) -> list[str]:
    """Labels ``"idx – name"`` for a searchable dropdown."""
    return [f"{i} – {name}" for i, name in enumerate(names)]


class SignedImageNetInput(nn.Module):
    """Wrap an ImageNet classifier so that it takes images in [-1, 1].

    ``forward(x) = model(((x + 1) / 2 - mean) / std)``; ``x`` must have 3 channels.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] image -> ImageNet-normalised image."""
        return ((x + 1) / 2 - self.mean) / self.std

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalise`."""
        return (z * self.std + self.mean) * 2 - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"expected a batch (N, {self.mean.shape[1]}, H, W), got {tuple(x.shape)}")
        return self.model(self.normalise(x))


def read_labels_csv(source: str | Path) -> list[tuple[Path, int]]:
    """``(image path, class index)`` rows of a labelled image folder: a ``labels.csv`` whose
    header names ``file`` and ``class_index`` (other columns, e.g. ``wnid``, ``class_name``, are
    ignored), files relative to the CSV's folder or an ``images/`` folder beside it.

    ``source`` is the CSV or the folder holding it. ``FileNotFoundError`` / ``ValueError`` name
    the file and what is wrong.

    Example
    -------
    >>> rows = read_labels_csv("../shared/data/imagenet-sample")       # doctest: +SKIP
    >>> rows[0]                                                         # doctest: +SKIP
    (PosixPath('../shared/data/imagenet-sample/images/000_n01440764.jpg'), 0)
    """
    import csv

    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "labels.csv"
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path} (expected a labels.csv with "
                                "columns file,class_index)")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"file", "class_index"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: the header must name the columns file and class_index, "
                             f"got {reader.fieldnames}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                label = int(row["class_index"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: class_index must be an integer, got "
                                 f"{row['class_index']!r}") from None
            name = row["file"] or ""
            candidates = [path.parent / name, path.parent / "images" / name]
            image = next((c for c in candidates if c.is_file()), None)
            if not name or image is None:
                raise FileNotFoundError(f"{path}:{line}: image {name!r} not found next to the "
                                        "CSV or in its images/ folder")
            rows.append((image, label))
    if not rows:
        raise ValueError(f"{path} lists no images")
    return rows
