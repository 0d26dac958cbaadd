"""Test-time shift averaging (asr.shifts, decode.shifts_ms): delayed copies, the per-frame mean
probability, and the same averaged outputs through transcription and manifest decoding."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

import asr
from asr.data import features_of
from asr.decoding import GreedyDecoder
from asr.errors import AsrError
from asr.manifest import Utterance
from asr.model import MemberLogProbs
from asr.shifts import average_copies, delayed, shift_samples
from tests.test_cli import tiny_model  # noqa: F401  (fixture)
from tests.test_segmenter import bursts


def test_delayed_copies_start_with_their_first_samples_reflected():
    wave = np.arange(1.0, 6.0, dtype=np.float32)
    assert delayed(wave, 2).tolist() == [2, 1, 1, 2, 3, 4, 5]
    assert delayed(wave, 0) is wave
    assert delayed(torch.from_numpy(wave), 3).tolist() == [3, 2, 1, 1, 2, 3, 4, 5]
    assert shift_samples((0, 5, 10), 16000) == (0, 80, 160) and shift_samples((), 8000) == (0,)


def test_copies_average_as_probabilities_over_the_shortest():
    a = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]).log()
    b = torch.tensor([[0.5, 0.5], [0.6, 0.4]]).log()
    out = average_copies([a, b])
    assert out.shape == (2, 2)
    assert torch.allclose(out.exp(), torch.tensor([[0.7, 0.3], [0.4, 0.6]]))
    assert average_copies([a]) is a
    members = average_copies([MemberLogProbs((a, b[:1])), MemberLogProbs((b, a))])
    assert torch.allclose(members.members[0].exp(), torch.tensor([[0.7, 0.3], [0.4, 0.6]]))
    assert torch.allclose(members.members[1].exp(), torch.tensor([[0.7, 0.3]]))


def by_hand(rec, wave, delays):
    """The averaged log-probs (T', V) of the copies, each run through the model alone."""
    copies = []
    for d in delays:
        f = rec.bundle.stats.normalize(features_of(torch.from_numpy(delayed(wave, d).copy()), "x",
                                                   rec.bundle.config.features))
        with torch.no_grad():
            lp, n = rec.model(f[None], torch.tensor([f.shape[0]]))
        copies.append(lp[0, :int(n[0])])
    return average_copies(copies)


def test_transcription_and_manifest_decoding_average_the_same_copies(tiny_model, tmp_path):  # noqa: F811
    audio, _ = bursts([("p", 0.3), ("s", 1.5), ("p", 0.3)], seed=3)
    path = tmp_path / "a.wav"
    sf.write(str(path), audio, 16000, subtype="FLOAT")
    plain = asr.load_model(tiny_model, device="cpu")
    rec = asr.load_model(tiny_model, device="cpu", shifts_ms=[0, 5, 10])
    assert rec.bundle.config.decode.shifts_ms == (0.0, 5.0, 10.0)
    expected = by_hand(rec, audio, (0, 80, 160))
    assert not torch.allclose(expected, by_hand(rec, audio, (0,)))  # the copies differ
    want = GreedyDecoder(rec.bundle.tokenizer)(expected[None], torch.tensor([expected.shape[0]]))[0]
    got = rec.transcribe(path)
    assert (got.text, got.score) == (want.text, pytest.approx(want.score, abs=1e-4))
    assert got.score != pytest.approx(plain.transcribe(path).score, abs=1e-4)
    emissions, _ = rec.emissions([Utterance("u", str(path), 2.1, "ABC", "spk")])  # asr evaluate / tune
    assert torch.allclose(emissions["u"], expected, atol=1e-5)
    batch = rec.transcribe_batch([path, audio])
    assert [(t.text, round(t.score, 4)) for t in batch] == [(want.text, round(want.score, 4))] * 2


def test_copies_of_a_segment_in_different_forward_passes(tiny_model, monkeypatch):  # noqa: F811
    """With forward passes too small for all copies at once, each segment still averages its
    own copies, and every segment comes out in order."""
    import asr.recognizer

    rec = asr.load_model(tiny_model, device="cpu", shifts_ms=[0, 5, 10])
    waves = [bursts([("p", 0.2), ("s", s), ("p", 0.2)], seed=k)[0] for k, s in enumerate((1.2, 0.6, 2.0, 0.9))]
    want = []
    for wave in waves:
        lp = by_hand(rec, wave, (0, 80, 160))
        want.append(GreedyDecoder(rec.bundle.tokenizer)(lp[None], torch.tensor([lp.shape[0]]))[0])
    monkeypatch.setattr(asr.recognizer, "MAX_BATCH_FRAMES", 300)  # one or two copies per pass
    got = rec.transcribe_batch(waves)
    assert [(t.text, round(t.score, 4)) for t in got] == [(w.text, round(w.score, 4)) for w in want]


def test_word_times_count_from_the_mean_delay(tiny_model):  # noqa: F811
    audio, _ = bursts([("p", 0.3), ("s", 1.5), ("p", 0.3)], seed=5)
    rec = asr.load_model(tiny_model, device="cpu", shifts_ms=[0, 5, 10])
    lp = by_hand(rec, audio, (0, 80, 160))[None]
    t = rec.transcribe(audio, timestamps=True)
    assert t.words  # the random tiny model says something here
    assert [(w.word, w.start, w.end) for w in t.words] == [(w.word, w.start, w.end) for w in rec.align(lp, t.text, -0.005)]
    assert t.words != rec.align(lp, t.text)  # the 5 ms show (times are kept to 1 ms)


def test_shifts_are_checked(tiny_model):  # noqa: F811
    for bad in ("[]", "[0, 200]", "[-5]", "[0, 40]"):  # 40 ms: one whole output frame of the tiny model
        with pytest.raises(AsrError, match="shifts_ms"):
            asr.load_model(tiny_model, shifts_ms=bad)
    assert math.isclose(asr.load_model(tiny_model, shifts_ms="[0, 2.5]").bundle.config.decode.shifts_ms[1], 2.5)
