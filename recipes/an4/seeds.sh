#!/usr/bin/env bash
# A dev-only experiment: the AN4 recipe's model, or a variant of it (--set), trained with several
# seeds, several at once; each is tuned on dev and decoded on dev, greedy and beam + LM, clean and
# under the recording conditions, as run.sh decodes its model. Then a table of each seed's dev WERs,
# their median and mean, and each other experiment's paired difference (--against). Test is not
# decoded while choosing: choices are made on dev over several seeds, and test is decoded once for
# the system chosen (--test, below; recipes/an4/RESULTS.md).
#
#   bash recipes/an4/seeds.sh --name NAME [--seeds "1234 1235 1236"] [--parallel N] [--work DIR]
#                             [--config YAML] [--set KEY=VALUE ...] [--against NAME ...]
#                             [--conditions "white20 white10 ..."] [--source PATH]
#                             [--lm ARPA] [--models-of NAME] [--names census|DIR|none]
#                             [--average N] [--test]
#
# Runs go to WORK/seeds/NAME/s<SEED>/ (WORK: default data/an4); an interrupted run resumes and a
# finished one (s<SEED>/.done) is skipped, so the same command completes an experiment or adds
# seeds to it, across sessions. The experiment's settings (the config file's content, --set,
# --conditions, GPU or CPU and bf16 or float32 as asr device says) are kept in
# WORK/seeds/NAME/settings.txt: a later call with other settings is refused, so one table never
# mixes them. The table goes to WORK/seeds/NAME/table.md.
# What the runs need and WORK lacks is made first: run.sh's manifests (--source as for run.sh),
# LM (--names as for run.sh, census by default; made once in WORK/lm) and dev copies under the
# conditions. Experiments from before 2026-11-28 (the recipe's trigram) go on with --names none.
# --lm ARPA: tune and decode beam + LM with this language model (default: the recipe's, lm.sh).
# --models-of NAME: train nothing; decode the models of the finished seeds of experiment NAME (a
# decoding-only experiment, e.g. another LM).
# --average N: decode, for each seed, the mean of its last N epochs' weights (sS/model_avg.pt, kept
# while training: train.average_last=N) instead of its best epoch. A seed trained before that
# option (2026-11-28) kept N checkpoints, and its model_avg.pt is made from them (asr average).
# --test: the experiment's final report, for a system chosen on dev: train nothing; decode test
# (greedy; beam + LM clean and under the conditions, as run.sh does) for each given seed, which must
# be finished, into sS/decode_test_greedy and sS/conditions_test, and tabulate the seeds
# (WORK/seeds/NAME/test_table.md, asr experiments --split test). The same options as the runs
# (their settings are checked as for training). A seed is decoded on test once (sS/.done_test);
# later calls only tabulate. Never use test to choose: that is what dev is for (RESULTS.md).
# --parallel N: N seeds train at once. On a GPU they share it (on an H200, AN4 epochs took 1.3-1.7 s
# alone or two at a time, 5-7 s eight at a time); on a CPU the cores are split between them
# (OMP_NUM_THREADS, unless set), which changes rounding, not the model: run.sh uses all cores.
# Example, a variant against the recipe, three seeds each:
#   bash recipes/an4/seeds.sh --name base
#   bash recipes/an4/seeds.sh --name tm6 --set augment.n_time_masks=6 --against base
#   bash recipes/an4/seeds.sh --name base_lm2 --models-of base --lm other.arpa --against base
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=data/an4
config=$here/conf/train.yaml
source=${ASR_AN4_SOURCE:-}
conditions="white20 white10 white5 reverb band8k"
name="" seeds="1234 1235 1236" parallel=1 test=""
sets=() against=() lm="" models_of="" names="" names_given="" average=""  # names: census unless given
. "$here/../lib.sh"  # $asr, and run.sh's decoding steps: evaluate_splits, evaluate_conditions
. "$here/lm.sh"  # the recipe's LM: an4_lm_path, build_an4_lm
die() { echo "an4/seeds.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) sed -n '2,/^set /p' "$0" | sed '$d'; exit 0 ;;
    --test) test=1; shift; continue ;;
    --name|--seeds|--parallel|--work|--config|--source|--conditions|--set|--against|--lm|--models-of|--names|--average)
      [ $# -ge 2 ] && [ "${2#--}" = "$2" ] || die "$1 needs a value" ;;
    *) die "unknown option $1" ;;
  esac
  case $1 in
    --name) name=$2 ;;
    --seeds) seeds=$2 ;;
    --parallel) parallel=$2 ;;
    --work) work=$2 ;;
    --config) config=$2 ;;
    --source) source=$2 ;;
    --conditions) conditions=$2 ;;
    --set) sets+=(--set "$2") ;;
    --against) against+=("$2") ;;
    --lm) lm=$2 ;;
    --models-of) models_of=$2 ;;
    --names) names=$2 names_given=1 ;;
    --average) average=$2 ;;
  esac
  shift 2
