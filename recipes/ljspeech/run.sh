#!/usr/bin/env bash
# LJSpeech recipe (one speaker, 24 h): prepare -> train -> evaluate (greedy) -> LM -> tune on
# dev -> evaluate (beam + LM).
#
#   bash recipes/ljspeech/run.sh [--stage N] [--stop-stage N] [--source PATH] [--work DIR] [--config YAML]
#
# --source: a local LJSpeech-1.1.tar.bz2 or extracted folder (default: $ASR_LJSPEECH_SOURCE,
# else the archive is downloaded from keithito.com, 2.6 GB, resumably, and checked against
# its sha256). Split by chapter: dev = LJ005, LJ025, LJ045; test = LJ010, LJ030, LJ050.
# Everything is written under --work (default data/ljspeech).
# A finished stage is skipped when run again (delete WORK/.done.<N>.<name> to redo it; a
# stage that runs again also redoes the stages after it); an interrupted training stage
# resumes from its last epoch checkpoint.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stage=0
stop_stage=5
source=${ASR_LJSPEECH_SOURCE:-}
work=data/ljspeech
config=$here/conf/train.yaml
. "$here/../lib.sh"
parse_recipe_args "$@"

# The LM sees the training transcripts only (dev and test chapters are other texts: their
# words outside the training vocabulary cannot be recognized by the lexicon beam search).
standard_stages ljspeech

show_results "dev test" "greedy beam_lm"
show_model
