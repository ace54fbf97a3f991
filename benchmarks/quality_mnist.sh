#!/usr/bin/env bash
# Explanation-quality benchmark: all explainers × all metrics on 1,000 MNIST and 1,000
# Fashion-MNIST test images with the default (spec) budgets: SmoothGrad/SmoothPullback 50 samples,
# IntegratedGradients 50 steps, GradientShap 20 samples, Max Sensitivity 10 draws, Monotonicity
# Correlation 10 samples × 28 steps. One process with 2 torch threads per dataset, run one after
# the other (each ≈13 min on an idle 2-core machine). Resumable: re-run to continue.
#   usage: benchmarks/quality_mnist.sh [mnist|fashion-mnist ...]
# To spread a run over processes or machines: add --shard i/N to each and `quality merge` after.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
N="${N:-1000}"
for DATA in ${@:-mnist fashion-mnist}; do
  START=$SECONDS
  PYTHONPATH=src "$PY" -m whiteboxdl.cli quality evaluate --model "$DATA-cnn" --data "$DATA" \
    --n "$N" --out "runs/quality-$DATA" --threads 2 > "runs/quality-$DATA.log" 2>&1
  echo "$DATA: $((SECONDS - START)) s wall; report runs/quality-$DATA/report.html"
done