done
case $name in
  ''|*/*|.*) die "--name needs a plain folder name (the experiment's)" ;;
esac
case $models_of in
  */*|.*) die "--models-of needs a plain folder name (an experiment's)" ;;
esac
[[ $parallel =~ ^[1-9][0-9]*$ ]] || die "--parallel needs a number >= 1, got '$parallel'"
[ -z "$average" ] || [[ $average =~ ^[1-9][0-9]*$ ]] || die "--average needs a number >= 1, got '$average'"
seen=" "
for s in $seeds; do
  [[ $s =~ ^(0|[1-9][0-9]*)$ ]] || die "seeds are numbers without leading zeros, got '$s'"
  case $seen in *" $s "*) die "seed $s is given twice" ;; esac
  seen+="$s "
done
[ "$seen" != " " ] || die "--seeds names no seed"
for set in ${sets[@]+"${sets[@]}"}; do
  case $set in train.seed=*) die "--set train.seed: the seeds come from --seeds" ;; esac
done
for other in ${against[@]+"${against[@]}"}; do
  [ -d "$work/seeds/$other" ] || die "$work/seeds/$other: no such experiment (--against)"
done
[ -f "$config" ] || die "$config: no such config file"
[ -z "$lm" ] || [ -f "$lm" ] || die "$lm: no such language model (--lm)"
[ -z "$lm" ] || [ -z "$names" ] || [ "$names" = none ] || die "--lm and --names: give one (--names picks the recipe's LM)"
names=${names:-census}
if [ -n "$models_of" ]; then
  [ -d "$work/seeds/$models_of" ] || die "$work/seeds/$models_of: no such experiment (--models-of)"
  [ "$models_of" != "$name" ] || die "--models-of names this experiment itself"
  [ ${#sets[@]} -eq 0 ] || die "--set changes training; with --models-of nothing is trained"
  [ -z "$average" ] || die "--average needs the runs' checkpoints; with --models-of nothing is trained"
  for s in $seeds; do
    [ -f "$work/seeds/$models_of/s$s/.done" ] || die "$work/seeds/$models_of/s$s: not a finished seed (--models-of)"
  done
fi

root=$work/seeds/$name
if [ -n "$test" ]; then
  [ -f "$root/settings.txt" ] || die "$root: no such experiment (--test reports the seeds it has trained)"
  for s in $seeds; do
    [ -f "$root/s$s/.done" ] || die "$root/s$s: not a finished seed (--test decodes finished seeds only)"
  done
fi
models_of_model=model.pt  # what --models-of decodes: the model that experiment decoded
if [ -n "$models_of" ] && grep -q '^average: ' "$work/seeds/$models_of/settings.txt" 2> /dev/null; then
  models_of_model=model_avg.pt
fi
# Where the runs train and in what arithmetic (asr device; train.precision auto: bf16 on a GPU and
# on a CPU with native bf16, float32 on other CPUs). "cpu" (float32) and "gpu" (bf16) as in settings
# written before 2026-11-28; ", bf16" or ", float32" is added to the others, so that seeds trained in
# different arithmetic never share an experiment (a seed resumed on another machine, say).
probe=$("$asr" device --config "$config" ${sets[@]+"${sets[@]}"}) || exit 2
case $probe in
  "cpu float32") device=cpu ;;
  "cuda bf16") device=gpu ;;
  "cpu bf16") device="cpu, bf16" ;;
  "cuda float32") device="gpu, float32" ;;
  *) die "asr device printed '$probe', not a device and a precision" ;;
