"""Teacher-student training (distill.teachers): the model learns, beside CTC, to give the
per-frame token distributions that one or more trained models (the teachers) give on the
clean audio of the same utterance.

As in teacher-student learning for noise robustness (Li et al., 2017): the student hears the
augmented audio (noise, rooms, phone lines, SpecAugment), the teachers the clean audio at the
same speed. Every waveform augmentation keeps the samples where they were (asr/augment.py), so
the frames line up. The teachers' outputs are computed once per (utterance, speed factor)
before training (`teacher_targets`, on rank 0 when distributed) and kept in the experiment
folder (EXP/teacher.pt, recomputed when the teachers' weights, the tokens, the frame rate or the
training set change): on AN4 about 12 MB and 1-3 minutes on two CPU cores. They are held in
memory during training, which suits corpora of up to some hundred hours of character targets.

Several teachers are combined per frame by their mean probability. CTC models of different
seeds put their spikes on different frames, so that mean is blurred (asr/ensemble.py); the
loss still asks the student for CTC's alignment of the transcript.

The loss of an utterance is (1 - weight) x CTC + weight x temperature^2 x sum over its frames of
KL(teacher || student) at the temperature. Utterances without targets (joined utterances,
augment.concat_fraction) get CTC alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from asr.atomic import save_torch_atomic
from asr.checkpoint import Bundle, content_checksum, load_bundle
from asr.config import DistillConfig, RunConfig, config_differences
from asr.data import features_of, load_utterance, speaker_of
from asr.errors import AsrError
from asr.features import speed_perturb
from asr.manifest import Utterance
from asr.model import ctc_loss_sum
from asr.tokenizer import Tokenizer

TargetKey = tuple[str, float]  # (utterance id, speed factor)


def load_teachers(paths: Sequence[str], cfg: RunConfig, tokenizer: Tokenizer) -> list[Bundle]:
    """The teacher bundles; AsrError (naming the file) unless each has the student's tokens,
    features and output frame rate. An ensemble bundle stands for its members."""
    from asr.ensemble import Ensemble

    teachers = []
    for path in paths:
        bundle = load_bundle(path)
        members = bundle.model.members if isinstance(bundle.model, Ensemble) else [bundle]
        for b in members:
            if b.tokenizer.to_dict() != tokenizer.to_dict():
                raise AsrError(f"{path}: the teacher's tokens differ from the student's")
            features = config_differences(cfg.features, b.config.features, "features.")
            if features:
                raise AsrError(f"{path}: the teacher's features differ from the student's ({'; '.join(features)})")
            frames = [d for d in config_differences(cfg.model, b.config.model, "model.")
                      if d.split(":")[0] in ("model.subsampling", "model.subsampling_factor")]
            if frames:
                raise AsrError(f"{path}: the teacher's output frames differ from the student's ({'; '.join(frames)})")
            teachers.append(b)
    return teachers


@torch.inference_mode()
def teacher_targets(
    teachers: Sequence[Bundle],
    utts: Sequence[Utterance],
    cfg: RunConfig,
    means: dict | None = None,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] = print,
) -> dict[TargetKey, torch.Tensor]:
    """(utterance id, speed factor) -> the teachers' mean per-frame log-probabilities
    (T', V) in float16, on the clean audio at each of augment.speed_factors (or 1.0)."""
    factors = tuple(cfg.augment.speed_factors) or (1.0,)
    for t in teachers:
        t.model.to(device).eval()
    out: dict[TargetKey, torch.Tensor] = {}
    t0 = time.time()
    for utt in utts:
        wave = load_utterance(utt, cfg.features)
        for factor in factors:
            mean = (means or {}).get((speaker_of(utt), factor))
            feats = features_of(speed_perturb(wave, factor, cfg.features.sample_rate), utt.where(), cfg.features, mean)
            probs = None
            for t in teachers:
                x = t.stats.normalize(feats).unsqueeze(0).to(device)
                log_probs, out_lens = t.model(x, torch.tensor([x.shape[1]], device=device))
                p = log_probs[0, : int(out_lens[0])].float().exp()
                probs = p if probs is None else probs + p
            out[(utt.id, float(factor))] = (probs / len(teachers)).clamp_min(1e-30).log().half().cpu()
    log(f"teacher targets: {len(teachers)} teacher(s), {len(out)} utterance copies "
        f"({len(utts)} x {len(factors)} speeds) in {time.time() - t0:.1f}s")
    return out


def targets_key(teachers: Sequence[Bundle], utts: Sequence[Utterance], cfg: RunConfig, tokenizer: Tokenizer) -> str:
    """What the targets depend on: the teachers' weights, the tokens, the utterances, the
    features, the frame rate and the speeds."""
    return content_checksum({
        "teachers": [content_checksum(t.model.state_dict()) for t in teachers], "tokens": tokenizer.to_dict(),
        "utts": [[u.id, u.audio, u.offset, u.duration] for u in utts], "features": repr(cfg.features),
        "frames": [cfg.model.subsampling, cfg.model.subsampling_factor], "speeds": list(cfg.augment.speed_factors)})


def cached_teacher_targets(
    path: Path, cfg: RunConfig, tokenizer: Tokenizer, utts: Sequence[Utterance], means: dict | None,
    device: torch.device | str, log: Callable[[str], None],
) -> dict[TargetKey, torch.Tensor]:
    """The targets stored at `path` if they were made from the same teachers, tokens, frame
    rate and utterances, else computed (and stored atomically)."""
    teachers = load_teachers(cfg.distill.teachers, cfg, tokenizer)  # checked every time
    key = targets_key(teachers, utts, cfg, tokenizer)
    if path.exists():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("key") == key:
                log(f"teacher targets: {len(stored['targets'])} utterance copies from {path}")
                return {(k[0], float(k[1])): v for k, v in stored["targets"]}
            log(f"teacher targets in {path} were made from other teachers or data: recomputing")
        except Exception as e:  # noqa: BLE001 - any damage means: compute again
            log(f"warning: {path} unreadable ({type(e).__name__}): recomputing")
    targets = teacher_targets(teachers, utts, cfg, means, device, log)
    save_torch_atomic({"key": key, "targets": [((k[0], k[1]), v) for k, v in targets.items()]}, path)
    return targets


def distill_objective(
    log_probs: torch.Tensor, out_lens: torch.Tensor, targets: torch.Tensor, target_lens: torch.Tensor,
    teacher: torch.Tensor, teacher_lens: torch.Tensor, cfg: DistillConfig,
) -> torch.Tensor:
    """The batch's summed loss: (1 - weight) x CTC + weight x distillation for each utterance
    with teacher targets (teacher_lens > 0), CTC alone for the others."""
    ctc = ctc_loss_sum(log_probs.float(), out_lens, targets, target_lens, reduction="none")  # (B,)
    taught = teacher_lens.to(ctc.device) > 0
    ctc_weights = torch.where(taught, 1.0 - cfg.weight, 1.0)
    kd = distill_loss_sum(log_probs, out_lens, teacher, teacher_lens.to(ctc.device), cfg.temperature)
    return (ctc * ctc_weights).sum() + cfg.weight * kd


def distill_loss_sum(
    log_probs: torch.Tensor, out_lens: torch.Tensor, teacher: torch.Tensor, teacher_lens: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Sum over the batch of temperature^2 x sum over frames of KL(teacher || student).

    log_probs (B, T, V) of the student, teacher (B, T_t, V) log-probabilities; an utterance
    counts min(out_len, teacher_len) frames (0 where it has no targets).
    """
    n = min(log_probs.shape[1], teacher.shape[1])
    frames = torch.arange(n, device=log_probs.device)[None, :]
    valid = frames < torch.minimum(out_lens, teacher_lens)[:, None]  # (B, n)
    s = torch.log_softmax(log_probs[:, :n].float() / temperature, dim=-1)
    t = torch.log_softmax(teacher[:, :n].float() / temperature, dim=-1)
    kl = (t.exp() * (t - s)).sum(-1)  # (B, n)
    return (kl * valid).sum() * temperature ** 2
