"""``whiteboxdl data fetch|info``: get the datasets and show what is there."""

from __future__ import annotations

import argparse

from whiteboxdl.viz.report import markdown_table


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="fetch datasets and show class counts")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    fetch = sub.add_parser("fetch", help="find or download MNIST / Fashion-MNIST (MD5-checked)")
    fetch.add_argument("names", nargs="*", default=["mnist"], metavar="DATASET",
                       help="mnist and/or fashion-mnist (default: mnist)")
    fetch.add_argument("--root", help="directory that already holds the four IDX files")
    fetch.set_defaults(func=_fetch)
    info = sub.add_parser("info", help="where the data came from and counts per class")
    info.add_argument("names", nargs="*", default=["mnist"], metavar="DATASET")
    info.add_argument("--root", help="directory that already holds the four IDX files")
    info.set_defaults(func=_info)


def _fetch(args: argparse.Namespace) -> int:
    from whiteboxdl.data.mnist import locate

    for name in args.names:
        located = locate(name, args.root)
        print(f"{name}: {located.directory} (source: {located.source})")
    return 0


def dataset_summary(name: str = "mnist", root: str | None = None) -> tuple[str, list[list]]:
    """Source line and rows ``[class, train count, test count]`` plus a total row."""
    import torch

    from whiteboxdl.data.mnist import get_spec, load_dataset, locate

    spec = get_spec(name)
    located = locate(name, root)
    counts = {}
    for split in ("train", "test"):
        _, y = load_dataset(name, split, root)
        counts[split] = torch.bincount(y, minlength=len(spec.classes)).tolist()
    rows = [[c, f"{counts['train'][i]:,}", f"{counts['test'][i]:,}"]
            for i, c in enumerate(spec.classes)]
    rows.append(["total", f"{sum(counts['train']):,}", f"{sum(counts['test']):,}"])
    return f"{name}: {located.directory} (source: {located.source})", rows


def _info(args: argparse.Namespace) -> int:
    for name in args.names:
        source, rows = dataset_summary(name, args.root)
        print(source)
        print(markdown_table(["class", "train", "test"], rows))
    return 0
