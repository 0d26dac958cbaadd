import json

import pytest

from asr.scoring import normalize_text, score, write_report


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
    assert blocks[0] == (
        "Scores: (#C #S #D #I) 3 1 0 0\nREF:  enter six TWO four\nHYP:  enter six TO  four\n"
    )
    assert "REF:  go **" in blocks[1] and "HYP:  go GO" in blocks[1]
    assert "REF:  yes NO" in blocks[2] and "HYP:  yes **" in blocks[2]


def test_perfect_and_normalized():
    s, _ = score(["hello  World"], ["HELLO WORLD"])
    assert s.wer == 0 and s.cer == 0 and s.sentence_errors == 0
    assert normalize_text("  a  b ") == "A B"


def test_report_files(tmp_path):
    s = write_report(tmp_path, ids=["u1", "u2"], speakers=["spk", "spk"], refs=["A B", "C"], hyps=["A", "C"],
                     title="test", extra={"decode": "greedy"})
    assert (tmp_path / "ref.trn").read_text() == "A B (spk-u1)\nC (spk-u2)\n"
    assert (tmp_path / "hyp.trn").read_text() == "A (spk-u1)\nC (spk-u2)\n"
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["wer"] == pytest.approx(100 / 3) and data["deletions"] == 1 and data["decode"] == "greedy"
    summary = (tmp_path / "summary.txt").read_text()
    assert "%WER 33.33 [ 1 / 3, 0 ins, 1 del, 0 sub ]" in summary and "| Sum/Avg" in summary
    assert "id: u1\nScores: (#C #S #D #I) 1 0 1 0" in (tmp_path / "errs.txt").read_text()
    assert s.sentence_errors == 1


def test_mismatched_lengths():
    with pytest.raises(ValueError):
        score(["A"], [])
