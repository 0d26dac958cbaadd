"""Configuration: one frozen dataclass per component, nested in `RunConfig`.

A recipe's YAML file holds overrides only; `--set section.field=value` overrides are
parsed and type-checked against the dataclass fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from asr.errors import AsrError, first_line


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16000
    n_mels: int = 80
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    # "global": the training set's per-bin mean and std (stored in the bundle) normalize
    # every utterance; "utterance": each utterance's own per-bin mean is subtracted first
    # (cepstral mean normalization), then the global statistics apply; "speaker": the mean
    # of all of the speaker's frames in the manifest (per-speaker CMN, as Kaldi's CMVN with
    # spk2utt), falling back to the utterance's own mean where there is no speaker set.
    mean_norm: str = "global"


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (never applied at evaluation)."""

    n_freq_masks: int = 2
    freq_mask_width: int = 27  # at most this many mel bins per mask
    n_time_masks: int = 2
    time_mask_width: int = 40  # at most this many frames per mask
    time_mask_ratio: float = 0.05  # ... and at most this fraction of the utterance
    speed_factors: tuple[float, ...] = ()  # e.g. (0.9, 1.0, 1.1); empty = off
    # Real recording conditions (asr/augment.py), applied to the waveform after speed
    # perturbation, each with a probability per utterance; ranges are (low, high).
    noise_prob: float = 0.0
    noise_snr_db: tuple[float, ...] = (0.0, 20.0)
    noise_weights: tuple[float, ...] = (1.0, 1.0, 1.0)  # odds of coloured noise, babble, noise_dir recordings
    noise_dir: str = ""  # folder of noise recordings (e.g. MUSAN's noise/), searched recursively
    babble_speakers: tuple[float, ...] = (3.0, 6.0)  # other training utterances in one babble
    reverb_prob: float = 0.0
    rt60: tuple[float, ...] = (0.2, 0.8)  # seconds, of the simulated rooms
    rir_dir: str = ""  # folder of measured impulse responses, used instead of simulated rooms
    rir_bank: int = 64  # simulated impulse responses drawn at the start of training
    telephone_prob: float = 0.0  # 8 kHz band, then no codec, mu-law or GSM 06.10 (equal odds)
    gain_prob: float = 0.0
    gain_db: tuple[float, ...] = (-15.0, 10.0)
    # Noise, reverberation, telephone and gain begin at this epoch: a model that starts on
    # them stays longer in CTC's all-blank start (on AN4: still there after 12 epochs, where
    # clean training leaves it after 5-8).
    wave_augment_from_epoch: int = 1
    # Long recordings: this fraction more training utterances, each 2-3 (concat_utterances)
    # utterances of one speaker joined with natural pauses (asr.augment.concatenated_utterances).
    concat_fraction: float = 0.0
    concat_utterances: tuple[float, ...] = (2.0, 3.0)
    # Each training utterance loses a random 0 to shift_seconds of its start (any number of
    # samples, so any phase against the frame grid), for audio that starts anywhere: a VAD
    # segment, a stream, a user's cut. Keep it below the corpus's shortest leading silence.
    # On AN4 (0.15 s, three seeds) it did not help; see recipes/an4/RESULTS.md, "Long recordings".
    shift_seconds: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    subsampling: str = "conv"  # "conv" (two strided 3x3 conv2d) or "stack" (frame stacking)
    subsampling_factor: int = 4  # 2 or 4 (conv); 2, 3 or 4 (stack)
    conv_channels: int = 32
    rnn_type: str = "lstm"  # "lstm" or "gru"
    n_layers: int = 3
    hidden_size: int = 256  # per direction
    bidirectional: bool = True
    dropout: float = 0.2
    # Intermediate CTC (Lee & Watanabe, 2021): an extra output layer after this recurrent layer
    # (1 .. n_layers - 1; 0 = none) whose CTC loss, weighted by train.inter_ctc_weight, joins the
    # training loss (and the logged training loss). Decoding uses the last layer only; the bundle
    # keeps the unused layer.
    inter_ctc_layer: int = 0


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    max_batch_frames: int = 12000  # feature frames per batch (bucketed by length)
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 200
    final_lr_ratio: float = 0.02  # cosine decay ends at lr * this
    grad_clip: float = 5.0
    sortagrad_epochs: int = 1  # epochs whose batches go from shortest to longest
    seed: int = 1234
    num_workers: int = 0
    # "auto": bf16 autocast on a CUDA GPU that supports bf16, float32 elsewhere;
    # "bf16": bf16 autocast on any device; "fp32": float32 throughout.
    precision: str = "auto"
    keep_checkpoints: int = 2  # epoch checkpoints kept on disk (best is kept apart)
    # Keep the mean of the weights at the end of each of the last N epochs while training and
    # write it as EXP/model_avg.pt (asr/average.py's RunningAverage; 0 = off). The same mean as
    # `asr average --last N` without keeping N checkpoints.
    average_last: int = 0
    # Compute log-mel features and SpecAugment in batches on the training device (a GPU)
    # instead of in the loader's workers, which then only read and perturb the audio.
    features_on_device: bool = False
    # With model.inter_ctc_layer: loss = (1 - w) x the last layer's loss + w x the intermediate CTC loss.
    inter_ctc_weight: float = 0.3
    # Consistency-regularized CTC (asr/consistency.py): each utterance twice per step under two
    # SpecAugment draws, plus this weight x the KL divergence between the two views' outputs.
    # 0 = off. A step then costs about twice as much (halve max_batch_frames to keep it).
    cr_ctc_weight: float = 0.0
    # Batches whose gradients add up to one optimizer step (per rank): the effective batch is
    # max_batch_frames x ranks x accum_steps frames.
    accum_steps: int = 1
    # Distributed training (torchrun; asr/distributed.py): "auto" is NCCL on CUDA, gloo on the
    # CPU; a collective waiting longer than dist_timeout seconds for a rank fails.
    dist_backend: str = "auto"
    dist_timeout: float = 300.0
    # Check after every step that all ranks hold the same weights (a sha256 per rank; costly
    # for big models, meant for tests and debugging).
    check_replicas: bool = False


