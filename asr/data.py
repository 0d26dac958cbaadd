"""From manifest records to padded batches: Dataset, Batch, collate, length bucketing."""

from __future__ import annotations

import random
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from asr.audio import load_audio
from asr.augment import WaveAugmenter
from asr.errors import AudioError
from asr.config import AugmentConfig, FeatureConfig
from asr.features import FeatureStats, batch_log_mel, log_mel, min_samples, reflect_pad, spec_augment, spec_augment_batch, speed_perturb
from asr.manifest import Utterance
from asr.shifts import delayed
from asr.tokenizer import Tokenizer


class Batch(NamedTuple):
    feats: torch.Tensor  # (B, T, F) float32, zero-padded
    feat_lens: torch.Tensor  # (B,) int64
    targets: torch.Tensor  # (B, L) int64, zero-padded
    target_lens: torch.Tensor  # (B,) int64
    ids: list[str]
    teacher: torch.Tensor | None = None  # (B, T', V) teachers' log-probabilities (distill.teachers), zero-padded
    teacher_lens: torch.Tensor | None = None  # (B,) int64, 0 where an utterance has none


class Example(NamedTuple):
    id: str
    feats: torch.Tensor  # (T, F); with waves_only: the reflect-padded waveform (N,)
    target: torch.Tensor  # (L,)
    mean: torch.Tensor | None = None  # waves_only with features.mean_norm "speaker": the speaker's mean (F,)
    teacher: torch.Tensor | None = None  # (T', V) teachers' log-probabilities on the clean audio (asr.distill)


class WaveBatch(NamedTuple):
    """A batch of waveforms for features computed on the model's device (DeviceFrontend)."""

    waves: torch.Tensor  # (B, N) float32: reflect-padded waveforms, zero-padded to the longest
    wave_lens: torch.Tensor  # (B,) int64
    targets: torch.Tensor  # (B, L) int64, zero-padded
    target_lens: torch.Tensor  # (B,) int64
    ids: list[str]
    means: torch.Tensor | None  # (B, F) speaker means (features.mean_norm "speaker"), else None
    teacher: torch.Tensor | None = None  # as Batch's
    teacher_lens: torch.Tensor | None = None


def utterance_features(
    utt: Utterance, feat_cfg: FeatureConfig, stats: FeatureStats | None = None, mean: torch.Tensor | None = None
) -> torch.Tensor:
    """Load one utterance's audio and return its (normalized, if stats) log-mel features.

    `mean`: the speaker's mean log-mel vector (features.mean_norm "speaker"; see speaker_means).
    """
    feats = features_of(load_utterance(utt, feat_cfg), utt.where(), feat_cfg, mean)
    return stats.normalize(feats) if stats is not None else feats


def features_of(
    wave: torch.Tensor, path: str, feat_cfg: FeatureConfig, mean: torch.Tensor | None = None
) -> torch.Tensor:
    """log_mel, minus a mean per features.mean_norm, with a too-short waveform reported as
    an AudioError naming its file.

    "global": nothing subtracted here (the global statistics apply later). "utterance": the
    utterance's own mean. "speaker": `mean`, the speaker's mean (see speaker_means); without
    one (a single file to transcribe, say) the utterance's own mean stands in for it.
    """
    feats = _log_mel(wave, path, feat_cfg)
    if feat_cfg.mean_norm == "utterance" or (feat_cfg.mean_norm == "speaker" and mean is None):
        feats = feats - feats.mean(0, keepdim=True)
    elif feat_cfg.mean_norm == "speaker":
        feats = feats - mean
    return feats


def _log_mel(wave: torch.Tensor, path: str, feat_cfg: FeatureConfig) -> torch.Tensor:
    """log_mel (T, n_mels), a too-short waveform reported as an AudioError naming its file."""
    try:
        return log_mel(wave, feat_cfg)
    except ValueError as e:
        raise AudioError(f"{path}: {e}") from None


