"""Figures that show what a semantic-feature network has learned and how it decides.

One function per figure of the paper (plus the logical weights), each writing one PNG, and
:func:`inspect_model` that writes all of them and an HTML report. Images that are compared share
one colour scale; signed quantities use ``bwr`` centred at zero.

Example
-------
>>> from whiteboxdl.semantic.network import semantic_mnist
>>> import tempfile
>>> paths = inspect_model(semantic_mnist(), tempfile.mkdtemp(), n_samples=0)
>>> sorted(p.name for p in paths)[:3]
['affine_features.png', 'affine_poses.png', 'conv_kernels.png']
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
import torch

from whiteboxdl.semantic.layers import TwoStep
from whiteboxdl.semantic.network import SemanticNetwork, processing_steps
from whiteboxdl.viz.figures import new_figure, save_figure


_GAPPED_BWR = matplotlib.colormaps["bwr"].with_extremes(bad="0.7")  # NaN gaps drawn grey


def _symmetric(t: torch.Tensor) -> float:
    return float(t.abs().max().clamp_min(1e-8))


def _blank(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def plot_two_step(model: SemanticNetwork, path: str | Path) -> Path:
    """The two-step function on [0, 1]: the initial one and the learned one, with thresholds."""
    if model.two_step is None:
        raise ValueError("this model has no two-step layer (trained with --no-two-step)")
    fig, ax = new_figure(size=(5.5, 4))
    x = torch.linspace(0, 1, 501)
    with torch.no_grad():
        for layer, label, style in ((TwoStep(), "initial", "--"), (model.two_step, "learned", "-")):
            ax.plot(x.numpy(), layer(x).numpy(), style, label=label)
        t = model.two_step.t.tolist()
    for v in t:
        ax.axvline(v, color="0.6", lw=0.8)
    a, s = model.two_step.a.tolist(), model.two_step.scales.tolist()
    ax.set(xlabel="pixel intensity x", ylabel="two-step output", ylim=(-1.05, 1.05),
           title=f"Two-step: t=({t[0]:.3f}, {t[1]:.3f}), a=({a[0]:.3f}, {a[1]:.3f})\n"
                 f"scales=[{', '.join(f'{v:.3f}' for v in s)}]")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _mosaic(tiles: torch.Tensor, per_line: int, gap: int = 1) -> torch.Tensor:
    """``(N, h, w)`` tiles -> one image with ``per_line`` tiles per line, NaN gaps between."""
    n, h, w = tiles.shape
    lines = -(-n // per_line)
    canvas = torch.full((lines * (h + gap) - gap, per_line * (w + gap) - gap), float("nan"))
    for i in range(n):
        r, c = divmod(i, per_line)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tiles[i]
    return canvas


def plot_conv_kernels(model: SemanticNetwork, path: str | Path, per_line: int = 8) -> Path:
    """Every conv kernel in all its rotations (one panel per kernel, one shared scale)."""
    if model.conv is None:
        raise ValueError("this model has no conv layer (trained with --no-conv)")
    posed = model.conv.posed_kernels().detach()  # (C, P, s, s)
    c, p, s, _ = posed.shape
    vmax = _symmetric(posed)
    fig, axes = new_figure(1, c, size=(c * 4.2 + 1, 3.4), layout="constrained")
    step = 360 / p
    for k in range(c):
        ax = axes[0, k]
        im = ax.imshow(_mosaic(posed[k], per_line).numpy(), cmap=_GAPPED_BWR, vmin=-vmax, vmax=vmax,
                       interpolation="nearest")
        ax.set_xticks([i * (s + 1) + s / 2 - 0.5 for i in range(per_line)],
                      [f"+{i * step:g}°" for i in range(per_line)], fontsize=7, rotation=45)
        ax.set_yticks([r * (s + 1) + s / 2 - 0.5 for r in range(-(-p // per_line))],
                      [f"{r * per_line * step:g}°" for r in range(-(-p // per_line))], fontsize=7)
        ax.set_title(f"kernel {k}: {p} rotations")
    fig.suptitle(f"Conv semantic layer: {c} kernels x {p} rotations of {step:g}° (unit L2 norm)")
    fig.colorbar(im, ax=axes, shrink=0.7)
    return save_figure(fig, path)


def plot_affine_features(model: SemanticNetwork, path: str | Path) -> Path:
    """The affine base features (zero-padded), one row per class block, shared scale."""
    feats = model.affine.padded_features().detach()
    k, blk = model.n_classes, model.logical.block_size
    channels = model.affine.in_channels
    if channels > 1:  # the channels of a feature side by side
        feats = torch.stack([_mosaic(f, channels) for f in feats])
    vmax = _symmetric(feats.nan_to_num())
    fig, axes = new_figure(k, blk, size=(blk * 1.9 * (1 + 0.8 * (channels - 1)), k * 1.8 + 0.6),
                           layout="constrained")
    for f in range(k * blk):
        ax = axes[f // blk, f % blk]
        im = ax.imshow(feats[f].numpy(), cmap=_GAPPED_BWR, vmin=-vmax, vmax=vmax)
        ax.set_title(f"feature {f} (class {model.class_names[f // blk]})", fontsize=8)
        _blank(ax)
    fig.suptitle("Affine semantic layer: base features" +
                 (f" ({channels} input channels side by side)" if channels > 1 else ""))
    fig.colorbar(im, ax=axes, shrink=0.6)
    return save_figure(fig, path)


def plot_affine_poses(model: SemanticNetwork, path: str | Path, per_line: int = 16) -> Path:
    """All poses of all affine features (each feature: lines of ``per_line`` poses), one scale."""
    posed = model.affine.posed_features().detach()  # (F, P, [C,] H, W)
    channels = model.affine.in_channels
    if channels > 1:
        posed = posed.sum(dim=2)
    f, p, h, w = posed.shape
    lines = -(-p // per_line)
    padded = torch.zeros(f, lines * per_line, h, w)
    padded[:, :p] = posed
    vmax = _symmetric(posed)
    mosaic = padded.view(f, lines, per_line, h, w).permute(0, 1, 3, 2, 4).reshape(
        f * lines * h, per_line * w)
    fig, ax = new_figure(size=(per_line * 0.75 + 1.5, f * lines * 0.75 + 1), layout="constrained")
    im = ax.imshow(mosaic.numpy(), cmap="bwr", vmin=-vmax, vmax=vmax, interpolation="nearest")
    blk = model.logical.block_size
    ax.set_yticks([(i * lines + lines / 2) * h for i in range(f)],
                  [f"f{i} (class {model.class_names[i // blk]})" for i in range(f)], fontsize=8)
    ax.set_xticks([(i + 0.5) * w for i in range(per_line)],
                  [f"+{i}" for i in range(per_line)], fontsize=7)
    ax.set_xlabel(f"pose (line j of a feature holds poses {per_line}j + column)")
    for i in range(1, f * lines):
        ax.axhline(i * h - 0.5, color="k", lw=1.2 if i % lines == 0 else 0.2)
    for i in range(1, per_line):
        ax.axvline(i * w - 0.5, color="k", lw=0.2)
    ax.set_title(f"Affine semantic layer: all {f} x {p} learned poses (unit L2 norm"
                 + (f"; sum of the {channels} channels)" if channels > 1 else ")"))
    fig.colorbar(im, ax=ax, shrink=0.5)
    return save_figure(fig, path)


def plot_logical_weights(model: SemanticNetwork, path: str | Path) -> Path:
    """The logical layer's weights as an annotated heat map: the paper's layer with each own
    block top-1 masked, or every learnable pose of
    :class:`~whiteboxdl.semantic.layers.PosedLogical` (one row each)."""
    posed = not hasattr(model.logical, "masked_weight")
    if posed:
        w = model.logical.weight.detach()
        r = w.shape[1]
        w = w.reshape(-1, w.shape[2])
    else:
        w = model.logical.masked_weight().detach()
    k, n = w.shape
    vmax = _symmetric(w)
    fig, ax = new_figure(size=(max(7, n * 0.45), k * 0.55 + 1.6), layout="constrained")
    im = ax.imshow(w.numpy(), cmap="bwr", vmin=-vmax, vmax=vmax)
    if n <= 16:
        for i in range(k):
            for j in range(n):
                ax.text(j, i, f"{float(w[i, j]):.2f}", ha="center", va="center", fontsize=7)
    blk = model.logical.block_size
    for j in range(1, k):
        ax.axvline(j * blk - 0.5, color="k", lw=0.8)
    if posed:
        ax.set_yticks(range(k), [f"class {c} pose {p}" for c in model.class_names
                                 for p in range(r)], fontsize=6)
        for i in range(1, model.n_classes):
            ax.axhline(i * r - 0.5, color="k", lw=0.8)
    else:
        ax.set_yticks(range(k), [f"class {c}" for c in model.class_names])
    ax.set_xticks(range(n), [f"f{j}" for j in range(n)], fontsize=7)
    ax.set_xlabel("affine feature (blocks of the classes in order)")
    ax.set_title("Logical weights (learnable poses: logit = max over a class's rows)" if posed
                 else "Logical weights (own block: top-1 entry kept, rolled over the block)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return save_figure(fig, path)


def plot_learning_curves(history: Sequence[dict], path: str | Path) -> Path:
    """Train/test loss and accuracy per epoch, plus any adversarial check in the history."""
    if not history:
        raise ValueError("empty training history: nothing to plot")
    epochs = [h["epoch"] for h in history]
    fig, axes = new_figure(1, 2, size=(10, 3.8))
    ax_loss, ax_acc = axes[0]
    for key, style in (("train_loss", "-"), ("test_loss", "--"), ("val_loss", "--")):
        if key in history[0]:
            ax_loss.plot(epochs, [h[key] for h in history], style, marker="o", ms=3, label=key)
    acc_keys = [k for k in history[0] if k.endswith("_acc")]
    for key in acc_keys:
        ax_acc.plot(epochs, [h[key] for h in history], marker="o", ms=3, label=key)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy",
               title="Accuracy (apgd*: robust on a fixed subset; val_*: validation split)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def _shown_classes(probs: torch.Tensor, label: int | None, k: int) -> list[int]:
    """All classes for k <= 3, else the 3 most probable, the last replaced by the true label if
    it is not among them."""
    if k <= 3:
        return list(range(k))
    shown = probs.topk(3).indices.tolist()
    if label is not None and label not in shown:
        shown[-1] = int(label)
    return shown


def plot_processing_steps(model: SemanticNetwork, x: torch.Tensor, path: str | Path,
                          labels: torch.Tensor | None = None) -> Path:
    """Per sample: input (class probabilities), two-step, conv, and per class the best-matching
    affine pose overlaid on the conv output (match value)."""
    steps = processing_steps(model, x)
    n, k = x.shape[0], model.n_classes
    n_shown = min(k, 3)
    cols = 3 + n_shown
    fig, axes = new_figure(n, cols, size=(cols * 2.2, n * 2.35), layout="constrained")
    conv = steps["conv"].amax(dim=1)  # (B, H, W): max over the conv channels
    pose_images = steps["class_pose_image"]
    if pose_images.dim() == 5:  # (B, k, C, H, W): channels summed for the overlay
        pose_images = pose_images.sum(dim=2)
    conv_max = float(conv.max().clamp_min(1e-8))
    pose_max = _symmetric(pose_images)
    n_posed = model.conv.kernels.shape[0] * model.conv.n_poses if model.conv is not None else 0
    conv_title = (f"conv (max over {n_posed} poses)" if steps["conv"].shape[1] == 1
                  else f"conv (max over {steps['conv'].shape[1]} channels)")
    names = model.class_names
    for i in range(n):
        probs = steps["probs"][i]
        true = int(labels[i]) if labels is not None else None
        pred = int(steps["prediction"][i])
        prob_text = ", ".join(f"{names[j]}:{probs[j]:.2f}" for j in probs.topk(min(k, 3)).indices)
        verdict = "" if true is None else (" ✓" if pred == true else f" ✗ (true {names[true]})")
        row = axes[i]
        row[0].imshow(steps["input"][i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"P {prob_text}{verdict}", fontsize=7,
                         color="k" if true is None or pred == true else "r")
        row[1].imshow(steps["two_step"][i, 0].numpy(), cmap="bwr", vmin=-1, vmax=1)
        row[1].set_title("two-step", fontsize=8)
        row[2].imshow(conv[i].numpy(), cmap="gray", vmin=0, vmax=conv_max)
        row[2].set_title(conv_title if model.conv is not None else "input (no conv layer)",
                         fontsize=8)
        for c, j in enumerate(_shown_classes(probs, true, k)[:n_shown]):
            ax = row[3 + c]
            ax.imshow(conv[i].numpy(), cmap="gray", vmin=0, vmax=conv_max)
            pose = pose_images[i, j].numpy()
            ax.imshow(np.ma.masked_where(np.abs(pose) < 0.1 * pose_max, pose), cmap="bwr",
                      vmin=-pose_max, vmax=pose_max, alpha=0.6)
            f = int(steps["class_feature"][i, j])
            p = int(steps["affine_pose"][i, f])
            ax.set_title(f"{names[j]}: f{f} pose {p}, match {steps['class_match'][i, j]:.3f}",
                         fontsize=7)
        for ax in row:
            _blank(ax)
    fig.suptitle("Processing steps (overlay: best-matching affine pose of each class on the conv "
                 "output; red +, blue -)", fontsize=9)
    return save_figure(fig, path)


def pick_samples(model: SemanticNetwork, x: torch.Tensor, y: torch.Tensor, n: int = 8,
                 n_wrong: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n_wrong`` misclassified samples plus correctly classified ones, ``n`` in all."""
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    wrong = (pred != y).nonzero().squeeze(1)[:n_wrong]
    right = (pred == y).nonzero().squeeze(1)[:max(0, n - len(wrong))]
    idx = torch.cat([right, wrong])
    return x[idx], y[idx]


