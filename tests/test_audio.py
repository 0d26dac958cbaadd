import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import SAMPLE_RATE, load_audio
from asr.errors import AudioError
from tests.conftest import write_tone


def test_resamples_and_mixes_to_mono(tmp_path):
    path = write_tone(tmp_path / "a.flac", seconds=0.5, rate=8000, channels=2)
    wave = load_audio(path)
    assert wave.dtype == torch.float32 and wave.ndim == 1
    assert len(wave) == SAMPLE_RATE // 2
    # A 440 Hz tone stays a 440 Hz tone after resampling.
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(wave) - 440) < 4


def test_mono_mix_averages_channels(tmp_path):
    left = np.full(1600, 0.5)
    right = np.full(1600, -0.1)
    sf.write(str(tmp_path / "s.wav"), np.stack([left, right], 1), SAMPLE_RATE, subtype="FLOAT")
    assert torch.allclose(load_audio(tmp_path / "s.wav"), torch.full((1600,), 0.2), atol=1e-6)


def test_segment_by_offset_and_duration(tmp_path):
    ramp = np.arange(SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE
    sf.write(str(tmp_path / "r.wav"), ramp, SAMPLE_RATE, subtype="FLOAT")
    seg = load_audio(tmp_path / "r.wav", offset=0.25, duration=0.5)
    assert len(seg) == SAMPLE_RATE // 2
    assert seg[0].item() == pytest.approx(0.25, abs=1e-4)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such audio file"),
        (lambda p: p.write_bytes(b""), "file is empty"),
        (lambda p: p.write_text("this is not audio\n" * 20), "cannot read audio"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00garbage"), "cannot read audio"),
        (lambda p: sf.write(str(p), np.zeros(0), SAMPLE_RATE), "no samples"),
    ],
    ids=["missing", "empty", "text", "corrupt-header", "zero-length"],
)
def test_bad_files_raise_one_line_error_naming_the_file(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    text = str(e.value)
    assert str(path) in text and message in text and "\n" not in text
