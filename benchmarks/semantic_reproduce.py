"""Reproduce the semantic-feature PoC: clean and APGD-CE accuracy over seeds.

Trains ``semantic_mnist(digits)`` with the paper's recipe for each seed (resumable, outputs in
``--out/seed-N``), evaluates clean accuracy on the whole test subset and APGD-CE (official
``pyautoattack``, L-inf eps 0.3, 100 steps, 1 restart) accuracy, where a sample is robust only if
it is classified correctly both clean and attacked. Prints a markdown table (median and range)
and writes ``results.json``.

    nice -n 5 python benchmarks/semantic_reproduce.py --digits 3 5 --seeds 314 315 316 \
        --out runs/bench-3-5
    nice -n 5 python benchmarks/semantic_reproduce.py --digits 0 1 2 3 4 5 6 7 8 9 --seeds 314 \
        --attack-n 1000 --out runs/bench-10
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from whiteboxdl.data.mnist import digit_subset
from whiteboxdl.models.checkpoint import load_model
from whiteboxdl.models.training import evaluate_accuracy
from whiteboxdl.semantic.train import apgd_accuracy, fixed_subset, train_semantic
from whiteboxdl.viz.report import markdown_table


def _snapshot(digits, out: Path):
    """The model of the last finished epoch in ``checkpoint.pt`` (a run stopped early)."""
    from whiteboxdl.semantic.network import semantic_mnist

    state = torch.load(out / "checkpoint.pt", weights_only=True)
    model = semantic_mnist(digits)
    model.load_state_dict(state["model"])
    return model.eval(), state["history"]


def run_seed(digits, seed, out: Path, attack_n: int, steps: int, eps: float,
             snapshot: bool = False, ablation: dict | None = None) -> dict:
    result_file = out / "eval.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    from whiteboxdl.models.training import TrainConfig
    from whiteboxdl.semantic.train import RECIPE

    config = TrainConfig(**{**RECIPE.__dict__, "seed": seed})
    t0 = time.perf_counter()
    if snapshot:
        model, history = _snapshot(digits, out)
    else:
        if not (out / "model.pt").is_file():
            train_semantic(digits, config, out_dir=out, **(ablation or {}))
        model = load_model(out / "model.pt")
        history = json.loads((out / "summary.json").read_text())["history"]
    train_s = time.perf_counter() - t0
    x, y = digit_subset(digits, "test")
    _, clean = evaluate_accuracy(model, x, y)
    xa, ya = (x, y) if attack_n <= 0 or attack_n >= len(x) else fixed_subset(x, y, attack_n)
    t0 = time.perf_counter()
    robust = apgd_accuracy(model, xa, ya, steps=steps, eps=eps, progress=True)
    _, clean_a = evaluate_accuracy(model, xa, ya)
    res = {"seed": seed, "epochs_trained": len(history), "digits": list(digits), "n_test": len(x),
           "clean_acc": clean,
           "n_attacked": len(xa), "clean_acc_attacked_subset": clean_a, "apgd_ce_acc": robust,
           "steps": steps, "eps": eps, "train_seconds": train_s,
           "attack_seconds": time.perf_counter() - t0,
           "mean_epoch_seconds": statistics.mean(h["epoch_seconds"] for h in history)}
    result_file.write_text(json.dumps(res, indent=2))
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[314, 315, 316])
    parser.add_argument("--attack-n", type=int, default=0, help="attack a fixed subset (0: all)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-two-step", action="store_true", help="ablation")
    parser.add_argument("--no-conv", action="store_true", help="ablation")
    parser.add_argument("--no-noise", action="store_true", help="ablation")
    parser.add_argument("--snapshot", action="store_true",
                        help="evaluate the last finished epoch of an interrupted run")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-3-5"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ablation = {"two_step": not args.no_two_step, "conv": not args.no_conv,
                "noise": not args.no_noise}
    rows = [run_seed(args.digits, s, args.out / f"seed-{s}", args.attack_n, args.steps, args.eps,
                     args.snapshot, ablation) for s in args.seeds]
    table = [[r["seed"], r["epochs_trained"], f"{r['clean_acc']:.2%} ({round(r['clean_acc'] * r['n_test'])}/"
              f"{r['n_test']})", f"{r['apgd_ce_acc']:.2%} (n={r['n_attacked']})",
              f"{r['mean_epoch_seconds']:.1f}"] for r in rows]
    clean = [r["clean_acc"] for r in rows]
    robust = [r["apgd_ce_acc"] for r in rows]
    table.append(["median [min, max]",
                  f"{statistics.median(clean):.2%} [{min(clean):.2%}, {max(clean):.2%}]",
                  f"{statistics.median(robust):.2%} [{min(robust):.2%}, {max(robust):.2%}]", ""])
    table[-1].insert(1, "")
    text = markdown_table(["seed", "epochs", "clean accuracy", f"APGD-CE-{args.steps} accuracy",
                           "s / epoch (wall, shared CPU)"], table)
    print(text)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    (args.out / "table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
