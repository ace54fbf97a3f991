"""
A semantic-feature network: train it, read it, attack it
========================================================

A semantic-feature network is interpretable by construction: every feature is a learned
template that is matched in every pose of a pose set, and the classifier is a logical layer
("a 3 is a 3-part and none of the 5-parts"). This tutorial trains the paper's 4,810-parameter
MNIST 3-vs-5 network for one epoch, looks at what it learned, follows one image through its
processing steps, and attacks it with APGD-CE at L∞ ε = 0.3.

The full recipe (15 epochs, seed 314) is ``whiteboxdl semantic train --digits 3 5 --out
runs/poc`` or ``get_semantic_model((3, 5))``; it reaches 99.37% clean and about 91% APGD-CE
accuracy (``BENCHMARKS.md``). One epoch, as here, gives a weaker but already readable network.
"""

# %%
# Training
# --------
# :func:`~whiteboxdl.semantic.train_semantic` is the paper's recipe on the shared training loop;
# ``config`` overrides the number of epochs, ``adv_check=0`` skips the per-epoch APGD check.
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from whiteboxdl.data import digit_subset
from whiteboxdl.semantic import processing_steps, train_semantic
from whiteboxdl.semantic.train import RECIPE

out = Path(tempfile.mkdtemp(prefix="whiteboxdl-semantic-"))
model, result = train_semantic((3, 5), replace(RECIPE, epochs=1), adv_check=0,
                               out_dir=out / "model", progress=False)
model.eval()
print(f"{sum(p.numel() for p in model.parameters()):,} parameters, classes {model.class_names}")
print("after one epoch:", {k: round(v, 4) for k, v in result.history[-1].items()
                           if isinstance(v, float)})

# %%
# What it learned
# ---------------
# Each layer can be drawn. The two-step function maps a pixel to ON (+1), OFF (−1) or "meh" (0);
# the affine base features are the templates that the third layer matches in 32 learned affine
# poses each; the logical weights say which feature speaks for which class.
from whiteboxdl.semantic.inspect import (plot_affine_features, plot_logical_weights,
                                         plot_processing_steps, plot_two_step)

two_step_png = plot_two_step(model, out / "two_step.png")
features_png = plot_affine_features(model, out / "affine_features.png")
logical_png = plot_logical_weights(model, out / "logical_weights.png")

# %%
# Processing steps
# ----------------
# :func:`~whiteboxdl.semantic.processing_steps` returns every intermediate result for a batch:
# the two-step and convolutional outputs, each affine feature's best pose and match value, and
# per class the best-matching feature. The figure overlays, per class, that best-matching pose on
# the convolutional output: the network's reason for its answer, in pixels.
x_test, y_test = digit_subset((3, 5), "test")
x, y = x_test[:6], y_test[:6]
steps = processing_steps(model, x)
for key in ("two_step", "conv", "affine", "affine_pose", "class_match", "probs"):
    print(f"{key:<12} {tuple(steps[key].shape)}")
print("P(5) per image:", steps["probs"][:, 1].numpy().round(3),
      "labels:", [model.class_names[int(t)] for t in y])
clean_png = plot_processing_steps(model, x, out / "processing_clean.png", y)

# %%
# An attack
# ---------
# :func:`~whiteboxdl.robustness.attack` runs the official AutoAttack components (here APGD-CE,
# 100 iterations) and returns adversarial images within the L∞ budget. After one epoch the
# network is far from the full recipe's robustness (about 91% at this ε); the processing steps
# of the images the attack does break show how it changed the network's reading: which parts
# now match, in which pose, and how well.
from whiteboxdl.robustness import attack

with torch.no_grad():
    clean_pred = model(x_test[:200]).argmax(1)
x_adv = attack(model, x_test[:200], y_test[:200], eps=0.3, name="apgd-ce")
with torch.no_grad():
    adv_pred = model(x_adv).argmax(1)
correct = clean_pred == y_test[:200]
robust = correct & (adv_pred == y_test[:200])
print(f"200 test images: clean accuracy {correct.float().mean():.3f}, "
      f"under APGD-CE (eps = 0.3) {robust.float().mean():.3f}")
print("largest change of a pixel:", float((x_adv - x_test[:200]).abs().max()))

# %%
# The first images the attack did break, before and after:
broken = (correct & ~robust).nonzero().squeeze(1)[:3]
shown = broken if len(broken) else torch.arange(3)
attacked_png = plot_processing_steps(model, x_adv[shown], out / "processing_adv.png",
                                     y_test[:200][shown])
