import math

import jiwer
import pytest

from asr.scoring import (
    Counts,
    Normalizer,
    align,
    normalize_text,
    score,
    score_utterance,
    summarize,
)


def test_counts_match_a_hand_alignment():
    refs = ["ENTER SIX TWO FOUR", "GO", "YES NO"]
    hyps = ["ENTER SIX TO FOUR", "GO GO", "YES"]
    s, blocks = score(refs, hyps)
    assert (s.n_sentences, s.n_words) == (3, 7)
    assert (s.correct, s.substitutions, s.deletions, s.insertions) == (5, 1, 1, 1)
    assert s.errors == 3 and s.sentence_errors == 3
    assert s.wer == pytest.approx(100 * 3 / 7)
    # characters: "TWO"->"TO" is one deletion; " GO" three insertions; " NO" three deletions
    assert s.char_errors == 7 and s.n_chars == len("ENTER SIX TWO FOUR") + len("GO") + len("YES NO")
    assert (s.char_insertions, s.char_deletions, s.char_substitutions) == (3, 4, 0)
    assert blocks[0] == (
        "Scores: (#C #S #D #I) 3 1 0 0\nREF:  enter six TWO four\nHYP:  enter six TO  four\n"
    )
    assert "REF:  ** go" in blocks[1] and "HYP:  GO go" in blocks[1]  # sclite puts the extra word first
    assert "REF:  yes NO" in blocks[2] and "HYP:  yes **" in blocks[2]


def test_sclite_weights_not_unit_costs():
    # Two substitutions cost 8, a deletion and an insertion 6: sclite keeps B correct.
    assert align(["A", "B"], ["B", "C"]) == "DCI"
    unit = jiwer.process_words("A B", "B C")
    assert (unit.substitutions, unit.deletions, unit.insertions) == (2, 0, 0)
    # sclite minimizes 3 x errors + substitutions: here one more error than Levenshtein.
    ref, hyp = ["A", "B", "B", "D", "D", "C", "C", "B", "A"], ["C", "C", "A", "D", "B", "D"]
    assert Counts.from_ops(align(ref, hyp)) == Counts(correct=3, substitutions=1, deletions=5, insertions=2)
    unit = jiwer.process_words(" ".join(ref), " ".join(hyp))
    assert unit.substitutions + unit.deletions + unit.insertions == 7


def test_tie_breaking_as_sclite():
    # The back-trace runs from the end and takes the diagonal on ties, so the words
    # matched are the last ones (sclite prints REF "A a" / HYP "* a").
    assert align(["A"], ["B"]) == "S"
    assert align(["A", "A"], ["A"]) == "DC"
    assert align(["A"], ["A", "A"]) == "IC"
    assert align([], ["X", "Y"]) == "II" and align(["X"], []) == "D" and align([], []) == ""


def test_perfect_and_normalized():
    s, _ = score(["hello  World"], ["HELLO WORLD"])
    assert s.wer == 0 and s.cer == 0 and s.sentence_errors == 0
    assert normalize_text("  a  b ") == "A B"


def test_normalizer_rules():
    norm = Normalizer()
    assert norm("Hello, world!  It's a x-ray -- (really)?") == "HELLO WORLD IT'S A X-RAY REALLY"
    assert norm("don\u2019t 'quoted' - dash") == "DON'T QUOTED DASH"
    assert norm("\uff21\uff22 stra\u00dfe caf\u0065\u0301") == "AB STRASSE CAFÉ"  # full-width, ß, combining accent
    assert norm("G M E F  six two") == "G M E F SIX TWO"  # spelled letters and number words stay words
    assert norm("a;b@c*d") == "A B C D"  # characters sclite would read as markup are gone
    assert Normalizer(upper_case=False, strip_punctuation=False)("Ab, c") == "Ab, c"
    assert any("spelled letters" in r for r in norm.rules())
    assert norm.to_dict()["upper_case"] is True


def test_empty_reference_and_hypothesis():
    u = score_utterance("u1", "s", "", "EXTRA WORDS")
    assert u.words == Counts(insertions=2) and math.isnan(u.wer)
    u = score_utterance("u2", "s", "A B", None)
    assert u.missing and u.words == Counts(deletions=2) and u.wer == 100
    s = summarize([score_utterance("u1", "s", "", "")])
    assert s.n_words == 0 and math.isnan(s.wer) and s.errors == 0
    assert "%WER undefined [ 0 / 0" in s.table()


def test_mismatched_lengths():
    with pytest.raises(ValueError):
        score(["A"], [])
