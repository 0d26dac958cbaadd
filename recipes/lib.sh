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

# run_stage N NAME COMMAND...: run a stage once, timing it into WORK/stage_times.txt.
run_stage() {
  local n=$1 name=$2; shift 2
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  if [ -f "$work/.done.$n.$name" ]; then
    echo "== stage $n ($name): already done, skipping"
    return 0
  fi
  local m
  for m in $(seq $((n + 1)) 19); do rm -f "$work"/.done."$m".*; done
  echo "== stage $n ($name)"
  local start
  start=$(date +%s)
  "$@"
  local secs=$(( $(date +%s) - start ))
  echo "stage $n ($name): ${secs}s" | tee -a "$work/stage_times.txt"
  touch "$work/.done.$n.$name"
}

# evaluate_splits MODEL NAME "SPLIT..." [ARGS...]: decode WORK/manifests/SPLIT.jsonl for each
# split into WORK/exp/decode_<split>_NAME.
evaluate_splits() {
  local model=$1 name=$2 splits=$3; shift 3
  local split
  for split in $splits; do
    "$asr" evaluate --model "$model" --manifest "$work/manifests/$split.jsonl" \
      --out "$work/exp/decode_${split}_$name" "$@"
  done
}

# show_results "SPLIT..." "NAME...": print the summary lines of each decode that exists.
show_results() {
  local split name
  for split in $1; do
    for name in $2; do
      if [ -f "$work/exp/decode_${split}_$name/summary.txt" ]; then
        echo "== $split, $name ($work/exp/decode_${split}_$name)"
        tail -n 2 "$work/exp/decode_${split}_$name/summary.txt"
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

# standard_stages CORPUS: the stages of a recipe whose manifests are train, dev and test:
#   0 prepare, 1 train (resumes an interrupted run), 2 greedy evaluation of dev and test,
#   3 trigram LM of the training transcripts, 4 LM weight and word score tuned on dev,
#   5 beam + LM evaluation of dev and test.
standard_stages() {
  local corpus=$1 manifests=$work/manifests exp=$work/exp
  run_stage 0 prepare "$asr" prepare "$corpus" ${source:+--source "$source"} --out "$work"
  run_stage 1 train "$asr" train --train "$manifests/train.jsonl" --dev "$manifests/dev.jsonl" \
    --exp "$exp" --config "$config" --resume
  run_stage 2 evaluate evaluate_splits "$exp/model.pt" greedy "dev test" --set decode.method=greedy
  run_stage 3 lm "$asr" lm build --order 3 --manifest "$manifests/train.jsonl" -o "$work/lm/3gram.arpa"
  run_stage 4 tune "$asr" tune --model "$exp/model.pt" --manifest "$manifests/dev.jsonl" \
    --lm "$work/lm/3gram.arpa" --out "$exp/model_lm.pt"
  run_stage 5 evaluate_lm evaluate_splits "$exp/model_lm.pt" beam_lm "dev test"
}

# show_model: the recipe's model to transcribe with (tuned if stage 4 ran).
show_model() {
  local model=$work/exp/model_lm.pt
  [ -f "$model" ] || model=$work/exp/model.pt
  echo "model: $model   try: $asr transcribe --model $model FILE.wav"
}
