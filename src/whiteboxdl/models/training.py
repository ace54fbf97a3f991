"""The one training loop shared by the semantic network and the CNNs.

Tensors in memory, seeded shuffling and augmentation, a progress bar, ``regularize_()`` after
every optimiser step, per-epoch metrics, resumable checkpoints (``weights_only`` loadable) and a
JSON summary.

Resuming never mixes two runs: the checkpoint records everything that determines the result
(:func:`describe_run`: the recipe, a digest of the training and test tensors, the model's
builder, kwargs and parameter shapes, the augmentation and the per-epoch metrics), and a resume
with anything else is refused before the weights are touched. A damaged checkpoint is reported,
moved aside and the training starts from the first epoch.

Example
-------
>>> import torch
>>> from whiteboxdl.models.training import TrainConfig, fit
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
>>> x, y = torch.randn(64, 1, 2, 2), torch.randint(0, 2, (64,))
>>> result = fit(model, (x, y), TrainConfig(epochs=2, batch_size=16, lr=1e-2), progress=False)
>>> len(result.history)
2
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from whiteboxdl.models.checkpoint import save_model
from whiteboxdl.runfiles import (DamagedFileError, as_json, fingerprint, load_torch,
                                 read_verified, save_torch, tensor_digest, write_json)
from whiteboxdl.validation import check_number

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
EpochMetric = Callable[[nn.Module], float]


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`fit` (defaults: the semantic network's recipe)."""

    epochs: int = 15
    batch_size: int = 200
    lr: float = 3e-3
    weight_decay: float = 3e-6
    optimizer: str = "adam"
    seed: int = 314
    eval_batch_size: int = 1000
    #: learning rate per step: "constant", "cosine" (to 0) or "onecycle" (warm-up, cosine down)
    schedule: str = "constant"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        for name in ("epochs", "batch_size", "eval_batch_size"):
            check_number(name, getattr(self, name), low=1, integer=True)
        check_number("lr", self.lr, low=0, low_open=True)
        check_number("weight_decay", self.weight_decay, low=0)
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"optimizer must be adam, adamw or sgd, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")


