"""
Path stability: run and read the report
=======================================

The *path stability hypothesis*: a ReLU network's binary activation pattern (which gates are
open on which inputs) settles early in training, after which training mostly rescales the paths
it has chosen. If it holds, excitation pullbacks follow the gradient of a "path kernel machine"
whose paths are frozen. ``whiteboxdl stability`` records every ReLU gate and max-pool choice on a
fixed probe set during training and measures how the pattern moves.

This tutorial records the project's MNIST CNN for one epoch on 3,000 images (a snapshot every 4
steps on 128 probe images) and reads the report. The recorded full runs and what they say about
the hypothesis are in ``docs/stability/`` and ``BENCHMARKS.md``::

    whiteboxdl stability run --dataset mnist --every 50 --probe 512 --out runs/stability-mnist
"""

# %%
# Record
# ------
# ``stability run`` trains with a :class:`~whiteboxdl.stability.StabilityTracker` callback in the
# shared training loop; the run directory gets the bit-packed patterns (``patterns.npz``), the
# weights of the snapshots, the probe images and the model. It then analyses the run and writes
# the report (``--no-report`` skips that; ``stability report RUN_DIR`` does it later). The
# alignment measures compare pullbacks with frozen-gate gradients of earlier snapshots; small
# settings here (64 images, 6 snapshots).
import tempfile
from pathlib import Path

from whiteboxdl.cli import main


def whiteboxdl(*args) -> None:
    """Run a ``whiteboxdl`` command in this process, as the shell would; stop if it fails."""
    code = main([str(a) for a in args])
    if code:
        raise SystemExit(f"`whiteboxdl {' '.join(map(str, args))}` exited with {code}")


run_dir = Path(tempfile.mkdtemp(prefix="whiteboxdl-stability-")) / "mnist-cnn"
whiteboxdl("stability", "run", "--dataset", "mnist", "--model", "cnn", "--epochs", 1,
           "--train-limit", 3000, "--test-limit", 500, "--every", 4, "--probe", 128,
           "--align-probe", 64, "--align-snapshots", 6, "--out", run_dir)

# %%
# Read the report
# ---------------
# The per-layer table above gives, for every ReLU layer, how many gates flip between snapshots
# and when each settles for good; the sentences say what that means for the hypothesis (a line
# marked ``[against]`` is a finding against it). ``report.html`` holds the same with one figure
# per measure, written to ``figures/``:
figures = sorted((run_dir / "figures").glob("*.png"))
print("\n".join(p.name for p in figures))

# %%
# The analysis is also a dict (``stability.json``) for your own plots:
from whiteboxdl.runfiles import read_json

results = read_json(run_dir / "stability.json")
print(sorted(results))
print("snapshot steps:", results["patterns"]["steps"])
