"""How sure is a WER? Bootstrap confidence intervals and paired significance tests.

- `bootstrap_ci`: resample utterances with replacement (seeded); in each resample the
  error rate is the sum of errors over the sum of reference words; the interval is the
  2.5th and 97.5th percentile of those rates.
- `paired_bootstrap` (Bisani & Ney, ICASSP 2004): both systems are resampled with the
  same utterance indices. Reported: the WER difference B - A with the percentile interval,
  the probability that B is better (share of resamples with B - A < 0), and a two-sided
  p-value: twice the share of resamples on the smaller side of zero (a difference of
  exactly zero counts on both sides), at most 1.
- `sentence_segments` and `mapsswe`: the matched-pairs sentence-segment word error test
  of NIST's sc_stats (Gillick & Cox, ICASSP 1989); see `sentence_segments` for the
  segmentation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 1000
SEED = 0
MIN_GOOD = 2  # sc_stats' default number of correct words that bound a segment
_CHUNK = 2_000_000  # resampled indices held in memory at once


def _resampled_sums(columns: Sequence[np.ndarray], n_resamples: int, seed: int) -> list[np.ndarray]:
    """For each column, its sum over each of n_resamples bootstrap resamples of the rows
    (the same resampled rows for every column)."""
    n = len(columns[0])
    rng = np.random.default_rng(seed)
    sums = [np.empty(n_resamples) for _ in columns]
    step = max(1, _CHUNK // max(n, 1))
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        for col, out in zip(columns, sums):
            out[start:stop] = col[idx].sum(axis=1)
    return sums


def bootstrap_ci(errors: Sequence[int], n_ref: Sequence[int], n_resamples: int = N_RESAMPLES,
                 seed: int = SEED, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of the error rate (percent) over utterance resamples; None when
    there are no reference words at all."""
    errors, n_ref = np.asarray(errors, float), np.asarray(n_ref, float)
    if len(errors) == 0 or n_ref.sum() == 0:
        return None
    err, ref = _resampled_sums([errors, n_ref], n_resamples, seed)
    rates = 100.0 * err[ref > 0] / ref[ref > 0]  # a resample of only empty references has no rate
    tail = 100.0 * (1 - level) / 2
    lo, hi = np.percentile(rates, [tail, 100.0 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class PairedBootstrap:
    delta: float  # WER(B) - WER(A), percent points, on the full set
    ci: tuple[float, float]  # percentile interval of the difference
    p_b_better: float  # share of resamples where B has the lower WER
    p_value: float  # two-sided
    n_resamples: int
    seed: int


def paired_bootstrap(errors_a: Sequence[int], errors_b: Sequence[int], n_ref: Sequence[int],
                     n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = 0.95) -> PairedBootstrap | None:
    """Paired bootstrap of the WER difference B - A over the same utterances."""
    a, b, ref = (np.asarray(x, float) for x in (errors_a, errors_b, n_ref))
    if len(ref) == 0 or ref.sum() == 0:
        return None
    ea, eb, r = _resampled_sums([a, b, ref], n_resamples, seed)
    keep = r > 0
    deltas = 100.0 * (eb[keep] - ea[keep]) / r[keep]
    tail = 100.0 * (1 - level) / 2
    lo, hi = np.percentile(deltas, [tail, 100.0 - tail])
    below, above = float(np.mean(deltas < 0)), float(np.mean(deltas > 0))
    at_or_below, at_or_above = float(np.mean(deltas <= 0)), float(np.mean(deltas >= 0))
    return PairedBootstrap(
        delta=100.0 * (b.sum() - a.sum()) / ref.sum(), ci=(float(lo), float(hi)), p_b_better=below,
        p_value=min(1.0, 2 * min(at_or_below, at_or_above)) if below or above else 1.0,
        n_resamples=n_resamples, seed=seed)


@dataclass(frozen=True)
class Segment:
    n_ref: int  # reference words in the segment
    errors_a: int
    errors_b: int


def sentence_segments(ops_a: str, ops_b: str, min_good: int = MIN_GOOD) -> list[Segment]:
    """Cut one utterance, aligned against the same reference by two systems, into segments.

    `ops_a`, `ops_b` are alignments (see asr.scoring.align). Walking both along the
    reference words, a segment starts where either system makes an error (a substitution,
    deletion or insertion) and ends after `min_good` consecutive reference words that both
    systems got right (an insertion by either breaks the run). As in sc_stats a segment
    also takes in the `min_good` - 1 correct words before its first error, and the end of
    the utterance closes an open segment. Segments where neither system errs are dropped.
    Each error counts 1 (sc_stats' word error count).

    This is sc_stats' test_comp_sents (src/sclite/mtchprs.c of SCTK 2.4.10, the Debian
    sctk package); tests/test_sclite_agreement.py checks the two agree. Older releases
    dropped insertions at the very end of the second system's alignment.
    """
    segments: list[Segment] = []
    n1, n2 = len(ops_a), len(ops_b)
    i1 = i2 = 0
    eog1 = eog2 = 0  # last both-correct position before the current error region
    state, num_good = "b", 0  # b: no open segment, e: in errors, g: counting correct words

    def close(end1: int, end2: int) -> None:
        b1, b2 = max(eog1 - (min_good - 1), 0), max(eog2 - (min_good - 1), 0)
        part_a, part_b = ops_a[b1:end1 + 1], ops_b[b2:end2 + 1]
        err_a = sum(op != "C" for op in part_a)
        err_b = sum(op != "C" for op in part_b)
        refs = (sum(op != "I" for op in part_a) + sum(op != "I" for op in part_b)) // 2
        if err_a or err_b:
            segments.append(Segment(refs, err_a, err_b))

    while i1 < n1 or i2 < n2:
        while i1 < n1 and ops_a[i1] == "I":
            i1, state = i1 + 1, "e"
        while i2 < n2 and ops_b[i2] == "I":
            i2, state = i2 + 1, "e"
        both_correct = i1 < n1 and i2 < n2 and ops_a[i1] == "C" and ops_b[i2] == "C"
        if state == "b":
            if both_correct:
                eog1, eog2 = i1, i2
            else:
                state = "e"
        elif both_correct:  # state e or g
            num_good = num_good + 1 if state == "g" else 1
            if num_good == min_good:
                close(i1, i2)
                eog1, eog2, state = i1, i2, "b"
            else:
                state = "g"
        else:
            state = "e"
        i1 += i1 < n1
        i2 += i2 < n2
    if state != "b":
        close(n1 - 1, n2 - 1)
    return segments


@dataclass(frozen=True)
class Mapsswe:
    n_segments: int
    n_ref: int
    errors_a: int
    errors_b: int
    mean: float  # mean over segments of errors_a - errors_b
    std: float  # their standard deviation (n - 1 in the denominator)
    z: float | None  # mean / (std / sqrt(n)); None with fewer than two segments
    p_value: float | None  # two-sided, normal approximation


def mapsswe(segments: Sequence[Segment]) -> Mapsswe:
    """The matched-pairs test on segment error differences (A - B), as sc_stats computes it.

    When every segment has the same difference the standard deviation is zero: sc_stats
    then reports Z = 0; here Z is 0 if that difference is 0 and infinite (p = 0) otherwise.
    """
    d = np.array([s.errors_a - s.errors_b for s in segments], float)
    n = len(d)
    totals = (sum(s.n_ref for s in segments), sum(s.errors_a for s in segments),
              sum(s.errors_b for s in segments))
    if n < 2:
        return Mapsswe(n, *totals, float(d.mean()) if n else 0.0, 0.0, None, None)
    mean, std = float(d.mean()), float(d.std(ddof=1))
    if std == 0:
        z = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    else:
        z = mean / (std / math.sqrt(n))
    return Mapsswe(n, *totals, mean, std, z, math.erfc(abs(z) / math.sqrt(2)))