SCHEDULES = ("constant", "cosine", "onecycle")


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based) out of ``total_steps``.

    ``onecycle``: linear warm-up from ``lr/25`` to ``lr`` over the first 25% of the steps, then
    cosine annealing to ``lr/1e4`` (the shape of ``torch.optim.lr_scheduler.OneCycleLR``).
    Stateless, so a resumed run continues the schedule exactly.
    """
    if config.schedule == "constant":
        return config.lr
    t = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * t))
    warm = 0.25
    if t < warm:
        return config.lr * (1 / 25 + (1 - 1 / 25) * t / warm)
    low = config.lr / 1e4
    return low + (config.lr - low) * 0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))


class Callback(Protocol):
    """Hooks into :func:`fit`; implement any subset (missing methods are skipped)."""

    def on_train_start(self, model: nn.Module) -> None: ...
    def on_step_end(self, step: int, model: nn.Module) -> None: ...
    def on_epoch_end(self, epoch: int, model: nn.Module, metrics: dict) -> None: ...
    def on_train_end(self, model: nn.Module) -> None: ...


@dataclass
class TrainResult:
    """Per-epoch metric dicts and where the outputs were written (if anywhere)."""

    history: list[dict] = field(default_factory=list)
    out_dir: Path | None = None
    seconds: float = 0.0


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


@torch.no_grad()
def regularize(model: nn.Module) -> None:
    """Call ``regularize_()`` on every submodule that has it (constraints after a step)."""
    for module in model.modules():
        fn = getattr(module, "regularize_", None)
        if callable(fn):
            fn()


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (put in eval mode, restored after)."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size])
        target = y[start:start + batch_size]
        loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    model.train(was_training)
    return loss_sum / len(x), correct / len(x)


def _call(callbacks: Iterable[object], hook: str, *args) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if callable(fn):
            fn(*args)


def _check_data(name: str, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = data
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{name}: {len(x)} inputs but {len(y)} labels (need equal, > 0)")
    if y.dtype != torch.long:
        raise ValueError(f"{name}: labels must be int64 class indices, got {y.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: inputs contain NaN or infinite values")


# ----------------------------------------------------------------------------- resuming
def _data_record(data: tuple[torch.Tensor, torch.Tensor] | None) -> dict | None:
    if data is None:
        return None
    x, y = data
    return {"size": len(y), "shape": list(x.shape[1:]), "digest": tensor_digest(x, y)}


def _callable_name(fn: object) -> str | None:
    if fn is None:
        return None
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def describe_run(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                 config: TrainConfig, *, test: tuple[torch.Tensor, torch.Tensor] | None = None,
                 augment: Augment | None = None, epoch_metrics: Iterable[str] = (),
                 builder: str | None = None, builder_kwargs: dict | None = None) -> dict:
    """Everything that determines what :func:`fit` produces, as JSON-able values.

    The recipe, size, shape and a SHA-256 digest of the training and test tensors, the model's
    builder and kwargs and a fingerprint of its parameter names and shapes, the augmentation
    function's name and the names of the per-epoch metrics. A checkpoint is resumed only by a
    run with the same description.

    Example
    -------
    >>> import torch
    >>> model = torch.nn.Linear(4, 2)
    >>> data = torch.zeros(8, 4), torch.zeros(8, dtype=torch.long)
    >>> describe_run(model, data, TrainConfig())["train"]["size"]
    8
    """
    shapes = [[name, list(t.shape)] for name, t in model.state_dict().items()]
    return as_json({
        "config": asdict(config), "train": _data_record(train), "test": _data_record(test),
        "model": {"builder": builder, "kwargs": builder_kwargs or {},
                  "parameters": fingerprint(shapes)},
        "augment": _callable_name(augment), "epoch_metrics": sorted(epoch_metrics),
    })


def _data_change(what: str, old: dict | None, new: dict | None) -> str | None:
    if old == new:
        return None
    if old is None or new is None:
        return f"{what}: {'none' if old is None else 'given'} → {'none' if new is None else 'given'}"
    if old["size"] != new["size"]:
        return f"{what}: {old['size']} → {new['size']} images"
    if old["shape"] != new["shape"]:
        return f"{what}: images of shape {old['shape']} → {new['shape']}"
    return f"{what}: other images (the same number, {new['size']})"


def run_differences(old: dict, new: dict) -> list[str]:
    """What differs between two :func:`describe_run` descriptions, in words (stored → now)."""
    config = {**asdict(TrainConfig()), **old.get("config", {})}  # newer fields: their defaults
    recipe = [f"{k} {config.get(k)} → {v}" for k, v in new["config"].items() if config.get(k) != v]
    changes = ["recipe: " + ", ".join(recipe)] if recipe else []
    changes += filter(None, [_data_change("training data", old.get("train"), new["train"]),
                             _data_change("test data", old.get("test"), new["test"])])
    old_model, new_model = old.get("model", {}), new["model"]
    if (old_model.get("builder"), old_model.get("kwargs")) != (new_model["builder"],
                                                               new_model["kwargs"]):
        changes.append(f"model: {old_model.get('builder')} {old_model.get('kwargs')} → "
                       f"{new_model['builder']} {new_model['kwargs']}")
    elif old_model.get("parameters") != new_model["parameters"]:
        changes.append("model: other parameter names or shapes (another architecture)")
    for key, what in (("augment", "augmentation"), ("epoch_metrics", "per-epoch metrics")):
        if old.get(key) != new[key]:
            changes.append(f"{what}: {old.get(key)} → {new[key]}")
    return changes


#: Entries of ``checkpoint.pt``.
CHECKPOINT_KEYS = ("model", "optimizer", "generator", "history", "epoch", "step", "config", "run")


def _check_checkpoint(path: Path, state: Any) -> None:
    if not isinstance(state, dict):
        raise DamagedFileError(path, "not a training checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing == ["run"]:
        raise ValueError(f"{path} was written by an older whiteboxdl that did not record the "
                         f"training data, so resuming it could mix two runs; delete {path} to "
                         "start over")
    if missing:
        raise DamagedFileError(path, f"entries {missing} missing")


def _resume(path: Path, run: dict, model: nn.Module, optimizer: torch.optim.Optimizer,
            generator: torch.Generator) -> tuple[int, int, list[dict]]:
    """Load ``path`` into the model, optimiser and generator if it belongs to ``run``; returns
    ``(first epoch to train, step, history)``. A checkpoint of another run is refused before
    anything is loaded; a damaged one is set aside (training starts from epoch 1)."""
    state = read_verified(path, load_torch, lambda st: _check_checkpoint(path, st),
                          action="training from the first epoch")
    if state is None:
        return 0, 0, []
    differences = run_differences(state["run"], run)
    if differences:
        raise ValueError(f"{path} belongs to another training run ({'; '.join(differences)}); "
                         f"use another --out, or delete {path} to start over")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    return int(state["epoch"]) + 1, int(state["step"]), list(state["history"])


def _save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     generator: torch.Generator, history: list[dict], epoch: int, step: int,
                     config: TrainConfig, run: dict) -> None:
    save_torch(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "generator": generator.get_state(), "history": history, "epoch": epoch,
                      "step": step, "config": asdict(config), "run": run})


# ----------------------------------------------------------------------------- one epoch
def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator,
                 train: tuple[torch.Tensor, torch.Tensor], config: TrainConfig, epoch: int,
                 step: int, augment: Augment | None, callbacks: list[object],
                 progress: bool) -> tuple[dict, int]:
    """One pass over the shuffled training data; returns the epoch's metrics and the step."""
    x_train, y_train = train
    torch.manual_seed(config.seed + epoch)  # global RNG (dropout etc.) reproducible on resume
    model.train()
    n_batches = (len(x_train) + config.batch_size - 1) // config.batch_size
    order = torch.randperm(len(x_train), generator=generator)
    loss_sum, correct, seen, lr = 0.0, 0, 0, config.lr
    start = time.perf_counter()
    bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{config.epochs}",
               disable=not progress, leave=False)
    for b in bar:
        idx = order[b * config.batch_size:(b + 1) * config.batch_size]
        xb, yb = x_train[idx], y_train[idx]
        if augment is not None:
            xb = augment(xb, generator)
        lr = lr_at(config, step, config.epochs * n_batches)
        for group in optimizer.param_groups:
            group["lr"] = lr
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        regularize(model)
        step += 1
        loss_sum += float(loss.detach()) * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
        seen += len(yb)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        _call(callbacks, "on_step_end", step, model)
    return {"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": loss_sum / seen,
            "train_acc": correct / seen, "epoch_seconds": time.perf_counter() - start}, step


