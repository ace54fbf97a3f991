"""timm models by name (``timm:pvt_v2_b1``, ``timm:convnext_tiny``, ``timm:resnet50.a1_in1k`` …),
never downloading.

``timm:NAME`` (optionally ``timm:NAME:WEIGHTS``) builds timm's architecture ``NAME`` (a tag such as
``.fb_in1k`` picks one set of pretrained weights) with

* ``weights="DEFAULT"``: the pretrained file if it is already cached — the Hugging Face hub cache
  (``model.safetensors`` / ``pytorch_model.bin`` of the config's ``hf_hub_id``) or the torch hub
  cache (the config's ``url``) — loaded through timm's own loader (its ``filter_fn`` conversions);
  otherwise one ``FileNotFoundError`` names both places and the fixes;
* ``weights=None`` (or ``random``): random initialisation;
* a path: a checkpoint file (a state_dict, safetensors, or a timm training checkpoint).

Files are read with ``weights_only=True`` (or safetensors). The model is wrapped to take RGB
images in [-1, 1] (:class:`~whiteboxdl.data.imagenet.SignedImageNetInput` with the config's mean
and std); the input contract follows the config (input size, crop_pct, ImageNet class names for
1000-class models).

Example
-------
>>> from whiteboxdl.models.registry import resolve_model
>>> loaded = resolve_model("timm:resnet18", weights=None)            # random init, offline
>>> loaded.contract.size, loaded.contract.bounds
(224, (-1.0, 1.0))
>>> resolve_model("timm:pvt_v2_b1")                                    # doctest: +SKIP
Traceback (most recent call last):
FileNotFoundError: timm weights for pvt_v2_b1 (timm/pvt_v2_b1.in1k) are not cached here ...
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from whiteboxdl.data.imagenet import SignedImageNetInput
from whiteboxdl.models.registry import (BuilderSpec, InputContract, ModelFamily, Param,
                                        imagenet_contract, register_family)

PREFIX = "timm:"
BUILDER = "whiteboxdl.models.timm_models:build_timm"
#: Listed in help texts and "did you mean" hints (any timm architecture works).
EXAMPLES = ("timm:pvt_v2_b1", "timm:convnext_tiny", "timm:resnet50")
_HF_FILES = ("model.safetensors", "pytorch_model.bin")


@lru_cache(maxsize=1)
def timm_names() -> tuple[str, ...]:
    """Every timm architecture name (``timm.list_models()``)."""
    import timm

    return tuple(timm.list_models())


def check_name(name: str) -> str:
    """``name`` if timm knows it (``arch`` or ``arch.tag``), else ``ValueError`` with close
    matches."""
    import timm

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a timm model name must be a non-empty string, got {name!r}")
    name = name.strip()
    if timm.is_model(name):
        return name
    close = difflib.get_close_matches(name.split(".")[0], timm_names(), n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(f"unknown timm model {name!r}; {hint}see timm.list_models() for the "
                     f"{len(timm_names())} architectures")


def pretrained_config(name: str) -> dict:
    """timm's pretrained config of ``name`` (input size, crop, mean/std, hub id, url …)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(check_name(name))
    return cfg.to_dict() if cfg is not None else {}


def cached_weights(name: str) -> Optional[Path]:
    """The cached pretrained file of ``name`` (Hugging Face hub cache, then torch hub cache), or
    ``None``. Looks only at local files."""
    cfg = pretrained_config(name)
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        files = (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else _HF_FILES
        for filename in files:
            found = try_to_load_from_cache(hub_id, filename)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    if cfg.get("url"):
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg["url"]).name
        if path.is_file():
            return path
    return None


def _missing_message(name: str) -> str:
    cfg = pretrained_config(name)
    places = []
    if cfg.get("hf_hub_id"):
        from huggingface_hub.constants import HF_HUB_CACHE

        places.append(f"the Hugging Face cache ({HF_HUB_CACHE}, repo {cfg['hf_hub_id']})")
    if cfg.get("url"):
        places.append(f"the torch hub cache ({Path(torch.hub.get_dir()) / 'checkpoints'}, file "
                      f"{Path(cfg['url']).name})")
    where = " nor ".join(places) or "any cache (timm lists no pretrained weights for it)"
    hub = f" ({cfg['hf_hub_id']})" if cfg.get("hf_hub_id") else ""
    return (f"timm weights for {name}{hub} are not cached here: not in {where}. Run "
            f"timm.create_model({name!r}, pretrained=True) once while online, or pass a "
            f"checkpoint path (timm:{name}:PATH or weights=PATH), or weights=None for random init")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (weights= takes DEFAULT, None or "
                                "the path of an existing file)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a loadable checkpoint ({exc})") from exc
    for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{path}: expected a state_dict (parameter name -> tensor)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def build_timm(name: str, num_classes: int = 1000) -> nn.Module:
    """timm architecture ``name``, randomly initialised, eval mode (the model-file builder)."""
    import timm

    return timm.create_model(check_name(name), pretrained=False, num_classes=num_classes).eval()


