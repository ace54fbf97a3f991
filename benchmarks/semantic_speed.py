"""Training-step speed of the semantic PoC (3 vs 5, batch 200) and where the time goes.

Times ``--steps`` optimiser steps (forward, backward, Adam, ``regularize_``; noise augmentation
included) and extrapolates to one epoch of 11,552 images (58 steps). Reports CPU time of this
process (robust to other processes on a shared machine) and wall time. Variants, measured in the
same run:

* ``ours``: the library layers (chunked ``amax`` conv forward with a sparse backward, analytic
  two-step backward);
* ``plain autograd``: the same network with the conv layer as ``conv2d`` over all 64 posed kernels
  + ``max`` and the two-step layer as elementwise autograd ops (how one would write it directly).

    nice -n 5 python benchmarks/semantic_speed.py --threads 1 2 --steps 20
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from whiteboxdl.data.mnist import digit_subset
from whiteboxdl.models.training import regularize
from whiteboxdl.semantic.network import semantic_mnist
from whiteboxdl.semantic.train import noise_augment
from whiteboxdl.viz.report import markdown_table

STEPS_PER_EPOCH = 58  # ceil(11552 / 200)


def plain_two_step(layer, x):
    """Elementwise autograd version of TwoStep.forward (same function)."""
    y = 2 * x - 1
    big_t, s, alpha, beta = layer.piece_coefficients()
    k = (y >= big_t[0]).long() + (y >= 0).long() + (y >= big_t[3]).long()
    d = y - big_t[k]
    return alpha[k] * d / (s[k] + d.abs()) + beta[k]


def plain_conv(layer, x):
    """conv2d with all posed kernels, then max over kernels and poses (autograd backward)."""
    posed = layer.posed_kernels()
    out = F.conv2d(x, posed.reshape(-1, 1, *posed.shape[-2:]), padding=posed.shape[-1] // 2)
    return F.relu(out.amax(dim=1, keepdim=True) / layer.divisor)


def make_model(variant: str):
    torch.manual_seed(314)
    model = semantic_mnist((3, 5))
    if variant == "plain autograd":
        ts, cv = model.two_step, model.conv
        ts.forward = lambda x: plain_two_step(ts, x)
        cv.forward = lambda x: plain_conv(cv, x)
    return model


def time_steps(variant: str, x, y, steps: int, threads: int) -> tuple[float, float]:
    torch.set_num_threads(threads)
    model = make_model(variant)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=3e-6)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=g)

    def step(i):
        idx = order[(i * 200) % len(x):(i * 200) % len(x) + 200]
        xb = noise_augment(x[idx], g)
        loss = F.cross_entropy(model(xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        regularize(model)

    for i in range(3):
        step(i)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(steps):
        step(i)
    return ((time.process_time() - cpu0) / steps * STEPS_PER_EPOCH,
            (time.perf_counter() - wall0) / steps * STEPS_PER_EPOCH)


def profile_table(x, y, steps: int = 10, rows: int = 15) -> str:
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    model = make_model("ours")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(2):
        F.cross_entropy(model(x[:200]), y[:200]).backward()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            loss = F.cross_entropy(model(x[i * 200:(i + 1) * 200]), y[i * 200:(i + 1) * 200])
            opt.zero_grad()
            loss.backward()
            opt.step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    table = [[e.key, e.count // steps, f"{e.self_cpu_time_total / steps / 1e3:.2f}",
              f"{100 * e.self_cpu_time_total / total:.1f}%"] for e in events[:rows]]
    return markdown_table(["op (self time)", "calls / step", "ms / step", "share"], table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    x, y = digit_subset((3, 5), "train")
    rows = []
    for threads in args.threads:
        for variant in ("ours", "plain autograd"):
            cpu, wall = time_steps(variant, x, y, args.steps, threads)
            rows.append([variant, threads, f"{cpu:.2f}", f"{wall:.2f}"])
            print(rows[-1], flush=True)
    print(markdown_table(["variant", "threads", "CPU s / epoch", "wall s / epoch"], rows))
    if not args.no_profile:
        print()
        print(profile_table(x, y))


if __name__ == "__main__":
    main()
