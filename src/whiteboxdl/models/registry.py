"""One model resolver: model families with a declared input contract, and the builders model
files may name.

A :class:`ModelFamily` says which names it resolves (``mnist-cnn``, ``cnn-3-5``,
``semantic-3-5``, ``resnet50`` …), how to load them, and their :class:`InputContract` — channels,
size, the value bounds the model takes, preprocessing and class names (like timm's pretrained
configs). Its :class:`BuilderSpec` entries are the only builders a model file may name: a file is
read with ``weights_only=True``, its builder looked up in this allow-list and its kwargs checked
against the declared parameters (types, bounds) and the builder's signature *before* anything is
imported or called. ``explain``, ``quality``, ``robustness`` and the app resolve models here.

Registering a family is one :func:`register_family` call in the module that owns it; the built-in
families live in :data:`BUILTIN_MODULES` and are imported on first use (a fixed, trusted list:
nothing a file says is ever imported).

Example
-------
>>> from whiteboxdl.models.registry import resolve_model
>>> loaded = resolve_model("resnet18", weights=None)        # random init
>>> loaded.contract.channels, loaded.contract.size, loaded.contract.bounds
(3, 224, (-1.0, 1.0))
>>> loaded.contract.class_names[207]
'golden retriever'
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import nn

#: Modules that register the built-in families (imported on first lookup).
BUILTIN_MODULES = ("whiteboxdl.models.cnn", "whiteboxdl.semantic.models",
                   "whiteboxdl.models.checkpoint", "whiteboxdl.models.efficientnet_lite",
                   "whiteboxdl.models.timm_models", "whiteboxdl.models.zoo")


# ----------------------------------------------------------------------------- contracts
@dataclass(frozen=True)
class InputContract:
    """What a model takes: ``channels`` × ``size`` × ``size`` images with values in ``bounds``.

    ``resize`` (photos): the shorter side is resized to it and the centre ``size`` crop is taken
    (square images are resized to ``size``), the paper's geometry; ``None`` (digits): the image
    is turned grey and resized to ``size``. ``class_names`` label the logits when known.
    """

    channels: int
    size: int
    bounds: tuple[float, float]
    resize: Optional[int] = None
    class_names: Optional[tuple[str, ...]] = None

    @property
    def kind(self) -> str:
        """``"photo"`` (RGB, paper geometry) or ``"digit"`` (grey, MNIST-like)."""
        return "photo" if self.resize is not None else "digit"

    def describe(self) -> str:
        colour = "grey" if self.channels == 1 else "RGB" if self.channels == 3 else \
            f"{self.channels}-channel"
        return (f"{colour} {self.channels}×{self.size}×{self.size} images in "
                f"[{self.bounds[0]:g}, {self.bounds[1]:g}]")

    def load(self, source: Any) -> torch.Tensor:
        """An image (path, bytes, PIL, array) as this model's input ``(1, C, size, size)``."""
        from whiteboxdl.data.images import load_image, preprocess, resize_image, to_unit_tensor

        lo, hi = self.bounds
        if self.resize is not None:
            x = preprocess(source, size=self.size, resize=self.resize)
            return x if (lo, hi) == (-1.0, 1.0) else (x + 1) / 2 * (hi - lo) + lo
        img = load_image(source, keep_depth=True)          # 16-bit and float: absolute values
        img = img if img.mode == "F" else img.convert("L")
        x = to_unit_tensor(resize_image(img, (self.size, self.size)), channels=self.channels)
        return x if (lo, hi) == (0.0, 1.0) else x * (hi - lo) + lo

    def check(self, x: torch.Tensor, what: str = "the data") -> None:
        """``ValueError`` unless ``x`` is a batch this model takes (channels, size, bounds)."""
        if x.ndim != 4 or x.shape[1] != self.channels or tuple(x.shape[2:]) != (self.size,) * 2:
            raise ValueError(f"the model takes {self.describe()}, but {what} gives shape "
                             f"{tuple(x.shape)}; pick data of that kind or another model")
        lo, hi = float(x.min()), float(x.max())
        if lo < self.bounds[0] - 1e-6 or hi > self.bounds[1] + 1e-6:
            raise ValueError(f"the model takes {self.describe()}, but {what} lies in "
                             f"[{lo:.3g}, {hi:.3g}]")

    def check_labels(self, labels: torch.Tensor, num_classes: int, what: str = "the data") -> None:
        """``ValueError`` when labels name classes the model does not have."""
        if labels.numel() and int(labels.max()) >= num_classes:
            raise ValueError(f"the model has {num_classes} classes but {what} has labels up to "
                             f"{int(labels.max())}; use data with the model's classes (or a "
                             "model trained on these)")


