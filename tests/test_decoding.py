import dataclasses
import gc
import math

import pytest
import torch

from asr.config import DecodeConfig
from asr.decoding import GreedyDecoder, make_decoder
from asr.model import MemberLogProbs
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


def test_a_lexicon_search_knows_its_vocabulary_and_evaluation_counts_what_it_misses(tmp_path):
    from asr.decoding import write_lexicon
    from asr.evaluate import oov_line, out_of_vocabulary

    write_lexicon(["AB", "BA", "C"], tmp_path / "lex.txt", TOK)
    with (tmp_path / "lex.txt").open("a") as f:
        f.write("AB A | B |\n")  # a second spelling of a word already there
    cfg = DecodeConfig(method="beam", beam_size=4)
    assert make_decoder(cfg, TOK, lexicon=tmp_path / "lex.txt").vocabulary == {"AB", "BA", "C"}
    rescoring = make_decoder(dataclasses.replace(cfg, rescore=True), TOK, lexicon=tmp_path / "lex.txt")
    assert rescoring.vocabulary == {"AB", "BA", "C"}
    assert make_decoder(cfg, TOK).vocabulary is None  # lexicon-free: open vocabulary
    assert make_decoder(DecodeConfig(), TOK).vocabulary is None  # greedy

    oov = out_of_vocabulary(["AB C CA", "", "CA BAC AB"], {"AB", "BA", "C"})
    assert oov == {"ref_words": 6, "oov_words": 3, "oov_rate": 50.0, "oov_types": ["BAC", "CA"]}
    assert oov_line(oov) == "reference words outside the decoder's lexicon: 3 of 6 (50.00%): BAC CA"
    assert oov_line(oov, max_types=1).endswith(": BAC (+1 more)")
    assert out_of_vocabulary([], {"A"})["oov_rate"] == 0.0


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


def brute_force_ctc_log_likelihood(lp, target, blank=0):
    """log sum over every frame path that collapses to `target` (exponential: tiny inputs only)."""
    import itertools

    total = -math.inf
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        collapsed = [t for i, t in enumerate(path) if t != blank and (i == 0 or t != path[i - 1])]
        if collapsed == list(target):
            total = float(torch.logaddexp(torch.tensor(total), lp[range(len(path)), list(path)].sum()))
    return total


def sequence_decoder(cfg, lexicon=None, lm=None):
    return make_decoder(cfg, TOK, lexicon=lexicon, lm=lm, sequence_ensemble=True)


def test_sequence_ensemble_scores_transcripts_by_summing_all_alignments():
    torch.manual_seed(0)
    lp = torch.randn(5, 5).log_softmax(-1)
    dec = sequence_decoder(DecodeConfig(method="beam"))
    texts = ["A", "AB", "A B", "", "AAB"]
    got = dec.ctc_log_likelihoods(lp, texts)
    want = [brute_force_ctc_log_likelihood(lp, TOK.encode(t)) for t in texts]
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-4, atol=1e-4)
    assert dec.ctc_log_likelihoods(lp[:2], ["ABC"])[0] == -math.inf  # 3 tokens cannot fit 2 frames


def test_sequence_ensemble_picks_what_the_members_agree_on_despite_shifted_spikes():
    # Member 1 says "AB" but is unsure of B/C; member 2 puts its spikes two frames later and
    # is sure of "AC". Each alone decodes its own text; together they choose "AC".
    a, b, c = (TOK.tokens.index(x) for x in "ABC")
    m1 = log_probs_from_path([a, 0, b, 0, 0, 0, 0])
    m1[2, b], m1[2, c] = math.log(0.5), math.log(0.45)
    m2 = log_probs_from_path([0, 0, a, 0, c, 0, 0], p=0.95)
    both = MemberLogProbs((m1.unsqueeze(0), m2.unsqueeze(0)))  # K=2 x (1, T, V)
    lens = torch.tensor([7])
    cfg = DecodeConfig(method="beam", beam_size=10, candidates=5, n_best=2, word_score=0.5)
    dec = sequence_decoder(cfg)
    assert dec.beam(m1.unsqueeze(0), lens)[0].text == "AB"
    assert dec.beam(m2.unsqueeze(0), lens)[0].text == "AC"
    best = dec.n_best(both, lens)[0]
    assert [h.text for h in best] == ["AC", "AB"]
    for h in best:  # the mean of the members' log-likelihoods, plus the word score
        want = (dec.ctc_log_likelihoods(m1, [h.text]) + dec.ctc_log_likelihoods(m2, [h.text])) / 2 + 0.5
        assert h.score == pytest.approx(float(want[0]), rel=1e-5)
    assert dec(both, lens)[0].text == "AC"