@dataclass(frozen=True)
class DecodeConfig:
    method: str = "greedy"  # "greedy" or "beam"
    beam_size: int = 50
    beam_threshold: float = 25.0  # prune hypotheses this far below the best
    lm_weight: float = 1.0  # weight of the n-gram LM (beam with an LM only)
    word_score: float = 0.0  # added per emitted word (insertion score)
    n_best: int = 1
    # Re-rank the beam's `candidates` best transcripts by their CTC likelihood summed over all
    # alignments, plus the LM and word scores (asr.decoding.RescoringDecoder). Sequence
    # ensembles (asr ensemble --combine sequence) always do, with candidates from each member.
    rescore: bool = False
    candidates: int = 25
    # Audio longer than max_segment_seconds is cut at pauses of at least min_pause seconds
    # (found by the `vad`: auto, webrtc or energy) into segments of at most that length
    # (asr/segmenter.py). A recipe sets them for its model, chosen on dev (recipes/an4).
    max_segment_seconds: float = 20.0
    min_pause: float = 0.5
    vad: str = "auto"
    # Test-time shift averaging (asr/shifts.py): the model runs on copies of the audio delayed by
    # these many milliseconds, and the mean of their token probabilities is decoded. (0,) is one
    # plain pass; each more shift costs one more forward pass. Training's dev scoring never shifts.
    shifts_ms: tuple[float, ...] = (0.0,)


@dataclass(frozen=True)
class TokenizerConfig:
    """Output units of the model (asr/tokenizer.py), built from the training transcripts."""

    unit: str = "char"  # "char", "word" (whitespace-separated symbols), "bpe" or "unigram" (sentencepiece)
    vocab_size: int = 500  # bpe / unigram only: pieces to learn (fewer on little text)
    character_coverage: float = 1.0  # bpe / unigram only: share of the characters kept (rest: <unk>)


@dataclass(frozen=True)
class DistillConfig:
    """Teacher-student training (asr/distill.py): besides CTC, the model learns the per-frame
    token distributions that the `teachers` (model bundles, e.g. an ensemble's members) give on
    the clean audio of each training utterance."""

    teachers: tuple[str, ...] = field(default=(), metadata={"strings": True})  # model.pt paths; empty = CTC alone
    weight: float = 0.5  # loss = (1 - weight) x CTC + weight x distillation
    temperature: float = 1.0


@dataclass(frozen=True)
class RunConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)


def to_dict(cfg: Any) -> dict:
    """A plain dict of builtins (tuples become lists), safe for YAML, JSON and torch.save."""
    return _plain(dataclasses.asdict(cfg))


