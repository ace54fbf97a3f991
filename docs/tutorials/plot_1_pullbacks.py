"""
Excitation pullbacks: what a trained network looks at
=====================================================

An excitation pullback is the backward pass of a ReLU network with every hard gate ``z > 0``
replaced by a soft one, ``sigmoid(z / T)`` (max-pools route the gradient softly too). The forward
pass is untouched: the network computes exactly what it computed before; only the explanation
changes. This tutorial trains a small MNIST CNN, compares pullbacks with vanilla gradients,
shows what the temperature ``T`` does, and draws the paper's counterfactual grid.

Every number and figure below was computed when this page was built.
"""

# %%
# A model and a few images
# ------------------------
# The project's MNIST CNN (BatchNorm, max-pool, 98.6K parameters). ``get_cnn("mnist")`` returns
# the fully trained one (three epochs, a few CPU minutes on first use, then cached); to keep this
# page quick to build, the same training code runs for one epoch on 4,000 images here.
#
# The model is loaded back through the model registry, which also says what inputs it takes
# (its *input contract*). Everything after this section uses only ``model``, ``contract``,
# ``names``, ``x``, ``labels`` and ``ALPHA``, so it runs unchanged on an ImageNet model: set
# ``loaded = resolve_model("resnet50")`` (weights in torch's hub cache),
# ``x = torch.cat([contract.load(p) for p in example_images().values()])`` (the photos in
# :mod:`whiteboxdl.data.images`), ``labels = model(x).argmax(1).tolist()`` and ``ALPHA = 20.0``,
# the paper's step for 224² images.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from whiteboxdl.data import load_mnist
from whiteboxdl.models.cnn import train_cnn
from whiteboxdl.models.registry import resolve_model

torch.manual_seed(0)
out = Path(tempfile.mkdtemp(prefix="whiteboxdl-pullbacks-"))
x_train, y_train = load_mnist("train")
x_test, y_test = load_mnist("test")
_, summary = train_cnn("mnist", epochs=1, train_data=(x_train[:4000], y_train[:4000]),
                       test_data=(x_test[:1000], y_test[:1000]), out=out / "cnn", progress=False)
print(f"trained in {summary['seconds']:.0f} s: test accuracy {summary['test_acc']:.3f}")

loaded = resolve_model(out / "cnn" / "model.pt")
model, contract = loaded.model, loaded.contract
names = contract.class_names or [str(c) for c in range(10)]
ALPHA = 2.0                                     # ascent step length (L2) for 28×28 images
print(f"{loaded.label}: {contract.describe()}")

first_of_each = [int((y_test == d).nonzero()[0]) for d in (0, 2, 3, 5, 7)]
x, labels = x_test[first_of_each], y_test[first_of_each].tolist()

# %%
# Pullback and gradient
# ---------------------
# :class:`~whiteboxdl.pullbacks.ExcitationPullback` has Captum's ``attribute(inputs, target=...)``
# signature; Captum's ``Saliency`` without ``abs`` is the vanilla gradient. Both explain the
# logit of each image's own class.
#
# One :class:`~whiteboxdl.pullbacks.PullbackSettings` object carries the options to every entry
# point: the paper's defaults (T = 0.3), and ``unhandled="error"`` — a nonlinearity without an
# active backward rule would otherwise run with its vanilla gradient and a warning; here it
# stops the build, so no figure on this page can show a gradient as a pullback.
from captum.attr import Saliency

from whiteboxdl.pullbacks import ExcitationPullback, PullbackSettings

settings = PullbackSettings(unhandled="error")
pullback = ExcitationPullback(model, settings).attribute(x, target=labels)
gradient = Saliency(model).attribute(x.clone().requires_grad_(True), target=labels, abs=False)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each image's two maps."""
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1))


def show_maps(rows: dict[str, torch.Tensor], title: str) -> None:
    """One column per image, one row per map: the inputs as images, the maps (summed over
    colour channels) in ``bwr`` (red +, blue −), each scaled to its own largest magnitude."""
    fig, axes = plt.subplots(len(rows), len(labels), figsize=(1.7 * len(labels), 1.8 * len(rows)),
                             squeeze=False)
    lo, hi = contract.bounds
    for r, (name, maps) in enumerate(rows.items()):
        for c in range(len(labels)):
            if name == "input":
                image = ((maps[c] - lo) / (hi - lo)).permute(1, 2, 0).squeeze(-1)
                axes[r, c].imshow(image, cmap="gray", vmin=0, vmax=1)
            else:
                m = maps[c].sum(0).detach()
                lim = float(m.abs().max()) or 1.0
                axes[r, c].imshow(m, cmap="bwr", vmin=-lim, vmax=lim)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if c == 0:
                axes[r, c].set_ylabel(name)
            if r == 0:
                axes[r, c].set_title(names[labels[c]])
    fig.suptitle(title)
    fig.tight_layout()