def test_sequence_ensemble_adds_the_lm_in_log10_as_the_beam_search_does(tmp_path):
    from asr.decoding import write_lexicon
    from asr.lm import estimate, write_arpa

    write_lexicon(["AB", "BA"], tmp_path / "lex.txt", TOK)
    lm_model = estimate([["BA"]] * 20 + [["AB"]], 2)
    write_arpa(lm_model, tmp_path / "lm.arpa")
    a, b = TOK.tokens.index("A"), TOK.tokens.index("B")
    lp = log_probs_from_path([a, 0, b, 1])  # "AB", clearly
    lp[0, a] = lp[0, b] = lp[2, a] = lp[2, b] = math.log(0.45)  # ... or "BA", as likely
    both = MemberLogProbs((lp.unsqueeze(0), lp.unsqueeze(0)))
    lens = torch.tensor([4])
    for weight, want in ((0.0, None), (2.0, "BA")):
        cfg = DecodeConfig(method="beam", beam_size=20, candidates=4, n_best=2, lm_weight=weight, word_score=-1.0)
        dec = sequence_decoder(cfg, lexicon=tmp_path / "lex.txt", lm=tmp_path / "lm.arpa")
        best = dec.n_best(both, lens)[0]
        assert {h.text for h in best} == {"AB", "BA"}
        for h in best:
            lm = weight * sum(math.log10(lm_model.probability(w, h_)) for w, h_ in
                              zip(h.text.split() + ["</s>"], [["<s>"], ["<s>", h.text]]))
            assert dec.text_score(h.text) == pytest.approx(lm - 1.0, rel=1e-5)
        if want:
            assert best[0].text == want


def test_rescoring_a_single_models_beam_by_its_exact_likelihood(tmp_path):
    from asr.decoding import BeamSearchDecoder, RescoringDecoder

    torch.manual_seed(1)
    lp = (torch.randn(1, 6, 5) * 2).log_softmax(-1)
    lens = torch.tensor([6])
    cfg = DecodeConfig(method="beam", beam_size=8, candidates=6, n_best=6, rescore=True, word_score=0.3)
    dec = make_decoder(cfg, TOK)
    assert isinstance(dec, RescoringDecoder) and isinstance(make_decoder(dataclasses.replace(cfg, rescore=False), TOK), BeamSearchDecoder)
    got = dec.n_best(lp, lens)[0]
    texts = [h.text for h in dec.beam.n_best(lp, lens)[0]]
    assert sorted(h.text for h in got) == sorted(texts)  # the beam's candidates, re-ranked
    want = {t: brute_force_ctc_log_likelihood(lp[0], TOK.encode(t)) + 0.3 * len(t.split()) for t in texts}
    assert [h.text for h in got] == sorted(texts, key=want.get, reverse=True)
    for h in got:
        assert h.score == pytest.approx(want[h.text], rel=1e-4)


def test_greedy_decoding_of_a_sequence_ensemble_combines_frames():
    from asr.model import frame_log_probs

    m1 = log_probs_from_path([2, 0, 3, 3])
    m2 = log_probs_from_path([2, 2, 0, 3], p=0.6)
    both = MemberLogProbs((m1.unsqueeze(0), m2.unsqueeze(0)))
    combined = frame_log_probs(both)
    torch.testing.assert_close(combined[0], ((m1 + m2) / 2).log_softmax(-1))
    assert GreedyDecoder(TOK)(both, torch.tensor([4]))[0].text == GreedyDecoder(TOK)(combined, torch.tensor([4]))[0].text


