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
. "$here/../lib.sh"
parse_recipe_args "$@"

# The LM sees the training transcripts only; LM weight and word score are tuned on dev.
standard_stages an4

show_results test "greedy beam_lm"
show_model
