#!/usr/bin/env bash
# Common Voice recipe, one language: prepare -> train -> evaluate (greedy) -> LM -> tune on dev
# -> evaluate (beam + LM).
#
#   bash recipes/common_voice/run.sh --source PATH [--stage N] [--stop-stage N] [--work DIR] [--config YAML]
#
# --source (default: $ASR_COMMON_VOICE_SOURCE): the language folder of a Common Voice release
# (cv-corpus-<version>/<lang>/ with train.tsv, dev.tsv, test.tsv and clips/), a folder above it,
# or the release's .tar.gz. Common Voice is not downloaded here: accept its terms and download
# a release at https://commonvoice.mozilla.org/datasets. The language comes from the release's
# locale column; ASR_COMMON_VOICE_LANGUAGE=xx picks one of several languages or overrides it.
# Everything is written under --work (default data/common_voice; use one per language, e.g.
# --work data/cv_ru). conf/train.yaml is sized for 20-300 hours of training audio,
# conf/large.yaml for the largest languages (500 hours and more). For languages written
# without spaces (Chinese, Japanese) stop after stage 2: the word LM of stages 3-5 does not fit.
# A finished stage is skipped when run again (delete WORK/.done.<N>.<name> to redo it; a
# stage that runs again also redoes the stages after it); an interrupted training stage
# resumes from its last epoch checkpoint.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stage=0
stop_stage=5
source=${ASR_COMMON_VOICE_SOURCE:-}
work=data/common_voice
config=$here/conf/train.yaml
. "$here/../lib.sh"
parse_recipe_args "$@"

# The LM sees the training transcripts only (Common Voice keeps dev and test sentences out
# of train); LM weight and word score are tuned on dev.
standard_stages common_voice

show_results test "greedy beam_lm"
