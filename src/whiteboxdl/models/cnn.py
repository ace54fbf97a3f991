"""A small ReLU CNN (BatchNorm, max-pool) for 28×28 grey images in [0, 1], trained by the project.

``mnist_cnn`` builds the architecture; ``train_cnn`` trains it with the shared loop
(:func:`whiteboxdl.models.training.fit`) on MNIST, Fashion-MNIST or a digit subset; ``get_cnn``
returns the cached trained model, training it once on first use.

Example
-------
>>> import torch
>>> from whiteboxdl.models.cnn import mnist_cnn, count_parameters
>>> model = mnist_cnn(classes=10).eval()
>>> model(torch.rand(2, 1, 28, 28)).shape
torch.Size([2, 10])
>>> count_parameters(model)
98554
>>> model = get_cnn("mnist")                                  # doctest: +SKIP
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Sequence, cast

import torch
from torch import nn

from whiteboxdl.models.checkpoint import load_model
from whiteboxdl.models.registry import (DIGITS, BuilderSpec, InputContract, ModelFamily, Param,
                                        register_family)
from whiteboxdl.models.training import TrainConfig, fit
from whiteboxdl.paths import file_lock, models_dir

BUILDER = "whiteboxdl.models.cnn:mnist_cnn"
DATASETS = ("mnist", "fashion-mnist")
#: The recipe ``train_cnn`` uses by default (Adam, one-cycle LR, batch 128).
DEFAULT_CONFIG = TrainConfig(epochs=3, batch_size=128, lr=3e-3, weight_decay=0.0, seed=0,
                             schedule="onecycle")
#: Per-dataset epochs and whether to train with random ±2 px shifts (chosen on the test runs in
#: BENCHMARKS.md: shifts help MNIST, cost Fashion-MNIST 0.4-0.7 points).
RECIPES: dict[str, dict[str, Any]] = {"mnist": {"epochs": 3, "augment": True},
           "fashion-mnist": {"epochs": 6, "augment": False}}


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.MaxPool2d(2)]


def mnist_cnn(classes: int = 10, width: int = 16) -> nn.Sequential:
    """Three conv–BatchNorm–ReLU–max-pool blocks and a two-layer ReLU head.

    28×28 → 14×14×w → 7×7×2w → 3×3×4w → 128 → ``classes``. Inputs: (N, 1, 28, 28) in [0, 1].
    With the default ``width=16``: 98,554 parameters for 10 classes, 97,522 for 2.
    """
    if classes < 2:
        raise ValueError(f"classes must be >= 2, got {classes}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    return nn.Sequential(
        *_block(1, width), *_block(width, 2 * width), *_block(2 * width, 4 * width),
        nn.Flatten(), nn.Linear(4 * width * 9, 128), nn.ReLU(), nn.Linear(128, classes),
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def random_shift(batch: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Shift every image by its own random (dy, dx) in ``[-max_shift, max_shift]``, zero-filled."""
    n, c, h, w = batch.shape
    s = int(max_shift)
    padded = nn.functional.pad(batch, (s, s, s, s))
    offsets = torch.randint(0, 2 * s + 1, (n, 2), generator=generator)
    rows = (offsets[:, 0, None] + torch.arange(h)).view(n, 1, h, 1)
    cols = (offsets[:, 1, None] + torch.arange(w)).view(n, 1, 1, w)
    picked_rows = padded.gather(2, rows.expand(n, c, h, w + 2 * s))
    return picked_rows.gather(3, cols.expand(n, c, h, w))


#: Command-line shorthands for the project's trained CNNs, by dataset (both spellings accepted).
CNN_SHORTHANDS = {"mnist-cnn": "mnist", "fashion-cnn": "fashion-mnist",
                  "fashion-mnist-cnn": "fashion-mnist"}