def load_utterance(utt: Utterance, feat_cfg: FeatureConfig) -> torch.Tensor:
    """The utterance's waveform (its segment of the file, if it has an offset); an AudioError
    names the manifest line as well as the file."""
    try:
        return load_audio(utt.audio, feat_cfg.sample_rate, utt.offset or 0.0, _segment(utt))
    except AudioError as e:
        if utt.source is None:
            raise
        raise AudioError(f"{utt.source}: {e}") from None


def speaker_of(utt: Utterance) -> str:
    """The speaker label (an utterance without one is its own speaker)."""
    return utt.speaker or utt.id


def speaker_means(
    utts: Sequence[Utterance], feat_cfg: FeatureConfig, factors: Iterable[float] = (1.0,)
) -> dict[tuple[str, float], torch.Tensor]:
    """Each speaker's mean log-mel vector over all of its frames in `utts`, for each speed
    factor: (speaker, factor) -> (n_mels,). As Kaldi's per-speaker CMVN, a speed-perturbed
    copy of a speaker counts as a speaker of its own."""
    sums: dict[tuple[str, float], torch.Tensor] = {}
    counts: dict[tuple[str, float], int] = {}
    for utt in utts:
        wave = load_utterance(utt, feat_cfg)
        for factor in factors:
            feats = _log_mel(speed_perturb(wave, factor, feat_cfg.sample_rate), utt.where(), feat_cfg).double()
            key = (speaker_of(utt), factor)
            sums[key] = sums.get(key, 0) + feats.sum(0)
            counts[key] = counts.get(key, 0) + feats.shape[0]
    return {key: (total / counts[key]).float() for key, total in sums.items()}


def _segment(utt: Utterance) -> float | None:
    # Only a segment of a longer file (one with an offset, 0 included) is cut at its duration.
    return utt.duration if utt.offset is not None else None


class SpeechDataset(torch.utils.data.Dataset):
    """Utterances as normalized log-mel features and token ids; augments when `augment`."""

    def __init__(
        self,
        utts: Sequence[Utterance],
        tokenizer: Tokenizer,
        feat_cfg: FeatureConfig,
        stats: FeatureStats,
        augment: AugmentConfig | None = None,
        means: dict[tuple[str, float], torch.Tensor] | None = None,
        wave_augmenter: WaveAugmenter | None = None,
        seed: int = 0,
        waves_only: bool = False,
        teacher_targets: dict[tuple[str, float], torch.Tensor] | None = None,
        mask: bool = True,
    ):
        """`means`: speaker means (features.mean_norm "speaker"); computed from `utts` when
        not given, for every speed factor that augmentation uses. `wave_augmenter`: noise,
        reverberation, telephone and gain (asr.augment), drawn from a generator seeded by
        (seed, epoch, index): the same audio in any worker, different in each epoch.
        `waves_only`: items carry the (reflect-padded) waveform instead of features, for
        DeviceFrontend to turn into features and SpecAugment them in batches on the device.
        `teacher_targets`: (id, speed factor) -> teachers' log-probabilities (asr.distill),
        given with each item. `mask` False: no SpecAugment here (train.cr_ctc_weight masks the
        batch in the training step, asr.consistency)."""
        self.utts = list(utts)
        self.tokenizer = tokenizer
        self.feat_cfg = feat_cfg
        self.stats = stats
        self.augment = augment
        self.wave_augmenter = wave_augmenter if wave_augmenter is not None and wave_augmenter.active else None
        self.seed = seed
        self.waves_only = waves_only
        self.teacher_targets = teacher_targets or {}
        self.mask = mask
        self.epoch = 1
        self.delay = 0  # samples reflected in front of each waveform (asr.shifts, decoding only)
        if feat_cfg.mean_norm == "speaker" and means is None:
            factors = augment.speed_factors if augment is not None and augment.speed_factors else (1.0,)
            means = speaker_means(self.utts, feat_cfg, factors)
        self.means = means or {}

    def __len__(self) -> int:
        return len(self.utts)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> Example:
        utt = self.utts[i]
        wave = delayed(load_utterance(utt, self.feat_cfg), self.delay)
        if self.augment is not None and self.augment.shift_seconds > 0:
            wave = random_start(wave, self.augment.shift_seconds, self.feat_cfg)
        factor = 1.0
        if self.augment is not None and self.augment.speed_factors:
            factor = random.choice(self.augment.speed_factors)
            wave = speed_perturb(wave, factor, self.feat_cfg.sample_rate)
        first = self.augment.wave_augment_from_epoch if self.augment is not None else 1
        if self.wave_augmenter is not None and self.epoch >= first:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            wave = torch.from_numpy(self.wave_augmenter(wave.numpy(), rng, exclude=utt.id))
        mean = self.means.get((speaker_of(utt), factor))
        # Characters outside the token list (possible in dev/test text) only leave the
        # loss target; scoring always uses the full text.
        target = torch.tensor(self.tokenizer.encode(utt.text, skip_unknown=True), dtype=torch.long)
        teacher = self.teacher_targets.get((utt.id, float(factor)))
        if self.waves_only:
            try:
                return Example(utt.id, reflect_pad(wave.float(), self.feat_cfg), target, mean, teacher)
            except ValueError as e:
                raise AudioError(f"{utt.where()}: {e}") from None
        feats = self.stats.normalize(features_of(wave, utt.where(), self.feat_cfg, mean))
        if self.augment is not None and self.mask:
            feats = spec_augment(feats, self.augment)
        return Example(utt.id, feats, target, teacher=teacher)

    def frame_counts(self) -> list[int]:
        """Approximate feature frames of each utterance, from manifest durations."""
        return [int(u.duration * 1000 / self.feat_cfg.hop_ms) + 1 for u in self.utts]


