"""The models the app offers, whether each can be used here, and loading each once behind a lock.

Models are loaded lazily on first use, put in eval mode with ``requires_grad`` off for their
parameters (input gradients only), and then shared read-only by every request: the pullback
context is thread-local, so requests with different settings never interfere.

Example
-------
>>> from whiteboxdl.app.models import ModelRegistry
>>> registry = ModelRegistry()
>>> registry.spec("mnist-cnn").size, registry.spec("resnet50").classes[207]
(28, 'golden retriever')
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from whiteboxdl.data.imagenet import class_choices, imagenet_classes

MNIST_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SEMANTIC_KEY = "semantic"


@dataclass(frozen=True)
class ModelSpec:
    """What the app needs to know about a model before loading it."""

    key: str
    label: str
    family: str  # "mnist" (1x28x28 in [0,1]) or "imagenet" (3x224x224 in [-1,1])
    classes: tuple[str, ...]
    quick_picks: tuple[int, ...]
    steps: int = 10
    alpha: float = 20.0
    eps: float = 100.0

    @property
    def size(self) -> int:
        return 28 if self.family == "mnist" else 224

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0) if self.family == "mnist" else (-1.0, 1.0)

    def class_label(self, index: int) -> str:
        return f"{index} – {self.classes[index]}"

    def choices(self) -> list[str]:
        return class_choices(self.classes)


def _imagenet_spec(key: str, label: str) -> ModelSpec:
    # Quick picks: classes of the bundled photos and the paper's favourite counterfactuals.
    return ModelSpec(key, label, "imagenet", imagenet_classes(),
                     quick_picks=(207, 281, 291, 340, 417, 812, 817, 967, 504, 1))


#: Defaults for MNIST scale the paper's alpha=20, eps=100 (224x224x3 in [-1, 1]) down to a
#: 28x28 image in [0, 1]: the same step per pixel.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("mnist-cnn", "MNIST CNN (this project, 10 digits)", "mnist", MNIST_DIGITS,
              quick_picks=tuple(range(10)), steps=10, alpha=1.0, eps=5.0),
    _imagenet_spec("resnet50", "ResNet50 (torchvision, ImageNet)"),
    _imagenet_spec("vgg11_bn", "VGG11_BN (torchvision, ImageNet)"),
    _imagenet_spec("densenet121", "DenseNet121 (torchvision, ImageNet)"),
)


def _load_mnist_cnn() -> nn.Module:
    from whiteboxdl.models.cnn import get_cnn

    return get_cnn("mnist")


def _load_semantic(digits: tuple[int, ...] = (3, 5)) -> nn.Module:
    from whiteboxdl.semantic import get_semantic_model

    return get_semantic_model(digits)


def _imagenet_loader(name: str, random_weights: bool) -> Callable[[], nn.Module]:
    def load() -> nn.Module:
        from whiteboxdl.models.zoo import load_classifier, weights_available

        random_init = random_weights and not weights_available(name)
        return load_classifier(name, weights=None if random_init else "DEFAULT")
    return load


@dataclass
class ModelRegistry:
    """Specs, availability and a load-once cache of the app's models.

    ``random_weights=True`` makes the ImageNet models usable without weight files (random
    initialisation; for timing and trying the interface only — their predictions mean nothing).
    """

    specs: tuple[ModelSpec, ...] = SPECS
    random_weights: bool = False
    #: digits of the white-box tab's semantic network (``get_semantic_model(semantic_digits)``)
    semantic_digits: tuple[int, ...] = (3, 5)
    loaders: dict[str, Callable[[], nn.Module]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_key = {spec.key: spec for spec in self.specs}
        self._by_label = {spec.label: spec for spec in self.specs}
        self._models: dict[str, nn.Module] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._custom = set(self.loaders)
        self._guard = threading.Lock()
        for spec in self.specs:
            if spec.key not in self.loaders:
                self.loaders[spec.key] = (_load_mnist_cnn if spec.family == "mnist"
                                          else _imagenet_loader(spec.key, self.random_weights))

    def spec(self, key_or_label: str) -> ModelSpec:
        """The spec of a model given its key (``"resnet50"``) or its label in the UI."""
        spec = self._by_key.get(key_or_label) or self._by_label.get(key_or_label)
        if spec is None:
            raise ValueError(f"unknown model {key_or_label!r}; choose one of "
                             f"{[s.label for s in self.specs]}")
        return spec

    def availability(self, key_or_label: str) -> tuple[bool, str]:
        """``(usable, one-line explanation)`` without loading anything."""
        spec = self.spec(key_or_label)
        if spec.key in self._models:
            return True, "loaded"
        if spec.key in self._custom:
            return True, "custom loader"
        if spec.family == "mnist":
            try:
                from whiteboxdl.models.cnn import cnn_dir
            except ImportError:
                return False, "the project's CNN module (whiteboxdl.models.cnn) is not installed"
            if (cnn_dir("mnist") / "model.pt").is_file():
                return True, "trained and cached"
            return True, ("not trained yet: the first request trains it on MNIST (a few CPU "
                          "minutes; or run `whiteboxdl train cnn --dataset mnist` beforehand)")
        try:
            from whiteboxdl.models.zoo import weights_available, weights_path
        except ImportError:
            return False, "the model zoo (whiteboxdl.models.zoo) is not installed"
        if weights_available(spec.key):
            return True, "ImageNet weights found"
        if self.random_weights:
            return True, "RANDOM weights (started with --random-weights): predictions are meaningless"
        return False, (f"no ImageNet weights here: copy the torchvision file to "
                       f"{weights_path(spec.key)} (or run once online) and restart the app")

    def get(self, key_or_label: str) -> nn.Module:
        """The model, loaded on first use (once, even under concurrent first requests)."""
        spec = self.spec(key_or_label)
        model = self._models.get(spec.key)
        if model is not None:
            return model
        usable, why = self.availability(spec.key)
        if not usable:
            raise ValueError(f"{spec.label} is not available: {why}")
        return self._load_once(spec.key, self.loaders[spec.key])

    def semantic(self) -> nn.Module:
        """The white-box semantic network of ``semantic_digits`` (3 vs 5 by default), trained on
        first use, loaded once."""
        if SEMANTIC_KEY in self._models:
            return self._models[SEMANTIC_KEY]
        digits = tuple(int(d) for d in self.semantic_digits)
        loader = self.loaders.get(SEMANTIC_KEY, lambda: _load_semantic(digits))
        return self._load_once(SEMANTIC_KEY, loader)

    def _load_once(self, key: str, loader: Callable[[], nn.Module]) -> nn.Module:
        with self._lock_for(key):
            if key not in self._models:
                model = loader().eval()
                for param in model.parameters():
                    param.requires_grad_(False)
                self._models[key] = model
        return self._models[key]

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())
