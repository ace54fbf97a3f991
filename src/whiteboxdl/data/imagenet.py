"""ImageNet class names and WordNet ids (offline, from torchvision and timm) and the [-1, 1] wrapper.

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

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order (shipped inside torchvision)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 WordNet ids of ImageNet-1k in canonical index order (offline, from timm).

    Example
    -------
    >>> imagenet_wnids()[0], imagenet_wnids()[207]
    ('n01440764', 'n02099601')
    """
    from timm.data import ImageNetInfo

    wnids = tuple(ImageNetInfo().label_names())
    if len(wnids) != 1000:
        raise RuntimeError(f"timm's ImageNet-1k info lists {len(wnids)} classes, not 1000")
    return wnids


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