def random_start(wave: torch.Tensor, max_seconds: float, feat_cfg: FeatureConfig) -> torch.Tensor:
    """`wave` without a random 0 to max_seconds of its start (augment.shift_seconds), never
    shorter than the features need."""
    most = min(int(max_seconds * feat_cfg.sample_rate), wave.shape[-1] - min_samples(feat_cfg))
    return wave[random.randint(0, most):] if most > 0 else wave


def collate(examples: Sequence[Example]) -> Batch | WaveBatch:
    targets = pad_sequence([e.target for e in examples], batch_first=True)
    target_lens = torch.tensor([len(e.target) for e in examples], dtype=torch.long)
    ids = [e.id for e in examples]
    padded = pad_sequence([e.feats for e in examples], batch_first=True)
    lens = torch.tensor([e.feats.shape[0] for e in examples], dtype=torch.long)
    teacher, teacher_lens = _teacher_batch(examples)
    if examples and examples[0].feats.dim() == 1:  # waveforms (SpeechDataset waves_only)
        means = [e.mean for e in examples]
        return WaveBatch(padded, lens, targets, target_lens, ids,
                         means=torch.stack(means) if all(m is not None for m in means) else None,
                         teacher=teacher, teacher_lens=teacher_lens)
    return Batch(padded, lens, targets, target_lens, ids, teacher, teacher_lens)


