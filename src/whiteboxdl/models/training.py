"""The one training loop shared by the semantic network and the CNNs.

Tensors in memory, seeded shuffling and augmentation, a progress bar, ``regularize_()`` after
every optimiser step, per-epoch metrics, resumable checkpoints (``weights_only`` loadable) and a
JSON summary.

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

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from whiteboxdl.models.checkpoint import save_model

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
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
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
        ``resume``), and ``model.pt`` (see :func:`~whiteboxdl.models.checkpoint.load_model`,
        needs ``builder``) plus ``summary.json`` at the end.
    """
    config = config or TrainConfig()
    config.validate()
    _check_data("train", train)
    if test is not None:
        _check_data("test", test)
    callbacks = list(callbacks)
    x_train, y_train = train
    optimizer = _make_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult(out_dir=Path(out_dir) if out_dir else None)
    start_epoch, step = 0, 0
    ckpt_path = result.out_dir / "checkpoint.pt" if result.out_dir else None
    if ckpt_path is not None and resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, weights_only=True)
        if {**asdict(TrainConfig()), **state["config"]} != asdict(config):  # new fields: defaults
            raise ValueError(f"{ckpt_path} was written with a different config {state['config']}; "
                             "use another --out directory or delete the checkpoint")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        result.history = list(state["history"])
        start_epoch, step = int(state["epoch"]) + 1, int(state["step"])
    _call(callbacks, "on_train_start", model)
    t0 = time.perf_counter()
    n_batches = (len(x_train) + config.batch_size - 1) // config.batch_size
    for epoch in range(start_epoch, config.epochs):
        torch.manual_seed(config.seed + epoch)  # global RNG (dropout etc.) reproducible on resume
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        loss_sum, correct, seen = 0.0, 0, 0
        epoch_t0 = time.perf_counter()
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
        metrics = {"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": loss_sum / seen,
                   "train_acc": correct / seen, "epoch_seconds": time.perf_counter() - epoch_t0}
        if test is not None:
            metrics["test_loss"], metrics["test_acc"] = evaluate_accuracy(
                model, *test, batch_size=config.eval_batch_size)
        for name, fn in (epoch_metrics or {}).items():
            was_training = model.training
            model.eval()
            metrics[name] = float(fn(model))
            model.train(was_training)
        result.history.append(metrics)
        if progress:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                              if isinstance(v, float) and k != "epoch_seconds")
            tqdm.write(f"epoch {epoch + 1}/{config.epochs}: {shown} "
                       f"({metrics['epoch_seconds']:.1f} s)")
        _call(callbacks, "on_epoch_end", epoch, model, metrics)
        if ckpt_path is not None:
            ckpt_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt_path.with_suffix(".partial")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(), "history": result.history,
                        "epoch": epoch, "step": step, "config": asdict(config)}, tmp)
            tmp.replace(ckpt_path)
    model.eval()
    result.seconds = time.perf_counter() - t0
    _call(callbacks, "on_train_end", model)
    if result.out_dir is not None:
        if builder is not None:
            save_model(result.out_dir / "model.pt", model, builder, builder_kwargs or {})
        summary = {"config": asdict(config), "history": result.history,
                   "builder": builder, "builder_kwargs": builder_kwargs or {},
                   "final": result.history[-1] if result.history else {}}
        (result.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return result
