#!/usr/bin/env bash
# Explanation-quality benchmark: all explainers × all metrics on 1,000 MNIST and 1,000
# Fashion-MNIST test images, with the CPU budget below; 2 shards per dataset, 1 torch thread each,
# run with `nice` (the machine is shared). Resumable: re-run to continue; merges when complete.
#   usage: benchmarks/quality_mnist.sh [mnist|fashion-mnist ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
N="${N:-1000}"
# CPU budget (spec values in brackets): SmoothGrad/SmoothPullback 10 samples [50],
# IntegratedGradients 16 steps [50], GradientShap 10 samples, Max Sensitivity 3 draws,
# Monotonicity Correlation 3 samples per step, steps of 56 pixels (14 steps).
OPTS='{"SmoothPullback": {"samples": 10}, "SmoothGrad": {"samples": 10}, "IntegratedGradients": {"steps": 16}, "GradientShap": {"samples": 10}}'
MOPTS='{"MaxSensitivity": {"nr_samples": 3}, "MonotonicityCorrelation": {"nr_samples": 3, "features_in_step": 56}}'
for DATA in ${@:-mnist fashion-mnist}; do
  for SHARD in 0 1; do
    PYTHONPATH=src nice -n 10 "$PY" -m whiteboxdl.cli quality evaluate \
      --model "$DATA-cnn" --data "$DATA" --n "$N" --out "runs/quality-$DATA" \
      --options "$OPTS" --metric-options "$MOPTS" --threads 1 --shard "$SHARD/2" \
      > "runs/quality-$DATA.shard$SHARD.log" 2>&1 &
  done
done
wait
for DATA in ${@:-mnist fashion-mnist}; do
  PYTHONPATH=src "$PY" -m whiteboxdl.cli quality merge "runs/quality-$DATA"
done
