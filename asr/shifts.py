"""Test-time shift averaging: decode the mean of the model's outputs over copies of the audio
that start a few milliseconds later (decode.shifts_ms).

A model trained on a few hours of speech changes about one word in a hundred when its input
moves by a fraction of the 10 ms hop (on AN4 dev, dropping the first 2.5 ms of each utterance
moved a single model's WER by more than a point, in either direction). Averaging the token
probabilities over copies delayed by 0, 5 and 10 ms, frame by frame, smooths that out, at the
cost of one forward pass per copy. The copies' output frames line up to within the largest
delay, a quarter of the model's 40 ms output frame at most with the AN4 recipe's shifts.

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
    k = min(k, len(wave))
    if isinstance(wave, torch.Tensor):
        return torch.cat([wave[:k].flip(0), wave])
    return np.concatenate([wave[:k][::-1], wave])


def average_copies(copies: Sequence[torch.Tensor | MemberLogProbs]) -> torch.Tensor | MemberLogProbs:
    """The per-frame mean probability of the copies' log-probabilities (each (T_i, V), or
    MemberLogProbs of them: member by member), as log-probabilities over the shortest T_i."""
    if len(copies) == 1:
        return copies[0]
    n = min(c.shape[0] for c in copies)
    if isinstance(copies[0], MemberLogProbs):
        members = zip(*(c.members for c in copies))
        return MemberLogProbs(tuple(average_copies(list(m)) for m in members))
    stacked = torch.stack([c[:n] for c in copies])  # K x (T, V)
    return torch.logsumexp(stacked, dim=0) - math.log(len(copies))