#: The project's MNIST-like models: 1×28×28 grey images in [0, 1].
DIGITS = InputContract(1, 28, (0.0, 1.0))


def imagenet_contract(size: int = 224, resize: Optional[int] = None,
                      class_names: Optional[Sequence[str]] = None) -> InputContract:
    """RGB photos in [-1, 1] with the paper's geometry (``resize`` default ``size * 256/224``)
    and the ImageNet-1k class names unless others are given."""
    if class_names is None:
        from whiteboxdl.data.imagenet import imagenet_classes

        class_names = imagenet_classes()
    return InputContract(3, size, (-1.0, 1.0), resize or round(size * 256 / 224),
                         tuple(class_names))


# ----------------------------------------------------------------------------- model files
@dataclass(frozen=True)
class Param:
    """A keyword a model file may give its builder: its type and sane bounds.

    ``kind``: ``int``, ``float``, ``bool``, ``str`` or ``"ints"`` (a list of ints); ``low`` /
    ``high`` bound numbers (and the entries of ``"ints"``); ``choices`` for strings;
    ``length`` = (min, max) entries of a list.
    """

    kind: Any
    low: Optional[float] = None
    high: Optional[float] = None
    choices: Optional[Callable[[], Sequence[str]] | Sequence[str]] = None
    length: Optional[tuple[int, int]] = None

    def check(self, name: str, value: Any) -> Any:
        if self.kind == "ints":
            if not isinstance(value, (list, tuple)) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ValueError(f"{name} must be a list of integers, got {value!r}")
            lo, hi = self.length or (0, 10_000)
            if not lo <= len(value) <= hi:
                raise ValueError(f"{name} must have {lo} to {hi} entries, got {len(value)}")
            for v in value:
                self._bounded(name, v)
            return list(value)
        kinds = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}[self.kind]
        if not isinstance(value, kinds) or (self.kind is not bool and isinstance(value, bool)):
            raise ValueError(f"{name} must be {self.kind.__name__}, got {value!r}")
        if self.kind is str and self.choices is not None:
            choices = self.choices() if callable(self.choices) else self.choices
            if value not in choices:
                raise ValueError(f"{name} must be one of the known values, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self._bounded(name, value)
        return value

    def _bounded(self, name: str, value: float) -> None:
        if (self.low is not None and value < self.low) or \
                (self.high is not None and value > self.high):
            raise ValueError(f"{name}={value!r} is outside the sane range "
                             f"[{self.low}, {self.high}]")


@dataclass(frozen=True)
class BuilderSpec:
    """A builder model files may name: ``target`` = ``"module:function"`` (as written in files),
    its allowed ``params``, the ``contract`` of what it builds (from the kwargs), and ``wrap`` for
    models stored without their input adapter (torchvision classifiers get the [-1, 1] wrapper)."""

    target: str
    params: Mapping[str, Param]
    contract: Optional[Callable[[dict], Optional[InputContract]]] = None
    wrap: Optional[Callable[[nn.Module, dict], nn.Module]] = None

    def check_kwargs(self, kwargs: Any, where: str) -> dict:
        """The kwargs, validated against ``params``; ``ValueError`` naming the problem."""
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise ValueError(f"{where}: builder kwargs must be a dict of names, got {kwargs!r}")
        unknown = sorted(set(kwargs) - set(self.params))
        if unknown:
            raise ValueError(f"{where}: builder {self.target} takes no argument {unknown[0]!r} "
                             f"(allowed: {', '.join(self.params) or 'none'})")
        return {k: self.params[k].check(f"{where}: {k}", v) for k, v in kwargs.items()}

    def build(self, kwargs: dict) -> nn.Module:
        """Import the (allow-listed) function and call it with validated kwargs."""
        module_name, _, func_name = self.target.partition(":")
        func = getattr(importlib.import_module(module_name), func_name)
        try:
            inspect.signature(func).bind(**kwargs)
        except TypeError as exc:
            raise ValueError(f"builder {self.target} does not accept {kwargs}: {exc}") from None
        return func(**kwargs)


# ----------------------------------------------------------------------------- families
@dataclass
class LoadedModel:
    """A resolved model: eval mode, taking :attr:`contract` inputs."""

    name: str
    family: str
    model: nn.Module
    contract: Optional[InputContract]
    label: str = ""


@dataclass(frozen=True)
class ModelFamily:
    """A family of models the resolver knows.

    Parameters
    ----------
    name : family name (``"torchvision"``).
    claims : ``claims(name) -> bool``: whether a model name belongs to the family.
    load : ``load(name, weights, train_if_missing) -> nn.Module`` (eval mode, contract inputs).
    contract : ``contract(name) -> InputContract``, known without loading.
    label : a readable label (``"ResNet50 (torchvision, ImageNet)"``).
    available : ``available(name, weights) -> (usable offline?, one-line explanation)``.
    names : the names to list (CLI help, the app).
    all_names : every name it resolves, for "did you mean" hints (default: ``names``).
    builders : the model-file builders of this family.
    """

    name: str
    claims: Callable[[str], bool]
    load: Callable[[str, Any, bool], nn.Module]
    contract: Callable[[str], InputContract]
    label: Callable[[str], str] = str
    available: Optional[Callable[[str, Any], tuple[bool, str]]] = None
    names: Callable[[], Sequence[str]] = tuple
    all_names: Optional[Callable[[], Sequence[str]]] = None
    builders: tuple[BuilderSpec, ...] = field(default=())
    description: str = ""


_FAMILIES: dict[str, ModelFamily] = {}
_BUILDERS: dict[str, BuilderSpec] = {}
_LOADED_BUILTINS = False


def register_family(family: ModelFamily, *, replace_existing: bool = False) -> ModelFamily:
    """Add a model family (and its model-file builders) to the resolver."""
    if family.name in _FAMILIES and not replace_existing:
        raise ValueError(f"a model family named {family.name!r} is already registered")
    for builder in family.builders:
        owner = next((f.name for f in _FAMILIES.values() if f.name != family.name
                      and any(b.target == builder.target for b in f.builders)), None)
        if owner:
            raise ValueError(f"builder {builder.target} already belongs to family {owner!r}")
    _FAMILIES[family.name] = family
    for builder in family.builders:
        _BUILDERS[builder.target] = builder
    return family


def _builtins() -> None:
    global _LOADED_BUILTINS
    if not _LOADED_BUILTINS:
        _LOADED_BUILTINS = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def families() -> tuple[ModelFamily, ...]:
    """Every registered family, in resolution order."""
    _builtins()
    return tuple(_FAMILIES.values())


def get_builder(target: Any, where: str = "model file") -> BuilderSpec:
    """The allow-listed builder ``target``; ``ValueError`` before any import otherwise."""
    _builtins()
    if not isinstance(target, str) or target not in _BUILDERS:
        raise ValueError(f"{where}: refusing to import builder {target!r}: model files may only "
                         f"name a registered builder ({', '.join(sorted(_BUILDERS))})")
    return _BUILDERS[target]


def find_family(name: str) -> ModelFamily:
    """The family that resolves ``name``; ``ValueError`` listing what is known otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a model name must be a non-empty string, got {name!r}")
    for family in families():
        if family.claims(name):
            return family
    candidates = [n for f in _FAMILIES.values() for n in (f.all_names or f.names)()]
    close = difflib.get_close_matches(name.strip().lower(), candidates, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    known = "; ".join(f"{f.name}: {', '.join(list(f.names())[:4])}"
                      for f in _FAMILIES.values() if f.names())
    raise ValueError(f"unknown model {name!r}; {hint}known models — {known}; or a whiteboxdl "
                     "model file (.pt)")


def is_model_file(spec: str | Path) -> bool:
    """Whether ``spec`` names a model file: an existing path, or a ``.pt``/``.pth`` name that no
    family claims (``resnet50:weights.pth``, ``timm:NAME:weights.pth`` are models with a
    weights file, not model files)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return True
    if path.suffix not in (".pt", ".pth"):
        return False
    return not any(family.claims(str(spec).strip()) for family in families())


def resolve_model(spec: str | Path, weights: Any = "DEFAULT", *,
                  train_if_missing: bool = True) -> LoadedModel:
    """The model ``spec`` names (a registered name or a model file), in eval mode, with its
    input contract.

    ``weights`` applies to families with weight choices (torchvision: ``"DEFAULT"``, an enum
    name, ``None`` for random init, a checkpoint path); ``train_if_missing`` lets the project's
    own models train on first use (else ``FileNotFoundError`` says how to train them).
    """
    if is_model_file(spec):
        return load_model_file(spec)
    name = str(spec).strip()
    family = find_family(name)
    model = family.load(name, weights, train_if_missing).eval()
    return LoadedModel(name, family.name, model, family.contract(name), family.label(name))


def availability(spec: str, weights: Any = "DEFAULT") -> tuple[bool, str]:
    """``(usable offline, one-line explanation)`` for a model name, without loading it."""
    family = find_family(spec)
    if family.available is None:
        return True, "available"
    return family.available(spec, weights)


def model_contract(spec: str) -> InputContract:
    """The input contract of a registered model name (without loading it)."""
    return find_family(spec).contract(spec)


def model_label(spec: str) -> str:
    """A readable label of a registered model name."""
    return find_family(spec).label(spec)


# ----------------------------------------------------------------------------- model files
def read_model_file(path: str | Path) -> dict:
    """The raw dict of a model file (read with ``weights_only=True``), checked for its keys."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a loadable whiteboxdl model file ({exc})") from exc
    if not isinstance(state, dict) or not {"builder", "kwargs", "state_dict"} <= set(state):
        raise ValueError(f"{path}: not a whiteboxdl model file (expected keys builder, kwargs, "
                         "state_dict); plain state dicts need the architecture built by hand")
    if not isinstance(state["state_dict"], dict):
        raise ValueError(f"{path}: its state_dict is a {type(state['state_dict']).__name__}, "
                         "not a dict of tensors")
    return state


def build_from_file(path: str | Path) -> tuple[nn.Module, BuilderSpec, dict]:
    """Rebuild the (allow-listed) architecture a model file records and load its weights."""
    state = read_model_file(path)
    builder = get_builder(state["builder"], where=str(path))
    kwargs = builder.check_kwargs(state["kwargs"], where=str(path))
    model = builder.build(kwargs)
    try:
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{path}: the weights do not fit {builder.target}({kwargs}): "
                         f"{' '.join(str(exc).split())[:400]}") from None
    return model.eval(), builder, kwargs


def load_model_file(path: str | Path) -> LoadedModel:
    """A model file as a :class:`LoadedModel` (wrapped to its contract's inputs; ``contract`` is
    ``None`` for builders that declare none, e.g. the toy MLP)."""
    model, builder, kwargs = build_from_file(path)
    if builder.wrap is not None:
        model = builder.wrap(model, kwargs).eval()
    contract = builder.contract(kwargs) if builder.contract is not None else None
    names: Optional[Sequence[Any]] = getattr(model, "class_names", None)
    if contract is not None and contract.class_names is None and names:
        contract = replace(contract, class_names=tuple(str(c) for c in names))
    family = next(f.name for f in _FAMILIES.values() if builder in f.builders)
    return LoadedModel(str(path), family, model, contract, Path(path).stem)


def require_contract(loaded: LoadedModel) -> InputContract:
    """The loaded model's image contract; ``ValueError`` for models that declare none."""
    if loaded.contract is None:
        raise ValueError(f"{loaded.name} declares no image input contract (its builder is not an "
                         "image classifier); use an image model")
    return loaded.contract
