"""Cost of an excitation pullback vs a vanilla input gradient (time and peak memory, CPU).

One input gradient of the target logits (batch 8, eval mode, parameters requiring grad as in a
normal model) with: the vanilla backward; the pullback with the default rules (ReLU, max-pool,
ReLU6); and PullbackAscent with K=5 steps; for ResNet50 also the ReLU rule alone. Models:
pretrained EfficientNet-Lite0 (BatchNorm -> ReLU6, its own 224x224 input) and random-init
torchvision ResNet50 (224x224); ``--model`` picks one or more.

Time: median wall-clock and median process CPU time (``time.process_time``, all threads) of
``--repeats`` interleaved runs in one process; ratios are what counts, and on a shared CPU the CPU
time is the steadier of the two. Peak memory: each variant runs once in a fresh subprocess; right
before the measured call (model, input and one warm-up forward in memory) the peak-RSS counter is
reset (``/proc/self/clear_refs``) and we report the peak (``VmHWM``) minus the RSS at that
moment; glibc's mmap threshold is pinned to 64 KiB so freed large blocks return to the OS and the
RSS follows the allocations.
With ``--device cuda``: CUDA-synchronised wall time, and the peak of PyTorch's CUDA allocator
(``max_memory_allocated``) above what was allocated right before the call, measured in-process.

Usage: nice python benchmarks/bench_pullbacks.py [--model efficientnet_lite0 resnet50]
       [--batch 8] [--size 224] [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from whiteboxdl.pullbacks import PullbackAscent, excitation_pullbacks  # noqa: E402
from whiteboxdl.runtime import keep_freed_memory  # noqa: E402
from whiteboxdl.viz.report import markdown_table  # noqa: E402

VARIANTS = {
    "vanilla gradient": None,
    "pullback, ReLU rule only": ("relu",),
    "pullback (default rules)": "default",
    "PullbackAscent K=5": "ascent",
}
#: Variants that say something only for some models (ResNet50 has no ReLU6, Lite0 no ReLU).
ONLY_FOR = {"pullback, ReLU rule only": ("resnet50",)}


def variants(model_name: str) -> list[str]:
    return [v for v in VARIANTS if model_name in ONLY_FOR.get(v, (model_name,))]


def setup(batch: int, size: int, model_name: str, device: str = "cpu"):
    import torchvision

    from whiteboxdl.models.efficientnet_lite import VARIANTS as LITE, load_lite

    torch.manual_seed(0)
    if model_name in LITE:                               # pretrained, takes [-1, 1] directly
        model = load_lite(model_name).to(device)
        size = LITE[model_name].size
    else:
        model = getattr(torchvision.models, model_name)().eval().to(device)
    x = (torch.rand(batch, 3, size, size) * 2 - 1).to(device)
    target = (torch.arange(batch) * 7 % 1000).to(device)
    with torch.no_grad():
        model(x[:1])
    return model, x, target


def run_variant(name: str, model, x, target) -> None:
    rules = VARIANTS[name]
    if rules == "ascent":
        PullbackAscent(model, steps=5, alpha=20.0).attribute(x, target=target)
        return
    xr = x.clone().requires_grad_()
    if rules is None:
        out = model(xr)
        torch.autograd.grad(out.gather(1, target[:, None]).sum(), xr)
        return
    with excitation_pullbacks(rules=None if rules == "default" else rules):
        out = model(xr)
        torch.autograd.grad(out.gather(1, target[:, None]).sum(), xr)


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status (Linux only)")


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure_cuda_memory(name: str, model, x, target) -> float:
    """Peak MiB the CUDA allocator held above its level right before the call."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    run_variant(name, model, x, target)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def measure_memory(name: str, args) -> float:
    model, x, target = setup(args.batch, args.size, args.model)
    with open("/proc/self/clear_refs", "w") as f:    # reset the peak (VmHWM) to the current RSS
        f.write("5")
    before = _status_mib("VmRSS")
    run_variant(name, model, x, target)
    return _status_mib("VmHWM") - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", nargs="+", default=["efficientnet_lite0", "resnet50"],
                        help="efficientnet_lite0/1/2 (pretrained) or torchvision names "
                             "(random init)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="time with whiteboxdl.runtime.keep_freed_memory() (as every "
                             "whiteboxdl command runs); glibc's defaults otherwise")
    parser.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
    parser.add_argument("--_memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args._memory:
        args.model = args.model[0]
        print(json.dumps({"peak_mib": measure_memory(args._memory, args)}))
        return 0
    if args.keep_freed_memory and not keep_freed_memory():
        parser.error("--keep-freed-memory needs Linux with glibc")
    for model_name in args.model:
        bench_model(model_name, args)
    return 0


def bench_model(model_name: str, args) -> None:
    from tqdm import tqdm

    names = variants(model_name)
    model, x, target = setup(args.batch, args.size, model_name, args.device)
    size = x.shape[-1]
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    run_variant("vanilla gradient", model, x, target)          # warm-up
    for _ in tqdm(range(args.repeats), desc=f"{model_name}: timing rounds"):
        for name in names:
            _sync(args.device)
            start, start_cpu = time.perf_counter(), time.process_time()
            run_variant(name, model, x, target)
            _sync(args.device)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    memory = {}
    for name in tqdm(names if args.device == "cuda" else (), desc="peak CUDA memory"):
        memory[name] = measure_cuda_memory(name, model, x, target)
    for name in tqdm(names if args.device == "cpu" else (), desc="peak memory (subprocesses)"):
        cmd = [sys.executable, __file__, "--batch", str(args.batch), "--size", str(args.size),
               "--model", model_name, "--threads", str(args.threads), "--_memory", name]
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")   # large blocks go back to the OS
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
        memory[name] = json.loads(out.strip().splitlines()[-1])["peak_mib"]

    base_t = statistics.median(times["vanilla gradient"])
    base_c = statistics.median(cpu["vanilla gradient"])
    base_m = memory["vanilla gradient"]
    rows = []
    for name in names:
        t, c = statistics.median(times[name]), statistics.median(cpu[name])
        rows.append([name, f"{t:.3g}", f"{t / base_t:.2f}x", f"{c:.3g}", f"{c / base_c:.2f}x",
                     f"{memory[name]:.0f}", f"{memory[name] / base_m:.2f}x"])
    memory_label = "peak extra CUDA memory (MiB)" if args.device == "cuda" \
        else "peak extra RSS (MiB)"
    header = ["variant", "wall (s)", "wall vs vanilla", "CPU (s)", "CPU vs vanilla",
              memory_label, "memory vs vanilla"]
    table = markdown_table(header, rows)
    weights = "pretrained" if model_name.startswith("efficientnet_lite") else "random init"
    print(f"\n{model_name} ({weights}), batch {args.batch}, {size}x{size}")
    if args.device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}")
    print(table)
    if not args.no_append:
        section = (
            f"\n## Excitation pullbacks: cost vs a vanilla input gradient ({model_name})\n\n"
            f"- date: {datetime.date.today().isoformat()}; "
            f"machine: {platform.processor() or platform.machine()}, "
            f"{torch.get_num_threads()} torch threads, CPU shared with other jobs (timings noisy; "
            f"compare the ratios, measured in one run); torch {torch.__version__}\n"
            f"- command: `nice .venv/bin/python benchmarks/bench_pullbacks.py --model {model_name} "
            f"--batch {args.batch} --size {args.size} --repeats {args.repeats}"
            f"{' --keep-freed-memory' if args.keep_freed_memory else ''}"
            f"{' --device cuda' if args.device == 'cuda' else ''}`; {model_name}, {weights}, eval "
            f"mode, batch {args.batch}, {size}x{size}, gradient of the target logits\n"
            f"- time: median wall-clock and process CPU time of {args.repeats} interleaved runs; memory: "
            f"peak RSS (VmHWM, reset via /proc/self/clear_refs) of a fresh subprocess minus its RSS "
            f"right before the call (MALLOC_MMAP_THRESHOLD_=65536)\n"
            f"- targets: pullback <= 1.15x time and <= 1.10x memory of the vanilla gradient; "
            f"K=5 ascent <= 5.5x one vanilla gradient\n\n{table}\n")
        with open(ROOT / "BENCHMARKS.md", "a", encoding="utf-8") as f:
            f.write(section)


if __name__ == "__main__":
    sys.exit(main())