def config_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """`section.field: A -> B` for every field where two configs differ."""
    out = []
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x):
            out += config_differences(x, y, f"{prefix}{f.name}.")
        elif x != y:
            out.append(f"{prefix}{f.name}: {x!r} -> {y!r}")
    return out


def from_dict(cls: type, data: dict, where: str = "config", prefix: str = "") -> Any:
    """Build dataclass `cls` from a (possibly partial) nested dict, checking names and types."""
    if not isinstance(data, dict):
        raise AsrError(f"{where}: {prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in fields:
            raise AsrError(f"{where}: unknown key '{name}' (known: {', '.join(fields)})")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = from_dict(type(default), value, where, f"{name}.")
        else:
            kwargs[key] = _coerce(value, default, f"{where}: {name}", strings=fields[key].metadata.get("strings", False))
    return cls(**kwargs)


def apply_overrides(cfg: RunConfig, overrides: list[str], allowed: tuple[str, ...] | None = None) -> RunConfig:
    """`cfg` with `section.field=value` overrides applied (only to `allowed` sections, if given)."""
    data = to_dict(cfg)
    for item in overrides:
        section = item.partition(".")[0]
        if allowed is not None and section not in allowed:
            raise AsrError(f"--set {item}: only {', '.join(allowed)} settings can be changed here")
    _merge_overrides(data, overrides)
    return validate(from_dict(RunConfig, data, where="--set"), "--set")


CHOICES = {
    "features.mean_norm": ("global", "utterance", "speaker"),
    "model.subsampling": ("conv", "stack"),
    "model.rnn_type": ("lstm", "gru"),
    "train.precision": ("auto", "bf16", "fp32"),
    "train.dist_backend": ("auto", "gloo", "nccl"),
    "decode.method": ("greedy", "beam"),
    "decode.vad": ("auto", "webrtc", "energy"),
    "tokenizer.unit": ("char", "word", "bpe", "unigram"),
}
POSITIVE = ("features.n_mels", "features.sample_rate", "features.win_ms", "features.hop_ms", "features.n_fft",
            "model.n_layers", "model.hidden_size", "model.conv_channels", "model.subsampling_factor",
            "train.epochs", "train.max_batch_frames", "train.lr", "train.keep_checkpoints", "train.accum_steps",
            "train.dist_timeout",
            "augment.wave_augment_from_epoch", "decode.beam_size", "decode.n_best", "decode.candidates", "decode.beam_threshold", "tokenizer.vocab_size",
            "tokenizer.character_coverage")


def validate(cfg: RunConfig, where: str = "config") -> RunConfig:
    """Check values that types alone do not: choices, positive sizes, valid factors."""
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise AsrError(f"{where}: {key} must be one of {', '.join(allowed)}, got {value!r}")
    for key in POSITIVE:
        section, name = key.split(".")
        if not getattr(getattr(cfg, section), name) > 0:
            raise AsrError(f"{where}: {key} must be > 0")
    m = cfg.model
    if m.subsampling == "conv" and m.subsampling_factor not in (2, 4):
        raise AsrError(f"{where}: model.subsampling_factor must be 2 or 4 with conv subsampling")
    if not 0 <= m.dropout < 1:
        raise AsrError(f"{where}: model.dropout must be in [0, 1)")
    if not 0 <= m.inter_ctc_layer < m.n_layers:
        raise AsrError(f"{where}: model.inter_ctc_layer must be in [0, model.n_layers), got {m.inter_ctc_layer}")
    if not 0 <= cfg.train.inter_ctc_weight < 1:
        raise AsrError(f"{where}: train.inter_ctc_weight must be in [0, 1), got {cfg.train.inter_ctc_weight}")
    if not 0 <= cfg.train.average_last <= cfg.train.epochs:
        raise AsrError(f"{where}: train.average_last must be in [0, train.epochs], got {cfg.train.average_last}")
    if not 0 <= cfg.train.cr_ctc_weight <= 100:
        raise AsrError(f"{where}: train.cr_ctc_weight must be in [0, 100], got {cfg.train.cr_ctc_weight}")
    if cfg.train.cr_ctc_weight > 0 and cfg.distill.teachers:
        raise AsrError(f"{where}: train.cr_ctc_weight cannot be used with distill.teachers")
    d = cfg.decode
    if not (d.max_segment_seconds >= 1 and 0 < d.min_pause < d.max_segment_seconds):
        raise AsrError(f"{where}: need decode.max_segment_seconds >= 1 and 0 < decode.min_pause < max_segment_seconds")
    frame_ms = cfg.features.hop_ms * m.subsampling_factor  # one output frame
    if not (1 <= len(d.shifts_ms) <= 16 and all(0 <= ms < frame_ms for ms in d.shifts_ms)):
        raise AsrError(f"{where}: decode.shifts_ms must hold 1 to 16 delays of at least 0 and under one output "
                       f"frame ({frame_ms:g} ms), got {list(d.shifts_ms)}")
    if cfg.tokenizer.character_coverage > 1:
        raise AsrError(f"{where}: tokenizer.character_coverage must be in (0, 1]")
    validate_augment(cfg.augment, where)
    if not (0 <= cfg.distill.weight <= 1 and cfg.distill.temperature > 0):
        raise AsrError(f"{where}: distill.weight must be in [0, 1] and distill.temperature > 0")
    if cfg.distill.teachers and cfg.augment.shift_seconds > 0:
        raise AsrError(f"{where}: augment.shift_seconds cannot be used with distill.teachers "
                       "(the teachers' frames would no longer line up)")
    return cfg


def validate_augment(a: AugmentConfig, where: str) -> None:
    for name in ("noise_prob", "reverb_prob", "telephone_prob", "gain_prob"):
        if not 0 <= getattr(a, name) <= 1:
            raise AsrError(f"{where}: augment.{name} must be a probability in [0, 1]")
    for name, low, high in (("noise_snr_db", -30, 100), ("babble_speakers", 1, 100), ("rt60", 0.05, 5),
                            ("gain_db", -60, 40)):
        value = getattr(a, name)
        if len(value) != 2 or not low <= value[0] <= value[1] <= high:
            raise AsrError(f"{where}: augment.{name} must be [low, high] within [{low}, {high}], got {list(value)}")
    if not 0 <= a.concat_fraction <= 10 or len(a.concat_utterances) != 2 or not 2 <= a.concat_utterances[0] <= a.concat_utterances[1]:
        raise AsrError(f"{where}: augment.concat_fraction must be in [0, 10] and concat_utterances [low, high], low >= 2")
    if not 0 <= a.shift_seconds <= 5:
        raise AsrError(f"{where}: augment.shift_seconds must be in [0, 5]")
    if len(a.noise_weights) != 3 or min(a.noise_weights) < 0:
        raise AsrError(f"{where}: augment.noise_weights must be three odds >= 0 (coloured, babble, noise_dir)")
    if a.rir_bank < 1:
        raise AsrError(f"{where}: augment.rir_bank must be at least 1")


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """Defaults, then the YAML file at `path` (if any), then `section.field=value` overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as e:
            raise AsrError(f"{path}: cannot read config ({e.strerror})") from None
        except yaml.YAMLError as e:
            raise AsrError(f"{path}: invalid YAML ({first_line(e)})") from None
        if not isinstance(data, dict):
            raise AsrError(f"{path}: expected a mapping of sections at the top level")
    _merge_overrides(data, overrides)
    where = str(path) if path else "config"
    return validate(from_dict(RunConfig, data, where=where), where)


def _merge_overrides(data: dict, overrides: list[str]) -> None:
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise AsrError(f"--set {item}: expected section.field=value, e.g. train.lr=1e-3")
        data.setdefault(parts[0], {})
        if not isinstance(data[parts[0]], dict):
            raise AsrError(f"--set {item}: '{parts[0]}' is not a section")
        data[parts[0]][parts[1]] = yaml.safe_load(raw) if raw.strip() else ""


def save_config(cfg: RunConfig, path: str | Path) -> None:
    from asr.atomic import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _coerce(value: Any, default: Any, where: str, strings: bool = False) -> Any:
    """`value` as the type of `default`; a tuple holds numbers (floats), or strings if `strings`."""
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '3e-4' as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
    elif kind is tuple and strings:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        if isinstance(value, str):  # --set distill.teachers=a.pt; an empty value: none
            return (value,) if value else ()
    elif kind is tuple:
        if isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            return tuple(float(v) for v in value)
    raise AsrError(f"{where}: expected {kind.__name__}, got {value!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
