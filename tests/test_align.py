import pytest

from asr.align import align_words
from asr.tokenizer import CharTokenizer
from asr.transcribe import Transcript, format_transcript
from tests.conftest import log_probs_from_path as posteriors

TOK = CharTokenizer(["<blank>", "|", "A", "B", "C"])


def test_word_spans_follow_the_frames():
    # frames: _ A A _ B _ | | C C _ _   -> words "AB" (frames 1..4) and "C" (frames 8..9)
    lp = posteriors([0, 2, 2, 0, 3, 0, 1, 1, 4, 4, 0, 0])
    words = align_words(lp, "AB C", TOK, frame_seconds=0.04)
    assert [w.word for w in words] == ["AB", "C"]
    assert (words[0].start, words[0].end) == (0.04, 0.2)  # frames 1 to 5 (end exclusive)
    assert (words[1].start, words[1].end) == (0.32, 0.4)
    assert all(0 < w.score <= 1 for w in words)


def test_text_that_cannot_fit_gives_no_spans():
    assert align_words(posteriors([2, 2]), "AAA", TOK, 0.04) == []
    assert align_words(posteriors([0, 0]), "", TOK, 0.04) == []


def test_subtitle_formats():
    from asr.align import WordSpan

    words = [WordSpan(f"W{i}", i * 1.0, i * 1.0 + 0.5, 1.0) for i in range(10)]
    t = Transcript(" ".join(w.word for w in words), 12.0, -1.0, words, source="a.wav")
    srt = format_transcript(t, "srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:04,500\nW0 W1 W2 W3 W4\n\n2\n00:00:05,000 --> ")
    vtt = format_transcript(t, "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:04.500\nW0 W1 W2 W3 W4\n")
    assert format_transcript(t, "text").splitlines()[1] == "   0.000    0.500  W0"
    with pytest.raises(ValueError):
        format_transcript(t, "doc")


@pytest.mark.parametrize("unit", ["bpe", "word"])
def test_word_spans_for_word_pieces_and_word_tokens(unit):
    from asr.config import TokenizerConfig
    from asr.tokenizer import build_tokenizer

    tok = build_tokenizer(TokenizerConfig(unit=unit, vocab_size=25), ["HELLO WORLD", "THE BIG WORLD", "HELLO THERE"] * 5)
    ids = tok.encode("HELLO BIG WORLD")
    path = []
    for i in ids:
        path += [i, i, 0]  # two frames per token, then a blank
    words = align_words(posteriors(path, n_tokens=len(tok)), "HELLO BIG WORLD", tok, frame_seconds=0.04)
    assert [w.word for w in words] == ["HELLO", "BIG", "WORLD"]
    starts = [3 * k for k in range(len(ids))]  # first frame of each token
    groups = tok.word_groups(ids)
    for w, g in zip(words, groups):
        assert w.start == pytest.approx(starts[g[0]] * 0.04) and w.end == pytest.approx((starts[g[-1]] + 2) * 0.04)
