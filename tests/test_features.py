import math

import librosa
import numpy as np
import pytest
import torch

from asr.config import AugmentConfig, FeatureConfig
from asr.features import FeatureStats, LOG_FLOOR, log_mel, n_frames, spec_augment, speed_perturb


def test_log_mel_matches_librosa():
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(16000 * 2).astype(np.float32) * 0.1
    cfg = FeatureConfig()
    ours = log_mel(torch.from_numpy(wave), cfg).numpy()
    ref = librosa.feature.melspectrogram(
        y=wave, sr=16000, n_fft=512, win_length=400, hop_length=160, window="hann",
        center=True, pad_mode="reflect", power=2.0, n_mels=80, htk=False, norm="slaney",
    )
    ref = np.log(ref + LOG_FLOOR).T  # (n_mels, T) -> (T, n_mels)
    assert ours.shape == ref.shape == (n_frames(len(wave), cfg), 80)
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-3)


def test_feature_geometry_is_25ms_window_10ms_hop():
    cfg = FeatureConfig()
    feats = log_mel(torch.zeros(16000), cfg)
    assert feats.shape == (101, 80)


def test_stats_normalize_to_zero_mean_unit_variance():
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(50 + 10 * i, 80, generator=g) * 3 + 7 for i in range(5)]
    stats = FeatureStats.compute(feats)
    normed = torch.cat([stats.normalize(f) for f in feats])
    assert torch.allclose(normed.mean(0), torch.zeros(80), atol=1e-4)
    assert torch.allclose(normed.std(0, unbiased=False), torch.ones(80), atol=1e-3)
    restored = FeatureStats.from_dict(stats.to_dict())
    assert torch.equal(restored.mean, stats.mean) and torch.equal(restored.std, stats.std)


def test_spec_augment_masks_bands_and_spans():
    feats = torch.ones(400, 80)
    cfg = AugmentConfig(n_freq_masks=2, freq_mask_width=10, n_time_masks=2, time_mask_width=20, time_mask_ratio=0.2)
    out = spec_augment(feats, cfg, torch.Generator().manual_seed(3))
    assert out.shape == feats.shape and torch.equal(feats, torch.ones(400, 80))  # input untouched
    zero_bins = (out == 0).all(0).sum().item()
    zero_frames = (out == 0).all(1).sum().item()
    assert 0 < zero_bins <= 20 and 0 < zero_frames <= 40
    assert ((out == 0) | (out == 1)).all()


def test_spec_augment_off_is_identity():
    feats = torch.randn(100, 80)
    cfg = AugmentConfig(n_freq_masks=0, n_time_masks=0)
    assert torch.equal(spec_augment(feats, cfg), feats)


def test_speed_perturb_changes_length():
    wave = torch.randn(16000)
    assert len(speed_perturb(wave, 1.1)) == math.ceil(16000 / 1.1)
    assert len(speed_perturb(wave, 0.9)) == math.ceil(16000 / 0.9)
    assert speed_perturb(wave, 1.0) is wave


def dominant_frequency(wave: torch.Tensor, rate: int = 16000) -> float:
    """The frequency of the largest FFT bin, refined by parabolic interpolation."""
    spectrum = torch.fft.rfft(wave.double() * torch.hann_window(len(wave), dtype=torch.float64)).abs()
    k = int(spectrum[1:-1].argmax()) + 1
    a, b, c = (float(spectrum[k - 1]), float(spectrum[k]), float(spectrum[k + 1]))
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(wave)


@pytest.mark.parametrize("factor, expected", [(1.1, 484.0), (0.9, 396.0)])
def test_speed_perturb_changes_pitch(factor, expected):
    """Kaldi-style speed perturbation plays the audio faster: a 440 Hz tone at 1.1 becomes 484 Hz."""
    t = torch.arange(32000) / 16000
    tone = torch.sin(2 * math.pi * 440.0 * t)
    assert dominant_frequency(tone) == pytest.approx(440.0, abs=0.5)
    assert dominant_frequency(speed_perturb(tone, factor)) == pytest.approx(expected, abs=0.5)
