"""Test-time shift averaging: decode the mean of the model's outputs over copies of the audio
that start a few milliseconds later (decode.shifts_ms).

A model trained on a few hours of speech changes about one word in a hundred when its input
moves by a fraction of the 10 ms hop (on AN4 dev, dropping the first 2.5 ms of each utterance
moved a single model's WER by more than a point, in either direction). Averaging the token
probabilities over copies delayed by 0, 5 and 10 ms, frame by frame, smooths that out, at the
cost of one forward pass per copy. The copies' output frames line up to within the largest
delay (shorter than one output frame: decode.shifts_ms is checked against it), a quarter of the
model's 40 ms output frame with the AN4 recipe's shifts. Word times are moved back by the mean
delay.

A copy delayed by k samples starts with the first k samples reflected, so it holds the same
audio and no silence is invented.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from asr.model import MemberLogProbs


def shift_samples(shifts_ms: Sequence[float], sample_rate: int) -> tuple[int, ...]:
    """The delays in samples, in the order given ((0,) for one plain pass)."""
    return tuple(round(ms * sample_rate / 1000) for ms in shifts_ms) or (0,)


def delayed(wave, k: int):
    """`wave` (numpy or torch, 1-D) with its first k samples reflected in front of it."""
    if k <= 0:
        return wave
    k = min(k, len(wave))  # a reflection cannot be longer than the audio
    if isinstance(wave, torch.Tensor):
        return torch.cat([wave[:k].flip(0), wave])
    return np.concatenate([wave[:k][::-1], wave])


def average_copies(copies: Sequence[torch.Tensor | MemberLogProbs]) -> torch.Tensor | MemberLogProbs:
    """The per-frame mean probability of the copies' log-probabilities (each (T_i, V), or
    MemberLogProbs of them: member by member), as log-probabilities over the shortest T_i."""
    mean = copies[0]
    for k, copy in enumerate(copies[1:], start=2):
        mean = fold_copy(mean, copy, k)
    return mean


def fold_copy(mean: torch.Tensor | MemberLogProbs, copy: torch.Tensor | MemberLogProbs,
              k: int) -> torch.Tensor | MemberLogProbs:
    """The mean of k copies from the mean of the first k - 1 and the k-th (log-probabilities,
    over the shorter of the two), so that a caller keeps one tensor per utterance, not k."""
    if isinstance(mean, MemberLogProbs):
        return MemberLogProbs(tuple(fold_copy(m, c, k) for m, c in zip(mean.members, copy.members)))
    n = min(mean.shape[0], copy.shape[0])
    return torch.logaddexp(mean[:n] + math.log((k - 1) / k), copy[:n] - math.log(k))


def mean_delay_seconds(delays: Sequence[int], sample_rate: int) -> float:
    """How late the averaged outputs are, on average, against the audio (for word times)."""
    return sum(delays) / len(delays) / sample_rate