def test_sentence_lm_scores_as_the_python_model_reads_the_arpa(tmp_path):
    # The rescoring decoder's sentence scores come from KenLM; asr.lm's reading of the same file
    # is the reference, including words the model has never seen (<unk>) and the sentence end.
    from asr.decoding import SentenceLM
    from asr.lm import estimate, read_arpa, write_arpa

    write_arpa(estimate([["A", "B", "C"], ["A", "B"], ["B", "C", "A"], ["C"]] * 3, 3), tmp_path / "lm.arpa")
    reference, lm = read_arpa(tmp_path / "lm.arpa"), SentenceLM(tmp_path / "lm.arpa", ["A", "B", "C"])
    for words in (["A", "B", "C"], ["C", "B", "A"], [], ["A", "ZZ", "B"], ["ZZ"]):
        assert lm.sentence_log10(words) == pytest.approx(reference.sentence_log10(words), abs=1e-4)
    assert lm.sentence_log10(["A", "B"]) > lm.sentence_log10(["B", "A"])
    # words outside those it was given score as <unk>, whatever the model knows of them
    assert SentenceLM(tmp_path / "lm.arpa", ["A"]).sentence_log10(["A", "B"]) == pytest.approx(
        reference.sentence_log10(["A", "ZZ"]), abs=1e-4)


def test_sentence_lm_reads_a_model_without_unk(tmp_path):
    # An ARPA file without <unk> (as some tools write them): unknown words get log10 -100 both ways.
    from asr.decoding import SentenceLM
    from asr.lm import read_arpa

    (tmp_path / "lm.arpa").write_text("""\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-0.5\t<s>\t-0.3
-0.6\tA\t-0.2
-0.7\tB
-0.4\t</s>

\\2-grams:
-0.1\t<s> A
-0.2\tA B

\\end\\
""")
    reference, lm = read_arpa(tmp_path / "lm.arpa"), SentenceLM(tmp_path / "lm.arpa", ["A", "B"])
    for words in (["A", "B"], ["B"], ["A", "ZZ"]):
        assert lm.sentence_log10(words) == pytest.approx(reference.sentence_log10(words), abs=1e-4)
    assert lm.sentence_log10(["A", "B"]) == pytest.approx(-0.1 - 0.2 + (-0.4), abs=1e-6)  # p(</s>|B): unigram


def test_sentence_lm_reads_kenlm_binary_models(tmp_path):
    # Large LMs are kept in KenLM's binary format; rescoring reads them as the beam search does.
    import subprocess

    from asr.decoding import SentenceLM
    from asr.kenlm import find_kenlm
    from asr.lm import estimate, write_arpa

    tools = find_kenlm()
    if tools is None:
        pytest.skip("KenLM's build_binary is not installed (asr lm install-kenlm)")
    write_arpa(estimate([["A", "B", "C"], ["A", "B"], ["C", "A"]] * 3, 3), tmp_path / "lm.arpa")
    subprocess.run([str(tools["build_binary"]), str(tmp_path / "lm.arpa"), str(tmp_path / "lm.bin")],
                   check=True, capture_output=True)
    arpa, binary = (SentenceLM(tmp_path / name, ["A", "B", "C"]) for name in ("lm.arpa", "lm.bin"))
    for words in (["A", "B", "C"], ["C", "B"], ["A", "ZZ"]):
        assert binary.sentence_log10(words) == pytest.approx(arpa.sentence_log10(words), abs=1e-4)


