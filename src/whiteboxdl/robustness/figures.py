"""Figures of a robustness evaluation: adversarial gallery, minimal Boundary examples, and the
semantic network's processing steps on adversarial inputs.

Example
-------
>>> import torch, tempfile, os
>>> from whiteboxdl.robustness.figures import adversarial_gallery
>>> clean = torch.rand(3, 1, 8, 8); adv = (clean + 0.1).clamp(0, 1)
>>> p = adversarial_gallery(clean, adv, torch.tensor([0, 1, 0]), torch.tensor([0, 1, 1]),
...     torch.tensor([.9, .8, .6]), torch.tensor([1, 1, 0]), torch.tensor([.7, .9, .5]),
...     ("3", "5"), tempfile.mktemp(suffix=".png"), eps=0.1)
>>> os.path.getsize(p) > 0
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from whiteboxdl.viz.figures import new_figure, save_figure


def _image(ax, img: torch.Tensor, title: str, cmap: str = "gray", vmin: float = 0.0,
           vmax: float = 1.0, color: str = "black") -> None:
    ax.imshow(img.detach().cpu().squeeze(0).numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize=8, color=color)
    ax.set_xticks([])
    ax.set_yticks([])


def pick_examples(labels: torch.Tensor, clean_pred: torch.Tensor, adv_pred: torch.Tensor,
                  k: int = 8) -> list[int]:
    """Indices to show: inputs broken by the attack first, then robust ones (about 2:1)."""
    broken = ((clean_pred == labels) & (adv_pred != labels)).nonzero().squeeze(1).tolist()
    robust = ((clean_pred == labels) & (adv_pred == labels)).nonzero().squeeze(1).tolist()
    n_broken = min(len(broken), max(k - max(1, k // 3), k - len(robust)))
    return broken[:n_broken] + robust[:k - n_broken]


def adversarial_gallery(clean: torch.Tensor, adv: torch.Tensor, labels: torch.Tensor,
                        clean_pred: torch.Tensor, clean_conf: torch.Tensor,
                        adv_pred: torch.Tensor, adv_conf: torch.Tensor,
                        class_names: Sequence[str], path: str | Path, eps: float) -> Path:
    """Rows: clean (true -> predicted, confidence), adversarial (prediction), perturbation."""
    k = len(clean)
    fig, axes = new_figure(3, k, size=(1.45 * k, 4.6))
    for i in range(k):
        name = class_names[int(labels[i])]
        _image(axes[0][i], clean[i], f"true {name}\npred {class_names[int(clean_pred[i])]} "
               f"{100 * float(clean_conf[i]):.0f}%")
        ok = int(adv_pred[i]) == int(labels[i])
        _image(axes[1][i], adv[i], f"attacked: {class_names[int(adv_pred[i])]} "
               f"{100 * float(adv_conf[i]):.0f}%", color="green" if ok else "red")
        _image(axes[2][i], adv[i] - clean[i], "perturbation", cmap="bwr", vmin=-eps, vmax=eps)
    return save_figure(fig, path)


def boundary_figure(clean: torch.Tensor, adv: torch.Tensor, model: nn.Module,
                    class_names: Sequence[str], path: str | Path) -> Path:
    """Minimal adversarial examples: clean, adversarial (with L2 / L-inf size), difference."""
    with torch.no_grad():
        p_clean, p_adv = model(clean).softmax(1), model(adv).softmax(1)
    k = len(clean)
    fig, axes = new_figure(3, k, size=(1.6 * k, 4.8))
    delta = (adv - clean).flatten(1)
    scale = float(delta.abs().max()) or 1.0
    for i in range(k):
        c, a = int(p_clean[i].argmax()), int(p_adv[i].argmax())
        _image(axes[0][i], clean[i], f"clean: {class_names[c]} {100 * float(p_clean[i, c]):.0f}%")
        _image(axes[1][i], adv[i], f"minimal: {class_names[a]} {100 * float(p_adv[i, a]):.0f}%",
               color="red" if a != c else "black")
        _image(axes[2][i], adv[i] - clean[i],
               f"L2 {float(delta[i].norm()):.2f}, Linf {float(delta[i].abs().max()):.2f}",
               cmap="bwr", vmin=-scale, vmax=scale)
    return save_figure(fig, path)


def is_semantic_network(model: nn.Module) -> bool:
    """Whether ``model`` is a :class:`whiteboxdl.semantic.network.SemanticNetwork`."""
    try:
        from whiteboxdl.semantic.network import SemanticNetwork
    except ImportError:
        return False
    return isinstance(model, SemanticNetwork)


def processing_steps_figure(model: nn.Module, x: torch.Tensor, path: str | Path,
                            titles: Sequence[str] | None = None) -> Path:
    """The semantic network's processing steps on ``x`` (one row per input).

    Columns: input (title: class probabilities), two-step output, conv output, and for each
    class the best-matching affine pose of that class's features drawn over the conv output
    (title: match value).
    """
    from whiteboxdl.semantic.network import processing_steps

    steps = processing_steps(model, x)
    names = list(getattr(model, "class_names", [str(i) for i in range(steps["probs"].shape[1])]))
    k = len(names)
    fig, axes = new_figure(len(x), 3 + k, size=(1.8 * (3 + k), 1.9 * len(x)))
    for r in range(len(x)):
        probs = ", ".join(f"{n}: {100 * float(p):.0f}%" for n, p in zip(names, steps["probs"][r]))
        head = f"{titles[r]}\n" if titles else ""
        _image(axes[r][0], steps["input"][r], f"{head}{probs}")
        _image(axes[r][1], steps["two_step"][r], "two-step", cmap="bwr", vmin=-1, vmax=1)
        conv = steps["conv"][r]
        top = float(conv.max()) or 1.0
        _image(axes[r][2], conv, "conv", vmin=0, vmax=top)
        for j in range(k):
            ax = axes[r][3 + j]
            _image(ax, conv, f"best '{names[j]}' pose: {float(steps['class_match'][r, j]):.2f}",
                   vmin=0, vmax=top)
            pose = steps["class_pose_image"][r, j].cpu().numpy()
            lim = float(abs(pose).max()) or 1.0
            ax.imshow(pose, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.55)
    return save_figure(fig, path)
