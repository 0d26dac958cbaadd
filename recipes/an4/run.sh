#!/usr/bin/env bash
# AN4 recipe: prepare -> train -> evaluate (greedy) -> LM -> tune on dev -> evaluate (beam + LM).
#
#   bash recipes/an4/run.sh [--stage N] [--stop-stage N] [--source PATH] [--work DIR] [--config YAML]
#                           [--ensemble N [--distill]] [--conditions "white20 white10 ..."] [--names census|DIR|none]
#
# --source: a local an4_sphere.tar.gz or extracted folder (default: $ASR_AN4_SOURCE, else
# CMU's archive is downloaded). Everything is written under --work (default data/an4).
# --names census|DIR|none: the LM mixes the training transcripts' trigram with spelled US Census
# 1990 names (recipes/an4/lm.sh). census (the default): the lists from $ASR_CENSUS_NAMES, else
# census.gov; DIR: a folder holding them; none: the trigram alone (the recipe before 2026-11-28).
# A work folder made before then keeps its trigram LM and models only with --names none: without it,
# stage 3 makes the census LM, and stages 4-5 and 10-11 run again with it.
# A finished stage is skipped when run again (delete WORK/.done.<N>.<name> to redo it; a
# stage that runs again also redoes the stages after it); an interrupted training stage
# resumes from its last epoch checkpoint.
#
# Stages 10-11 write dev and test copies under recording conditions (white noise at 20, 10 and
# 5 dB SNR, a simulated room, the 8 kHz band of a phone line; WORK/conditions/) and decode them
# with the beam + LM model beside clean (WORK/exp/conditions_{dev,test}/conditions.md);
# --conditions picks others (asr degrade --help lists them, babble10 and gsm among them).
#
# --ensemble N (N >= 2): stages 6-9 also train the model with seeds 2..N (WORK/exp_seed<k>),
# combine the N models into a sequence ensemble (WORK/exp_ensemble: each member's beam search
# proposes transcripts, ranked by the members' mean CTC log-likelihood plus the LM), tune it
# on dev and evaluate it. N times the training time; on AN4 (recipes/an4/RESULTS.md) two
# 150-epoch seeds give test beam+LM 5.17% (alone: 6.21% and 5.95%); with 90 epochs, three
# seeds gave 6.08% for both triples tried (single models 6.96%, the mean of six).
#
# --distill (with --ensemble N): stages 12-15 train one more model, WORK/exp_distilled, taught
# by the N models (distill.teachers: CTC plus their per-frame outputs on the clean audio while
# it hears the augmented audio), and evaluate it as stages 2-5 and 11 do: an ensemble's
# teaching at one model's decoding cost.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stage=0
stop_stage=15  # stages 6-9 run only with --ensemble, 12-15 only with --distill
source=${ASR_AN4_SOURCE:-}
work=data/an4
config=$here/conf/train.yaml
ensemble=1
conditions="white20 white10 white5 reverb band8k"
names=census
. "$here/../lib.sh"
. "$here/lm.sh"
take_flag --distill distill "$@"
take_option --names names ${recipe_args[@]+"${recipe_args[@]}"}
take_option --ensemble ensemble ${recipe_args[@]+"${recipe_args[@]}"}
take_option --conditions conditions ${recipe_args[@]+"${recipe_args[@]}"}
parse_recipe_args ${recipe_args[@]+"${recipe_args[@]}"}
case $ensemble in
  ''|*[!0-9]*) echo "an4/run.sh: --ensemble needs a number of models" >&2; exit 2 ;;
esac
if [ "$distill" = 1 ] && [ "$ensemble" -lt 2 ]; then
  echo "an4/run.sh: --distill needs --ensemble N (N >= 2): the teachers" >&2; exit 2
fi

# The LM sees the training transcripts and the census names (lm.sh; --names none: the transcripts
# alone); LM weight and word score are tuned on dev.
lm_stage=build_an4_lm decode_lm=$(an4_lm_path)
standard_stages an4
if [ "$ensemble" -ge 2 ]; then
  # the single model's recording conditions (10-11) do not depend on the ensemble
  independent_stages="10 11" ensemble_stages "$ensemble" 6
fi
condition_stages 10 "dev test" "$work/exp/model_lm.pt"
if [ "$distill" = 1 ]; then
  distill_stages "$ensemble" 12
fi

show_results test "greedy beam_lm"
show_results test beam_lm "$work/exp_ensemble"
show_results test "greedy beam_lm" "$work/exp_distilled"
show_conditions "dev test"
show_conditions test "$work/exp_distilled"
show_model