esac
if [ -n "$models_of" ]; then
  trained="models of: $models_of"
else
  trained="config: $(sha256sum < "$config" | cut -d' ' -f1) ($config)
set: ${sets[*]+"${sets[*]}"}"
  [ -z "$average" ] || trained+="
average: last $average"  # no line without it: the settings of earlier experiments stay the same
fi
stored=""
[ ! -f "$root/settings.txt" ] || stored=$(cat "$root/settings.txt")
same() { [ "$(sed 's/ (.*//' <<< "$1")" = "$(sed 's/ (.*//' <<< "$2")" ]; }  # contents count, not paths
refuse() { die "$root/settings.txt: this experiment was run with other settings; use another --name"; }
[ -z "$stored" ] || same "$(grep -v '^lm: ' <<< "$stored")" "$trained
conditions: $conditions
device: $device" || refuse
if [ -n "$stored" ] && [ -z "$lm" ] && [ -z "$names_given" ]; then
  case $(grep '^lm: ' <<< "$stored" || true) in  # no lm line: settings from before --lm, the trigram's
    ''|*/3gram.arpa\)) die "$root: run with the training transcripts' trigram, the recipe's LM before 2026-11-28: add --names none" ;;
  esac
fi

# What the runs read, made once for every experiment in WORK (run.sh makes the same files).
manifests=$work/manifests
if [ ! -f "$manifests/dev.jsonl" ]; then
  "$asr" prepare an4 ${source:+--source "$source"} --out "$work"
fi
if [ -z "$lm" ]; then  # the recipe's
  lm=$(an4_lm_path)
  if [ ! -f "$lm" ]; then reuse_trigram=1 build_an4_lm; fi  # an existing trigram is kept (lm.sh)
fi
lm_line="lm: $(sha256sum < "$lm" | cut -d' ' -f1) ($lm)"
settings="$trained
conditions: $conditions
$lm_line
device: $device"
if [ -n "$stored" ]; then
  stored_lm=$(grep '^lm: ' <<< "$stored" || true) old=0
  if [ -z "$stored_lm" ]; then  # settings written before --lm: the training transcripts' trigram
    stored_lm="lm: $({ sha256sum < "$work/lm/3gram.arpa" || true; } 2> /dev/null | cut -d' ' -f1)" old=1
  fi
  same "$stored_lm" "$lm_line" || refuse
  [ "$old" = 0 ] || printf '%s\n' "$settings" > "$root/settings.txt"  # from now on with its lm line
fi
if [ -z "$models_of" ]; then  # a paired table of two LMs mixes the LM into every beam + LM difference
  for other in ${against[@]+"${against[@]}"}; do
    other_lm=$(grep '^lm: ' "$work/seeds/$other/settings.txt" 2> /dev/null || true)
    [ -z "$other_lm" ] || same "$other_lm" "$lm_line" ||
      echo "an4/seeds.sh: note: $other was decoded with another LM (${other_lm#lm: }); its beam + LM differences include the LM's" >&2
  done
fi
split=dev
[ -z "$test" ] || split=test
for c in $conditions; do
  copy=$work/conditions/$split.$c.jsonl
  [ -f "$copy" ] || "$asr" degrade --manifest "$manifests/$split.jsonl" --condition "$c" --out "$copy"
done
mkdir -p "$root"
[ -f "$root/settings.txt" ] || printf '%s\n' "$settings" > "$root/settings.txt"

if [ "$parallel" -gt 1 ] && [ -z "${OMP_NUM_THREADS:-}" ] && [ "${device%%,*}" = cpu ]; then
  cores=$(nproc)  # a CPU: runs at once share its cores
  export OMP_NUM_THREADS=$(( cores / parallel > 0 ? cores / parallel : 1 ))
fi