def inspect_model(model: SemanticNetwork, out_dir: str | Path, x: torch.Tensor | None = None,
                  y: torch.Tensor | None = None, history: Sequence[dict] | None = None,
                  n_samples: int = 8, title: str = "Semantic-feature network") -> list[Path]:
    """Write every figure (and ``report.html``) for ``model`` into ``out_dir``.

    ``x, y`` are test images and labels for the processing-step figure (``n_samples`` of them,
    misclassified ones included); ``history`` is the training history for learning curves.
    """
    from whiteboxdl.viz.report import Report

    if not isinstance(model, SemanticNetwork):
        raise ValueError(f"inspect needs a SemanticNetwork, got {type(model).__name__}")
    out = Path(out_dir)
    model = model.eval()
    figures: list[tuple[Path, str]] = []
    if model.two_step is not None:
        figures.append((plot_two_step(model, out / "two_step.png"),
                        "Two-step function, initial (dashed) and learned"))
    if model.conv is not None:
        figures.append((plot_conv_kernels(model, out / "conv_kernels.png"),
                        "Conv kernels in all rotations"))
    figures.append((plot_affine_features(model, out / "affine_features.png"),
                    "Affine base features"))
    figures.append((plot_affine_poses(model, out / "affine_poses.png"), "All affine poses"))
    figures.append((plot_logical_weights(model, out / "logical_weights.png"), "Logical weights"))
    if history:
        figures.append((plot_learning_curves(history, out / "learning_curves.png"),
                        "Learning curves"))
    if x is not None and n_samples > 0:
        xs, ys = pick_samples(model, x, y, n_samples) if y is not None else (x[:n_samples], None)
        figures.append((plot_processing_steps(model, xs, out / "processing_steps.png", ys),
                        "Processing steps of test samples (misclassified ones last)"))
    report = Report(title)
    report.paragraph(f"classes {', '.join(model.class_names)}; "
                     f"{sum(p.numel() for p in model.parameters()):,} parameters")
    for png, caption in figures:
        report.heading(caption)
        report.figure(png, caption)
    return [png for png, _ in figures] + [report.write(out / "report.html")]
