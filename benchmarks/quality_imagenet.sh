#!/usr/bin/env bash
# Explanation quality on EfficientNet-Lite with the paper's protocol (issue 18): the runs behind
# BENCHMARKS.md's ImageNet section, one after the other, each resumable (run it again and it
# continues) and capped in wall time: a run scores as many images as fit (--n is an upper bound),
# and its report says how many. Every run uses the same images, seed and batch size, so they
# join image by image (`quality join`) and every explainer meets the same perturbations.
#
#   nice -n 5 bash benchmarks/quality_imagenet.sh            # all stages
#   STAGES="core join" bash benchmarks/quality_imagenet.sh   # some of them
#   CAP_PERCENT=50 bash benchmarks/quality_imagenet.sh       # every cap halved
#
# Stages: core (Lite0, 8 explainers, 90 min), ablation (Lite0, PullbackAscent/SoftPullback
# variants), perchannel (Lite0, the summed baselines per channel), lite1 (Lite1, 8 explainers),
# sampling (Lite0: SmoothGrad, SmoothPullback, FusionGrad), join (tables of the joined runs).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export PYTHONPATH=${PYTHONPATH:-src}
DATA=${DATA:-csv:../shared/data/imagenet-sample}
OUT=${OUT:-runs/quality-imagenet}
STAGES=${STAGES:-core ablation perchannel lite1 sampling join}
# the ReLU6 temperature of the ablation sweep (the default is measured in issue 17)
T0=$($PY -c "from whiteboxdl.pullbacks.settings import PullbackSettings as S; print(S().relu6_temperature)")
mkdir -p "$OUT"

evaluate() {    # evaluate MINUTES NAME ARGS...: one capped, resumable run; then a partial merge
    local minutes=$(( $1 * ${CAP_PERCENT:-100} / 100 )) name=$2
    shift 2
    echo "== $name ($minutes min cap) $(date -u +%H:%M:%S)"
    timeout "${minutes}m" "$PY" -m whiteboxdl.cli quality evaluate --protocol paper \
        --data "$DATA" --seed 0 --batch-size 2 --channels-last --threads 2 --no-merge \
        --out "$OUT/$name" "$@" > "$OUT/$name.log" 2>&1
    echo "   exit $? $(date -u +%H:%M:%S)"
    "$PY" -m whiteboxdl.cli quality merge --partial "$OUT/$name" > "$OUT/$name.summary" 2>&1
}

CORE=SoftPullback,PullbackAscent,Gradient,GradientAscent,IntegratedGradients,GradientShap,DeepLift,GuidedGradCam
for stage in $STAGES; do
    case $stage in
    core)
        evaluate 90 lite0-core --model efficientnet_lite0 --n 64 --explainers "$CORE" ;;
    ablation)
        variants=$($PY - "$T0" <<'EOF'
import json, sys
t0 = float(sys.argv[1])
v = {}
for t in (t0 / 3, t0 / 2, 2 * t0, 3 * t0, 0.3):
    v[f"PA T={t:g}"] = {"of": "PullbackAscent", "relu6_temperature": t}
    v[f"SP T={t:g}"] = {"of": "SoftPullback", "relu6_temperature": t}
for k in (1, 2, 10):
    v[f"PA K={k}"] = {"of": "PullbackAscent", "steps": k}
for a in (5.0, 10.0):
    v[f"PA alpha={a:g}"] = {"of": "PullbackAscent", "alpha": a}
for c in ("every", None):
    v[f"PA clip={c or 'never'}"] = {"of": "PullbackAscent", "clip": c}
print(json.dumps(v))
EOF
)
        names=$($PY -c "import json,sys; print(','.join(['SoftPullback','PullbackAscent',*json.loads(sys.argv[1])]))" "$variants")
        evaluate 100 lite0-ablation --model efficientnet_lite0 --n 4 --explainers "$names" \
            --variants "$variants" ;;
    perchannel)
        variants='{"Gradient/ch": {"of": "Gradient", "reduce_channels": false},
                   "IntegratedGradients/ch": {"of": "IntegratedGradients", "reduce_channels": false},
                   "GradientShap/ch": {"of": "GradientShap", "reduce_channels": false},
                   "DeepLift/ch": {"of": "DeepLift", "reduce_channels": false},
                   "GuidedGradCam/ch": {"of": "GuidedGradCam", "reduce_channels": false}}'
        evaluate 45 lite0-perchannel --model efficientnet_lite0 --n 64 \
            --explainers "Gradient/ch,IntegratedGradients/ch,GradientShap/ch,DeepLift/ch,GuidedGradCam/ch" \
            --variants "$variants" ;;
    lite1)
        evaluate 60 lite1-core --model efficientnet_lite1 --n 64 --explainers "$CORE" ;;
    sampling)
        evaluate 75 lite0-sampling --model efficientnet_lite0 --n 64 \
            --explainers SmoothGrad,SmoothPullback,FusionGrad ;;
    join)
        "$PY" -m whiteboxdl.cli quality join --partial "$OUT/lite0-all" "$OUT/lite0-core" \
            "$OUT/lite0-perchannel" "$OUT/lite0-sampling" > "$OUT/lite0-all.summary" 2>&1
        echo "== joined: $OUT/lite0-all/summary.md" ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
    esac
done
