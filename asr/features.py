"""Log-mel features, normalization statistics and SpecAugment.

`log_mel` is a pure function of the waveform and the FeatureConfig: 80 mel bins,
25 ms Hann window, 10 ms hop at 16 kHz (Slaney mel scale and normalization, as librosa).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import torch
import torchaudio

from asr.config import AugmentConfig, FeatureConfig

LOG_FLOOR = 1e-6  # added to the mel power before the log


@lru_cache(maxsize=8)
def _mel_transform(cfg: FeatureConfig, device: str = "cpu") -> torchaudio.transforms.MelSpectrogram:
    """The log-mel front end's transform, one per config and device (cached: never move it)."""
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate,
        n_fft=cfg.n_fft,
        win_length=win_length(cfg),
        hop_length=hop_length(cfg),
        n_mels=cfg.n_mels,
        power=2.0,
        center=True,
        pad_mode="reflect",
        norm="slaney",
        mel_scale="slaney",
    ).to(device)


def win_length(cfg: FeatureConfig) -> int:
    return int(round(cfg.sample_rate * cfg.win_ms / 1000))


def hop_length(cfg: FeatureConfig) -> int:
    return int(round(cfg.sample_rate * cfg.hop_ms / 1000))


def n_frames(n_samples: int, cfg: FeatureConfig) -> int:
    """Number of frames `log_mel` gives for `n_samples` samples (centered frames)."""
    return n_samples // hop_length(cfg) + 1


def min_samples(cfg: FeatureConfig) -> int:
    """Shortest waveform `log_mel` accepts (its centred frames reflect half a window)."""
    return cfg.n_fft // 2 + 1