def load_timm(name: str, weights: Any = "DEFAULT", signed_input: bool = True) -> nn.Module:
    """timm model ``name`` in eval mode; see the module docstring for ``weights``.

    ``signed_input`` wraps it to take RGB images in [-1, 1] with the config's mean and std.

    Example
    -------
    >>> load_timm("resnet18", weights=None).training
    False
    """
    import timm

    name = check_name(name)
    if weights is None or (isinstance(weights, str) and weights.lower() in ("none", "random")):
        model = build_timm(name)
    else:
        if isinstance(weights, str) and weights.upper() == "DEFAULT":
            path = cached_weights(name)
            if path is None:
                raise FileNotFoundError(_missing_message(name))
        elif isinstance(weights, (str, Path)):
            path = Path(weights).expanduser()
        else:
            raise ValueError(f"weights must be 'DEFAULT', None or a path, got {weights!r}")
        state = _read_state_dict(path)
        head = state.get(pretrained_config(name).get("classifier", "") + ".weight")
        classes = int(head.shape[0]) if head is not None else 1000
        try:       # timm's loader, from the state_dict we read (its filter_fn converts old keys)
            model = timm.create_model(name, pretrained=True, num_classes=classes,
                                      pretrained_cfg_overlay={"state_dict": state,
                                                              "num_classes": classes})
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ValueError(f"{path} does not fit timm model {name}: "
                             f"{' '.join(str(exc).split())[:400]}") from None
    model.eval()
    if not signed_input:
        return model
    cfg = pretrained_config(name)
    return SignedImageNetInput(model, cfg.get("mean", (0.485, 0.456, 0.406)),
                               cfg.get("std", (0.229, 0.224, 0.225))).eval()


def timm_contract(name: str, num_classes: int = 1000) -> InputContract:
    """The input contract of timm model ``name``: RGB in [-1, 1], the config's input size and
    crop (resize = size / crop_pct), ImageNet names for 1000 classes."""
    cfg = pretrained_config(name)
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    resize = max(size, round(size / float(cfg.get("crop_pct", 0.875))))
    contract = imagenet_contract(size, resize)
    if num_classes != 1000 or cfg.get("num_classes", 1000) != 1000:
        return InputContract(3, size, (-1.0, 1.0), resize, None)
    return contract


# ----------------------------------------------------------------------------- registry
def _split(spec: str) -> tuple[str, Optional[str]]:
    """``"timm:NAME[:WEIGHTS]"`` -> ``(NAME, WEIGHTS or None)``."""
    rest = spec.strip()[len(PREFIX):]
    name, sep, weights = rest.partition(":")
    return name, (weights if sep else None)


def _weights_of(spec: str, weights: Any) -> Any:
    suffix = _split(spec)[1]
    chosen = suffix if suffix is not None else weights
    if isinstance(chosen, str) and chosen.lower() in ("none", "random"):
        return None
    return chosen


def _available(spec: str, weights: Any) -> tuple[bool, str]:
    name, chosen = _split(spec)[0], _weights_of(spec, weights)
    if chosen is None:
        return True, "random initialisation"
    if isinstance(chosen, str) and chosen.upper() == "DEFAULT":
        path = cached_weights(name)
        return (True, f"pretrained weights cached ({path})") if path else \
            (False, _missing_message(check_name(name)))
    return (True, "weights file found") if Path(chosen).expanduser().is_file() else \
        (False, f"weights file not found: {chosen}")


def _label(spec: str) -> str:
    return f"{_split(spec)[0]} (timm)"


register_family(ModelFamily(
    "timm", claims=lambda spec: spec.strip().lower().startswith(PREFIX),
    load=lambda spec, weights, train: load_timm(_split(spec)[0], _weights_of(spec, weights)),
    contract=lambda spec: timm_contract(_split(spec)[0]), label=_label, available=_available,
    names=lambda: EXAMPLES,
    all_names=lambda: tuple(PREFIX + n for n in timm_names()),
    description="any timm model as timm:NAME[:WEIGHTS] (pvt_v2_b1, convnext_tiny, resnet50, ...); "
                "pretrained weights from the HF / torch hub caches, never downloaded",
    builders=(BuilderSpec(BUILDER, {"name": Param(str, choices=timm_names),
                                    "num_classes": Param(int, 1, 100_000)},
                          contract=lambda kwargs: timm_contract(kwargs.get("name", "resnet50"),
                                                                kwargs.get("num_classes", 1000)),
                          wrap=lambda model, kwargs: load_timm_wrapper(model, kwargs)),)))


def load_timm_wrapper(model: nn.Module, kwargs: dict) -> nn.Module:
    """A model-file timm model wrapped to take [-1, 1] inputs (its config's mean/std)."""
    cfg = pretrained_config(kwargs.get("name", "resnet50"))
    return SignedImageNetInput(model, cfg.get("mean", (0.485, 0.456, 0.406)),
                               cfg.get("std", (0.229, 0.224, 0.225)))
