"""Design search for the ten-digit semantic network, on a validation split (never the test set).

Every variant is trained on the first 55,000 MNIST training images (``train_semantic(...,
validation=5000)``) and measured on the last 5,000: clean accuracy on all 5,000 and official
APGD-CE (L-inf eps 0.3, 100 steps, 1 restart, seed 0) on a fixed 1,000-image subset of them
(``fixed_subset(val, n=1000)``). The test set is not read. Each variant writes
``--out/NAME/`` (resumable: training resumes from its checkpoint, a finished evaluation is
reused) and ``--out/NAME/eval.json``; ``--table`` prints the markdown table of all finished ones.

    nice -n 10 python benchmarks/semantic_search.py --variants naive --out runs/search
    python benchmarks/semantic_search.py --table --out runs/search
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

#: name -> {"model": semantic_mnist kwargs, "noise": noise_augment kwargs (None: no noise),
#: "config": TrainConfig overrides, "digits" (default 0-9), "validation" (default 5000)}
VARIANTS: dict[str, dict] = {
    "naive": {},
    "poc-3v5": {"digits": [3, 5], "validation": 1000},
    "fpc8": {"model": {"features_per_class": 8}},
    "fpc16": {"model": {"features_per_class": 16}},
    "orient4": {"model": {"conv_channels": "orientation", "orientations": 4}},
    "kernels4": {"model": {"conv_kernels": 4, "conv_channels": "kernel"}},
    "kernels4-one": {"model": {"conv_kernels": 4}},
    "lposes8": {"model": {"logical": "poses", "logical_poses": 8}},
    "noise-p1": {"noise": {"p": 1.0}},
    "ep30-cos": {"config": {"epochs": 30, "schedule": "cosine"}},
    "cos15": {"config": {"schedule": "cosine"}},
    "sign-tm0.15": {"model": {"threshold_margin": 0.15},
                    "noise": {"kind": "sign", "mean": 0.0, "std": 0.3}},
    "tm0.1": {"model": {"threshold_margin": 0.1}},
    "tm0.15": {"model": {"threshold_margin": 0.15}},
    "tm0.02": {"model": {"threshold_margin": 0.02}},
    "parts": {"model": {"feature_size": 14, "translation_std": 3.0, "features_per_class": 8,
                        "logical": "poses", "logical_poses": 4}},
    "noise-sign": {"noise": {"kind": "sign", "mean": 0.0, "std": 0.3}},
    "noise-std0.35": {"noise": {"std": 0.35}},
    "noise-sign0.35": {"noise": {"kind": "sign", "mean": 0.0, "std": 0.35}},
    "cap0.5": {"model": {"conv_cap": 0.5}},
    "tm0.1-flat": {"model": {"threshold_margin": 0.1, "outer_scale_max": 0.01}},
    "tm0.02-flat": {"model": {"threshold_margin": 0.02, "outer_scale_max": 0.01}},
    "cap0.3": {"model": {"conv_cap": 0.3}},
    "noise-p1-std0.3": {"noise": {"p": 1.0, "std": 0.3}},
}


def _snapshot(run: Path, digits, model_kwargs: dict):
    """The model of the last finished epoch of a run stopped early (its ``checkpoint.pt``)."""
    from whiteboxdl.semantic.network import semantic_mnist

    state = torch.load(run / "checkpoint.pt", weights_only=True)
    model = semantic_mnist(digits, **model_kwargs)
    model.load_state_dict(state["model"])
    return model.eval(), state["history"]


def evaluate_variant(name: str, out: Path, attack_n: int, steps: int, eps: float,
                     snapshot: bool = False) -> dict:
    from whiteboxdl.data.mnist import digit_subset
    from whiteboxdl.models.checkpoint import load_model
    from whiteboxdl.models.training import TrainConfig, evaluate_accuracy
    from whiteboxdl.semantic.train import (RECIPE, apgd_accuracy, fixed_subset, train_semantic,
                                           validation_split)

    run = out / name
    done = run / "eval.json"
    if done.is_file():
        return json.loads(done.read_text())
    spec = VARIANTS[name]
    model_kwargs, noise_kwargs = spec.get("model", {}), spec.get("noise", {})
    digits, n_val = spec.get("digits", list(range(10))), spec.get("validation", 5000)
    config = TrainConfig(**{**RECIPE.__dict__, **spec.get("config", {})})
    if snapshot and not (run / "model.pt").is_file():
        model, history = _snapshot(run, digits, model_kwargs)
        summary = {"config": torch.load(run / "checkpoint.pt", weights_only=True)["config"],
                   "history": history}
    elif not (run / "model.pt").is_file():
        train_semantic(digits, config, model_kwargs=model_kwargs,
                       noise=noise_kwargs is not None, noise_kwargs=noise_kwargs or None,
                       validation=n_val, adv_check=500, adv_steps=10, out_dir=run)
    if not snapshot or (run / "model.pt").is_file():
        summary = json.loads((run / "summary.json").read_text())
        model = load_model(run / "model.pt")
    _, val = validation_split(digit_subset(digits, "train"), n_val)
    _, clean = evaluate_accuracy(model, *val)
    xa, ya = fixed_subset(*val, n=attack_n)
    t0 = time.perf_counter()
    robust = apgd_accuracy(model, xa, ya, steps=steps, eps=eps, progress=True)
    res = {"name": name, "digits": digits, "model_kwargs": model_kwargs, "noise_kwargs": noise_kwargs,
           "config": summary["config"], "params": sum(p.numel() for p in model.parameters()),
           "val_clean_acc": clean, "val_n": len(val[0]), "apgd_ce_acc": robust,
           "attack_n": attack_n, "steps": steps, "eps": eps,
           "attack_seconds": time.perf_counter() - t0,
           "train_minutes": sum(h["epoch_seconds"] for h in summary["history"]) / 60,
           "epochs_trained": len(summary["history"]),
           "history": summary["history"]}
    done.write_text(json.dumps(res, indent=1))
    return res


def table(out: Path) -> str:
    from whiteboxdl.viz.report import markdown_table

    rows = []
    for f in sorted(out.glob("*/eval.json"), key=lambda p: p.stat().st_mtime):
        r = json.loads(f.read_text())
        rows.append([r["name"], f"{r['val_clean_acc']:.2%}", f"{r['apgd_ce_acc']:.2%}",
                     f"{r['params']:,}", f"{r.get('epochs_trained', r['config']['epochs'])}"
                     f"/{r['config']['epochs']}", f"{r['train_minutes']:.1f}"])
    return markdown_table(["variant", "val clean (5,000)", "val APGD-CE-100 (1,000)", "params",
                           "epochs", "train min"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=[], choices=sorted(VARIANTS))
    parser.add_argument("--attack-n", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--snapshot", action="store_true",
                        help="evaluate the last finished epoch of runs that were stopped early")
    parser.add_argument("--out", type=Path, default=Path("runs/search"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.variants:
        r = evaluate_variant(name, args.out, args.attack_n, args.steps, args.eps, args.snapshot)
        print(f"{name}: val clean {r['val_clean_acc']:.2%}, APGD-CE {r['apgd_ce_acc']:.2%}, "
              f"{r['params']} params, {r['train_minutes']:.1f} min", flush=True)
    if args.table or not args.variants:
        print(table(args.out))


if __name__ == "__main__":
    main()
