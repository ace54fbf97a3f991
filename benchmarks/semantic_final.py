"""Final, RobustBench-style measurement of one ten-digit semantic design (touches the test set).

Protocol (written into BENCHMARKS.md before the numbers): the design comes from
``benchmarks/semantic_search.py`` (validation split only). For each seed it is trained exactly as
in the search (first 55,000 training images, the last 5,000 held out for the per-epoch curves),
then measured on the MNIST test set, L-inf eps = 0.3, inputs in [0, 1], official pyautoattack
code, attack seed 0. Every stage is resumable (per-batch files under ``--out/seed-N/``):

* ``clean``: accuracy on all 10,000 test images;
* ``apgd-ce``: APGD-CE on all 10,000 (batches of 500);
* ``cascade``: that, then APGD-T (DLR, 9 target classes) on the inputs APGD-CE left, on all
  10,000 (the first two stages of AutoAttack standard);
* ``standard``: full AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square 5000) on the first 1,000;
* ``square``: Square (5,000 queries) alone on the first 1,000 (gradient-masking check);
* ``transfer``: APGD-CE adversarials of the project's MNIST CNN (``get_cnn("mnist")``) on the
  first 1,000, fed to the semantic model (gradient-masking check);
* ``eps``: APGD-CE at eps 0.5 and 1.0 on the first 500 (robust accuracy must fall to ~0).

Robust = classified correctly clean and attacked.

    nice -n 10 python benchmarks/semantic_final.py --variant NAME --seeds 314 \\
        --stages clean cascade standard square transfer eps --out runs/final
    python benchmarks/semantic_final.py --variant NAME --seeds 314 315 316 --table --out runs/final
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

STAGES = ("clean", "apgd-ce", "cascade", "standard", "square", "transfer", "eps")


def train_seed(variant: str, seed: int, out: Path):
    from semantic_search import VARIANTS

    from whiteboxdl.models.checkpoint import load_model
    from whiteboxdl.models.training import TrainConfig
    from whiteboxdl.semantic.train import RECIPE, train_semantic

    spec = VARIANTS[variant]
    if not (out / "model.pt").is_file():
        noise = spec.get("noise", {})
        config = TrainConfig(**{**RECIPE.__dict__, **spec.get("config", {}), "seed": seed})
        train_semantic(range(10), config, model_kwargs=spec.get("model", {}),
                       noise=noise is not None, noise_kwargs=noise or None,
                       validation=spec.get("validation", 5000), adv_check=500, adv_steps=10,
                       out_dir=out)
    return load_model(out / "model.pt")


def _done(path: Path, compute) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    t0, c0 = time.perf_counter(), time.process_time()
    result = compute()
    result |= {"wall_seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
    path.write_text(json.dumps(result, indent=1))
    return result


def stage_clean(model, x, y, out: Path) -> dict:
    from whiteboxdl.models.training import evaluate_accuracy

    return _done(out / "clean.json", lambda: {"n": len(x),
                                              "clean_acc": evaluate_accuracy(model, x, y)[1]})


def stage_cascade(model, x, y, out: Path, batch: int = 500, targeted: bool = True) -> dict:
    """APGD-CE on all inputs, then APGD-T on those APGD-CE left, batch by batch (each batch's
    result stored when done). ``targeted=False`` stops after the APGD-CE pass."""
    from tqdm.auto import tqdm

    from whiteboxdl.robustness.attacks import autoattack_cascade, predict

    folder = out / "cascade"
    folder.mkdir(parents=True, exist_ok=True)
    starts = range(0, len(x), batch)

    def run_pass(component: str, keep) -> list[dict]:
        records = []
        for i in tqdm(starts, desc=component):
            path = folder / f"{i // batch:03d}-{component}.pt"
            if not path.is_file():
                t0, c0 = time.perf_counter(), time.process_time()
                xb, yb = x[i:i + batch], y[i:i + batch]
                robust = keep(i)  # inputs still robust before this component
                broken = torch.zeros(len(xb), dtype=torch.bool)
                idx = robust.nonzero().squeeze(1)
                if len(idx):
                    _, by = autoattack_cascade(model, xb[idx], yb[idx], 0.3,
                                               components=(component,), n_real=10)
                    broken[idx] = by == 0
                torch.save({"robust_before": robust, "broken": broken,
                            "seconds": time.perf_counter() - t0,
                            "cpu_seconds": time.process_time() - c0}, path)
            records.append(torch.load(path, weights_only=True))
        return records

    clean = predict(model, x).argmax(1) == y
    ce = run_pass("apgd-ce", lambda i: clean[i:i + batch])
    after_ce = torch.cat([r["robust_before"] & ~r["broken"] for r in ce])
    result = {"n": len(x), "clean_acc": float(clean.float().mean()),
              "apgd_ce_acc": float(after_ce.float().mean()),
              "apgd_ce_seconds": sum(r["seconds"] for r in ce),
              "apgd_ce_cpu_seconds": sum(r["cpu_seconds"] for r in ce)}
    (out / "apgd-ce.json").write_text(json.dumps(result, indent=1))
    if not targeted:
        return result

    def compute():
        t = run_pass("apgd-t", lambda i: after_ce[i:i + batch])
        after_t = torch.cat([r["robust_before"] & ~r["broken"] for r in t])
        return result | {"apgd_ce_t_acc": float(after_t.float().mean()),
                         "apgd_t_seconds": sum(r["seconds"] for r in t),
                         "apgd_t_cpu_seconds": sum(r["cpu_seconds"] for r in t)}

    return _done(out / "cascade.json", compute)


def _evaluate(model, x, y, attacks, out: Path, name: str, options=None, eps=0.3) -> dict:
    from whiteboxdl.robustness.evaluate import evaluate

    def compute():
        result = evaluate(model, x, y, attacks, eps=eps, seed=0, batch_size=200,
                          out_dir=out / name, options=options or {})
        result.write_csv(out / name / "records.csv")
        return result.summary()

    return _done(out / f"{name}.json", compute)


def stage_transfer(model, x, y, out: Path) -> dict:
    from whiteboxdl.models.cnn import get_cnn
    from whiteboxdl.robustness.attacks import attack, predict

    def compute():
        cnn = get_cnn("mnist")
        adv = torch.cat([attack(cnn, x[i:i + 250], y[i:i + 250], 0.3, name="apgd-ce")
                         for i in range(0, len(x), 250)])
        cnn_ok = predict(cnn, adv).argmax(1) == y
        ok = predict(model, x).argmax(1) == y
        ok_adv = predict(model, adv).argmax(1) == y
        return {"n": len(x), "source": "get_cnn('mnist'), APGD-CE-100 eps 0.3",
                "cnn_clean_acc": float((predict(cnn, x).argmax(1) == y).float().mean()),
                "cnn_robust_acc": float(cnn_ok.float().mean()),
                "clean_acc": float(ok.float().mean()),
                "transfer_acc": float((ok & ok_adv).float().mean())}

    return _done(out / "transfer.json", compute)


def run(variant: str, seed: int, stages, out_root: Path) -> None:
    from whiteboxdl.data.mnist import digit_subset

    out = out_root / f"seed-{seed}"
    model = train_seed(variant, seed, out)
    x, y = digit_subset(range(10), "test")
    for stage in stages:
        print(f"== seed {seed}: {stage}", flush=True)
        if stage == "clean":
            r = stage_clean(model, x, y, out)
        elif stage == "apgd-ce":
            r = stage_cascade(model, x, y, out, targeted=False)
        elif stage == "cascade":
            r = stage_cascade(model, x, y, out)
        elif stage == "standard":
            r = _evaluate(model, x[:1000], y[:1000], ["standard"], out, "standard-1000")
        elif stage == "square":
            r = _evaluate(model, x[:1000], y[:1000], ["square"], out, "square-1000")
        elif stage == "transfer":
            r = stage_transfer(model, x[:1000], y[:1000], out)
        else:
            r = {f"eps{e}": _evaluate(model, x[:500], y[:500], ["apgd-ce"], out,
                                      f"apgd-ce-eps{e}-500", eps=e)["accuracy"]["apgd-ce"]
                 for e in (0.5, 1.0)}
        print(json.dumps({k: v for k, v in r.items() if not isinstance(v, dict)}), flush=True)


def table(variant: str, seeds, out_root: Path) -> str:
    from whiteboxdl.viz.report import markdown_table

    def get(seed, name, *keys):
        path = out_root / f"seed-{seed}" / f"{name}.json"
        if not path.is_file():
            return None
        value = json.loads(path.read_text())
        for k in keys:
            value = value[k]
        return value

    columns = [("clean (10,000)", "clean", ("clean_acc",)),
               ("APGD-CE (10,000)", "apgd-ce", ("apgd_ce_acc",)),
               ("APGD-CE + APGD-T (10,000)", "cascade", ("apgd_ce_t_acc",)),
               ("AutoAttack standard (1,000)", "standard-1000", ("accuracy", "standard")),
               ("Square 5000 alone (1,000)", "square-1000", ("accuracy", "square")),
               ("transfer from CNN (1,000)", "transfer", ("transfer_acc",))]
    rows, per_col = [], {c[0]: [] for c in columns}
    for seed in seeds:
        row = [seed]
        for label, name, keys in columns:
            v = get(seed, name, *keys)
            row.append("…" if v is None else f"{v:.2%}")
            if v is not None:
                per_col[label].append(v)
        rows.append(row)
    summary = ["median [min, max]"]
    for label, *_ in columns:
        v = per_col[label]
        summary.append(f"{statistics.median(v):.2%} [{min(v):.2%}, {max(v):.2%}]" if v else "…")
    rows.append(summary)
    return markdown_table(["seed", *[c[0] for c in columns]], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[314])
    parser.add_argument("--stages", nargs="*", default=[], choices=STAGES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/final"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        run(args.variant, seed, args.stages, args.out)
    if args.table:
        print(table(args.variant, args.seeds, args.out))


if __name__ == "__main__":
    main()
