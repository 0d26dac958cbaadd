# Shell helpers shared by recipes/<corpus>/run.sh. Source it after setting the defaults:
#
#   stage=0 stop_stage=N source=${ASR_<CORPUS>_SOURCE:-} work=data/<corpus> config=...
#   . "$here/../lib.sh"; parse_recipe_args "$@"
#
# Common options: --stage N, --stop-stage N, --source PATH, --work DIR, --config YAML.
# A finished stage leaves WORK/.done.<N>.<name> and is skipped when the recipe runs again;
# a stage that runs again also makes every later stage run again.

asr=${ASR:-asr}

# parse_recipe_args "$@": the common options above; -h prints the run.sh header comment.
parse_recipe_args() {
  while [ $# -gt 0 ]; do
    case $1 in
      --stage) stage=$2; shift 2 ;;
      --stop-stage) stop_stage=$2; shift 2 ;;
      --source) source=$2; shift 2 ;;
      --work) work=$2; shift 2 ;;
      --config) config=$2; shift 2 ;;
      -h|--help) sed -n '2,/^set /p' "$0" | sed '$d'; exit 0 ;;
      *) echo "$(basename "$(dirname "$0")")/run.sh: unknown option $1" >&2; exit 2 ;;
    esac
  done
  mkdir -p "$work"
}

# run_stage N NAME COMMAND...: run a stage once, timing it into WORK/stage_times.txt. A stage
# that runs makes every later stage run again, except those listed in $independent_stages (a
# caller's "10 11": stages that do not use this one's output).
run_stage() {
  local n=$1 name=$2; shift 2
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  if [ -f "$work/.done.$n.$name" ]; then
    echo "== stage $n ($name): already done, skipping"
    return 0
  fi
  local m
  for m in $(seq $((n + 1)) 19); do
    case " ${independent_stages:-} " in *" $m "*) ;; *) rm -f "$work"/.done."$m".* ;; esac
  done
  echo "== stage $n ($name)"
  local start
  start=$(date +%s)
  "$@"
  local secs=$(( $(date +%s) - start ))
  echo "stage $n ($name): ${secs}s" | tee -a "$work/stage_times.txt"
  touch "$work/.done.$n.$name"
}

# evaluate_splits MODEL NAME "SPLIT..." [ARGS...]: decode WORK/manifests/SPLIT.jsonl for each
# split into decode_<split>_NAME beside the model (WORK/exp/ for WORK/exp/model.pt).
evaluate_splits() {
  local model=$1 name=$2 splits=$3; shift 3
  local split
  for split in $splits; do
    "$asr" evaluate --model "$model" --manifest "$work/manifests/$split.jsonl" \
      --out "$(dirname "$model")/decode_${split}_$name" "$@"
  done
}

# show_results "SPLIT..." "NAME..." [EXP]: print the summary lines of each decode that exists
# in EXP (default WORK/exp).
show_results() {
  local split name exp=${3:-$work/exp}
  for split in $1; do
    for name in $2; do
      if [ -f "$exp/decode_${split}_$name/summary.txt" ]; then
        echo "== $split, $name ($exp/decode_${split}_$name)"
        tail -n 2 "$exp/decode_${split}_$name/summary.txt"
      fi
    done
  done
}

