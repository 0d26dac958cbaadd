#!/usr/bin/env bash
# Mini LibriSpeech recipe (OpenSLR 31), the quick real-speech recipe for a laptop CPU:
# prepare -> train -> evaluate (greedy) -> LM text -> LM -> tune on dev-clean-2 -> evaluate (beam + LM).
#
#   bash recipes/mini_librispeech/run.sh [--stage N] [--stop-stage N] [--source PATH] [--work DIR] [--config YAML]
#
# Trains on train-clean-5 (5 h), picks the model and tunes the LM on dev-clean-2 (2 h), and
# tests on LibriSpeech's test-clean (5.4 h, OpenSLR 12): 804 MB to download. --source: a
# folder with extracted LibriSpeech/<part>/ folders and/or <part>.tar.gz archives (default:
# $ASR_MINI_LIBRISPEECH_SOURCE); parts not there are downloaded and checked against their
# published checksums. The LM stages fetch the LibriSpeech LM text (1.4 GB, or
# $ASR_LIBRISPEECH_LM_SOURCE); --stop-stage 2 stops before them. Everything is written under
# --work (default data/mini_librispeech).
# A finished stage is skipped when run again (delete WORK/.done.<N>.<name> to redo it; a
# stage that runs again also redoes the stages after it); an interrupted training stage
# resumes from its last epoch checkpoint.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stage=0
stop_stage=6
source=${ASR_MINI_LIBRISPEECH_SOURCE:-}
work=data/mini_librispeech
config=$here/conf/train.yaml
. "$here/../lib.sh"
parse_recipe_args "$@"

manifests=$work/manifests
exp=$work/exp
eval_sets="dev-clean-2 test-clean"
lm_text=${ASR_LIBRISPEECH_LM_SOURCE:-$work/downloads/librispeech-lm-norm.txt.gz}
# Every 1000th line of the LM text (about 40k sentences from all the books) and the training
# transcripts: a small trigram that builds in under a minute on a laptop.
lm_every=1000

run_stage 0 prepare "$asr" prepare mini_librispeech ${source:+--source "$source"} --out "$work" \
  --parts train-clean-5 dev-clean-2 test-clean
run_stage 1 train "$asr" train --train "$manifests/train.jsonl" --dev "$manifests/dev-clean-2.jsonl" \
  --exp "$exp" --config "$config" --resume
run_stage 2 evaluate evaluate_splits "$exp/model.pt" greedy "$eval_sets" --set decode.method=greedy
run_stage 3 lm_text "$asr" prepare mini_librispeech --out "$work" --lm-text
run_stage 4 lm "$asr" lm build --order 3 --every "$lm_every" "$lm_text" --manifest "$manifests/train.jsonl" \
  -o "$work/lm/3gram.arpa"
run_stage 5 tune "$asr" tune --model "$exp/model.pt" --manifest "$manifests/dev-clean-2.jsonl" \
  --lm "$work/lm/3gram.arpa" --lm-weights 0.25,0.5,1,1.5 --word-scores=-1,0,1,2 --out "$exp/model_lm.pt"
run_stage 6 evaluate_lm evaluate_splits "$exp/model_lm.pt" beam_lm "$eval_sets"

show_results "$eval_sets" "greedy beam_lm"
model=$exp/model_lm.pt
[ -f "$model" ] || model=$exp/model.pt
echo "model: $model   try: $asr transcribe --model $model FILE.wav"