def test_one_loaded_lm_serves_the_search_its_rescoring_and_the_next_decoder(tmp_path, monkeypatch):
    # The beam search gets the KenLM model SentenceLM loaded (not its own copy from the path), the
    # rescoring scores sentences with it, and a decoder made again from the same files (asr tune's
    # grid) reuses it; a changed LM file is loaded anew. The hypotheses and scores are those of
    # torchaudio's own loading of the path.
    from torchaudio.models.decoder import ctc_decoder

    from asr import decoding
    from asr.decoding import BLANK, UNK_WORD, write_lexicon
    from asr.lm import estimate, write_arpa

    write_lexicon(["AB", "BA", "CAB", "C"], tmp_path / "lex.txt", TOK)
    write_arpa(estimate([["BA", "C"]] * 5 + [["AB"], ["CAB", "BA"]], 2), tmp_path / "lm.arpa")
    torch.manual_seed(0)
    lp = torch.randn(2, 12, len(TOK)).log_softmax(-1)
    lens = torch.tensor([12, 9])
    cfg = DecodeConfig(method="beam", beam_size=20, n_best=4, lm_weight=1.5, word_score=0.5)
    files = dict(lexicon=tmp_path / "lex.txt", lm=tmp_path / "lm.arpa")
    beam = make_decoder(cfg, TOK, **files)
    assert beam._decoder.lm is beam.word_lm.kenlm
    rescoring = make_decoder(dataclasses.replace(cfg, rescore=True), TOK, **files)
    assert rescoring.lm is rescoring.beam.word_lm is beam.word_lm  # one model for all three
    assert rescoring.beam._decoder.lm is beam.word_lm.kenlm
    assert beam.word_lm.same_words(beam._decoder.word_dict)
    assert not decoding.SentenceLM(tmp_path / "lm.arpa", ["AB", "BA", "CAB", "C"]).same_words(beam._decoder.word_dict)

    own = ctc_decoder(lexicon=str(tmp_path / "lex.txt"), tokens=TOK.tokens, lm=str(tmp_path / "lm.arpa"), nbest=4,
                      beam_size=20, beam_threshold=cfg.beam_threshold, lm_weight=1.5, word_score=0.5,
                      blank_token=BLANK, sil_token=TOK.separator, unk_word=UNK_WORD)
    padded, padded_lens = beam._close_last_word(lp, lens)
    expected = [[(" ".join(h.words), round(float(h.score), 4)) for h in group]
                for group in own(padded.contiguous(), padded_lens.to(torch.int32))]
    got = [[(h.text, round(h.score, 4)) for h in group] for group in beam.n_best(lp, lens)]
    assert got == expected and any(len(group) > 1 for group in got)

    # the dictionaries disagree (not seen with torchaudio 2.11): the search loads its own copy, same results
    monkeypatch.setattr(decoding.SentenceLM, "same_words", lambda self, other: False)
    decoding._WORD_LMS.clear()
    apart = make_decoder(cfg, TOK, **files)
    assert apart._decoder.lm is not apart.word_lm.kenlm
    assert [[(h.text, round(h.score, 4)) for h in group] for group in apart.n_best(lp, lens)] == expected
    monkeypatch.undo()

    write_arpa(estimate([["AB", "C"]] * 5, 2), tmp_path / "lm.arpa")  # another LM in the same file
    again = make_decoder(cfg, TOK, **files)
    assert again.word_lm is not beam.word_lm and again._decoder.lm is again.word_lm.kenlm
    # a model stays loaded only while a decoder holds it
    del beam, rescoring, apart, again
    gc.collect()
    assert len(decoding._WORD_LMS) == 0


def test_unreadable_lm_or_lexicon_is_an_error_naming_the_file(tmp_path):
    from asr.decoding import word_lm, write_lexicon
    from asr.errors import AsrError

    write_lexicon(["AB"], tmp_path / "lex.txt", TOK)
    cfg = DecodeConfig(method="beam")
    with pytest.raises(AsrError, match="missing.arpa: cannot read the language model"):
        make_decoder(cfg, TOK, lexicon=tmp_path / "lex.txt", lm=tmp_path / "missing.arpa")
    (tmp_path / "lm.arpa").write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\t<unk>\n\n\\end\\\n")
    with pytest.raises(AsrError, match="missing.txt: cannot read the lexicon"):
        word_lm(tmp_path / "lm.arpa", tmp_path / "missing.txt")
