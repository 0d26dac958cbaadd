import math

import pytest

from asr.scoring import align
from asr.significance import (
    Segment,
    bootstrap_ci,
    mapsswe,
    paired_bootstrap,
    sentence_segments,
)


def ops(ref: str, hyp: str) -> str:
    return align(ref.split(), hyp.split())


def test_sentence_segments_hand_built():
    """Three utterances, worked out by hand with 2 correct words bounding a segment.

    u1  REF A B C D E F G   A: A X C D E F G (B->X)   B: A B C D E G G (F->G)
        A's error at B closes after C D: segment A..D (4 ref words) errors 1 / 0;
        B's error at F is still open at the end: segment D..G (from the correct word
        before it) errors 0 / 1.
    u2  REF A B C D         A: A B C D Q (Q inserted)  B: A C D (B deleted)
        B's deletion closes after C D: segment A..D, 0 / 1; A's final insertion opens a
        segment that the end closes: C D Q, 2 ref words, 1 / 0.
    u3  REF X Y Z W         A: correct                 B: X Y Q W: segment X..W, 0 / 1.
    """
    segs = (sentence_segments(ops("A B C D E F G", "A X C D E F G"), ops("A B C D E F G", "A B C D E G G"))
            + sentence_segments(ops("A B C D", "A B C D Q"), ops("A B C D", "A C D"))
            + sentence_segments(ops("X Y Z W", "X Y Z W"), ops("X Y Z W", "X Y Q W")))
    assert segs == [Segment(4, 1, 0), Segment(4, 0, 1), Segment(4, 0, 1), Segment(2, 1, 0), Segment(4, 0, 1)]
    m = mapsswe(segs)
    # differences A - B: 1, -1, -1, 1, -1: mean -0.2, sample variance (2 * 1.44 + 3 * 0.64) / 4 = 1.2
    assert (m.n_segments, m.n_ref, m.errors_a, m.errors_b) == (5, 18, 2, 3)
    assert m.mean == pytest.approx(-0.2) and m.std == pytest.approx(math.sqrt(1.2))
    assert m.z == pytest.approx(-0.2 / (math.sqrt(1.2) / math.sqrt(5)))  # -0.408, as sc_stats prints
    assert m.p_value == pytest.approx(math.erfc(abs(m.z) / math.sqrt(2)))
    assert m.p_value > 0.05


def test_segments_are_symmetric_and_skip_agreement():
    a, b = ops("A B C D E F", "A B X D E F"), ops("A B C D E F", "A B C D E F F")
    assert sentence_segments(a, b) == [Segment(s.n_ref, s.errors_b, s.errors_a) for s in sentence_segments(b, a)]
    assert sentence_segments("CCCC", "CCCC") == []  # both right everywhere: no segment
    assert sentence_segments("", "II") == [Segment(0, 0, 2)]  # empty reference, B inserts
    # Separate error regions become separate segments only with two correct words between.
    assert len(sentence_segments("SCSCCS", "CCCCCC")) == 2
    assert len(sentence_segments("SCCSCS", "CCCCCC")) == 2
    assert len(sentence_segments("SCCCCS", "CCCCCC", min_good=4)) == 2
    assert len(sentence_segments("SCCCCS", "CCCCCC", min_good=5)) == 1


def test_mapsswe_degenerate_cases():
    assert mapsswe([]).z is None and mapsswe([Segment(3, 1, 0)]).p_value is None
    same = mapsswe([Segment(3, 1, 1), Segment(2, 2, 2)])
    assert same.z == 0 and same.p_value == 1
    always_a = mapsswe([Segment(3, 1, 0)] * 5)  # sc_stats would print Z = 0 here
    assert always_a.z == math.inf and always_a.p_value == 0


def test_bootstrap_ci():
    lo, hi = bootstrap_ci([1] * 50, [10] * 50)
    assert lo == hi == pytest.approx(10.0)  # every utterance has the same rate
    errors = [0, 1, 3, 0, 2, 0, 5, 1, 0, 0] * 5
    words = [5, 6, 8, 4, 7, 3, 9, 6, 5, 4] * 5
    wer = 100 * sum(errors) / sum(words)
    lo, hi = bootstrap_ci(errors, words)
    assert lo < wer < hi and (lo, hi) == bootstrap_ci(errors, words)  # seeded
    lo4, hi4 = bootstrap_ci(errors * 4, words * 4)
    assert hi4 - lo4 < hi - lo  # four times the data: a narrower interval
    assert bootstrap_ci([2, 0], [0, 0]) is None and bootstrap_ci([], []) is None
    assert bootstrap_ci([1, 2], [0, 4]) is not None  # a resample of only the empty reference is skipped


def test_paired_bootstrap():
    n_ref = [5, 6, 8, 4, 7, 3, 9, 6, 5, 4] * 3
    errs = [0, 1, 3, 0, 2, 0, 5, 1, 0, 0] * 3
    same = paired_bootstrap(errs, errs, n_ref)
    assert same.delta == 0 and same.ci == (0, 0) and same.p_value == 1
    better = [max(e - 1, 0) for e in errs]  # B fixes one error wherever A had one
    pb = paired_bootstrap(errs, better, n_ref)
    assert pb.delta == pytest.approx(-100 * 15 / sum(n_ref))
    assert pb.ci[1] < 0 and pb.p_b_better == 1 and pb.p_value == 0
    swapped = paired_bootstrap(better, errs, n_ref)
    assert swapped.delta == pytest.approx(-pb.delta) and swapped.ci[0] == pytest.approx(-pb.ci[1])
    # One utterance better, one worse: no evidence either way.
    mixed = paired_bootstrap([1, 0] * 10, [0, 1] * 10, [5, 5] * 10)
    assert mixed.delta == 0 and mixed.p_value > 0.5 and mixed.ci[0] < 0 < mixed.ci[1]
