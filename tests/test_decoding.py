import math

import pytest
import torch

from asr.config import DecodeConfig
from asr.decoding import GreedyDecoder, make_decoder
from asr.tokenizer import CharTokenizer
from tests.conftest import log_probs_from_path

TOK = CharTokenizer(["<blank>", "|", "A", "B", "C"])


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


def random_log_probs(seed, batch=3, frames=40, n_tokens=5):
    g = torch.Generator().manual_seed(seed)
    # Peaky, CTC-like posteriors: blank dominates most frames.
    logits = torch.randn(batch, frames, n_tokens, generator=g) * 3
    logits[..., 0] += 2.0
    return logits.log_softmax(-1)


@pytest.mark.parametrize("seed", range(5))
def test_beam_of_one_without_lm_equals_greedy(seed):
    lp = random_log_probs(seed)
    lens = torch.tensor([40, 31, 17])
    beam = make_decoder(DecodeConfig(method="beam", beam_size=1), TOK)
    greedy = GreedyDecoder(TOK)
    for b, g in zip(beam(lp, lens), greedy(lp, lens)):
        assert b.text == g.text
        # The beam decoder drops word separators at the edges; greedy keeps what it sees.
        pairs = list(zip(g.tokens, g.timesteps))
        while pairs and pairs[0][0] == 1:
            pairs.pop(0)
        while pairs and pairs[-1][0] == 1:
            pairs.pop()
        assert b.tokens == [t for t, _ in pairs] and b.timesteps == [s for _, s in pairs]


def spell(text, frames_per_char=3):
    """Log-probs that spell `text` (one confident frame per character, blanks between)."""
    path = []
    for c in text:
        path += [TOK.tokens.index("|" if c == " " else c)] + [0] * (frames_per_char - 1)
    return log_probs_from_path(path, p=0.8)


def test_lexicon_restricts_words_and_lm_breaks_ties(tmp_path):
    from asr.decoding import write_lexicon
    from asr.lm import estimate, write_arpa

    assert write_lexicon(["AB", "BA", "CAB", "A-B", "<unk>"], tmp_path / "lex.txt", TOK) == 3
    assert (tmp_path / "lex.txt").read_text().splitlines()[0] == "AB A B |"
    # Frames spelling "AB" but with "B" and "A" equally likely in both positions.
    lp = spell("AB")
    a, b = TOK.tokens.index("A"), TOK.tokens.index("B")
    lp[0, a] = lp[0, b] = lp[3, a] = lp[3, b] = math.log(0.45)
    lp = lp.unsqueeze(0)
    lens = torch.tensor([lp.shape[1]])
    cfg = DecodeConfig(method="beam", beam_size=20, n_best=3)
    no_lm = make_decoder(cfg, TOK, lexicon=tmp_path / "lex.txt")
    assert no_lm(lp, lens)[0].text in {"AB", "BA"}
    write_arpa(estimate([["BA"]] * 20 + [["AB"]], 2), tmp_path / "lm.arpa")
    with_lm = make_decoder(DecodeConfig(method="beam", beam_size=20, n_best=3, lm_weight=2.0), TOK,
                           lexicon=tmp_path / "lex.txt", lm=tmp_path / "lm.arpa")
    best = with_lm.n_best(lp, lens)[0]
    assert best[0].text == "BA"
    texts = [h.text for h in best]
    assert "AB" in texts and set(texts) <= {"AB", "BA", "CAB", ""}  # lexicon words only (or nothing)
    assert best[0].score >= best[1].score


def test_lexicon_search_keeps_the_last_word_without_a_trailing_separator(tmp_path):
    from asr.decoding import write_lexicon

    from asr.lm import estimate, write_arpa

    write_lexicon(["AB", "BA", "C"], tmp_path / "lex.txt", TOK)
    write_arpa(estimate([["AB", "BA", "C"], ["C", "AB"]], 2), tmp_path / "lm.arpa")
    lp = spell("AB BA C").unsqueeze(0)  # no separator after the last word
    dec = make_decoder(DecodeConfig(method="beam", beam_size=10), TOK, lexicon=tmp_path / "lex.txt",
                       lm=tmp_path / "lm.arpa")
    hyp = dec(lp, torch.tensor([lp.shape[1]]))[0]
    assert hyp.text == "AB BA C"
    assert hyp.timesteps == [0, 3, 6, 9, 12, 15, 18]  # the frames that spelled each token


SP_TEXTS = ["HELLO WORLD", "THE WORLD IS BIG", "HELLO THERE", "IT'S A BIG WORLD OUT THERE"] * 5


def pieces_path(tok, text):
    """Frames spelling `text` in `tok`'s tokens: each token, then a blank."""
    path = []
    for i in tok.encode(text):
        path += [i, 0]
    return log_probs_from_path(path, n_tokens=len(tok)).unsqueeze(0)


@pytest.mark.parametrize("unit", ["bpe", "unigram", "word"])
def test_decoders_join_pieces_into_words(unit, tmp_path):
    from asr.config import TokenizerConfig
    from asr.decoding import write_lexicon
    from asr.lm import estimate, write_arpa
    from asr.tokenizer import build_tokenizer

    tok = build_tokenizer(TokenizerConfig(unit=unit, vocab_size=25), SP_TEXTS)
    text = "HELLO THERE BIG WORLD"
    lp = pieces_path(tok, text)
    lens = torch.tensor([lp.shape[1]])
    n = len(tok.encode(text))
    greedy = GreedyDecoder(tok)(lp, lens)[0]
    assert greedy.text == text and greedy.timesteps == list(range(0, 2 * n, 2))
    free = make_decoder(DecodeConfig(method="beam", beam_size=10), tok)(lp, lens)[0]
    assert free.text == text and free.tokens == greedy.tokens and free.timesteps == greedy.timesteps
    words = sorted({w for t in SP_TEXTS for w in t.split()})
    assert write_lexicon(words + ["ZEBRA"], tmp_path / "lex.txt", tok) == len(words)  # ZEBRA: no spelling
    write_arpa(estimate([t.split() for t in SP_TEXTS], 2), tmp_path / "lm.arpa")
    beam = make_decoder(DecodeConfig(method="beam", beam_size=10, lm_weight=0.5), tok, lexicon=tmp_path / "lex.txt",
                        lm=tmp_path / "lm.arpa")
    hyp = beam(lp, lens)[0]
    assert hyp.text == text and hyp.tokens == greedy.tokens and hyp.timesteps == greedy.timesteps
