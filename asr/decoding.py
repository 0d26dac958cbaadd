"""CTC decoders behind one interface: decoder(log_probs, lens) -> list[Hypothesis]."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from asr.config import DecodeConfig
from asr.tokenizer import CharTokenizer


@dataclass
class Hypothesis:
    text: str
    tokens: list[int]  # emitted token ids, blanks and repeats removed
    score: float  # log-probability of the path (greedy) or decoder score (beam)
    timesteps: list[int] = field(default_factory=list)  # output frame of each token


class GreedyDecoder:
    """Best path: argmax per frame, merge repeats, drop blanks."""

    def __init__(self, tokenizer: CharTokenizer):
        self.tokenizer = tokenizer

    def __call__(self, log_probs: torch.Tensor, lens: torch.Tensor) -> list[Hypothesis]:
        best, best_ids = log_probs.max(dim=-1)  # (B, T, V) -> (B, T)
        hyps = []
        for b in range(log_probs.shape[0]):
            n = int(lens[b])
            ids = best_ids[b, :n]
            keep = torch.ones(n, dtype=torch.bool)
            keep[1:] = ids[1:] != ids[:-1]  # first frame of each run
            keep &= ids != self.tokenizer.blank_id
            frames = keep.nonzero().squeeze(1)
            tokens = ids[frames].tolist()
            hyps.append(
                Hypothesis(
                    text=self.tokenizer.decode(tokens),
                    tokens=tokens,
                    score=float(best[b, :n].sum()),
                    timesteps=frames.tolist(),
                )
            )
        return hyps


def make_decoder(cfg: DecodeConfig, tokenizer: CharTokenizer) -> GreedyDecoder:
    if cfg.method == "greedy":
        return GreedyDecoder(tokenizer)
    raise ValueError(f"unknown decoding method {cfg.method!r} (available: greedy)")