@torch.no_grad()
def log_mel(wave: torch.Tensor, cfg: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Mono waveform (N,) at cfg.sample_rate -> log-mel features (T, n_mels).

    Raises ValueError for a waveform shorter than min_samples(cfg).
    """
    if wave.shape[-1] < min_samples(cfg):
        raise ValueError(f"audio too short ({wave.shape[-1] / cfg.sample_rate:.3f}s)")
    mel = _mel_transform(cfg)(wave.float())  # (N,) -> (n_mels, T)
    return torch.log(mel + LOG_FLOOR).transpose(0, 1).contiguous()  # -> (T, n_mels)


class FeatureStats:
    """Global per-bin mean and standard deviation, accumulated over utterances."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.mean = mean
        self.std = std

    @classmethod
    def compute(cls, feats: Iterable[torch.Tensor]) -> "FeatureStats":
        total = sq = None
        count = 0
        for f in feats:  # (T, n_mels)
            f = f.double()
            total = f.sum(0) if total is None else total + f.sum(0)
            sq = (f * f).sum(0) if sq is None else sq + (f * f).sum(0)
            count += f.shape[0]
        if count == 0:
            raise ValueError("cannot compute feature statistics from no frames")
        mean = total / count
        var = (sq / count - mean * mean).clamp_min(1e-10)
        return cls(mean.float(), var.sqrt().float())

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) / self.std

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict, n_mels: int | None = None) -> "FeatureStats":
        """Inverse of to_dict(); ValueError (saying what is wrong) for anything but two finite
        vectors of one length (`n_mels`, if given) with positive deviations."""
        if not isinstance(d, dict) or not all(isinstance(d.get(k), torch.Tensor) for k in ("mean", "std")):
            raise ValueError("feature statistics are not a mean and a std tensor")
        mean, std = d["mean"].float(), d["std"].float()
        if mean.dim() != 1 or mean.shape != std.shape:
            raise ValueError(f"feature statistics have shapes {tuple(mean.shape)} and {tuple(std.shape)}")
        if n_mels is not None and mean.shape[0] != n_mels:
            raise ValueError(f"feature statistics are for {mean.shape[0]} mel bins, the config has {n_mels}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
            raise ValueError("feature statistics hold NaN, infinite or non-positive values")
        return cls(mean, std)


def spec_augment_masks(
    n_t: int, n_f: int, cfg: AugmentConfig, generator: torch.Generator | None = None
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The (start, end) ranges of SpecAugment's frequency masks and time masks for (n_t, n_f)
    features, drawn from `generator` in a fixed order (width, then start; frequency first)."""

    def draw(high: int) -> int:
        return int(torch.randint(0, max(high, 0) + 1, (1,), generator=generator))

    freq, time = [], []
    for _ in range(cfg.n_freq_masks):
        width = draw(min(cfg.freq_mask_width, n_f))
        start = draw(n_f - width)
        freq.append((start, start + width))
    max_t = min(cfg.time_mask_width, int(cfg.time_mask_ratio * n_t))
    for _ in range(cfg.n_time_masks):
        width = draw(max_t)
        start = draw(n_t - width)
        time.append((start, start + width))
    return freq, time


def spec_augment(
    feats: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Frequency and time masks (SpecAugment, without time warping) on (T, n_mels) features.

    Masked values are set to zero, the mean of normalized features.
    """
    out = feats.clone()
    freq, time = spec_augment_masks(out.shape[0], out.shape[1], cfg, generator)
    for start, end in freq:
        out[:, start:end] = 0.0
    for start, end in time:
        out[start:end, :] = 0.0
    return out


def spec_augment_batch(
    feats: torch.Tensor, lens: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """spec_augment of each utterance of a padded batch (B, T, n_mels), on whatever device it
    is on: the masks are drawn utterance by utterance, in order, exactly as spec_augment draws
    them for (lens[b], n_mels) features, so the same generator gives the same masks. The masks
    are applied at once (one masked_fill, not a kernel per mask); `lens` on the CPU spares a
    device synchronization."""
    n_b, n_t, n_f = feats.shape
    if n_b == 0:
        return feats.clone()
    freq, time = zip(*(spec_augment_masks(n, n_f, cfg, generator) for n in lens.tolist()))
    dev = feats.device

    def covered(ranges, size: int) -> torch.Tensor:  # (B, size): inside any of each utterance's ranges
        r = torch.tensor(ranges, dtype=torch.long).reshape(n_b, len(ranges[0]), 2).to(dev)
        i = torch.arange(size, device=dev).view(1, 1, -1)
        return ((i >= r[..., :1]) & (i < r[..., 1:])).any(1)

    in_utt = torch.arange(n_t, device=dev)[None, :] < lens.to(dev)[:, None]  # (B, T)
    zero = (covered(freq, n_f)[:, None, :] & in_utt[:, :, None]) | covered(time, n_t)[:, :, None]
    return feats.masked_fill(zero, 0.0)


def reflect_pad(wave: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """The waveform with half a window reflected at each end, as log_mel's centred framing
    pads it (so that batch_log_mel can frame a zero-padded batch without centring)."""
    if wave.shape[-1] < min_samples(cfg):
        raise ValueError(f"audio too short ({wave.shape[-1] / cfg.sample_rate:.3f}s)")
    half = cfg.n_fft // 2
    return torch.nn.functional.pad(wave.view(1, 1, -1), (half, half), mode="reflect").view(-1)


@torch.no_grad()
def batch_log_mel(waves: torch.Tensor, wave_lens: torch.Tensor, cfg: FeatureConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """log_mel of a batch at once, on the batch's device: `waves` (B, N) holds reflect_pad'ed
    waveforms, zero-padded at the end; `wave_lens` their padded lengths. Returns (B, T, n_mels)
    features, zero beyond each utterance's frames, and the frame counts (those of log_mel)."""
    mel = _mel_transform(cfg, str(waves.device))
    spec = torch.stft(waves.float(), cfg.n_fft, hop_length(cfg), win_length(cfg),
                      mel.spectrogram.window, center=False, return_complex=True)
    power = spec.abs().pow(2)  # (B, n_fft/2+1, T)
    feats = torch.log(mel.mel_scale(power) + LOG_FLOOR).transpose(1, 2)  # (B, n_mels, T) -> (B, T, n_mels)
    frame_lens = (wave_lens - 2 * (cfg.n_fft // 2)) // hop_length(cfg) + 1
    valid = torch.arange(feats.shape[1], device=feats.device)[None, :] < frame_lens.to(feats.device)[:, None]
    return feats * valid.unsqueeze(-1), frame_lens


def speed_perturb(
    wave: torch.Tensor, factor: float, sample_rate: int = 16000
) -> torch.Tensor:
    """Change speed (and pitch) by `factor` by resampling, as Kaldi's speed perturbation."""
    if factor == 1.0:
        return wave
    # Playing samples recorded at sample_rate*factor back at sample_rate speeds up by factor.
    orig = int(round(sample_rate * factor))
    return torchaudio.functional.resample(wave, orig, sample_rate)
