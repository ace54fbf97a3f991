"""``whiteboxdl quality evaluate|merge|join``: explanation-quality benchmark on the command line.

Example
-------
$ whiteboxdl quality evaluate --model mnist-cnn --data mnist --n 1000 --out runs/mnist
$ whiteboxdl quality evaluate --model efficientnet_lite0 --protocol paper \\
      --data csv:../shared/data/imagenet-sample --n 64 --batch-size 8 --out runs/lite0
$ whiteboxdl quality evaluate ... --shard 0/2 & whiteboxdl quality evaluate ... --shard 1/2
$ whiteboxdl quality merge runs/mnist
$ whiteboxdl quality join runs/lite0 runs/lite0-pullbacks runs/lite0-baselines
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
                    help="mnist-cnn, fashion-mnist-cnn, a model file (.pt) or a torchvision name "
                         "(e.g. resnet50; weights must be present)")
    ev.add_argument("--data", required=True,
                    help="mnist, fashion-mnist, csv:PATH (a folder with labels.csv: file,"
                         "class_index) or imagefolder:PATH (class sub-folders; WordNet-id "
                         "folders get their canonical ImageNet index)")
    ev.add_argument("--protocol", default="default",
                    help="preset of explainers, metrics and their settings: default (the "
                         "registries' defaults), paper (the paper's public code, ImageNet 224²) "
                         "or paper-per-channel (every map per channel); --explainers, "
                         "--metrics and the option flags refine it")
    ev.add_argument("--n", type=int, default=1000, help="number of test images (default 1000)")
    ev.add_argument("--explainers", default="all",
                    help="comma-separated names (registered or --variants) or 'all' (the "
                         "protocol's)")
    ev.add_argument("--metrics", default="all",
                    help="comma-separated names (registered or --metric-variants) or 'all'")
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
    ev.add_argument("--variants", default="{}",
                    help='JSON of named explainer variants, e.g. \'{"PullbackAscent K=1": '
                         '{"of": "PullbackAscent", "steps": 1}}\' (list them in --explainers)')
    ev.add_argument("--metric-variants", default="{}",
                    help="JSON of named metric variants, like --variants")
    ev.add_argument("--channels-last", action="store_true",
                    help="metrics' forward passes on a channels-last copy of the model (faster "
                         "for ImageNet CNNs on CPUs; same numbers to float32 rounding)")
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

    jn = sub.add_parser("join", help="one table of runs that scored other explainers on the same "
                                     "images (same data, n prefix, batch size, seed, metrics)")
    jn.add_argument("out", help="directory for the joined tables, figure and report")
    jn.add_argument("runs", nargs="+", help="run directories (at least two)")
    jn.add_argument("--partial", action="store_true",
                    help="join the finished batches of incomplete runs")
    jn.set_defaults(func=run_join)


def _names(spec: str) -> list[str] | None:
    """Comma-separated names, or None for 'all' (the protocol's set)."""
    if spec in ("", "all"):
        return None
    return [s.strip() for s in spec.split(",") if s.strip()]


def _json(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag} must be JSON, got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object, got {text!r}")
    return value


def run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from whiteboxdl.quality.report import merge
    from whiteboxdl.quality.runner import RunConfig, evaluate, parse_shard

    check_output_path(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    side = None
    if args.protocol != "default":
        from whiteboxdl.models.registry import is_model_file, model_contract

        # a registered model's input side (the paper's numbers scale from 224²); files: 224²
        side = None if is_model_file(args.model) else model_contract(args.model).size
    config = RunConfig.from_protocol(
        args.protocol, model=args.model, data=args.data, n=args.n, side=side,
        explainers=_names(args.explainers), metrics=_names(args.metrics),
        options=_json(args.options, "--options"),
        metric_options=_json(args.metric_options, "--metric-options"),
        variants=_json(args.variants, "--variants"),
        metric_variants=_json(args.metric_variants, "--metric-variants"),
        batch_size=args.batch_size, seed=args.seed, target=args.target, layer=args.layer,
        channels_last=args.channels_last)
    config.validate()
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


def run_join(args: argparse.Namespace) -> int:
    from whiteboxdl.quality.report import join

    check_output_path(args.out)
    joined = join(args.runs, args.out, partial=args.partial)
    print(open(f"{args.out}/summary.md").read())
    print(f"wrote {args.out}/report.html ({len(joined.index)} images, "
          f"{len(joined.config['explainers'])} explainers)")
    return 0