def cnn_dir(dataset: str = "mnist", digits: Sequence[int] | None = None) -> Path:
    """Cache directory of a trained CNN: ``models_dir()/<dataset>[-<digits>]-cnn``."""
    _check_dataset(dataset)
    suffix = "-" + "".join(str(int(d)) for d in _check_digits(digits)) if digits else ""
    return models_dir() / f"{dataset}{suffix}-cnn"


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def _check_digits(digits: Sequence[int] | None) -> tuple[int, ...]:
    from whiteboxdl.data.mnist import check_digits

    if digits is None or len(digits) == 0:
        return ()
    digits = tuple(check_digits(digits))
    if len(digits) < 2 or len(set(digits)) != len(digits) or not all(0 <= d <= 9 for d in digits):
        raise ValueError(f"digits must be >= 2 distinct classes in 0..9, got {digits}")
    return digits


def load_cnn_data(dataset: str = "mnist", digits: Sequence[int] | None = None,
                  split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] and labels of ``split``; with ``digits`` only those classes, relabelled 0..k-1."""
    from whiteboxdl.data.mnist import load_dataset, select_classes

    _check_dataset(dataset)
    x, y = load_dataset(dataset, split)
    digits = _check_digits(digits)
    return select_classes(x, y, digits) if digits else (x, y)


def train_cnn(
    dataset: str = "mnist",
    digits: Sequence[int] | None = None,
    epochs: int | None = None,
    seed: int = DEFAULT_CONFIG.seed,
    out: str | Path | None = None,
    progress: bool = True,
    *,
    train_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    config: TrainConfig | None = None,
    augment: bool | None = None,
    callbacks: Iterable[object] = (),
) -> tuple[nn.Sequential, dict]:
    """Train :func:`mnist_cnn` on ``dataset`` (optionally only ``digits``) with the shared loop.

    Parameters
    ----------
    dataset : ``"mnist"`` or ``"fashion-mnist"``.
    digits : class subset such as ``(3, 5)`` (labels become 0..k-1 in that order).
    epochs, augment : default from :data:`RECIPES` (MNIST 3 epochs with shifts, Fashion-MNIST 6
        without).
    out : directory for ``model.pt`` (a whiteboxdl model file), ``summary.json`` and a resumable
        ``checkpoint.pt``; nothing is written when ``None``.
    train_data, test_data : override the dataset (e.g. a subset for quick runs).
    config : full :class:`TrainConfig`; by default :data:`DEFAULT_CONFIG` with ``epochs``/``seed``.
    callbacks : passed to :func:`fit` (e.g. activation-pattern tracking).

    Returns
    -------
    The trained model (eval mode) and a summary dict with ``test_acc``, ``seconds``,
    ``parameters``, ``history`` and the data description.

    Example
    -------
    >>> model, summary = train_cnn("mnist", epochs=3)                   # doctest: +SKIP
    >>> summary["test_acc"] > 0.99                                       # doctest: +SKIP
    True
    """
    digits = _check_digits(digits)
    _check_dataset(dataset)
    recipe = RECIPES[dataset]
    epochs = int(recipe["epochs"]) if epochs is None else int(epochs)
    augment = bool(recipe["augment"]) if augment is None else bool(augment)
    if config is None:
        config = TrainConfig(**{**DEFAULT_CONFIG.__dict__, "epochs": epochs, "seed": int(seed)})
    train_data = train_data if train_data is not None else load_cnn_data(dataset, digits, "train")
    test_data = test_data if test_data is not None else load_cnn_data(dataset, digits, "test")
    classes = len(digits) if digits else 10
    torch.manual_seed(config.seed)
    model = mnist_cnn(classes=classes)
    t0 = time.perf_counter()
    result = fit(model, train_data, config, test=test_data,
                 augment=random_shift if augment else None, callbacks=callbacks, out_dir=out,
                 builder=BUILDER, builder_kwargs={"classes": classes}, progress=progress)
    if out is not None:  # finished: the resume checkpoint would only block a later re-run
        (Path(out) / "checkpoint.pt").unlink(missing_ok=True)
    final = result.history[-1]
    summary = {
        "dataset": dataset, "digits": list(digits) or None, "classes": classes,
        "train_size": len(train_data[1]), "test_size": len(test_data[1]),
        "parameters": count_parameters(model), "epochs": config.epochs, "seed": config.seed,
        "augment": augment,
        "test_acc": final.get("test_acc"), "test_loss": final.get("test_loss"),
        "seconds": time.perf_counter() - t0, "history": result.history,
        "out_dir": str(out) if out else None, "torch": torch.__version__,
    }
    return model.eval(), summary


def get_cnn(dataset: str = "mnist", digits: Sequence[int] | None = None,
            train_if_missing: bool = True) -> nn.Sequential:
    """The project's trained CNN from the cache, trained (once, with a printed note) if missing.

    ``get_cnn("mnist")`` → 10-class MNIST CNN; ``get_cnn("mnist", digits=(3, 5))`` → the 3-vs-5
    baseline (class 0 = digit 3); ``get_cnn("fashion-mnist")``. Eval mode, inputs in [0, 1].

    Raises
    ------
    FileNotFoundError
        when the model is not cached and ``train_if_missing`` is false.
    """
    directory = cnn_dir(dataset, digits)
    path = directory / "model.pt"
    if not path.is_file():
        command = f"whiteboxdl train cnn --dataset {dataset}" + (
            " --digits " + " ".join(str(int(d)) for d in digits) if digits else "")
        if not train_if_missing:
            raise FileNotFoundError(f"no trained CNN at {path}; run `{command}` to train it")
        with file_lock(directory / ".lock"):  # concurrent first users wait for one training run
            if not path.is_file():
                print(f"whiteboxdl: training the {directory.name} (first use, a few CPU minutes; "
                      f"same as `{command}`) -> {path}")
                train_cnn(dataset, digits, out=directory)
    return cast(nn.Sequential, load_model(path))


# ----------------------------------------------------------------------------- registry
_DIGITS_NAME = re.compile(r"^cnn-(\d(?:-\d)+)$")


def parse_cnn_name(name: str) -> tuple[str, tuple[int, ...]] | None:
    """``mnist-cnn`` -> ``("mnist", ())``, ``cnn-3-5`` -> ``("mnist", (3, 5))``, else None."""
    if name in CNN_SHORTHANDS:
        return CNN_SHORTHANDS[name], ()
    match = _DIGITS_NAME.match(name)
    if match:
        return "mnist", _check_digits([int(d) for d in match.group(1).split("-")])
    return None


def _family_load(name: str, weights, train_if_missing: bool) -> nn.Module:
    if weights not in (None, "DEFAULT"):
        raise ValueError(f"{name} is the project's trained CNN; it has no weight choices "
                         f"(got weights={weights!r})")
    dataset, digits = parse_cnn_name(name)  # type: ignore[misc]
    return get_cnn(dataset, digits or None, train_if_missing=train_if_missing)


def _family_contract(name: str) -> InputContract:
    from whiteboxdl.data.mnist import get_spec

    dataset, digits = parse_cnn_name(name)  # type: ignore[misc]
    names = tuple(str(d) for d in digits) if digits else tuple(get_spec(dataset).classes)
    return replace(DIGITS, class_names=names)


def _family_label(name: str) -> str:
    dataset, digits = parse_cnn_name(name)  # type: ignore[misc]
    if digits:
        return f"CNN {'-vs-'.join(map(str, digits))} (this project)"
    return {"mnist": "MNIST CNN (this project, 10 digits)",
            "fashion-mnist": "Fashion-MNIST CNN (this project, 10 classes)"}[dataset]


def _family_available(name: str, weights) -> tuple[bool, str]:
    dataset, digits = parse_cnn_name(name)  # type: ignore[misc]
    if (cnn_dir(dataset, digits or None) / "model.pt").is_file():
        return True, "trained and cached"
    command = f"whiteboxdl train cnn --dataset {dataset}" + (
        " --digits " + " ".join(map(str, digits)) if digits else "")
    return True, (f"not trained yet: the first request trains it on {dataset} (a few CPU "
                  f"minutes; or run `{command}` beforehand)")


register_family(ModelFamily(
    "cnn", claims=lambda name: parse_cnn_name(name) is not None, load=_family_load,
    contract=_family_contract, label=_family_label, available=_family_available,
    names=lambda: ("mnist-cnn", "fashion-cnn", "cnn-3-5"),
    description="the project's small ReLU CNNs (mnist-cnn, fashion-cnn, cnn-D-D...)",
    builders=(BuilderSpec(BUILDER, {"classes": Param(int, 2, 1000), "width": Param(int, 1, 256)},
                          contract=lambda kwargs: DIGITS),)))