def _teacher_batch(examples: Sequence[Example]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The examples' teacher targets zero-padded to (B, T', V) and their lengths (0 where an
    example has none); (None, None) when none has any."""
    given = [e.teacher for e in examples if e.teacher is not None]
    if not given:
        return None, None
    empty = given[0].new_zeros((0, given[0].shape[1]))
    teacher = pad_sequence([e.teacher if e.teacher is not None else empty for e in examples], batch_first=True)
    lens = torch.tensor([0 if e.teacher is None else e.teacher.shape[0] for e in examples], dtype=torch.long)
    return teacher, lens


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of similar-length utterances whose padded size stays under `max_frames`.

    Each epoch sorts by length with a little random jitter (so batches differ between
    epochs) and shuffles the batch order. Deterministic given `seed` and the epoch.
    During the first `sorted_epochs` epochs the batches go from shortest to longest
    (SortaGrad, Amodei et al. 2016): CTC leaves its all-blank start sooner on short inputs.

    Distributed (`world` > 1): every rank builds the same list of batches and takes every
    world-th one from its rank on, after the list is cut to a multiple of `world`, so that
    all ranks take the same number of steps (the few batches cut differ from epoch to epoch).
    """

    def __init__(
        self,
        frame_counts: Sequence[int],
        max_frames: int,
        shuffle: bool = True,
        seed: int = 0,
        sorted_epochs: int = 0,
        rank: int = 0,
        world: int = 1,
    ):
        self.frames = list(frame_counts)
        self.max_frames = max_frames
        self.shuffle = shuffle
        self.seed = seed
        self.sorted_epochs = sorted_epochs
        self.rank, self.world = rank, world
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100003 + self.epoch)
        shuffle = self.shuffle and self.epoch > self.sorted_epochs
        if shuffle:
            keys = [n * rng.uniform(0.9, 1.1) for n in self.frames]
        else:
            keys = self.frames
        order = sorted(range(len(self.frames)), key=lambda i: keys[i])
        batches, current, longest = [], [], 0
        for i in order:
            longest_if_added = max(longest, self.frames[i])
            if current and longest_if_added * (len(current) + 1) > self.max_frames:
                batches.append(current)
                current, longest_if_added = [], self.frames[i]
            current.append(i)
            longest = longest_if_added
        if current:
            batches.append(current)
        if shuffle:
            rng.shuffle(batches)
        if self.world > 1:
            batches = batches[: len(batches) // self.world * self.world][self.rank::self.world]
        return batches

    def batches_per_epoch(self, epochs: Iterable[int]) -> list[int]:
        """The number of batches of each of the given epochs."""
        current = self.epoch
        counts = []
        for epoch in epochs:
            self.epoch = epoch
            counts.append(len(self.batches()))
        self.epoch = current
        return counts

    def count_batches(self, epochs: Iterable[int]) -> int:
        """Total number of batches over the given epochs."""
        return sum(self.batches_per_epoch(epochs))

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def make_loader(
    dataset: SpeechDataset, max_frames: int, shuffle: bool, seed: int = 0, num_workers: int = 0, sorted_epochs: int = 0,
    rank: int = 0, world: int = 1, pin_memory: bool = False,
):
    sampler = BucketBatchSampler(dataset.frame_counts(), max_frames, shuffle, seed, sorted_epochs, rank, world)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers, pin_memory=pin_memory
    )
    return loader, sampler


class DeviceFrontend:
    """Log-mel, mean normalization, CMVN and SpecAugment of a WaveBatch, in batches on the
    device the batch is moved to (train.features_on_device): the loader's workers only read,
    perturb and pad the audio. The features equal SpeechDataset's own (tested on the CPU);
    SpecAugment draws from `generator`, utterance by utterance, as spec_augment does."""

    def __init__(self, feat_cfg: FeatureConfig, stats: FeatureStats, augment: AugmentConfig | None = None):
        self.cfg, self.stats, self.augment = feat_cfg, stats, augment

    def __call__(self, batch: WaveBatch, device: torch.device,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        waves = batch.waves.to(device, non_blocking=True)
        feats, cpu_lens = batch_log_mel(waves, batch.wave_lens, self.cfg)  # (B, T, F), (B,) on the CPU
        lens = cpu_lens.to(device, non_blocking=True)
        valid = (torch.arange(feats.shape[1], device=device)[None, :] < lens[:, None]).unsqueeze(-1)  # (B, T, 1)
        norm = self.cfg.mean_norm
        if norm == "utterance" or (norm == "speaker" and batch.means is None):
            feats = feats - (feats * valid).sum(1, keepdim=True) / lens.view(-1, 1, 1)  # each utterance's own mean
        elif norm == "speaker":
            feats = feats - batch.means.to(device).unsqueeze(1)
        feats = (feats - self.stats.mean.to(device)) / self.stats.std.to(device) * valid  # padding stays 0
        if self.augment is not None:
            feats = spec_augment_batch(feats, cpu_lens, self.augment, generator)  # CPU lengths: no sync
        return feats, lens
