"""Figures of a robustness evaluation: adversarial gallery and minimal Boundary examples.

(The semantic network's processing steps come from :mod:`whiteboxdl.semantic.inspect`.)

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