# take_option --NAME VAR "$@": set VAR to the value of "--NAME VALUE" if it is among the
# arguments, and leave the other arguments in the array recipe_args, for parse_recipe_args:
#   setup=100h; take_option --setup setup "$@"; parse_recipe_args "${recipe_args[@]}"
take_option() {
  local flag=$1 var=$2; shift 2
  recipe_args=()
  while [ $# -gt 0 ]; do
    if [ "$1" = "$flag" ]; then
      [ $# -ge 2 ] || { echo "$(basename "$(dirname "$0")")/run.sh: $flag needs a value" >&2; exit 2; }
      printf -v "$var" %s "$2"
      shift 2
    else
      recipe_args+=("$1")
      shift
    fi
  done
}

# The word LM of beam search: stage 3 runs $lm_stage (default build_trigram), which writes
# $decode_lm (default WORK/lm/3gram.arpa); tuning uses it. A recipe may set both before
# standard_stages (recipes/an4/lm.sh does).
build_trigram() {
  "$asr" lm build --order 3 --manifest "$work/manifests/train.jsonl" -o "$work/lm/3gram.arpa"
}

# standard_stages CORPUS: the stages of a recipe whose manifests are train, dev and test:
#   0 prepare, 1 train (resumes an interrupted run), 2 greedy evaluation of dev and test,
#   3 the LM (default: trigram of the training transcripts), 4 LM weight and word score tuned
#   on dev, 5 beam + LM evaluation of dev and test.
standard_stages() {
  local corpus=$1 manifests=$work/manifests exp=$work/exp lm=${decode_lm:-$work/lm/3gram.arpa}
  run_stage 0 prepare "$asr" prepare "$corpus" ${source:+--source "$source"} --out "$work"
  run_stage 1 train "$asr" train --train "$manifests/train.jsonl" --dev "$manifests/dev.jsonl" \
    --exp "$exp" --config "$config" --resume
  run_stage 2 evaluate evaluate_splits "$exp/model.pt" greedy "dev test" --set decode.method=greedy
  local lm_done=lm done  # the stage is named after the LM it makes, and another made last makes it run again
  [ "$lm" = "$work/lm/3gram.arpa" ] || lm_done=lm_$(basename "$lm" .arpa)
  for done in "$work"/.done.3.*; do
    if [ -e "$done" ] && [ "$done" != "$work/.done.3.$lm_done" ]; then rm -f "$work"/.done.3.*; fi
  done
  run_stage 3 "$lm_done" "${lm_stage:-build_trigram}"
  run_stage 4 tune "$asr" tune --model "$exp/model.pt" --manifest "$manifests/dev.jsonl" \
    --lm "$lm" --out "$exp/model_lm.pt"
  run_stage 5 evaluate_lm evaluate_splits "$exp/model_lm.pt" beam_lm "dev test"
}

# ensemble_stages N FIRST: a sequence ensemble (asr ensemble --combine sequence) of WORK/exp's
# model and N - 1 more trained with seeds 2..N into WORK/exp_seed<k>, in stages FIRST..FIRST+3:
#   train the other seeds (each resumes if interrupted), combine, tune on dev (same LM and
#   grid as the single model), beam + LM evaluation of dev and test into WORK/exp_ensemble.
ensemble_stages() {
  local n=$1 first=$2 manifests=$work/manifests ens=$work/exp_ensemble k lm=${decode_lm:-$work/lm/3gram.arpa}
  local members=("$work/exp/model.pt")
  for k in $(seq 2 "$n"); do members+=("$work/exp_seed$k/model.pt"); done
  run_stage "$first" train_seeds train_seeds "$n"
  run_stage $((first + 1)) ensemble "$asr" ensemble "${members[@]}" --combine sequence --out "$ens/model.pt"
  run_stage $((first + 2)) tune_ensemble "$asr" tune --model "$ens/model.pt" --manifest "$manifests/dev.jsonl" \
    --lm "$lm" --out "$ens/model_lm.pt"
  run_stage $((first + 3)) evaluate_ensemble evaluate_splits "$ens/model_lm.pt" beam_lm "dev test"
}

# distill_stages N FIRST: one model taught by the N models of ensemble_stages (WORK/exp and
# WORK/exp_seed2..N) in stages FIRST..FIRST+3: train WORK/exp_distilled with the recipe's config
# and distill.teachers set to them (asr/distill.py: CTC plus the teachers' per-frame outputs
# on the clean audio), greedy evaluation, tune on dev, beam + LM evaluation of dev and test, and
# (with stages 10-11 done) the recording conditions. One model's decoding cost.
distill_stages() {
  local n=$1 first=$2 manifests=$work/manifests exp=$work/exp_distilled k lm=${decode_lm:-$work/lm/3gram.arpa}
  local root teachers="" path q="'"
  root=$(cd "$work" && pwd)  # absolute paths in the config: the run resumes from anywhere
  local paths=("$root/exp/model.pt")
  for k in $(seq 2 "$n"); do paths+=("$root/exp_seed$k/model.pt"); done
  for path in "${paths[@]}"; do
    teachers+="${teachers:+,}$q${path//$q/$q$q}$q"  # YAML single quotes ('' stands for ')
  done
  run_stage "$first" train_distilled "$asr" train --train "$manifests/train.jsonl" --dev "$manifests/dev.jsonl" \
    --exp "$exp" --config "$config" --set "distill.teachers=[$teachers]" --resume
  run_stage $((first + 1)) evaluate_distilled evaluate_splits "$exp/model.pt" greedy "dev test" --set decode.method=greedy
  run_stage $((first + 2)) tune_distilled "$asr" tune --model "$exp/model.pt" --manifest "$manifests/dev.jsonl" \
    --lm "$lm" --out "$exp/model_lm.pt"
  run_stage $((first + 3)) evaluate_distilled_lm evaluate_distilled_lm "$exp/model_lm.pt"
}

evaluate_distilled_lm() {
  evaluate_splits "$1" beam_lm "dev test"
  if [ -d "$work/conditions" ]; then evaluate_conditions "dev test" "$1"; fi
}

# take_flag --NAME VAR "$@": set VAR to 1 if --NAME is among the arguments, and leave the
# others in the array recipe_args.
take_flag() {
  local flag=$1 var=$2; shift 2
  recipe_args=()
  printf -v "$var" %s 0
  while [ $# -gt 0 ]; do
    if [ "$1" = "$flag" ]; then printf -v "$var" %s 1; else recipe_args+=("$1"); fi
    shift
  done
}

# train_seeds N: train WORK/exp_seed2 .. WORK/exp_seedN, the recipe's model with seeds 2..N.
train_seeds() {
  local k
  for k in $(seq 2 "$1"); do
    "$asr" train --train "$work/manifests/train.jsonl" --dev "$work/manifests/dev.jsonl" \
      --exp "$work/exp_seed$k" --config "$config" --set "train.seed=$k" --resume
  done
}

# show_model: the recipe's model to transcribe with (tuned if stage 4 ran).
show_model() {
  local model=$work/exp/model_lm.pt
  [ -f "$model" ] || model=$work/exp/model.pt
  echo "model: $model   try: $asr transcribe --model $model FILE.wav"
}

# condition_stages FIRST "SPLIT..." MODEL: stage FIRST writes copies of each split's audio under
# recording conditions (asr degrade: white noise at 20, 10 and 5 dB SNR, a simulated room, the
# 8 kHz band of a phone line) into WORK/conditions/; stage FIRST+1 decodes each split with MODEL
# clean and under every condition into <model folder>/conditions_<split>/ (conditions.md: WER per
# condition and as a multiple of clean).
conditions=${conditions:-white20 white10 white5 reverb band8k}
condition_stages() {
  local first=$1 splits=$2 model=$3
  run_stage "$first" conditions degrade_splits "$splits"
  run_stage $((first + 1)) evaluate_conditions evaluate_conditions "$splits" "$model"
}

degrade_splits() {
  local split c
  for split in $1; do
    for c in $conditions; do
      "$asr" degrade --manifest "$work/manifests/$split.jsonl" --condition "$c" \
        --out "$work/conditions/$split.$c.jsonl"
    done
  done
}

evaluate_conditions() {
  local split c model=$2
  for split in $1; do
    local args=()
    for c in $conditions; do args+=(--condition "$c=$work/conditions/$split.$c.jsonl"); done
    "$asr" evaluate --model "$model" --manifest "$work/manifests/$split.jsonl" \
      --out "$(dirname "$model")/conditions_$split" "${args[@]}"
  done
}

# show_conditions "SPLIT..." [EXP]: print the conditions table of each split that has one.
show_conditions() {
  local split exp=${2:-$work/exp}
  for split in $1; do
    if [ -f "$exp/conditions_$split/conditions.md" ]; then
      echo "== $split under recording conditions ($exp/conditions_$split)"
      tail -n +3 "$exp/conditions_$split/conditions.md"
    fi
  done
}
