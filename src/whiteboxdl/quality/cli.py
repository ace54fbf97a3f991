"""``whiteboxdl quality evaluate|merge``: explanation-quality benchmark on the command line.

Example
-------
$ whiteboxdl quality evaluate --model mnist-cnn --data mnist --n 1000 --out runs/mnist
$ whiteboxdl quality evaluate ... --shard 0/2 & whiteboxdl quality evaluate ... --shard 1/2
$ whiteboxdl quality merge runs/mnist
"""

from __future__ import annotations

import argparse
import json

from whiteboxdl.paths import check_output_path


def register(subparsers) -> None:
    parser = subparsers.add_parser("quality", help="explanation quality: pullbacks vs baselines")
    sub = parser.add_subparsers(dest="quality_command", metavar="SUBCOMMAND", required=True)

    ev = sub.add_parser("evaluate", help="score explainers with the quality metrics")
    ev.add_argument("--model", required=True,
                    help="mnist-cnn, fashion-mnist-cnn, efficientnet_lite0/1/2, a model file (.pt) "
                         "or a torchvision name (e.g. resnet50; weights must be present)")
    ev.add_argument("--data", required=True,
                    help="mnist, fashion-mnist, imagefolder:PATH (class sub-folders) or csv:PATH "
                         "(a folder with labels.csv: file,class_index)")
    ev.add_argument("--n", type=int, default=1000, help="number of test images (default 1000)")
    ev.add_argument("--explainers", default="all", help="comma-separated names or 'all'")
    ev.add_argument("--metrics", default="all", help="comma-separated names or 'all'")
    ev.add_argument("--out", required=True,
                    help="run directory (resumable; damaged batch files are recomputed)")
    ev.add_argument("--shard", default=None, help="i/N: evaluate batches b with b mod N == i")
    ev.add_argument("--batch-size", type=int, default=50)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--target", choices=("label", "prediction"), default="label")
    ev.add_argument("--layer", default=None, help="GuidedGradCam layer (default: last Conv2d)")
    ev.add_argument("--options", default="{}",
                    help='JSON of per-explainer overrides, e.g. \'{"SmoothGrad": {"samples": 20}}\'')
    ev.add_argument("--metric-options", default="{}",
                    help='JSON of per-metric overrides, e.g. \'{"MaxSensitivity": {"nr_samples": 5}}\'')
    ev.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ev.add_argument("--no-merge", action="store_true",
                    help="do not merge after the last shard's batches are done")
    ev.set_defaults(func=run_evaluate)

    mg = sub.add_parser("merge", help="merge a run's batches: tables, CSV, figure, report")
    mg.add_argument("run_dir")
    mg.add_argument("more_dirs", nargs="*", help="directories holding other shards of the run")
    mg.add_argument("--partial", action="store_true",
                    help="merge the finished batches of an incomplete run (n is stated)")
    mg.set_defaults(func=run_merge)


def _metric_names(spec: str) -> list[str]:
    from whiteboxdl.quality.metric_registry import all_metric_names, get_metric

    if spec in ("", "all"):
        return all_metric_names()
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        get_metric(n)
    return names


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from whiteboxdl.quality.explainers import parse_explainers
    from whiteboxdl.quality.report import merge
    from whiteboxdl.quality.runner import RunConfig, evaluate, parse_shard

    check_output_path(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = RunConfig(model=args.model, data=args.data, n=args.n,
                       explainers=parse_explainers(args.explainers),
                       metrics=_metric_names(args.metrics), batch_size=args.batch_size,
                       seed=args.seed, target=args.target, layer=args.layer)
    for attr, flag in (("options", "--options"), ("metric_options", "--metric-options")):
        try:
            setattr(config, attr, json.loads(getattr(args, attr)))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{flag} must be JSON, got {getattr(args, attr)!r} ({exc})") from None
    shard = parse_shard(args.shard)
    done = evaluate(config, args.out, shard)
    print(f"shard {shard[0]}/{shard[1]}: {len(done)} batches computed in {args.out}")
    if shard[1] == 1 and not args.no_merge:
        merged = merge(args.out)
        print(open(f"{args.out}/summary.md").read())
        print(f"wrote {args.out}/report.html ({len(merged.index)} images)")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from whiteboxdl.quality.report import merge

    check_output_path(args.run_dir, "RUN_DIR")
    merged = merge(args.run_dir, args.more_dirs, partial=args.partial)
    print(open(f"{args.run_dir}/summary.md").read())
    print(f"wrote {args.run_dir}/report.html ({len(merged.index)} images)")
    return 0
