"""Train a project model with activation-pattern tracking (what `whiteboxdl stability run` does).

Example
-------
>>> from whiteboxdl.stability.experiment import run_tracking
>>> run_dir = run_tracking("mnist", "cnn", every=50, probe=512, out="runs/mnist-cnn")  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from whiteboxdl.runfiles import save_torch, write_json
from whiteboxdl.stability.callback import StabilityTracker

MODELS = ("cnn", "semantic")
DATASETS = ("mnist", "fashion-mnist")
#: Files and folders a run writes; ``overwrite=True`` removes exactly these.
RUN_FILES = ("patterns.npz", "checkpoints", "checkpoint.pt", "probe.pt", "model.pt",
             "examples.npz", "summary.json", "run.json", "stability.json", "figures", "report.html")


def _prepare(out: Path, overwrite: bool) -> None:
    if (out / "patterns.npz").exists() or (out / "checkpoint.pt").exists():
        if not overwrite:
            raise ValueError(f"{out} already holds a run; choose another --out or pass --overwrite")
        for name in RUN_FILES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _subset(data: tuple[torch.Tensor, torch.Tensor], n: int | None, seed: int):
    if not n or n >= len(data[0]):
        return data
    idx = torch.randperm(len(data[0]), generator=torch.Generator().manual_seed(seed))[:n]
    return data[0][idx], data[1][idx]


def _semantic_digits(dataset: str) -> tuple[int, ...]:
    if dataset != "mnist":
        raise ValueError(f"the semantic network is an MNIST model; got --dataset {dataset}")
    return (3, 5)


def load_data(dataset: str, model: str) -> tuple[tuple, tuple]:
    """Train and test tensors for ``model`` on ``dataset`` (the semantic net: MNIST 3 vs 5)."""
    if model == "semantic":
        from whiteboxdl.data.mnist import digit_subset

        digits = _semantic_digits(dataset)
        return digit_subset(digits, "train"), digit_subset(digits, "test")
    from whiteboxdl.data.mnist import load_dataset

    return load_dataset(dataset, "train"), load_dataset(dataset, "test")


def run_tracking(dataset: str = "mnist", model: str = "cnn", every: int = 50, probe: int = 512,
                 epochs: int | None = None, out: str | Path = "runs/stability", seed: int = 0,
                 train_limit: int | None = None, test_limit: int | None = None,
                 overwrite: bool = False,
                 progress: bool = True) -> Path:
    """Train ``model`` on ``dataset`` with a :class:`StabilityTracker`; returns the run directory.

    The probe set is ``probe`` test images drawn with ``seed``; ``train_limit`` trains on a
    random subset and ``test_limit`` evaluates each epoch on one (quick runs). The run
    directory gets ``patterns.npz``, ``checkpoints/``, ``probe.pt``, ``model.pt``,
    ``summary.json`` and ``run.json`` (arguments and timings).
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if probe < 1:
        raise ValueError(f"probe must be >= 1 images, got {probe}")
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    out = Path(out)
    train, test = load_data(dataset, model)
    _prepare(out, overwrite)
    probe_idx = torch.randperm(len(test[0]), generator=torch.Generator().manual_seed(seed))[:probe]
    px, py = test[0][probe_idx], test[1][probe_idx]
    save_torch(out / "probe.pt", {"x": px, "y": py, "indices": probe_idx})
    tracker = StabilityTracker(px, every=every, out_dir=out)
    tracker.store.meta.update({"dataset": dataset, "model": model})
    train = _subset(train, train_limit, seed)
    test = _subset(test, test_limit, seed + 1)
    t0 = time.perf_counter()
    if model == "cnn":
        from whiteboxdl.models.cnn import train_cnn

        _, summary = train_cnn(dataset, epochs=epochs, seed=seed, out=out,
                               progress=progress, train_data=train, test_data=test,
                               callbacks=[tracker])
        final = {"test_acc": summary["test_acc"]}
    else:
        from dataclasses import asdict

        from whiteboxdl.models.training import TrainConfig, fit
        from whiteboxdl.semantic.network import semantic_mnist
        from whiteboxdl.semantic.train import BUILDER, RECIPE, noise_augment

        digits = _semantic_digits(dataset)
        config = TrainConfig(**{**asdict(RECIPE), **({"epochs": epochs} if epochs else {})})
        torch.manual_seed(config.seed)
        net = semantic_mnist(digits)
        result = fit(net, train, config, test=test, augment=noise_augment, callbacks=[tracker],
                     out_dir=out, builder=BUILDER, builder_kwargs={"digits": list(digits)},
                     resume=False, progress=progress)
        (out / "checkpoint.pt").unlink(missing_ok=True)
        final = {"test_acc": result.history[-1].get("test_acc")}
    seconds = time.perf_counter() - t0
    info = {"dataset": dataset, "model": model, "every": every, "probe": probe, "epochs": epochs,
            "seed": seed, "train_size": len(train[0]), "test_size": len(test[0]),
            "steps": tracker.store.steps[-1],
            "snapshots": len(tracker.store), "seconds": seconds,
            "tracking_seconds": tracker.seconds,
            "tracking_fraction": tracker.seconds / max(seconds - tracker.seconds, 1e-9),
            "torch": torch.__version__, **final}
    write_json(out / "run.json", info)
    return out
