#!/usr/bin/env bash
# AN4 recipe: prepare -> train -> evaluate (greedy) -> LM -> tune on dev -> evaluate (beam + LM).
#
#   bash recipes/an4/run.sh [--stage N] [--stop-stage N] [--source PATH] [--work DIR] [--config YAML]
#
# --source: a local an4_sphere.tar.gz or extracted folder (default: $ASR_AN4_SOURCE, else
# CMU's archive is downloaded). Everything is written under --work (default data/an4).
# A finished stage is skipped when run again (delete WORK/.done.<N>.<name> to redo it; a
# stage that runs again also redoes the stages after it); an interrupted training stage
# resumes from its last epoch checkpoint.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stage=0
stop_stage=5
source=${ASR_AN4_SOURCE:-}
work=data/an4
config=$here/conf/train.yaml
asr=${ASR:-asr}

while [ $# -gt 0 ]; do
  case $1 in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --source) source=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

manifests=$work/manifests
exp=$work/exp
mkdir -p "$work"

# run_stage N NAME COMMAND...: run a stage once, timing it; skipped if already done.
# Running a stage makes the later stages, which depend on it, run again too.
run_stage() {
  local n=$1 name=$2; shift 2
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  if [ -f "$work/.done.$n.$name" ]; then
    echo "== stage $n ($name): already done, skipping"
    return 0
  fi
  local m
  for m in $(seq $((n + 1)) 9); do rm -f "$work"/.done."$m".*; done
  echo "== stage $n ($name)"
  local start=$(date +%s)
  "$@"
  local secs=$(( $(date +%s) - start ))
  echo "stage $n ($name): ${secs}s" | tee -a "$work/stage_times.txt"
  touch "$work/.done.$n.$name"
}

# evaluate MODEL NAME [ARGS...]: decode dev and test into exp/decode_<split>_NAME.
evaluate() {
  local model=$1 name=$2; shift 2
  for split in dev test; do
    "$asr" evaluate --model "$model" --manifest "$manifests/$split.jsonl" \
      --out "$exp/decode_${split}_$name" "$@"
  done
}

run_stage 0 prepare "$asr" prepare an4 ${source:+--source "$source"} --out "$work"
run_stage 1 train "$asr" train --train "$manifests/train.jsonl" --dev "$manifests/dev.jsonl" \
  --exp "$exp" --config "$config" --resume
run_stage 2 evaluate evaluate "$exp/model.pt" greedy --set decode.method=greedy
# The LM sees the training transcripts only; LM weight and word score are tuned on dev.
run_stage 3 lm "$asr" lm build --order 3 --manifest "$manifests/train.jsonl" -o "$work/lm/3gram.arpa"
run_stage 4 tune "$asr" tune --model "$exp/model.pt" --manifest "$manifests/dev.jsonl" \
  --lm "$work/lm/3gram.arpa" --out "$exp/model_lm.pt"
run_stage 5 evaluate_lm evaluate "$exp/model_lm.pt" beam_lm

for name in greedy beam_lm; do
  if [ -f "$exp/decode_test_$name/summary.txt" ]; then
    echo "== test set, $name ($exp/decode_test_$name)"
    tail -n 2 "$exp/decode_test_$name/summary.txt"
  fi
done
model=$exp/model_lm.pt
[ -f "$model" ] || model=$exp/model.pt
echo "model: $model   try: $asr transcribe --model $model FILE.wav"