show_maps({"input": x, "gradient": gradient, "pullback": pullback},
          "Vanilla gradient and excitation pullback (T = 0.3) of each image's class logit")
print("cosine(pullback, gradient) per image:", cosine(pullback, gradient).numpy().round(3))

# %%
# The gradient of a ReLU network is the gradient of the linear model that its current gates
# define: noisy, and blind to units that are just below their threshold. The pullback lets those
# near-active units contribute in proportion to ``sigmoid(z / T)`` and keeps the strokes that the
# class depends on.
#
# The same numbers come from the context manager, which changes the backward pass of any code
# that runs inside it (functional calls included), without touching the model:
from whiteboxdl.pullbacks import excitation_pullbacks

xg = x.clone().requires_grad_(True)
with excitation_pullbacks(settings, temperature=0.3):
    model(xg).gather(1, torch.tensor(labels)[:, None]).sum().backward()
print("largest difference to ExcitationPullback:", float((xg.grad - pullback).abs().max()))

# %%
# The temperature
# ---------------
# ``T`` sets how soft the gates are. As ``T`` goes to 0 every ReLU gate becomes the hard gate
# again and the pullback approaches the vanilla gradient; as ``T`` grows, every unit passes half
# of its gradient whatever its input. The paper uses T = 0.3 (``maxpool_temperature`` sets the
# max-pool routing; both are swept together here).
temperatures = [1e-6, 1e-4, 1e-2, 0.1, 0.3, 1.0, 3.0, 10.0]
sweep = {T: ExcitationPullback(model, settings, temperature=T, maxpool_temperature=T).attribute(
    x, target=labels) for T in temperatures}
show_maps({f"T = {T:g}": sweep[T] for T in (1e-6, 0.3, 10.0)},
          "Pullbacks at three temperatures")

similarity = torch.stack([cosine(sweep[T], gradient) for T in temperatures])
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.semilogx(temperatures, similarity.mean(1), "o-")
ax.set_xlabel("temperature T (ReLU gates and max-pool)")
ax.set_ylabel("cosine(pullback, gradient)")
ax.set_title("Mean over the five images")
ax.grid(alpha=0.3)
fig.tight_layout()
for T, s in zip(temperatures, similarity.mean(1)):
    print(f"T = {T:<6g} cosine to the gradient {float(s):.4f}")

# %%
# Even at T = 1e-6 the cosine stays below 1: where a max-pool window holds exact ties (the
# constant background after BatchNorm), the soft routing splits the gradient evenly among the
# tied inputs, while PyTorch's max-pool gives all of it to the first one.

# %%
# Counterfactual images
# ---------------------
# :class:`~whiteboxdl.pullbacks.PullbackAscent` moves an image along pullbacks towards a target
# class (projected gradient ascent in pixel space, ``steps`` L2 steps of length ``alpha``);
# :func:`~whiteboxdl.pullbacks.grids.explanation_figure` draws the paper's grid: rows are the
# images, columns the target classes (each image's own class on the diagonal, plus one random
# class), cells the change the ascent made. Excitation-pullback ascent on the left, the same
# ascent along vanilla gradients on the right.
from whiteboxdl.pullbacks.grids import explanation_figure

grid_png, grids = explanation_figure(model, x, labels, out / "grid.png", num_classes=len(names),
                                     method="both", class_names=names, steps=5, alpha=ALPHA,
                                     bounds=contract.bounds, settings=settings, progress=False)
print("columns (target classes):", [names[c] for c in grids[0].columns])
own_column = [grids[0].columns.index(t) for t in labels]
for grid in grids:   # target_logits: (steps + 1, images, columns)
    own = grid.target_logits[:, torch.arange(len(labels)), torch.tensor(own_column)]
    print(f"{grid.method} ascent, own-class logit before -> after:",
          ", ".join(f"{a:.1f} -> {b:.1f}" for a, b in zip(own[0].tolist(), own[-1].tolist())))
