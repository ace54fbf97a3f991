"""Training callback that snapshots the activation pattern every N optimiser steps.

Plug it into the shared loop (:func:`whiteboxdl.models.training.fit`): it records the pattern on
a fixed probe set at step 0 (``on_train_start``), every ``every`` steps and after the last step,
together with the weights' relative change since the previous snapshot; with ``out_dir`` it also
keeps each snapshot's ``state_dict`` (``checkpoints/step_XXXXXXX.pt``, for the alignment
measures) and writes ``patterns.npz`` after every epoch and at the end.

Example
-------
>>> import torch
>>> from whiteboxdl.models.checkpoint import tiny_mlp
>>> from whiteboxdl.models.training import TrainConfig, fit
>>> from whiteboxdl.stability.callback import StabilityTracker
>>> x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
>>> tracker = StabilityTracker(x[:16], every=2)
>>> config = TrainConfig(epochs=1, batch_size=16)
>>> _ = fit(tiny_mlp(4, 2, hidden=8), (x, y), config, callbacks=[tracker], progress=False)
>>> tracker.store.steps
[0, 2, 4]
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from whiteboxdl.runfiles import save_torch
from whiteboxdl.stability.patterns import record_patterns
from whiteboxdl.stability.store import PatternStore


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """Where the tracker keeps the weights of the snapshot taken at ``step``."""
    return Path(run_dir) / "checkpoints" / f"step_{int(step):07d}.pt"


class StabilityTracker:
    """Record gate patterns of ``model`` on ``probe`` every ``every`` training steps.

    Parameters
    ----------
    probe : fixed inputs (e.g. 512 test images) on which patterns are read.
    every : snapshot interval in optimiser steps (default 50).
    out_dir : if given, ``patterns.npz`` and per-snapshot checkpoints are written there.
    checkpoint_every : keep weights only at steps that are multiples of this (default ``every``);
        step 0 and the final step are always kept.
    batch_size : probe chunk size for the recording forward pass.

    Use it with a fresh training run: a ``fit`` resumed from a checkpoint would label its first
    snapshot step 0 (``whiteboxdl stability run`` refuses to reuse a run directory).
    """

    def __init__(self, probe: torch.Tensor, every: int = 50, out_dir: str | Path | None = None,
                 checkpoint_every: int | None = None, batch_size: int = 512):
        if every < 1:
            raise ValueError(f"every must be >= 1 step, got {every}")
        if checkpoint_every is not None and (checkpoint_every < every or checkpoint_every % every):
            raise ValueError(f"checkpoint_every must be a multiple of every={every}, "
                             f"got {checkpoint_every}")
        if probe.dim() < 2 or len(probe) == 0 or not torch.isfinite(probe).all():
            raise ValueError(f"probe must be a non-empty finite batch, got shape {tuple(probe.shape)}")
        self.probe = probe.detach()
        self.every = int(every)
        self.checkpoint_every = int(checkpoint_every or every)
        self.out_dir = Path(out_dir) if out_dir else None
        self.batch_size = int(batch_size)
        self.store = PatternStore()
        self.store.meta.update({"every": self.every, "n_probe": len(probe)})
        self._previous: dict[str, torch.Tensor] | None = None
        self._last_step_seen: int | None = None
        #: wall-clock seconds spent recording (the tracking overhead)
        self.seconds = 0.0

    # -- hooks of the training loop ------------------------------------------------------------
    def on_train_start(self, model: nn.Module) -> None:
        if not len(self.store):
            self.record(0, model)

    def on_step_end(self, step: int, model: nn.Module) -> None:
        self._last_step_seen = int(step)
        if step % self.every == 0:
            self.record(step, model)

    def on_epoch_end(self, epoch: int, model: nn.Module, metrics: dict) -> None:
        self.save()

    def on_train_end(self, model: nn.Module) -> None:
        if not len(self.store):
            return
        final = self._last_step_seen
        if final is not None and final != self.store.steps[-1]:
            self.record(final, model, margins=True)
        else:
            self._add_margins(model)
        self.save()

    # -- recording -----------------------------------------------------------------------------
    def record(self, step: int, model: nn.Module, margins: bool = False) -> None:
        """Take one snapshot now (called by the hooks; usable by hand)."""
        t0 = time.perf_counter()
        snapshot = record_patterns(model, self.probe, self.batch_size, margins=margins)
        self.store.add(step, snapshot, self._weight_change(model))
        if self.out_dir is not None and (step == 0 or step % self.checkpoint_every == 0 or margins):
            self._save_weights(model, checkpoint_path(self.out_dir, step))
        self.seconds += time.perf_counter() - t0

    def _add_margins(self, model: nn.Module) -> None:
        snapshot = record_patterns(model, self.probe, self.batch_size, margins=True)
        self.store.margins = {k: v for k, v in snapshot.margins.items()}
        self.store.margin_step = self.store.steps[-1]
        if self.out_dir is not None:
            path = checkpoint_path(self.out_dir, self.store.steps[-1])
            if not path.is_file():
                self._save_weights(model, path)

    @staticmethod
    def _save_weights(model: nn.Module, path: Path) -> None:
        save_torch(path, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})

    @torch.no_grad()
    def _weight_change(self, model: nn.Module) -> dict[str, float]:
        current = {name: p.detach().float().cpu().clone() for name, p in model.named_parameters()}
        change = {}
        if self._previous is not None:
            for name, value in current.items():
                before = self._previous[name]
                change[name] = float((value - before).norm() / before.norm().clamp_min(1e-12))
        self._previous = current
        return change

    def save(self) -> Path | None:
        """Write ``patterns.npz`` into ``out_dir`` (no-op without one)."""
        if self.out_dir is None or not len(self.store):
            return None
        t0 = time.perf_counter()
        path = self.store.save(self.out_dir / "patterns.npz")
        self.seconds += time.perf_counter() - t0
        return path
