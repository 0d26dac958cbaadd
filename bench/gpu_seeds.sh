#!/usr/bin/env bash
# recipes/an4/seeds.sh on a lent GPU machine (the `device` tool): several seeds of the AN4 recipe,
# or of a variant, trained at once on the one GPU and decoded on dev; what the machine lacks
# travels with the call. Prepare here, once (ignored folders; about 42 MiB with the wheels):
#
#   python bench/portable_manifests.py data/an4/manifests/train.jsonl data/an4/manifests/dev.jsonl \
#       --out data/gpu/an4/manifests                      # audio as FLAC, relative paths
#   mkdir -p data/gpu/an4/lm && cp data/an4/lm/3gram.arpa data/an4/lm/names_mix.arpa data/gpu/an4/lm/
#                                   # the recipe's LMs, made here first (that machine is offline): e.g.
#                                   # bash recipes/an4/run.sh --stage 3 --stop-stage 3 [--names DIR]
#   echo /.whl/ >> .git/info/exclude          # data/ is ignored already
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl soundfile cffi pycparser pyroomacoustics flashlight-text   # what asr imports, absent there
#
# Then one device call, carry [".whl", "data/gpu"], for example (an H200 took 1.3-1.7 s per AN4 epoch alone
# or two at a time and 5-7 s eight at a time: size --parallel and the seeds to the call's 10 minutes):
#
#   SEEDS_TIME_LIMIT=540 bash bench/gpu_seeds.sh --name base --seeds "1234 1235 1236" --parallel 3
#
# Every argument goes to seeds.sh (--work is data/gpu/an4), which stops after SEEDS_TIME_LIMIT seconds
# (default 540: set it a minute under the call's timeout_s). The table, settings, times, train logs,
# dev reports and .done markers of every experiment there come back as $OUT/seeds.tar.gz, also after
# that limit; extracted into WORK (e.g. data/an4), its finished seeds are skipped by a later
# seeds.sh call and tabulated with the others. The models stay on the machine, which is bare the
# next time: a seed not finished in the call starts again from its first epoch.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_seeds}
mkdir -p "$OUT"
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PYTHONUNBUFFERED=1
if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/asr_site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/asr_site
fi
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
if ! command -v asr > /dev/null; then  # asr is not installed there: run it from this checkout
  mkdir -p /tmp/asr_bin
  printf '#!/bin/sh\nexec python3 -m asr "$@"\n' > /tmp/asr_bin/asr
  chmod +x /tmp/asr_bin/asr
  export PATH=/tmp/asr_bin:$PATH
fi
{ git rev-parse --short HEAD 2>/dev/null; nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null; nproc
  python3 -c "import torch; print('torch', torch.__version__)"; } | tee "$OUT/machine.txt"
timeout "${SEEDS_TIME_LIMIT:-540}" bash recipes/an4/seeds.sh --work data/gpu/an4 "$@" 2>&1 | tee "$OUT/seeds.txt"
status=${PIPESTATUS[0]}
[ "$status" -ne 124 ] || echo "gpu_seeds.sh: stopped after SEEDS_TIME_LIMIT=${SEEDS_TIME_LIMIT:-540} s" | tee -a "$OUT/seeds.txt"
(cd data/gpu/an4 && find seeds \( -name table.md -o -name times.txt -o -name '*.log' -o -name config.yaml \
   -o -name summary.json -o -name conditions.json -o -name conditions.md -o -name model_lm.tune.json \
   -o -name settings.txt -o -name .done \) -print0 \
   | tar -czf "$OUT/seeds.tar.gz" --null -T -)
exit "$status"
