#!/usr/bin/env bash
# AN4 recipe: prepare -> train -> evaluate (greedy) -> LM -> tune on dev -> evaluate (beam + LM),
# then, with --stop-stage 9, an ensemble of the model and two more seeds of it -> tune -> evaluate.
#
#   bash recipes/an4/run.sh [--stage N] [--stop-stage N] [--source PATH] [--work DIR] [--config YAML]
#                           [--seeds "2 3"]
#
# Stages 0-5 (one model) take about 20 minutes on a 2-core CPU; stages 6-9 train one more
# model per seed of --seeds (about 20 minutes each) and evaluate their ensemble.
# --source: a local an4_sphere.tar.gz or extracted folder (default: $ASR_AN4_SOURCE, else
# CMU's archive is downloaded). Everything is written under --work (default data/an4).
# A finished stage is skipped when run again (delete WORK/.done.<N>.<name> to redo it; a
# stage that runs again also redoes the stages after it); an interrupted training stage
# resumes from its last epoch checkpoint.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stage=0
stop_stage=5
seeds="2 3"
source=${ASR_AN4_SOURCE:-}
work=data/an4
config=$here/conf/train.yaml
. "$here/../lib.sh"
take_option --seeds seeds "$@"
parse_recipe_args "${recipe_args[@]}"

# The LM sees the training transcripts only; LM weight and word score are tuned on dev.
standard_stages an4
ensemble_stages "$seeds"

show_results test "greedy beam_lm ensemble_greedy ensemble_beam_lm"
show_model
