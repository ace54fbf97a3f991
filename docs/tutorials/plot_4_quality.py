"""
Explanation quality: run, merge, read the report
================================================

Are excitation pullbacks better explanations than gradients? ``whiteboxdl quality`` scores
explainers with the metrics of the paper's later revision — Infidelity, Faithfulness Correlation
and Estimate, Monotonicity Correlation, Max Sensitivity, Random Logit and Focus on 2×2 mosaics —
on the same images with the same seeded perturbations, and reports paired differences with
bootstrap intervals. This tutorial runs it on a small MNIST CNN in two shards, merges them and
reads the report.

Numbers from 40 images of a briefly trained CNN mean little; ``BENCHMARKS.md`` has the runs on
1,000 images of the fully trained models.
"""

# %%
# A model file
# ------------
# Any whiteboxdl model file or registered model name works (``mnist-cnn``, ``resnet50`` with
# ``--data imagefolder:PATH``, …); here the project's CNN trained for one epoch on 4,000 images.
import tempfile
from pathlib import Path

import numpy as np

from whiteboxdl.data import load_mnist
from whiteboxdl.models.cnn import train_cnn

out = Path(tempfile.mkdtemp(prefix="whiteboxdl-quality-"))
x_train, y_train = load_mnist("train")
train_cnn("mnist", epochs=1, train_data=(x_train[:4000], y_train[:4000]), out=out / "cnn",
          progress=False)
model_file = out / "mnist-cnn-1-epoch.pt"
(out / "cnn" / "model.pt").rename(model_file)

# %%
# Two shards
# ----------
# The images are cut into fixed batches and every random draw is seeded by (seed, batch,
# explainer, metric), so shards can run anywhere, in any order, and give the numbers of a single
# run. Four explainers: the one-step pullback and its vanilla counterpart (``SoftPullback``,
# ``Gradient``), and the five-step ascents along each (``PullbackAscent``, ``GradientAscent``).
from whiteboxdl.cli import main


def whiteboxdl(*args) -> None:
    """Run a ``whiteboxdl`` command in this process, as the shell would; stop if it fails."""
    code = main([str(a) for a in args])
    if code:
        raise SystemExit(f"`whiteboxdl {' '.join(map(str, args))}` exited with {code}")


explainers = "SoftPullback,Gradient,PullbackAscent,GradientAscent"
for shard, run_dir in (("0/2", out / "run"), ("1/2", out / "run-shard-1")):
    whiteboxdl("quality", "evaluate", "--model", model_file, "--data", "mnist", "--n", 40,
               "--batch-size", 10, "--explainers", explainers, "--shard", shard,
               "--metric-options", '{"MaxSensitivity": {"nr_samples": 5}}', "--out", run_dir)

# %%
# Merge and read the report
# -------------------------
# ``merge`` checks that the shards belong to one run (same configuration), collects every batch
# and writes ``scores.npz`` / ``scores.csv`` (per image), ``summary.md`` (means with the best
# explainer per metric, paired differences pullback − gradient counterpart with 95% bootstrap
# intervals, timings), ``examples.png`` and ``report.html``. The arrows say which direction is
# better; a paired difference whose interval excludes 0 is a difference these images support.
whiteboxdl("quality", "merge", out / "run", out / "run-shard-1")
examples_png = out / "run" / "examples.png"

# %%
# The per-image scores are there for your own analysis, e.g. on how many images the pullback
# ascent is more faithful than the gradient ascent:
scores = np.load(out / "run" / "scores.npz")
ours, theirs = (scores[f"score/{e}/FaithfulnessCorrelation"]
                for e in ("PullbackAscent", "GradientAscent"))
print(f"Faithfulness Correlation, PullbackAscent > GradientAscent on "
      f"{int((ours > theirs).sum())} of {len(ours)} images")
