import math

import pytest
import torch

from asr.config import DecodeConfig
from asr.decoding import GreedyDecoder, make_decoder
from asr.tokenizer import CharTokenizer

TOK = CharTokenizer(["<blank>", "|", "A", "B", "C"])


def log_probs_from_path(path, n_tokens=5, p=0.9):
    """Frames whose best token follows `path`, probability p on it, the rest spread evenly."""
    lp = torch.full((len(path), n_tokens), math.log((1 - p) / (n_tokens - 1)))
    for t, tok in enumerate(path):
        lp[t, tok] = math.log(p)
    return lp


def test_greedy_merges_repeats_and_drops_blanks():
    # frames: A A _ A B | | C _ C _   -> "AAB CC" ... with tokens A, A, B, |, C, C
    path = [2, 2, 0, 2, 3, 1, 1, 4, 0, 4, 0]
    lp = log_probs_from_path(path).unsqueeze(0)
    hyp = GreedyDecoder(TOK)(lp, torch.tensor([len(path)]))[0]
    assert hyp.tokens == [2, 2, 3, 1, 4, 4]
    assert hyp.text == "AAB CC"
    assert hyp.timesteps == [0, 3, 4, 5, 7, 9]
    assert hyp.score == pytest.approx(len(path) * math.log(0.9), rel=1e-5)


def test_greedy_respects_lengths_in_a_batch():
    a = log_probs_from_path([2, 0, 3, 3])
    b = log_probs_from_path([4, 4, 4, 4])
    lp = torch.stack([a, b])
    hyps = GreedyDecoder(TOK)(lp, torch.tensor([2, 4]))
    assert [h.text for h in hyps] == ["A", "C"]


def test_all_blank_gives_empty_text():
    hyp = GreedyDecoder(TOK)(log_probs_from_path([0, 0, 0]).unsqueeze(0), torch.tensor([3]))[0]
    assert hyp.text == "" and hyp.tokens == [] and hyp.timesteps == []


def test_make_decoder():
    assert isinstance(make_decoder(DecodeConfig(method="greedy"), TOK), GreedyDecoder)
    with pytest.raises(ValueError, match="unknown decoding method"):
        make_decoder(DecodeConfig(method="nope"), TOK)
