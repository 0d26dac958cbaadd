#!/usr/bin/env bash
# LibriSpeech recipe (OpenSLR 12): prepare -> train -> evaluate (greedy) -> LM text -> LM
# -> tune on dev-clean -> evaluate (beam + LM).
#
#   bash recipes/librispeech/run.sh [--setup 100h|960h] [--stage N] [--stop-stage N]
#                                   [--source PATH] [--work DIR] [--config YAML]
#
# --setup 100h (default): train on train-clean-100 with conf/train_100h.yaml (7.7 GB to
# download); 960h: train on train-clean-100 + train-clean-360 + train-other-500 with
# conf/train_960h.yaml (61 GB). Both evaluate on dev-clean, dev-other, test-clean, test-other.
# --source: a folder with extracted LibriSpeech/<part>/ folders and/or <part>.tar.gz
# archives (default: $ASR_LIBRISPEECH_SOURCE); parts not there are downloaded from OpenSLR,
# resumably, and checked against their published checksums. The LM text comes from
# $ASR_LIBRISPEECH_LM_SOURCE, else from OpenSLR 11 (1.4 GB). Everything is written under
# --work (default data/librispeech_<setup>).
# A finished stage is skipped when run again (delete WORK/.done.<N>.<name> to redo it; a
# stage that runs again also redoes the stages after it); an interrupted training stage
# resumes from its last epoch checkpoint.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
setup=100h
take_option --setup setup "$@"
case $setup in
  100h) parts="train-clean-100 dev-clean dev-other test-clean test-other" ;;
  960h) parts="train-clean-100 train-clean-360 train-other-500 dev-clean dev-other test-clean test-other" ;;
  *) echo "librispeech/run.sh: --setup must be 100h or 960h, got '$setup'" >&2; exit 2 ;;
esac
stage=0
stop_stage=6
source=${ASR_LIBRISPEECH_SOURCE:-}
work=data/librispeech_$setup
config=$here/conf/train_$setup.yaml
parse_recipe_args "${recipe_args[@]}"

manifests=$work/manifests
exp=$work/exp
eval_sets="dev-clean dev-other test-clean test-other"
lm_text=${ASR_LIBRISPEECH_LM_SOURCE:-$work/downloads/librispeech-lm-norm.txt.gz}
# The LM is a trigram of the whole LM text (800M words) plus the training transcripts, built
# by KenLM's lmplz (`asr lm install-kenlm` builds it once from PyPI's kenlm source; it needs
# cmake, g++ and Boost's development packages), bigrams and trigrams seen once pruned. Where
# lmplz cannot be built, the Python estimator, which holds every n-gram in memory (about 450
# bytes each), takes every 200th line, at most 200k lines (about 4M words), instead.
lm_prune=0,1,1
lm_every=200
lm_max_lines=200000

build_lm() {
  if "$asr" lm install-kenlm; then
    "$asr" lm build --backend kenlm --order 3 --prune "$lm_prune" "$lm_text" \
      --manifest "$manifests/train.jsonl" -o "$work/lm/3gram.arpa"
  else
    echo "librispeech/run.sh: KenLM could not be built; sampling the LM text for the Python estimator" >&2
    "$asr" lm build --backend python --order 3 --every "$lm_every" --max-lines "$lm_max_lines" "$lm_text" \
      --manifest "$manifests/train.jsonl" -o "$work/lm/3gram.arpa"
  fi
}

run_stage 0 prepare "$asr" prepare librispeech ${source:+--source "$source"} --out "$work" --parts $parts
run_stage 1 train "$asr" train --train "$manifests/train.jsonl" --dev "$manifests/dev-clean.jsonl" \
  --exp "$exp" --config "$config" --resume
run_stage 2 evaluate evaluate_splits "$exp/model.pt" greedy "$eval_sets" --set decode.method=greedy
run_stage 3 lm_text "$asr" prepare librispeech --out "$work" --lm-text
run_stage 4 lm build_lm
# A smaller grid than AN4's: each point is one beam search over dev-clean (5.4 h).
run_stage 5 tune "$asr" tune --model "$exp/model.pt" --manifest "$manifests/dev-clean.jsonl" \
  --lm "$work/lm/3gram.arpa" --lm-weights 0.5,1,1.5,2 --word-scores=-1,0,1,2 --out "$exp/model_lm.pt"
run_stage 6 evaluate_lm evaluate_splits "$exp/model_lm.pt" beam_lm "$eval_sets"

show_results "$eval_sets" "greedy beam_lm"
model=$exp/model_lm.pt
[ -f "$model" ] || model=$exp/model.pt
echo "model: $model   try: $asr transcribe --model $model FILE.wav"
