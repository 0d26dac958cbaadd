"""Word timestamps from CTC forced alignment of a hypothesis against the model's log-probs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF

from asr.tokenizer import Tokenizer


@dataclass
class WordSpan:
    word: str
    start: float  # seconds
    end: float  # seconds
    score: float  # mean posterior of the word's aligned frames, 0..1


def align_words(
    log_probs: torch.Tensor, text: str, tokenizer: Tokenizer, frame_seconds: float
) -> list[WordSpan]:
    """Align `text` to log-probs (T, V) of one utterance; one span per word, in order.

    A word runs from its first token's first frame to the end of its last token's last
    frame (the tokenizer says which tokens make a word). Text the frames cannot hold (CTC
    needs a frame per token, and one more between repeated tokens) gives no spans.
    """
    ids = tokenizer.encode(text, skip_unknown=True)
    if not ids:
        return []
    n_frames = log_probs.shape[0]
    repeats = sum(a == b for a, b in zip(ids, ids[1:]))
    if len(ids) + repeats > n_frames:
        return []
    targets = torch.tensor([ids], dtype=torch.int32)
    alignment, scores = AF.forced_align(
        log_probs.unsqueeze(0).float().cpu(),  # (T, V) -> (1, T, V)
        targets,
        torch.tensor([n_frames]),
        torch.tensor([len(ids)]),
        blank=tokenizer.blank_id,
    )
    spans = AF.merge_tokens(alignment[0], scores[0].exp(), blank=tokenizer.blank_id)
    groups = tokenizer.word_groups([s.token for s in spans])  # which tokens make each word
    return [_word([spans[k] for k in group], tokenizer, frame_seconds) for group in groups]


def _word(spans, tokenizer: Tokenizer, frame_seconds: float) -> WordSpan:
    n = sum(s.end - s.start for s in spans)
    return WordSpan(
        word=tokenizer.decode([s.token for s in spans]),
        start=round(spans[0].start * frame_seconds, 3),
        end=round(spans[-1].end * frame_seconds, 3),
        score=round(sum(s.score * (s.end - s.start) for s in spans) / n, 4),
    )
