"""Our counts equal NIST sclite's, and our matched-pairs test equals sc_stats', on the same
trn files: many seeded random cases (empty sides, repeated words, unicode, ties)."""

import random

import jiwer
import pytest

from asr.report import build_report, write_report
from asr.scoring import score_utterance
from asr.significance import mapsswe, sentence_segments
from asr.trn import TrnEntry, format_trn
from tests.sclite_tools import (
    assert_report_agrees_with_sclite,
    require_tool,
    sc_stats_mapsswe,
    sclite_alignments,
)

N_CASES = 400
N_SYSTEM_PAIRS = 50  # test sets of 12 utterances decoded by two random systems
# A tiny vocabulary gives many repeated words and equal-cost alignments. Raw texts: they
# are normalized before scoring (case, punctuation, NFKC), as in any report.
VOCAB = ["a", "b", "C", "the", "The,", "é", "école", "Ω", "да", "日本", "straße", "don't", "x-ray", "A"]
FIXED = [("", ""), ("", "A B"), ("A B", ""), ("A A A A", "A A"), ("A A", "A A A A"), ("A B", "B C"),
         ("A B B D D C C B A", "C C A D B D"), ("B A", "A B"), ("A B C", "C B A"), ("GO", "GO GO"),
         ("hello, world", "HELLO WORLD"), ("ÉCOLE école", "ecole ÉCOLE")]


def edit(words: list[str], rng: random.Random, vocab: list[str]) -> list[str]:
    """Recognizer-like errors: substitutions, deletions, insertions, repeats."""
    out = []
    for w in words:
        r = rng.random()
        if r < 0.15:
            out.append(rng.choice(vocab))
        elif r < 0.25:
            continue
        else:
            out.append(w)
        if rng.random() < 0.1:
            out.append(rng.choice([w, rng.choice(vocab)]))
    return out


def random_cases(seed: int, n: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    cases = list(FIXED)
    while len(cases) < n:
        vocab = rng.sample(VOCAB, rng.randint(1, 5))
        ref = [rng.choice(vocab) for _ in range(rng.choice([0, 1, 2, 3, 5, 8, 12]))]
        hyp = edit(ref, rng, vocab) if rng.random() < 0.6 else [rng.choice(vocab) for _ in range(rng.randint(0, 10))]
        cases.append((" ".join(ref), " ".join(hyp)))
    return cases


def test_word_and_character_counts_equal_sclite(tmp_path):
    require_tool("sclite")
    cases = random_cases(seed=4, n=N_CASES)
    ids = [f"utt{i:03d}" for i in range(len(cases))]
    speakers = [f"spk{i % 7}" for i in range(len(cases))]
    out = tmp_path / "report"
    write_report(out, ids, speakers, [r for r, _ in cases], [h for _, h in cases])
    # Per utterance, per speaker and in total (sclite's Sum row).
    assert assert_report_agrees_with_sclite(out) == N_CASES

    # Characters: sclite -c splits words into characters; our spaces are written as '_'.
    report = build_report(ids, speakers, [r for r, _ in cases], [h for _, h in cases])
    for name, attr in (("ref", "ref"), ("hyp", "hyp")):
        text = format_trn(TrnEntry(u.id, u.speaker, getattr(u, attr).replace(" ", "_")) for u in report.utts)
        (tmp_path / f"{name}_chars.trn").write_text(text, encoding="utf-8")
    theirs = sclite_alignments(tmp_path / "ref_chars.trn", tmp_path / "hyp_chars.trn", chars=True)
    disagree = [u for u in report.utts if u.chars != theirs[u.id]]
    assert not disagree, [(u.ref, u.hyp, u.chars, theirs[u.id]) for u in disagree[:5]]

    # The cases are hard enough to tell sclite's alignment from unit-cost Levenshtein.
    differ = 0
    for u in report.utts:
        unit = jiwer.process_words(u.ref or "-", u.hyp or "-") if u.ref and u.hyp else None
        if unit and (unit.substitutions, unit.deletions, unit.insertions) != (
                u.words.substitutions, u.words.deletions, u.words.insertions):
            differ += 1
    assert differ >= 10


def test_matched_pairs_equal_sc_stats(tmp_path):
    """Segments, error totals, mean, std and Z of sc_stats' MAPSSWE on random system pairs."""
    require_tool("sc_stats")
    rng = random.Random(0)
    compared = 0
    for _ in range(N_SYSTEM_PAIRS):
        vocab = rng.sample(VOCAB, 4)
        refs = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))) for _ in range(12)]
        pairs = [(score_utterance(f"u{i}", f"s{i % 3}", r, " ".join(edit(r.split(), rng, vocab))),
                  score_utterance(f"u{i}", f"s{i % 3}", r, " ".join(edit(r.split(), rng, vocab))))
                 for i, r in enumerate(refs)]
        ours = mapsswe([seg for a, b in pairs for seg in sentence_segments(a.ops, b.ops)])
        if ours.n_segments < 2:
            continue
        for name, i, text in (("ref", 0, "ref"), ("a", 0, "hyp"), ("b", 1, "hyp")):
            (tmp_path / f"{name}.trn").write_text(
                format_trn(TrnEntry(p[i].id, p[i].speaker, getattr(p[i], text)) for p in pairs), encoding="utf-8")
        theirs = sc_stats_mapsswe(tmp_path / "ref.trn", tmp_path / "a.trn", tmp_path / "b.trn", tmp_path / "sc")
        assert (ours.n_segments, ours.n_ref, ours.errors_a, ours.errors_b) == (
            theirs["n_segments"], theirs["n_ref"], theirs["errors_a"], theirs["errors_b"])
        assert ours.mean == pytest.approx(theirs["mean"], abs=6e-4)  # sc_stats prints 3 decimals
        assert ours.std == pytest.approx(theirs["std"], abs=6e-4)
        if ours.std > 0:
            assert ours.z == pytest.approx(theirs["z"], abs=6e-4)
        compared += 1
    assert compared >= N_SYSTEM_PAIRS - 2


def test_trailing_insertions_count_for_either_system(tmp_path):
    """B's extra word at the very end of u1, after words both got right, is an error in
    either order (older sc_stats releases dropped it when B was the second system)."""
    require_tool("sc_stats")
    (tmp_path / "ref.trn").write_text("A B (s-u1)\nC D E (s-u2)\n")
    (tmp_path / "a.trn").write_text("A B (s-u1)\nC X E (s-u2)\n")
    (tmp_path / "b.trn").write_text("A B EXTRA (s-u1)\nC D Y (s-u2)\n")
    a_first = sc_stats_mapsswe(tmp_path / "ref.trn", tmp_path / "a.trn", tmp_path / "b.trn", tmp_path / "ab")
    b_first = sc_stats_mapsswe(tmp_path / "ref.trn", tmp_path / "b.trn", tmp_path / "a.trn", tmp_path / "ba")
    assert (a_first["errors_a"], a_first["errors_b"], a_first["n_segments"]) == (1, 2, 2)
    assert (b_first["errors_a"], b_first["errors_b"], b_first["n_segments"]) == (2, 1, 2)
    ours = mapsswe([seg for a, b in (("CC", "CCI"), ("CSC", "CCS")) for seg in sentence_segments(a, b)])
    assert (ours.errors_a, ours.errors_b, ours.n_segments) == (1, 2, 2)
    assert ours.z == pytest.approx(a_first["z"], abs=6e-4)
