"""asr.load_model / Recognizer: one front door for paths, arrays, tensors and bytes; long
audio segmented at pauses with nothing lost or doubled; batches equal single calls."""

import io

import numpy as np
import pytest
import soundfile as sf
import torch

import asr
from asr.errors import AsrError, AudioError
from tests.test_cli import tiny_model  # noqa: F401  (fixture)
from tests.test_segmenter import bursts


@pytest.fixture
def recognizer(tiny_model):  # noqa: F811
    return asr.load_model(tiny_model, device="cpu", max_seconds=8.0, min_pause=0.5)


def test_every_kind_of_audio_gives_the_same_transcript(recognizer, tmp_path):
    audio, _ = bursts([("p", 0.3), ("s", 1.5), ("p", 0.3)])
    path = tmp_path / "a.wav"
    sf.write(str(path), audio, 16000, subtype="FLOAT")
    buf = io.BytesIO()
    sf.write(buf, audio, 16000, format="WAV", subtype="FLOAT")
    base = recognizer.transcribe(path)
    assert base.source == str(path) and base.duration == pytest.approx(2.1)
    for other in (audio, torch.from_numpy(audio), buf.getvalue(), np.stack([audio, audio], axis=1)):
        t = recognizer.transcribe(other)
        assert (t.text, t.duration, t.source) == (base.text, base.duration, None)
    # another sample rate is resampled
    t8 = recognizer.transcribe(audio[::2].copy(), sample_rate=8000)
    assert t8.duration == pytest.approx(2.1, abs=0.01)
    pcm = (audio * 32767).astype(np.int16)
    assert recognizer.transcribe(pcm).duration == base.duration


def test_batches_equal_single_calls(recognizer, tmp_path):
    items = []
    for k, seconds in enumerate((0.8, 2.5, 1.2, 12.0)):  # the last one is long: segmented
        audio, _ = bursts([("s", seconds / 2), ("p", 0.6), ("s", seconds / 2)], seed=k)
        items.append(audio)
    items.append(tmp_path / "f.wav")
    sf.write(str(items[-1]), items[1], 16000, subtype="FLOAT")
    batch = recognizer.transcribe_batch(items, timestamps=True)
    for item, t in zip(items, batch):
        single = recognizer.transcribe(item, timestamps=True)
        assert (t.text, t.duration, t.source) == (single.text, single.duration, single.source)
        assert [(w.word, w.start) for w in t.words] == [(w.word, w.start) for w in single.words]


def test_long_audio_is_decoded_in_segments_with_nothing_lost(recognizer):
    spec = [("p", 0.5)] + [("s", 2.0), ("p", 0.7), ("s", 3.0), ("p", 0.2), ("s", 1.0), ("p", 1.5)] * 4
    audio, _ = bursts(spec, seed=1)
    t = recognizer.transcribe(audio, timestamps=True)
    assert t.duration == pytest.approx(len(audio) / 16000)
    assert len(t.segments) >= 4 and all(s.end - s.start <= 8.0 + 1e-6 for s in t.segments)
    assert all(a.end <= b.start for a, b in zip(t.segments, t.segments[1:]))
    assert t.text == " ".join(s.text for s in t.segments if s.text)
    for seg in t.segments:  # each segment's text is what its audio alone gives
        piece = audio[int(seg.start * 16000):int(round(seg.end * 16000))]
        assert recognizer.transcribe(piece).text == seg.text
        assert all(seg.start <= w.start <= w.end <= seg.end + 0.05 for w in seg.words)


def test_short_audio_is_one_pass_as_before(recognizer):
    audio, _ = bursts([("p", 1.0), ("s", 2.0), ("p", 2.0)])  # silence kept: nothing segmented
    t = recognizer.transcribe(audio)
    assert len(t.segments) == 1 and t.segments[0].start == 0 and t.segments[0].end == pytest.approx(5.0)


def test_decode_overrides_and_bad_audio(tiny_model, recognizer):  # noqa: F811
    assert asr.load_model(tiny_model, method="beam", beam_size=3).bundle.config.decode.beam_size == 3
    with pytest.raises(AsrError, match="decode.nonsense"):
        asr.load_model(tiny_model, nonsense=1)
    with pytest.raises(AudioError, match="<bytes>: cannot read audio"):
        recognizer.transcribe(b"not audio at all")
    with pytest.raises(AudioError, match="NaN"):
        recognizer.transcribe(np.array([0.0, np.nan] * 8000, dtype=np.float32))
    with pytest.raises(AsrError, match="cannot transcribe a dict"):
        recognizer.transcribe({"audio": 1})
    with pytest.raises(AudioError, match="too short"):
        recognizer.transcribe(np.zeros(100, dtype=np.float32))


def test_segmentation_settings_come_from_the_bundle_unless_given(tiny_model):  # noqa: F811
    rec = asr.load_model(tiny_model, device="cpu")
    assert (rec.max_seconds, rec.min_pause, rec.vad) == (20.0, 0.5, "auto")  # DecodeConfig defaults
    rec = asr.load_model(tiny_model, device="cpu", max_segment_seconds=6, min_pause=0.3, vad="energy")
    assert (rec.max_seconds, rec.min_pause, rec.vad) == (6.0, 0.3, "energy")
    assert asr.load_model(tiny_model, device="cpu", vad="energy", max_seconds=9.0).max_seconds == 9.0
    other = rec.with_decode(min_pause=0.2, vad="webrtc")
    assert (other.max_seconds, other.min_pause, other.vad) == (6.0, 0.2, "webrtc")
    with pytest.raises(AsrError, match="decode.vad must be one of"):
        asr.load_model(tiny_model, vad="silero")
    with pytest.raises(AsrError, match="min_pause"):
        asr.load_model(tiny_model, min_pause=30)
