# The AN4 recipe's word LM, sourced by run.sh and seeds.sh (after lib.sh; needs $asr, $work and
# $names, which both set to census unless told otherwise).
#
# names=census (the lists from $ASR_CENSUS_NAMES, else census.gov) or names=DIR (a folder holding
# them): about a third of AN4's utterances spell a name, a street or a town letter by letter
# (L I N D A, P I T T S B U R G H), the rest are commands, numbers and random letter strings
# (RUBOUT P N A M X SEVENTY TWO). The trigram of the training transcripts (lib.sh's build_trigram,
# WORK/lm/3gram.arpa) is mixed with a 6-gram over the letters of the US Census 1990 first names
# and surnames (asr lm census-names; asr lm spell --by-frequency: each name as often as the census
# saw it), with weights that follow the history (asr lm mix --bayes: each model's posterior given
# the words so far, priors fitted on the dev transcripts), so that the names' model speaks inside
# a spelled name and stays out of commands; written to WORK/lm/names_mix.arpa. Chosen on dev over
# five seeds (recipes/an4/RESULTS.md, "Spelled names in the LM" and "Five float32 seeds").
# names=none (or unset): the trigram alone, the recipe's LM before 2026-11-28.

an4_lm_path() {
  if [ "${names:-none}" = none ]; then echo "$work/lm/3gram.arpa"; else echo "$work/lm/names_mix.arpa"; fi
}

# build_an4_lm: the LM an4_lm_path names (and the trigram it mixes in, again unless reuse_trigram=1
# and it exists: seeds.sh makes an experiment's LM once and keeps what other experiments used).
build_an4_lm() {
  if [ "${reuse_trigram:-0}" != 1 ] || [ ! -f "$work/lm/3gram.arpa" ]; then build_trigram; fi
  [ "${names:-none}" != none ] || return 0
  local census=$work/lm/census source=$names
  [ "$source" != census ] || source=""  # $ASR_CENSUS_NAMES, else census.gov
  "$asr" lm census-names --out "$census" ${source:+--source "$source"} || {
    echo "an4/lm.sh: the recipe's LM needs the US Census 1990 name lists: --names DIR (a folder holding" \
      "them) or \$ASR_CENSUS_NAMES where census.gov cannot be reached, or --names none for the trigram alone" >&2
    return 1
  }
  "$asr" lm spell --by-frequency "$census/dist.all.last" "$census/dist.female.first" "$census/dist.male.first" \
    -o "$work/lm/names.txt"
  "$asr" lm build --order 6 "$work/lm/names.txt" -o "$work/lm/names6.arpa"
  "$asr" lm mix "$work/lm/3gram.arpa" "$work/lm/names6.arpa" --bayes --fit "$work/manifests/dev.jsonl" \
    -o "$work/lm/names_mix.arpa"
}
