#!/usr/bin/env bash
# TIMIT phone recognition recipe: prepare -> train -> evaluate (greedy) on dev and the core test set.
#
#   bash recipes/timit/run.sh --source PATH [--stage N] [--stop-stage N] [--work DIR] [--config YAML]
#
# --source (default: $ASR_TIMIT_SOURCE): your copy of TIMIT (LDC93S1), the folder holding
# TRAIN/ and TEST/ or a folder above it, or a .tar.gz of it. TIMIT is licensed by the LDC and
# is not downloaded. Transcripts are the 39 folded phone classes; each phone is one token
# (conf/train.yaml: tokenizer unit "word"), so the "WER" of the reports is the phone error
# rate (PER). No LM stage. Everything is written under --work (default data/timit).
# A finished stage is skipped when run again (delete WORK/.done.<N>.<name> to redo it; a
# stage that runs again also redoes the stages after it); an interrupted training stage
# resumes from its last epoch checkpoint.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stage=0
stop_stage=2
source=${ASR_TIMIT_SOURCE:-}
work=data/timit
config=$here/conf/train.yaml
. "$here/../lib.sh"
parse_recipe_args "$@"

manifests=$work/manifests
exp=$work/exp

run_stage 0 prepare "$asr" prepare timit ${source:+--source "$source"} --out "$work"
run_stage 1 train "$asr" train --train "$manifests/train.jsonl" --dev "$manifests/dev.jsonl" \
  --exp "$exp" --config "$config" --resume
run_stage 2 evaluate evaluate_splits "$exp/model.pt" greedy "dev test" --set decode.method=greedy

show_results "dev test" greedy
echo "PER (phone error rate) = the %WER lines above: their words are phones (39 classes); ignore %CER"
