"""torchvision classifiers by name, with weights from the hub cache, a local file, or random init.

Weights never download unless asked (``download=True``): an enum weight (``"DEFAULT"``,
``"IMAGENET1K_V1"``, ``"ResNet50_Weights.IMAGENET1K_V2"`` …) is used when its file is already in
``torch.hub.get_dir()/checkpoints/``; otherwise one ``FileNotFoundError`` says where to put it.
Models come back in eval mode, by default wrapped to take images in [-1, 1]
(:class:`~whiteboxdl.data.imagenet.SignedImageNetInput`).

Example
-------
>>> import torch
>>> from whiteboxdl.models.zoo import load_classifier, weights_available
>>> model = load_classifier("resnet18", weights=None)              # random init, [-1, 1] input
>>> model(torch.zeros(1, 3, 64, 64)).shape
torch.Size([1, 1000])
>>> weights_available("resnet50")                                   # doctest: +SKIP
False
>>> model = load_classifier("resnet50")                             # doctest: +SKIP
Traceback (most recent call last):
FileNotFoundError: ImageNet weights ResNet50_Weights.IMAGENET1K_V2 ... put the file at ...
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from typing import TypeAlias, Union
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from whiteboxdl.data.imagenet import SignedImageNetInput, imagenet_classes
from whiteboxdl.models.registry import (BuilderSpec, InputContract, ModelFamily, Param,
                                        imagenet_contract, register_family)

WeightsSpec: TypeAlias = Union[str, Path, WeightsEnum, None]

#: The builder that model files of torchvision classifiers name (:func:`build_classifier`).
BUILDER = "whiteboxdl.models.zoo:build_classifier"


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def classifier_names() -> list[str]:
    """Names of all torchvision image-classification builders (``resnet50``, ``vgg11_bn`` …)."""
    return list(_names())


def check_name(name: str) -> str:
    """Return the canonical (lower-case) builder name or raise ``ValueError`` with close matches."""
    if not isinstance(name, str):
        raise ValueError(f"classifier name must be a string, got {type(name).__name__}")
    canonical = name.strip().lower().replace("-", "_")
    if canonical in _names():
        return canonical
    close = difflib.get_close_matches(canonical, _names(), n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(f"unknown classifier {name!r}; {hint}"
                     "see whiteboxdl.models.zoo.classifier_names() for all "
                     f"{len(_names())} torchvision classifiers")


def _weights_enum(name: str) -> type[WeightsEnum]:
    return torchvision.models.get_model_weights(name)


def _is_enum_spec(name: str, weights: WeightsSpec) -> bool:
    if isinstance(weights, WeightsEnum):
        return True
    if not isinstance(weights, str):
        return False
    enum = _weights_enum(name)
    key = weights.split(".", 1)[1] if weights.startswith(enum.__name__ + ".") else weights
    return key == "DEFAULT" or key in enum.__members__


def resolve_weights(name: str, weights: str | WeightsEnum = "DEFAULT") -> WeightsEnum:
    """The enum member meant by ``weights`` for builder ``name`` (``"DEFAULT"`` resolved)."""
    name = check_name(name)
    enum = _weights_enum(name)
    if isinstance(weights, WeightsEnum):
        if not isinstance(weights, enum):
            raise ValueError(f"{weights} are not weights of {name}; choose from {_choices(enum)}")
        return weights
    key = weights.split(".", 1)[1] if weights.startswith(enum.__name__ + ".") else weights
    if key == "DEFAULT":
        return enum.DEFAULT
    if key not in enum.__members__:
        raise ValueError(f"unknown weights {weights!r} for {name}; choose from {_choices(enum)}, "
                         "None (random init) or the path of a checkpoint file")
    return enum[key]


def _looks_like_enum_name(weights: WeightsSpec) -> bool:
    return (isinstance(weights, str) and not Path(weights).expanduser().exists()
            and re.fullmatch(r"([A-Za-z0-9]+_Weights\.)?[A-Z][A-Z0-9_]*", weights) is not None)


def _choices(enum: type[WeightsEnum]) -> str:
    named = [k for k in enum.__members__ if k != "DEFAULT"]
    return ", ".join([f"DEFAULT (= {enum.DEFAULT.name})", *named])


def weights_path(name: str, weights: str | WeightsEnum = "DEFAULT") -> Path:
    """Where torch.hub keeps (or would keep) the file of an enum weight.

    ``torch.hub.get_dir()/checkpoints/<file name of the enum's URL>``, exactly where
    ``torch.hub.load_state_dict_from_url`` looks; honours ``$TORCH_HOME``.
    """
    member = resolve_weights(name, weights)
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(member.url).name


def weights_available(name: str, weights: WeightsSpec = "DEFAULT") -> bool:
    """Whether :func:`load_classifier` can load ``weights`` offline (random init always can)."""
    if weights is None:
        check_name(name)
        return True
    if _is_enum_spec(check_name(name), weights):
        return weights_path(name, weights).is_file()
    return Path(weights).expanduser().is_file()


def class_names(name: str) -> list[str]:
    """Class names of ``name``'s default weights (ImageNet-1k for every torchvision classifier)."""
    enum = _weights_enum(check_name(name))
    categories = enum.DEFAULT.meta.get("categories") if len(enum.__members__) else None
    return list(categories) if categories else list(imagenet_classes())