# one_seed S: train (or, with --models-of, link that experiment's model), greedy decode of dev,
# tune on dev, beam + LM decode of dev clean and under the conditions (run.sh's stages 1, 2, 4
# and 11, for dev only); sS/.done when all of it is there. Its output is added to sS.log.
one_seed() {
  local exp=$root/s$1 averaging=() from_checkpoints=""
  local model=$exp/model.pt
  if [ -n "$models_of" ]; then
    mkdir -p "$exp"
    ln -sfn "../../$models_of/s$1/$models_of_model" "$exp/model.pt"
  else
    if [ -n "$average" ] && [ -d "$exp/checkpoints" ] \
        && ! grep -Eq '^ *average_last: [1-9]' "$exp/config.yaml" 2> /dev/null; then
      from_checkpoints=1  # a seed started before train.average_last existed goes on the old way
      averaging=(--set "train.keep_checkpoints=$average")
    elif [ -n "$average" ]; then
      averaging=(--set "train.average_last=$average")  # before --set: a user's own wins
    fi
    "$asr" train --train "$manifests/train.jsonl" --dev "$manifests/dev.jsonl" --exp "$exp" \
      --config "$config" ${averaging[@]+"${averaging[@]}"} ${sets[@]+"${sets[@]}"} --set "train.seed=$1" --resume --no-progress
  fi
  if [ -n "$average" ]; then
    model=$exp/model_avg.pt
    [ -z "$from_checkpoints" ] || "$asr" average --exp "$exp" --last "$average" --out "$model"
  fi
  evaluate_splits "$model" greedy dev --set decode.method=greedy  # -> decode_dev_greedy
  "$asr" tune --model "$model" --manifest "$manifests/dev.jsonl" --lm "$lm" --out "$exp/model_lm.pt"
  evaluate_conditions dev "$exp/model_lm.pt"  # -> conditions_dev: clean and each condition
  touch "$exp/.done"
}

# test_seed S: the finished seed's model (as one_seed decoded it) and its tuned bundle decoded on
# test: greedy, then beam + LM clean and under the conditions (run.sh's stages 2, 5 and 11, test
# only); sS/.done_test when all of it is there. Its output is added to sS.log.
test_seed() {
  local exp=$root/s$1
  local model=$exp/model.pt
  [ -z "$average" ] || model=$exp/model_avg.pt
  evaluate_splits "$model" greedy test --set decode.method=greedy  # -> decode_test_greedy
  evaluate_conditions test "$exp/model_lm.pt"  # -> conditions_test: clean and each condition
  touch "$exp/.done_test"
}

folders=()  # the experiments tabulated beside this one
for other in ${against[@]+"${against[@]}"}; do folders+=("$work/seeds/$other"); done
if [ -n "$test" ]; then
  for s in $seeds; do
    if [ -f "$root/s$s/.done_test" ]; then
      echo "== seed $s: decoded on test before, not again"
      continue
    fi
    echo "== seed $s: test (log: $root/s$s.log)"
    test_seed "$s" >> "$root/s$s.log" 2>&1 &  # in the background: set -e holds inside (not after ||)
    wait $! || die "seed $s: the test decode failed: see $root/s$s.log"
  done
  exec "$asr" experiments --split test ${folders[@]+"${folders[@]}"} "$root" --out "$root/test_table.md"
fi

started=$(date +%s)
declare -A running=()  # pid -> seed
failed=0 ran=""
finish_one() {  # wait for whichever run ends first
  local pid=""
  if wait -n -p pid "${!running[@]}"; then :; else
    echo "an4/seeds.sh: seed ${running[$pid]} failed: see $root/s${running[$pid]}.log" >&2
    failed=1
  fi
  unset "running[$pid]"
}
for s in $seeds; do
  if [ -f "$root/s$s/.done" ]; then
    echo "== seed $s: done before, skipping"
    continue
  fi
  [ "${#running[@]}" -lt "$parallel" ] || finish_one
  echo "== seed $s: $root/s$s (log: $root/s$s.log)"
  one_seed "$s" >> "$root/s$s.log" 2>&1 &
  running[$!]=$s
  ran+=" $s"
done
while [ "${#running[@]}" -gt 0 ]; do finish_one; done
[ -z "$ran" ] || echo "seeds$ran: $(( $(date +%s) - started ))s, $parallel at once" | tee -a "$root/times.txt"

"$asr" experiments ${folders[@]+"${folders[@]}"} "$root" --out "$root/table.md"
exit "$failed"
