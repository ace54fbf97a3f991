"""Where an excitation pullback spends its time: per-op profile vs the vanilla input gradient.

Prints, for the vanilla gradient and the default pullback (random-init torchvision model, eval
mode), the wall time per call, the summed self time on the CPU and (with ``--device cuda``) on the
GPU, and the ops that take most of it. A pullback whose GPU time is near the vanilla one but whose
wall time is not is bound by Python/launch overhead, not by its kernels.

Usage: python benchmarks/profile_pullbacks.py [--device cpu|cuda] [--batch 8] [--size 224]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_pullbacks import _sync, run_variant, setup  # noqa: E402

VARIANTS = ("vanilla gradient", "pullback, ReLU rule only", "pullback (default rules)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--rows", type=int, default=12, help="ops listed per variant")
    args = parser.parse_args()
    model, x, target = setup(args.batch, args.size, args.model, args.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    sort = "self_cuda_time_total" if args.device == "cuda" else "self_cpu_time_total"
    walls = {}
    for name in VARIANTS:             # wall times first: a finished profiler slows later ops
        for _ in range(3):                                   # warm-up (allocator, cuDNN plans)
            run_variant(name, model, x, target)
        _sync(args.device)
        start = time.perf_counter()
        for _ in range(5):
            run_variant(name, model, x, target)
        _sync(args.device)
        walls[name] = (time.perf_counter() - start) / 5
    for name in VARIANTS:
        with profile(activities=activities) as prof:
            run_variant(name, model, x, target)
            _sync(args.device)
        events = prof.key_averages()
        cpu = sum(e.self_cpu_time_total for e in events) / 1e3
        gpu = sum(getattr(e, "self_device_time_total", 0) for e in events) / 1e3
        print(f"\n=== {name}: wall {walls[name] * 1e3:.1f} ms/call; profiled self time CPU "
              f"{cpu:.1f} ms" + (f", GPU {gpu:.1f} ms" if args.device == "cuda" else ""))
        print(events.table(sort_by=sort, row_limit=args.rows, max_name_column_width=48))
    return 0


if __name__ == "__main__":
    sys.exit(main())
