#!/usr/bin/env bash
# A dev-only experiment: the AN4 recipe's model, or a variant of it (--set), trained with several
# seeds, several at once; each is tuned on dev and decoded on dev, greedy and beam + LM, clean and
# under the recording conditions. Then a table of each seed's dev WERs and their median and mean,
# beside other experiments' (--against). Test is never decoded here: choices are made on dev over
# several seeds, and test is decoded once for the system chosen (recipes/an4/RESULTS.md).
#
#   bash recipes/an4/seeds.sh --name NAME [--seeds "1234 1235 1236"] [--parallel N] [--work DIR]
#                             [--config YAML] [--set KEY=VALUE ...] [--against NAME ...]
#                             [--conditions "white20 white10 ..."] [--source PATH]
#
# Runs go to WORK/seeds/NAME/s<SEED>/ (WORK: default data/an4); an interrupted run resumes and a
# finished one is skipped, so the same command completes an experiment or adds seeds to it. The
# table goes to WORK/seeds/NAME/table.md. What the runs need and WORK lacks is made first: run.sh's
# manifests (--source as for run.sh), trigram LM and dev copies under the conditions.
# --parallel N: N seeds train at once. On a GPU they share it (on an H200, AN4 epochs took 1.3-1.7 s
# alone or two at a time, 5-7 s eight at a time); on a CPU the cores are split between them.
# Example, a variant against the recipe, three seeds each, on one GPU:
#   bash recipes/an4/seeds.sh --name base --parallel 6 --set train.num_workers=2
#   bash recipes/an4/seeds.sh --name tm6 --parallel 6 --set train.num_workers=2 \
#     --set augment.n_time_masks=6 --against base
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
asr=${ASR:-asr}
python=${PYTHON:-python3}
work=data/an4
config=$here/conf/train.yaml
source=${ASR_AN4_SOURCE:-}
conditions="white20 white10 white5 reverb band8k"
name="" seeds="1234 1235 1236" parallel=1
sets=() against=()
usage() { sed -n '2,/^set /p' "$0" | sed '$d'; }
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --*) [ $# -ge 2 ] || { echo "an4/seeds.sh: $1 needs a value" >&2; exit 2; } ;;
  esac
  case $1 in
    --name) name=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --source) source=$2; shift 2 ;;
    --conditions) conditions=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    --against) against+=("$2"); shift 2 ;;
    *) echo "an4/seeds.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case $name in
  ''|*/*|.*) echo "an4/seeds.sh: --name needs a plain folder name (the experiment's)" >&2; exit 2 ;;
esac
case $parallel in
  ''|*[!0-9]*|0) echo "an4/seeds.sh: --parallel needs a number >= 1" >&2; exit 2 ;;
esac
for s in $seeds; do
  case $s in *[!0-9]*) echo "an4/seeds.sh: seeds are numbers, got '$s'" >&2; exit 2 ;; esac
done
[ -n "${seeds// /}" ] || { echo "an4/seeds.sh: --seeds names no seed" >&2; exit 2; }
for other in ${against[@]+"${against[@]}"}; do
  [ -d "$work/seeds/$other" ] || { echo "an4/seeds.sh: $work/seeds/$other: no such experiment (--against)" >&2; exit 2; }
done

manifests=$work/manifests lm=$work/lm/3gram.arpa root=$work/seeds/$name
# What the runs read, made once for every experiment in WORK (run.sh makes the same files).
if [ ! -f "$manifests/dev.jsonl" ]; then
  "$asr" prepare an4 ${source:+--source "$source"} --out "$work"
fi
if [ ! -f "$lm" ]; then
  "$asr" lm build --order 3 --manifest "$manifests/train.jsonl" -o "$lm"
fi
condition_args=()
for c in $conditions; do
  copy=$work/conditions/dev.$c.jsonl
  [ -f "$copy" ] || "$asr" degrade --manifest "$manifests/dev.jsonl" --condition "$c" --out "$copy"
  condition_args+=(--condition "$c=$copy")
done
mkdir -p "$root"

if [ "$parallel" -gt 1 ] && ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  # On a CPU, runs at once share its cores: one thread pool each of cores / N.
  cores=$(nproc)
  export OMP_NUM_THREADS=$(( cores / parallel > 0 ? cores / parallel : 1 ))
fi

# one_seed S: train, greedy decode of dev, tune on dev, beam + LM decode of dev clean and under
# the conditions; WORK/seeds/NAME/sS/.done when all of it is there. Its output goes to sS.log.
one_seed() {
  local exp=$root/s$1
  "$asr" train --train "$manifests/train.jsonl" --dev "$manifests/dev.jsonl" --exp "$exp" \
    --config "$config" --set "train.seed=$1" ${sets[@]+"${sets[@]}"} --resume --no-progress
  "$asr" evaluate --model "$exp/model.pt" --manifest "$manifests/dev.jsonl" --out "$exp/decode_dev_greedy" \
    --set decode.method=greedy
  "$asr" tune --model "$exp/model.pt" --manifest "$manifests/dev.jsonl" --lm "$lm" --out "$exp/model_lm.pt"
  "$asr" evaluate --model "$exp/model_lm.pt" --manifest "$manifests/dev.jsonl" --out "$exp/conditions_dev" \
    ${condition_args[@]+"${condition_args[@]}"}
  touch "$exp/.done"
}

started=$(date +%s)
pids=() names=() failed=0
finish_one() {  # wait for the oldest run still going
  if ! wait "${pids[0]}"; then
    echo "an4/seeds.sh: seed ${names[0]} failed: see $root/s${names[0]}.log" >&2
    failed=1
  fi
  pids=("${pids[@]:1}") names=("${names[@]:1}")
}
for s in $seeds; do
  if [ -f "$root/s$s/.done" ]; then
    echo "== seed $s: done before, skipping"
    continue
  fi
  [ "${#pids[@]}" -lt "$parallel" ] || finish_one
  echo "== seed $s: $root/s$s (log: $root/s$s.log)"
  one_seed "$s" > "$root/s$s.log" 2>&1 &
  pids+=($!) names+=("$s")
done
while [ "${#pids[@]}" -gt 0 ]; do finish_one; done
echo "seeds $seeds: $(( $(date +%s) - started ))s" | tee -a "$root/times.txt"

folders=()
for other in ${against[@]+"${against[@]}"}; do folders+=("$work/seeds/$other"); done
"$python" -m asr.experiments ${folders[@]+"${folders[@]}"} "$root" --out "$root/table.md"
exit "$failed"
