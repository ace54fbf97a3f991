"""``whiteboxdl quality evaluate|sweep|merge|join``: explanation-quality benchmark on the command line.

Example
-------
$ whiteboxdl quality evaluate --model mnist-cnn --data mnist --n 1000 --out runs/mnist
$ whiteboxdl quality evaluate --model efficientnet_lite0 --protocol paper \\
      --data csv:../shared/data/imagenet-sample --n 64 --batch-size 2 --out runs/lite0
$ whiteboxdl quality evaluate ... --shard 0/2 & whiteboxdl quality evaluate ... --shard 1/2
$ whiteboxdl quality merge runs/mnist
$ whiteboxdl quality join runs/lite0-all runs/lite0 runs/lite0-sampling
$ whiteboxdl quality evaluate ... --ray auto          # every batch a task on a Ray cluster
$ whiteboxdl quality sweep ... --vary SoftPullback.temperature=0.1,0.3,1 --out runs/t --ray auto
"""

from __future__ import annotations

import argparse
import json

from whiteboxdl.cluster.cli import add_ray_arguments, ray_options
from whiteboxdl.paths import check_output_path

#: GPUs per task by default: the runner computes on the CPU.
RAY_GPUS = "0 (the quality runner computes on the CPU)"


def register(subparsers) -> None:
    parser = subparsers.add_parser("quality", help="explanation quality: pullbacks vs baselines")
    sub = parser.add_subparsers(dest="quality_command", metavar="SUBCOMMAND", required=True)

    ev = sub.add_parser("evaluate", help="score explainers with the quality metrics")
    _add_run_arguments(ev)
    ev.add_argument("--out", required=True,
                    help="run directory (resumable; damaged batch files are recomputed)")
    ev.add_argument("--shard", default=None, help="i/N: evaluate batches b with b mod N == i")
    ev.add_argument("--no-merge", action="store_true",
                    help="do not merge after the last shard's batches are done")
    add_ray_arguments(ev, gpus=RAY_GPUS)
    ev.set_defaults(func=run_evaluate)

    sw = sub.add_parser("sweep", help="a grid of explainer/metric options: one run directory "
                                      "each and a table of means, fanned out on Ray with --ray")
    _add_run_arguments(sw)
    sw.add_argument("--vary", action="append", required=True, metavar="NAME.KEY=V1,V2",
                    help="an option to sweep, e.g. SoftPullback.temperature=0.1,0.3,1 or "
                         "SoftPullback+PullbackAscent.temperature=0.3,1; repeat for a product")
    sw.add_argument("--out", required=True,
                    help="sweep directory: one run directory per configuration, sweep.md, "
                         "sweep.csv (resumable)")
    add_ray_arguments(sw, gpus=RAY_GPUS)
    sw.set_defaults(func=run_sweep)

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


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments that define a run (``RunConfig``), shared by evaluate and sweep."""
    parser.add_argument("--model", required=True,
                        help="mnist-cnn, fashion-mnist-cnn, efficientnet_lite0/1/2, a model file "
                             "(.pt) or a torchvision name (e.g. resnet50; weights must be present)")
    parser.add_argument("--data", required=True,
                        help="mnist, fashion-mnist, csv:PATH (a folder with labels.csv: file,"
                             "class_index) or imagefolder:PATH (class sub-folders; WordNet-id "
                             "folders get their canonical ImageNet index)")
    parser.add_argument("--protocol", default="default",
                        help="preset of explainers, metrics and their settings: default (the "
                             "registries' defaults), paper (the paper's public code, ImageNet "
                             "224²) or paper-per-channel (every map per channel); --explainers, "
                             "--metrics and the option flags refine it")
    parser.add_argument("--n", type=int, default=1000, help="number of test images (default 1000)")
    parser.add_argument("--explainers", default="all",
                        help="comma-separated names (registered or --variants) or 'all' (the "
                             "protocol's)")
    parser.add_argument("--metrics", default="all",
                        help="comma-separated names (registered or --metric-variants) or 'all'")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", choices=("label", "prediction"), default="label")
    parser.add_argument("--layer", default=None, help="GuidedGradCam layer (default: last Conv2d)")
    parser.add_argument("--options", default="{}",
                        help='JSON of per-explainer overrides, e.g. \'{"SmoothGrad": '
                             '{"samples": 20}}\'')
    parser.add_argument("--metric-options", default="{}",
                        help='JSON of per-metric overrides, e.g. \'{"MaxSensitivity": '
                             '{"nr_samples": 5}}\'')
    parser.add_argument("--variants", default="{}",
                        help='JSON of named explainer variants, e.g. \'{"PullbackAscent K=1": '
                             '{"of": "PullbackAscent", "steps": 1}}\' (list them in --explainers)')
    parser.add_argument("--metric-variants", default="{}",
                        help="JSON of named metric variants, like --variants")
    parser.add_argument("--channels-last", action="store_true",
                        help="metrics' forward passes on a channels-last copy of the model "
                             "(faster for ImageNet CNNs on CPUs; same numbers to float32 rounding)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (with --ray: of this driver; a task uses "
                             "--ray-cpus threads)")


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


def _run_config(args: argparse.Namespace):
    """The validated ``RunConfig`` of the parsed run arguments (``--threads`` applied)."""
    import torch

    from whiteboxdl.quality.runner import RunConfig

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
    return config


def run_evaluate(args: argparse.Namespace) -> int:
    from whiteboxdl.quality.report import merge
    from whiteboxdl.quality.runner import evaluate, parse_shard

    check_output_path(args.out)
    cluster = ray_options(args)
    config = _run_config(args)
    shard = parse_shard(args.shard)
    if cluster is None:
        done = evaluate(config, args.out, shard)
    else:
        from whiteboxdl.cluster.quality import evaluate_on_ray

        done = evaluate_on_ray(config, args.out, cluster, shard=shard)
    print(f"shard {shard[0]}/{shard[1]}: {len(done)} batches computed in {args.out}")
    if shard[1] == 1 and not args.no_merge:
        merged = merge(args.out)
        print(open(f"{args.out}/summary.md").read())
        print(f"wrote {args.out}/report.html ({len(merged.index)} images)")
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from whiteboxdl.cluster.sweep import parse_axis, sweep

    check_output_path(args.out)
    cluster = ray_options(args)
    base = _run_config(args)
    axes = [parse_axis(text, base) for text in args.vary]
    result = sweep(base, axes, args.out, cluster)
    computed = sum(map(len, result.computed))
    print(f"{len(result.labels)} configurations, {computed} batches computed in {args.out}")
    print(open(f"{args.out}/sweep.md").read())
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