def build_classifier(name: str, num_classes: int = 1000) -> nn.Module:
    """A randomly initialised torchvision classifier (the builder recorded in model files)."""
    return torchvision.models.get_model(check_name(name), weights=None, num_classes=num_classes)


def _from_enum(name: str, weights: str | WeightsEnum, download: bool) -> nn.Module:
    member = resolve_weights(name, weights)
    path = weights_path(name, member)
    if not path.is_file() and not download:
        raise FileNotFoundError(
            f"ImageNet weights {member} for {name} are not in the torch hub cache. Put the file "
            f"{path.name} (from {member.url}) at {path}, or call with download=True while online, "
            "or use weights=None for random init or a checkpoint path.")
    try:
        # torchvision's own loading path: reads the cached file, downloads only if it is missing
        return torchvision.models.get_model(name, weights=member)
    except (RuntimeError, ValueError, OSError) as exc:
        if not path.is_file():
            raise
        raise ValueError(f"{path} could not be loaded as {member} ({exc}); delete it and put the "
                         f"original {path.name} there") from exc


def _unwrap_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ValueError(f"{path}: expected a state_dict (parameter name -> tensor) or a whiteboxdl "
                         "model file")
    state = dict(obj)
    for prefix in ("module.", "model."):  # DataParallel, or a saved SignedImageNetInput wrapper
        if all(k.startswith(prefix) or k in ("mean", "std") for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _head_name(model: nn.Module, num_classes: int) -> str | None:
    """Name of the last Linear/Conv2d producing ``num_classes`` outputs (the classifier head)."""
    heads = [n for n, m in model.named_modules()
             if (isinstance(m, nn.Linear) and m.out_features == num_classes)
             or (isinstance(m, nn.Conv2d) and m.out_channels == num_classes)]
    return heads[-1] if heads else None


def _from_file(name: str, path: Path) -> nn.Module:
    from whiteboxdl.models.checkpoint import load_model

    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (weights= takes DEFAULT, an enum "
                                "name, None or the path of an existing file)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a loadable checkpoint ({exc})") from exc
    if isinstance(obj, dict) and {"builder", "kwargs", "state_dict"} <= set(obj):
        stored = obj["kwargs"].get("name") if isinstance(obj["kwargs"], dict) else None
        if obj["builder"] != BUILDER or not isinstance(stored, str) or check_name(stored) != name:
            raise ValueError(f"{path} holds a {obj['builder']}({obj['kwargs']}) model, not {name}; "
                             "load it with whiteboxdl.models.checkpoint.load_model")
        model = load_model(path)
        return model.model if isinstance(model, SignedImageNetInput) else model
    state = _unwrap_state_dict(obj, path)
    model = build_classifier(name)
    head = _head_name(model, 1000)
    head_weight = state.get(f"{head}.weight") if head else None
    if head_weight is not None and head_weight.shape[0] != 1000:  # fine-tuned to other classes
        model = build_classifier(name, num_classes=int(head_weight.shape[0]))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not fit {name}: {' '.join(str(exc).split())[:500]}") from exc
    return model


def load_classifier(name: str, weights: WeightsSpec = "DEFAULT", signed_input: bool = True,
                    download: bool = False) -> nn.Module:
    """Build torchvision classifier ``name`` with ``weights``, in eval mode.

    Parameters
    ----------
    name : any of :func:`classifier_names` (case-insensitive), e.g. ``"resnet50"``.
    weights : ``"DEFAULT"`` or an enum name/member (used when cached; see :func:`weights_path`),
        ``None`` for random init, or the path of a checkpoint: a ``state_dict`` (also nested under
        ``"state_dict"``/``"model"``, ``module.`` prefixes stripped, class count inferred) or a
        whiteboxdl model file written with builder :data:`BUILDER`.
    signed_input : wrap in :class:`SignedImageNetInput` so that inputs are images in [-1, 1].
    download : allow torchvision to download a missing enum weight (online only).

    Raises
    ------
    ValueError : unknown name or weights, or a checkpoint that does not fit the architecture.
    FileNotFoundError : enum weights not cached (message names the exact path), missing file.

    Example
    -------
    >>> model = load_classifier("vgg11_bn", weights=None, signed_input=False)
    >>> model.training
    False
    """
    name = check_name(name)
    if weights is None:
        model = build_classifier(name)
    elif _is_enum_spec(name, weights):
        model = _from_enum(name, weights, download)
    elif _looks_like_enum_name(weights):
        resolve_weights(name, weights)  # raises ValueError listing the valid enum names
    elif isinstance(weights, (str, Path)):
        model = _from_file(name, Path(weights).expanduser())
    else:
        raise ValueError(f"weights must be 'DEFAULT', an enum name, None or a path, got {weights!r}")
    model.eval()
    return SignedImageNetInput(model).eval() if signed_input else model


# ----------------------------------------------------------------------------- registry
#: The paper's ImageNet models (listed first in the app and ``whiteboxdl models``).
PAPER_MODELS = ("resnet50", "vgg11_bn", "densenet121")
_LABELS = {"resnet50": "ResNet50", "vgg11_bn": "VGG11_BN", "densenet121": "DenseNet121"}


def _split_spec(spec: str) -> tuple[str, str | None]:
    """``"resnet50:WEIGHTS"`` -> ``("resnet50", "WEIGHTS")`` (an enum name or a file)."""
    name, sep, weights = spec.partition(":")
    return name, (weights if sep else None)


def _claims(spec: str) -> bool:
    name = _split_spec(spec)[0].strip().lower().replace("-", "_")
    return name in _names()


def _weights_of(spec: str, weights: WeightsSpec) -> WeightsSpec:
    suffix = _split_spec(spec)[1]
    chosen = suffix if suffix is not None else weights
    if isinstance(chosen, str) and chosen.lower() in ("none", "random"):
        return None
    return chosen


def _family_load(spec: str, weights: WeightsSpec, train_if_missing: bool) -> nn.Module:
    return load_classifier(_split_spec(spec)[0], weights=_weights_of(spec, weights))


def _family_contract(spec: str) -> InputContract:
    return imagenet_contract(224, 256, class_names(_split_spec(spec)[0]))


def _family_label(spec: str) -> str:
    name = check_name(_split_spec(spec)[0])
    return f"{_LABELS.get(name, name)} (torchvision, ImageNet)"


def _family_available(spec: str, weights: WeightsSpec) -> tuple[bool, str]:
    name, chosen = _split_spec(spec)[0], _weights_of(spec, weights)
    if weights_available(name, chosen):
        return True, "random initialisation" if chosen is None else "ImageNet weights found"
    if _is_enum_spec(check_name(name), chosen):
        return False, (f"no ImageNet weights here: copy the torchvision file to "
                       f"{weights_path(name, chosen)} (or run once online)")
    return False, f"weights file not found: {chosen}"


def _file_contract(kwargs: dict) -> InputContract:
    if kwargs.get("num_classes", 1000) == 1000:
        return imagenet_contract(224, 256)
    return InputContract(3, 224, (-1.0, 1.0), 256, None)


register_family(ModelFamily(
    "torchvision", claims=_claims, load=_family_load, contract=_family_contract,
    label=_family_label, available=_family_available, names=lambda: PAPER_MODELS,
    all_names=classifier_names,
    description="any torchvision classifier by name (resnet50, vgg11_bn, densenet121, ...; "
                "name:WEIGHTS for an enum name or a checkpoint file)",
    builders=(BuilderSpec(BUILDER, {"name": Param(str, choices=classifier_names),
                                    "num_classes": Param(int, 1, 100_000)},
                          contract=_file_contract,
                          wrap=lambda model, kwargs: SignedImageNetInput(model)),)))
