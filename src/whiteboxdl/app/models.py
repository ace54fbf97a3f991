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
>>> registry.specs[0].label, registry.availability("efficientnet_lite0")[0]
('EfficientNet-Lite0 (ImageNet, bundled weights)', True)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Callable

from torch import nn

from whiteboxdl.data.imagenet import class_choices
from whiteboxdl.models.registry import (InputContract, availability, model_contract, model_label,
                                        resolve_model)

MNIST_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SEMANTIC_KEY = "semantic"
#: The models the pullbacks tab offers, in order, the first being the default (any registered
#: model name works): pretrained EfficientNet-Lite (bundled, offline), the project's MNIST CNN,
#: and the paper's torchvision models (usable once their weight files are in torch's hub cache).
APP_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mnist-cnn",
              "resnet50", "vgg11_bn", "densenet121")
#: Quick picks for ImageNet models: classes of the bundled photos and the paper's favourite
#: counterfactuals.
IMAGENET_QUICK_PICKS = (207, 281, 291, 340, 417, 812, 817, 967, 504, 1)


@dataclass(frozen=True)
class ModelSpec:
    """What the app needs to know about a model before loading it (from the model registry)."""

    key: str
    label: str
    contract: InputContract
    quick_picks: tuple[int, ...]
    steps: int = 10
    alpha: float = 20.0
    eps: float = 100.0

    @classmethod
    def of(cls, key: str) -> "ModelSpec":
        """The spec of a registered model. Digit models scale the paper's alpha=20, eps=100
        (224x224x3 in [-1, 1]) down to a 28x28 image in [0, 1]: the same step per pixel."""
        contract = model_contract(key)
        if contract.class_names is None:
            raise ValueError(f"{key} declares no class names; the app needs them")
        if contract.kind == "digit":
            names = contract.class_names
            if all(n.isdigit() and len(n) == 1 for n in names):     # shown as words: "7 – seven"
                contract = replace(contract, class_names=tuple(MNIST_DIGITS[int(n)] for n in names))
            return cls(key, model_label(key), contract, tuple(range(len(names))), steps=10,
                       alpha=1.0, eps=5.0)
        picks = tuple(i for i in IMAGENET_QUICK_PICKS if i < len(contract.class_names))
        return cls(key, model_label(key), contract, picks)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.contract.class_names or ()

    @property
    def size(self) -> int:
        return self.contract.size

    @property
    def bounds(self) -> tuple[float, float]:
        return self.contract.bounds

    def class_label(self, index: int) -> str:
        return f"{index} – {self.classes[index]}"

    def choices(self) -> list[str]:
        return class_choices(self.classes)


def _load_semantic(digits: tuple[int, ...] = (3, 5)) -> nn.Module:
    from whiteboxdl.semantic import get_semantic_model

    return get_semantic_model(digits)


@dataclass
class ModelRegistry:
    """Specs, availability and a load-once cache of the app's models.

    ``random_weights=True`` makes the ImageNet models usable without weight files (random
    initialisation; for timing and trying the interface only — their predictions mean nothing).
    """

    specs: tuple[ModelSpec, ...] = field(default_factory=lambda: tuple(
        ModelSpec.of(key) for key in APP_MODELS))
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
            self.loaders.setdefault(spec.key, self._registry_loader(spec.key))

    def _registry_loader(self, key: str) -> Callable[[], nn.Module]:
        def load() -> nn.Module:
            random_init = self.random_weights and not availability(key)[0]
            return resolve_model(key, weights=None if random_init else "DEFAULT").model
        return load

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
        usable, why = availability(spec.key)
        if not usable and self.random_weights:
            return True, "RANDOM weights (started with --random-weights): predictions are meaningless"
        if not usable:
            return False, f"{why}, and restart the app"
        return True, why

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