def _evaluate_epoch(model: nn.Module, test: tuple[torch.Tensor, torch.Tensor] | None,
                    epoch_metrics: dict[str, EpochMetric], config: TrainConfig) -> dict:
    """Test loss/accuracy and the extra per-epoch metrics (each computed in eval mode)."""
    metrics: dict = {}
    if test is not None:
        metrics["test_loss"], metrics["test_acc"] = evaluate_accuracy(
            model, *test, batch_size=config.eval_batch_size)
    for name, fn in epoch_metrics.items():
        was_training = model.training
        model.eval()
        metrics[name] = float(fn(model))
        model.train(was_training)
    return metrics


def _print_epoch(metrics: dict, config: TrainConfig) -> None:
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                      if isinstance(v, float) and k != "epoch_seconds")
    tqdm.write(f"epoch {metrics['epoch']}/{config.epochs}: {shown} "
               f"({metrics['epoch_seconds']:.1f} s)")


def _write_outputs(out_dir: Path, model: nn.Module, config: TrainConfig, history: list[dict],
                   builder: str | None, builder_kwargs: dict | None) -> None:
    """``model.pt`` (if a builder is known) and ``summary.json``."""
    if builder is not None:
        save_model(out_dir / "model.pt", model, builder, builder_kwargs or {})
    write_json(out_dir / "summary.json", {
        "config": asdict(config), "history": history, "builder": builder,
        "builder_kwargs": builder_kwargs or {}, "final": history[-1] if history else {}})


# ----------------------------------------------------------------------------- the loop
def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig | None = None,
    *,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    augment: Augment | None = None,
    epoch_metrics: dict[str, EpochMetric] | None = None,
    callbacks: Iterable[object] = (),
    out_dir: str | Path | None = None,
    builder: str | None = None,
    builder_kwargs: dict | None = None,
    resume: bool = True,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` with cross-entropy on in-memory tensors.

    Parameters
    ----------
    train, test : ``(inputs, int64 labels)``; ``test`` is evaluated after every epoch.
    augment : ``augment(batch, generator) -> batch``, applied to training batches only.
    epoch_metrics : extra per-epoch numbers, e.g. ``{"pgd10_acc": fn(model) -> float}``.
    callbacks : objects with any of ``on_train_start``, ``on_step_end(step, model)``,
        ``on_epoch_end(epoch, model, metrics)``, ``on_train_end``.
    out_dir : if given, ``checkpoint.pt`` is written after each epoch (resumed from when
        ``resume``, if it belongs to this run: see :func:`describe_run`; another run's is
        refused with ``ValueError``), and ``model.pt`` (see
        :func:`~whiteboxdl.models.checkpoint.load_model`, needs ``builder``) plus
        ``summary.json`` at the end.
    """
    config = config or TrainConfig()
    config.validate()
    _check_data("train", train)
    if test is not None:
        _check_data("test", test)
    callbacks, epoch_metrics = list(callbacks), dict(epoch_metrics or {})
    optimizer = _make_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult(out_dir=Path(out_dir) if out_dir else None)
    ckpt_path = result.out_dir / "checkpoint.pt" if result.out_dir else None
    run = None if ckpt_path is None else describe_run(
        model, train, config, test=test, augment=augment, epoch_metrics=epoch_metrics,
        builder=builder, builder_kwargs=builder_kwargs)
    start_epoch, step = 0, 0
    if ckpt_path is not None and run is not None and resume:
        start_epoch, step, result.history = _resume(ckpt_path, run, model, optimizer, generator)
    _call(callbacks, "on_train_start", model)
    t0 = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        metrics, step = _train_epoch(model, optimizer, generator, train, config, epoch, step,
                                     augment, callbacks, progress)
        metrics.update(_evaluate_epoch(model, test, epoch_metrics, config))
        result.history.append(metrics)
        if progress:
            _print_epoch(metrics, config)
        _call(callbacks, "on_epoch_end", epoch, model, metrics)
        if ckpt_path is not None and run is not None:
            _save_checkpoint(ckpt_path, model, optimizer, generator, result.history, epoch,
                             step, config, run)
    model.eval()
    result.seconds = time.perf_counter() - t0
    _call(callbacks, "on_train_end", model)
    if result.out_dir is not None:
        _write_outputs(result.out_dir, model, config, result.history, builder, builder_kwargs)
    return result
