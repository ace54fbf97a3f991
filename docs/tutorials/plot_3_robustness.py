"""
Robustness evaluation and the reliability curve
===============================================

How robust is a model, and can its confidence tell which attacked inputs it still gets right?
This tutorial evaluates a semantic-feature network and a ReLU CNN on the MNIST 3-vs-5 task under
L∞ attacks with ε = 0.3, draws their reliability curves and writes the side-by-side report, first
through the Python API, then with one ``whiteboxdl robustness evaluate`` command.

The models are trained briefly (the semantic network for 4 of its 15 epochs, the CNN for one)
and 100 test images are attacked, so that the page builds in about a minute; the published
comparison uses the full recipes and every one of the 1,902 test images::

    whiteboxdl robustness evaluate semantic-3-5 --attacks standard --n 1902 --eps 0.3 \\
        --baseline cnn-3-5 --out runs/semantic-3-5/robustness
"""

# %%
# Two models
# ----------
# The semantic network with the paper's recipe for 4 epochs, and the project's ReLU CNN on the
# same two digits for one epoch on 4,000 images. Each is written as a whiteboxdl model file
# (weights plus the allow-listed builder that rebuilds it), which every command accepts.
import tempfile
from dataclasses import replace
from pathlib import Path

from whiteboxdl.data import digit_subset
from whiteboxdl.models.checkpoint import load_model
from whiteboxdl.models.cnn import train_cnn
from whiteboxdl.semantic import train_semantic
from whiteboxdl.semantic.train import RECIPE

out = Path(tempfile.mkdtemp(prefix="whiteboxdl-robustness-"))
x_train, y_train = digit_subset((3, 5), "train")
train_semantic((3, 5), replace(RECIPE, epochs=4), adv_check=0, out_dir=out / "semantic",
               progress=False)
train_cnn("mnist", digits=(3, 5), epochs=1, train_data=(x_train[:4000], y_train[:4000]),
          out=out / "cnn", progress=False)
files = {"semantic": out / "semantic-3v5.pt", "CNN": out / "cnn-3v5.pt"}
(out / "semantic" / "model.pt").rename(files["semantic"])
(out / "cnn" / "model.pt").rename(files["CNN"])
models = {label: load_model(path) for label, path in files.items()}

# %%
# Attacks
# -------
# :func:`~whiteboxdl.robustness.evaluate` attacks the inputs batch by batch with each named attack
# and records, per input, the clean and the attacked prediction and confidence. An input counts
# as robust only when it is classified correctly both clean and attacked; ``"worst"`` combines
# the attacks (robust only if no attack broke it). Here: one FGSM step and APGD-CE (AutoAttack's
# first component, 100 iterations) on the first 100 test images. With ``out_dir`` every finished
# batch is stored, so an interrupted or grown run only computes what is missing.
from whiteboxdl.robustness import evaluate
from whiteboxdl.robustness.report import slug
from whiteboxdl.viz.report import markdown_table

x_test, y_test = digit_subset((3, 5), "test")
x, y = x_test[:100], y_test[:100]
results = {label: evaluate(model, x, y, ["fgsm", "apgd-ce"], eps=0.3, progress=False,
                           out_dir=out / "report" / slug(files[label].stem))
           for label, model in models.items()}
for label, result in results.items():
    print(label)
    print(markdown_table(*result.table()), "\n")

# %%
# The reliability curve
# ---------------------
# Rank the attacked inputs by the model's confidence (max softmax probability on the strongest
# attack's input) and accept them from the most confident down: precision is the share of the
# accepted inputs that are correct under attack, recall the share of the correct ones accepted.
# At 100% recall everything is accepted and precision is the adversarial accuracy. A model whose
# confidence means something keeps a high precision at lower recall.
from whiteboxdl.robustness import plot_reliability, reliability_curve
from whiteboxdl.robustness.reliability import curve_rows

curves = {label: reliability_curve(r.robust("worst"), r.worst_inputs().conf)
          for label, r in results.items() if r.robust("worst").any()}
print(markdown_table(*curve_rows(curves)))
for label in results.keys() - curves.keys():
    print(f"{label}: no input is correct under attack, so it has no curve")
reliability_png = plot_reliability(curves, out / "reliability.png")

# %%
# The report, from the command line
# ---------------------------------
# ``whiteboxdl robustness evaluate`` does all of the above for a model and a baseline and writes
# ``report.md`` and ``report.html``: the side-by-side table, a gradient-masking check (the
# black-box Square attack alone against APGD-CE alone), the reliability curves, adversarial
# examples, the semantic network's processing steps on them, and minimal adversarial examples
# from ART's decision-based Boundary attack. It writes into the same run directories as the
# calls above, so the FGSM and APGD-CE batches are reused and only Square and Boundary run.
# (Small settings here: 300 Square queries, 2 Boundary images of 300 iterations.)
from whiteboxdl.cli import main


def whiteboxdl(*args) -> None:
    """Run a ``whiteboxdl`` command in this process, as the shell would; stop if it fails."""
    code = main([str(a) for a in args])
    if code:
        raise SystemExit(f"`whiteboxdl {' '.join(map(str, args))}` exited with {code}")


whiteboxdl("robustness", "evaluate", files["semantic"], "--baseline", files["CNN"],
           "--attacks", "fgsm,apgd-ce", "--n", 100, "--eps", 0.3, "--n-queries", 300,
           "--boundary-n", 2, "--boundary-iter", 300, "--no-progress", "--out", out / "report")

# %%
# The report's tables, as Markdown (``report.html`` holds the same with the figures inlined):
report = (out / "report" / "report.md").read_text()
print(report[:report.index("## Reliability")])

# %%
# and its figures:
figures = sorted((out / "report" / "figures").glob("*.png"))
print("\n".join(p.name for p in figures))
