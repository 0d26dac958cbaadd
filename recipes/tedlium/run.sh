#!/usr/bin/env bash
# TED-LIUM 3 recipe (legacy split): download and prepare -> train -> evaluate (greedy) -> LM
# -> tune on dev -> evaluate (beam + LM).
#
#   bash recipes/tedlium/run.sh [--stage N] [--stop-stage N] [--source PATH] [--work DIR] [--config YAML]
#
# --source: a local TEDLIUM_release-3.tgz or extracted folder (default: $ASR_TEDLIUM_SOURCE,
# else OpenSLR's 51 GB archive is downloaded into WORK/downloads and extracted into
# WORK/corpus: about 105 GB of disk until the archive is deleted). Talks stay whole: the
# manifests point at segments of them (offset + duration). Everything is written under
# --work (default data/tedlium). conf/train.yaml is sized for a GPU.
# A finished stage is skipped when run again (delete WORK/.done.<N>.<name> to redo it; a
# stage that runs again also redoes the stages after it); an interrupted training stage
# resumes from its last epoch checkpoint.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stage=0
stop_stage=5
source=${ASR_TEDLIUM_SOURCE:-}
work=data/tedlium
config=$here/conf/train.yaml
. "$here/../lib.sh"
parse_recipe_args "$@"

# The LM sees the training transcripts only; LM weight and word score are tuned on dev.
standard_stages tedlium

show_results test "greedy beam_lm"
