#!/usr/bin/env bash
# The "Checked on a model not in ../shared" runs of README: topiary's structured pruning,
# SparseGPT, GPTQ and recovery on the yardstick model that scripts/train-tiny-llama.py trains
# (a tiny Llama on the GNU info manuals). Usage:
#   scripts/check-othermodel.sh /work/othermodel [step…]
# where the folder holds model/ and data/{train,test}.txt; steps: prune, eval, recover,
# transformers (default: all, in that order). Each model lands in DIR/runs/<name>, each
# perplexity in DIR/runs/<name>.eval.json. Calibration: 128 seeded random windows of 512 tokens
# of train.txt; evaluation: test.txt at 512 (the `eval` protocol).
set -euo pipefail
DIR=$(cd "$1" && pwd)
shift
STEPS=${*:-prune eval recover transformers}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T="node $ROOT/bin/topiary.js"
PY=${TOPIARY_TORCH_PYTHON:-/work/venv/bin/python}
R=$DIR/runs
mkdir -p "$R"
CAL=(--calib "$DIR/data/train.txt" --nsamples 128 --calib-seqlen 512)

run() { # name, then the topiary command after the model argument
  local name=$1
  shift
  [ -f "$R/$name/config.json" ] && return 0
  echo "== $name: $*"
  /usr/bin/time -f "$name %e s wall" $T "$@" --out "$R/$name" --json >"$R/$name.json"
}

for step in $STEPS; do
  case $step in
  prune)
    for r in 0.3 0.5; do
      run flap-$r prune "$DIR/model" --method flap --sparsity $r "${CAL[@]}"
      run flap-rec-$r prune "$DIR/model" --method flap --reconstruct --sparsity $r "${CAL[@]}"
      run wanda-sp-$r prune "$DIR/model" --method wanda-sp --sparsity $r "${CAL[@]}"
      run wanda-sp-rec-$r prune "$DIR/model" --method wanda-sp --reconstruct --sparsity $r "${CAL[@]}"
      run obs-sp-$r prune "$DIR/model" --method obs-sp --sparsity $r "${CAL[@]}"
      run obs-sp-uniform-$r prune "$DIR/model" --method obs-sp --uniform --sparsity $r "${CAL[@]}"
    done
    run sparsegpt-0.5 prune "$DIR/model" --method sparsegpt --sparsity 0.5 "${CAL[@]}"
    run gptq-4-g128 quantize "$DIR/model" --method gptq --bits 4 --group-size 128 "${CAL[@]}"
    ;;
  eval)
    for m in "$DIR/model" "$R"/*/; do
      m=${m%/}
      name=$(basename "$m")
      [ "$m" = "$DIR/model" ] && name=dense
      [ -f "$R/$name.eval.json" ] || $T eval "$m" --data "$DIR/data/test.txt" --seqlen 512 --json >"$R/$name.eval.json"
      node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1]));console.log(process.argv[2].padEnd(28), j.perplexity.toFixed(4))' "$R/$name.eval.json" "$name"
    done
    ;;
  recover)
    # SparseGPT 50 % back towards the dense teacher: masked fine-tuning, KL, 8 × 128 tokens a step.
    run sparsegpt-0.5-recover-kl-200 recover "$R/sparsegpt-0.5" --teacher "$DIR/model" --data "$DIR/data/train.txt" \
      --mode masked --loss kl --steps 200 --batch 8 --seqlen 128 --lr 1e-3 --warmup 10 --seed 0
    ;;
  transformers)
    # Equal-width structured folders load in transformers; logits against topiary's.
    for name in wanda-sp-0.3 obs-sp-uniform-0.3 obs-sp-uniform-0.5; do
      "$PY" "$ROOT/scripts/compare-logits.py" "$R/$name" "$DIR/data/test.txt"
    done
    ;;
  esac
done
