"""Training: CTC loss, AdamW, warm-up + cosine decay, gradient clipping, best epoch on dev.

In pieces, as icefall's train.py: `restore_or_start` builds the run (a new one, or the
state of the newest usable epoch checkpoint) as a RunState; `train_one_epoch` and `validate`
do what their names say; `train` runs them in a loop, with the experiment folder locked
(a second `asr train` into the same folder stops with an error instead of mixing files).

Outputs in `exp_dir`:
  tokens.txt, stats.pt        token list and feature statistics (from the training set)
  tokenizer.model             the sentencepiece model (bpe / unigram units only; also in model.pt)
  config.yaml                 the full run config
  checkpoints/epoch-N.pt      resumable state after each epoch (the last few are kept)
  model.pt                    bundle of the epoch with the best dev WER
  model_avg.pt                with train.average_last = N: the mean of the last N epochs' weights
  train.log                   one line per epoch
  .lock                       held while a run trains (see asr.lock)
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import itertools
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from asr.atomic import save_torch_atomic, write_text_atomic
from asr import distributed
from asr.checkpoint import (
    build_model,
    content_checksum,
    epoch_checkpoints,
    load_checkpoint_file,
    load_latest_checkpoint,
    remove_stale_temporaries,
    save_bundle,
    save_epoch_checkpoint,
)
from asr.config import RunConfig, config_differences, from_dict, load_config, save_config, to_dict
from asr.augment import WaveAugmenter, concatenated_utterances
from asr.average import RunningAverage
from asr.data import (
    BucketBatchSampler,
    DeviceFrontend,
    SpeechDataset,
    WaveBatch,
    load_utterance,
    make_loader,
    speaker_means,
    speaker_of,
    utterance_features,
)
from asr.consistency import consistency_loss, two_views
from asr.decoding import GreedyDecoder
from asr.device import autocast_dtype, pick_device
from asr.distill import cached_teacher_targets, distill_objective
from asr.distributed import DistContext, device_for
from asr.errors import AsrError, first_line
from asr.evaluate import decode_dataset, score_hypotheses
from asr.features import FeatureStats
from asr.lock import folder_lock
from asr.manifest import Utterance
from asr.model import AcousticModel, WithIntermediate, count_parameters, ctc_loss_sum
from asr.scoring import Summary
from asr.tokenizer import (
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    build_tokenizer,
    tokenizer_from_dict,
)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_lambda(step: int, warmup: int, total: int, final_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to `final_ratio` at `total` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def trainable(utts: Sequence[Utterance], tokenizer: Tokenizer, seconds_per_output: float) -> list[Utterance]:
    """Utterances whose text the tokenizer covers and that give CTC enough output frames."""
    keep = []
    for u in utts:
        if not u.text.strip() or not tokenizer.can_encode(u.text):
            continue
        if u.duration / seconds_per_output < len(tokenizer.encode(u.text)) + 1:
            continue
        keep.append(u)
    return keep


def prepare_stats(
    utts: Sequence[Utterance], cfg: RunConfig, path: Path, log: Callable, progress: bool = True,
    means: dict | None = None,
) -> FeatureStats:
    """Global feature statistics of `utts` (after speaker mean normalization, given `means`),
    cached in `path`: a cache that does not load or does not fit the config is computed again."""
    if path.exists():
        try:
            return FeatureStats.from_dict(torch.load(path, map_location="cpu", weights_only=True),
                                          cfg.features.n_mels)
        except Exception as e:  # any unreadable cache (torch.load raises many types) is recomputed
            log(f"warning: {path}: {first_line(e)}; computing the statistics again")
    t0 = time.time()
    means = means or {}
    feats = (utterance_features(u, cfg.features, mean=means.get((speaker_of(u), 1.0)))
             for u in tqdm(utts, desc="stats", leave=False, disable=not progress))
    stats = FeatureStats.compute(feats)
    save_torch_atomic(stats.to_dict(), path)
    log(f"feature statistics from {len(utts)} utterances in {time.time() - t0:.1f}s")
    return stats


# Fields a resumed run may change: more epochs stretch the cosine decay over the new total
# (the learning rate rises again from its value at the current step).
# train.average_last may change too: an average whose epochs left the window starts again, and
# one begun after the window's first epoch is logged as such (average_epoch).
RESUMABLE_CHANGES = ("train.epochs", "train.keep_checkpoints", "train.num_workers", "train.dist_backend",
                     "train.dist_timeout", "train.check_replicas", "train.average_last")


def resume_config(saved: RunConfig, requested: RunConfig, ckpt: Path) -> RunConfig:
    """The config to resume with: the saved one, with the changes a resumed run allows (and
    the requested decode settings, which training does not use)."""
    changed = config_differences(saved, requested)
    fixed = [c for c in changed if c.split(":")[0] not in RESUMABLE_CHANGES and not c.startswith("decode.")]
    if fixed:
        raise AsrError(f"{ckpt}: was trained with a different config ({'; '.join(fixed[:4])}); "
                       "resume with the same config, or train into a new --exp folder")
    return dataclasses.replace(saved, decode=requested.decode, train=dataclasses.replace(
        saved.train, **{name.split(".")[1]: getattr(requested.train, name.split(".")[1]) for name in RESUMABLE_CHANGES}
    ))


def run_config(cfg: RunConfig | None, exp_dir: Path, resume: bool, log: Callable[[str], None]
               ) -> tuple[RunConfig, dict | None]:
    """The config to train with, and the checkpoint state to resume from (None: epoch 1).

    cfg None means "the run's own config" (`asr train --resume` alone). Without a checkpoint
    (a run killed before its first epoch ended) that is the run's config.yaml; a run with
    neither is refused rather than started with the defaults.
    """
    if not resume:
        if epoch_checkpoints(exp_dir):
            raise AsrError(f"{exp_dir}: holds checkpoints of an earlier run; pass --resume to continue it, "
                           "or choose a new --exp folder")
        (exp_dir / "stats.pt").unlink(missing_ok=True)
        return cfg or RunConfig(), None
    found = load_latest_checkpoint(exp_dir, log)
    if found is not None:
        ckpt, state = found
        saved = from_dict(RunConfig, state["config"], where=str(ckpt))
        log(f"resuming from {ckpt}")
        return resume_config(saved, cfg or saved, ckpt), state
    saved_path = exp_dir / "config.yaml"
    if saved_path.is_file():
        saved = load_config(saved_path)
        cfg = resume_config(saved, cfg or saved, saved_path)
        log(f"no epoch checkpoint yet; starting {exp_dir} again from epoch 1 with its config.yaml")
        return cfg, None
    if cfg is None:
        raise AsrError(f"{exp_dir}: nothing to resume (no epoch checkpoint, no config.yaml); "
                       "start the run with --config and/or --set")
    log(f"no checkpoint to resume from in {exp_dir}; starting from scratch")
    return cfg, None


@dataclass
class RunState:
    """Everything a training run carries from epoch to epoch."""

    cfg: RunConfig
    exp_dir: Path
    device: torch.device
    tokenizer: Tokenizer
    stats: FeatureStats
    model: AcousticModel  # the model itself (saved, decoded)
    net: torch.nn.Module  # what the training step calls: the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    loader: torch.utils.data.DataLoader
    sampler: BucketBatchSampler
    dev_utts: Sequence[Utterance]
    dev_data: SpeechDataset  # this rank's share of the dev set
    amp_dtype: torch.dtype | None
    n_params: int
    ctx: DistContext = DistContext()
    frontend: DeviceFrontend | None = None  # train.features_on_device
    start_epoch: int = 1
    best_wer: float = float("inf")
    steps: int = 0
    average: RunningAverage = field(default_factory=RunningAverage)  # train.average_last


def decide_run(cfg: RunConfig | None, exp_dir: Path, resume: bool, log: Callable[[str], None],
               ctx: DistContext) -> tuple[RunConfig, dict | None]:
    """run_config on rank 0, then its result (or its error) on every rank; every rank must have
    been started with the same config."""
    requested = ctx.gather(to_dict(cfg) if cfg is not None else None)

    def decide() -> dict:
        other = next((r for r, c in enumerate(requested) if c != requested[0]), None)
        if other is not None:
            diff = config_differences(from_dict(RunConfig, requested[0] or {}), from_dict(RunConfig, requested[other] or {}))
            raise AsrError(f"rank {other} was started with another config than rank 0 "
                           f"({'; '.join(diff[:3]) or 'one with --config, one without'}); start all ranks alike")
        n_stale = remove_stale_temporaries(exp_dir)
        if n_stale:
            log(f"removed {n_stale} temporary file(s) left by an interrupted write")
        run_cfg, state = run_config(cfg, exp_dir, resume, log)
        return {"config": to_dict(run_cfg), "state": state}

    decision = ctx.from_main(decide)  # the checkpoint itself too: ranks need not share a file system
    return from_dict(RunConfig, decision["config"]), decision["state"]


def restore_or_start(
    cfg: RunConfig | None,
    train_utts: Sequence[Utterance],
    dev_utts: Sequence[Utterance],
    exp_dir: Path,
    resume: bool,
    device: str | None,
    progress: bool,
    log: Callable[[str], None],
    ctx: DistContext = DistContext(),
) -> RunState:
    """A new run, or the state after the newest usable epoch checkpoint of `exp_dir`. Rank 0
    decides and writes the run's files; every rank gets the same config, tokenizer,
    statistics and (resuming) checkpoint state."""
    dev = device_for(ctx, pick_device(device))
    requested = (cfg or RunConfig()).train  # the group is joined before rank 0 reads a resumed run's config
    distributed.init(ctx, dev, requested.dist_backend, requested.dist_timeout)
    cfg, state = decide_run(cfg, exp_dir, resume, log, ctx)
    tc = cfg.train
    seed_everything(tc.seed)
    if state is not None:
        try:
            tokenizer = tokenizer_from_dict(state["tokenizer"]) if "tokenizer" in state else CharTokenizer(state["tokens"])
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            raise AsrError(f"{exp_dir}: the checkpoint's tokenizer is not valid ({first_line(e)})") from None
    else:
        built = build_tokenizer(cfg.tokenizer, (u.text for u in train_utts)) if ctx.is_main else None
        tokenizer = tokenizer_from_dict(ctx.broadcast(built.to_dict() if built else None))
    if ctx.is_main:
        write_text_atomic(exp_dir / "tokens.txt", "".join(t + "\n" for t in tokenizer.tokens))
        if isinstance(tokenizer, SentencePieceTokenizer):
            tokenizer.save(exp_dir / "tokenizer.model")
        save_config(cfg, exp_dir / "config.yaml")
    means = None
    if cfg.features.mean_norm == "speaker":
        t0 = time.time()
        factors = (1.0, *[f for f in cfg.augment.speed_factors if f != 1.0])
        means = ctx.broadcast(speaker_means(train_utts, cfg.features, factors) if ctx.is_main else None)
        log(f"speaker means of {len({s for s, _ in means})} speakers x {len(factors)} speeds "
            f"in {time.time() - t0:.1f}s")
    if state is not None and "stats" in state:  # the statistics the checkpoint was trained with
        try:
            stats = FeatureStats.from_dict(state["stats"], cfg.features.n_mels)
        except ValueError as e:
            raise AsrError(f"{exp_dir}: the checkpoint's {e}") from None
    else:
        stats = prepare_stats(train_utts, cfg, exp_dir / "stats.pt", log, progress, means) if ctx.is_main else None
        stats = FeatureStats.from_dict(ctx.broadcast(stats.to_dict() if stats else None))

    model = build_model(cfg, len(tokenizer)).to(dev)
    if ctx.rank:  # rank 0 keeps the single-process random stream; the others get their own
        seed_everything(tc.seed + 1_000_003 * ctx.rank)
    seconds_per_output = cfg.features.hop_ms / 1000 * cfg.model.subsampling_factor
    train_set = trainable(train_utts, tokenizer, seconds_per_output)
    if len(train_set) < len(train_utts):
        log(f"skipping {len(train_utts) - len(train_set)} training utterances "
            "(empty, too short for their text, or unknown characters)")
    if not train_set:
        raise AsrError("no usable training utterances")
    targets = teacher_targets_of(cfg, exp_dir, tokenizer, train_set, means, dev, ctx, log) \
        if cfg.distill.teachers else None
    if cfg.augment.concat_fraction > 0:
        train_set = train_set + joined_utterances(cfg, train_set, tokenizer, exp_dir, ctx, log)
    augmenter = WaveAugmenter(cfg.augment, cfg.features.sample_rate, babble_pool=train_set,
                              load=functools.partial(load_utterance, feat_cfg=cfg.features), seed=tc.seed)
    step_masks = tc.cr_ctc_weight > 0  # CR-CTC masks the doubled batch in the step (asr.consistency), not before
    train_data = SpeechDataset(train_set, tokenizer, cfg.features, stats, augment=cfg.augment, means=means,
                               wave_augmenter=augmenter, seed=tc.seed, waves_only=tc.features_on_device,
                               teacher_targets=targets, mask=not step_masks)
    loader, sampler = make_loader(train_data, tc.max_batch_frames, True, tc.seed, tc.num_workers, tc.sortagrad_epochs,
                                  ctx.rank, ctx.world, pin_memory=dev.type == "cuda")
    # Batches per epoch vary a little (length jitter, sorted first epochs): count them all,
    # so that the learning-rate decay ends on the last step.
    total_steps = sum(math.ceil(n / tc.accum_steps) for n in sampler.batches_per_epoch(range(1, tc.epochs + 1)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_lambda(s, tc.warmup_steps, total_steps, tc.final_lr_ratio)
    )
    net = WithIntermediate(model)  # forward -> (log_probs, out_lens, intermediate CTC's log_probs or None)
    if ctx.active:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    dev_share = list(dev_utts)[ctx.rank::ctx.world]
    run = RunState(cfg, exp_dir, dev, tokenizer, stats, model, net, optimizer, scheduler, loader, sampler, dev_utts,
                   SpeechDataset(dev_share, tokenizer, cfg.features, stats), autocast_dtype(tc.precision, dev),
                   count_parameters(model), ctx,
                   DeviceFrontend(cfg.features, stats, None if step_masks else cfg.augment)
                   if tc.features_on_device else None)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise AsrError(f"{exp_dir}: the checkpoint does not fit its config ({first_line(e)})") from None
        run.start_epoch, run.best_wer = state["epoch"] + 1, min(state["best_wer"], best_saved_wer(exp_dir))
        run.steps = int(state.get("steps", 0))
        run.average = RunningAverage.from_dict(state.get("average"))
        ranks = state.get("rng_ranks")
        if ranks is not None and len(ranks) == ctx.world:
            restore_rng(ranks[ctx.rank])
        elif ctx.is_main:
            restore_rng(state["rng"])
            if ranks is not None or ctx.active:
                log(f"warning: the checkpoint was written by {len(ranks or [0])} rank(s), this run has {ctx.world}: "
                    "the effective batch and the random streams of the other ranks change")
    else:
        batch_s = tc.max_batch_frames * cfg.features.hop_ms / 1000
        log(f"model: {run.n_params:,} parameters; {len(train_set)} training utterances "
            f"({sum(u.duration for u in train_set) / 3600:.2f} h), {total_steps / tc.epochs:.1f} steps/epoch; "
            f"device {dev}, {'bf16 autocast' if run.amp_dtype else 'float32'}"
            + (f"; {ctx.world} ranks ({distributed_backend()})" if ctx.active else ""))
        if ctx.active or tc.accum_steps > 1:
            log(f"effective batch: {tc.max_batch_frames} frames ({batch_s:.0f} s of padded audio) per rank x "
                f"{ctx.world} rank(s) x {tc.accum_steps} accumulation step(s) = "
                f"{tc.max_batch_frames * ctx.world * tc.accum_steps} frames")
    return run


def teacher_targets_of(cfg: RunConfig, exp_dir: Path, tokenizer: Tokenizer, train_set: list, means, dev,
                       ctx: DistContext, log: Callable[[str], None]) -> dict:
    """distill.teachers' targets for the training utterances (before joined ones are added):
    rank 0 computes or reads them, every rank gets them, or rank 0's error."""
    return ctx.from_main(lambda: cached_teacher_targets(exp_dir / "teacher.pt", cfg, tokenizer, train_set, means,
                                                        dev, log))


def joined_utterances(cfg: RunConfig, train_set: list, tokenizer, exp_dir: Path, ctx: DistContext,
                      log: Callable[[str], None]) -> list:
    """augment.concat_fraction more training utterances of 2-3 joined ones (rank 0 writes them
    into EXP/concatenated/, the other ranks get the list)."""
    t0 = time.time()
    joined = None
    if ctx.is_main:
        joined = concatenated_utterances(
            train_set, cfg.augment.concat_fraction, cfg.augment.concat_utterances, exp_dir / "concatenated",
            cfg.train.seed, cfg.features.sample_rate, functools.partial(load_utterance, feat_cfg=cfg.features))
        joined = trainable(joined, tokenizer, cfg.features.hop_ms / 1000 * cfg.model.subsampling_factor)
        log(f"{len(joined)} joined utterances ({sum(u.duration for u in joined) / 3600:.2f} h) added "
            f"in {time.time() - t0:.1f}s")
    return ctx.broadcast(joined)


def distributed_backend() -> str:
    return torch.distributed.get_backend() if torch.distributed.is_initialized() else "none"


@dataclass
class EpochResult:
    loss: float  # mean training loss per utterance (CTC, or the mixed loss of distill.teachers, intermediate
    # CTC or CR-CTC, so not comparable with the dev loss then; over all ranks)
    audio_seconds: float  # over all ranks
    seconds: float


def train_one_epoch(run: RunState, epoch: int, progress: bool = True) -> EpochResult:
    """One pass over the training batches (the sampler's order for `epoch`).

    The loss is CTC's, or with distill.teachers (1 - weight) x CTC + weight x distillation
    (asr.distill) for the utterances that have teacher targets; with train.cr_ctc_weight, the
    mean over two views of each utterance plus their consistency term (asr.consistency).

    An optimizer step takes train.accum_steps batches on every rank. Each batch's summed
    CTC loss is scaled by ranks / (utterances in the step over all ranks): with DDP averaging
    the gradients over the ranks, a step is the gradient of the mean loss per utterance of
    the whole global batch, the same as one process would take over all of it.
    """
    t0 = time.time()
    cfg, dev, ctx = run.cfg, run.device, run.ctx
    run.net.train()
    run.sampler.set_epoch(epoch)
    run.loader.dataset.set_epoch(epoch)
    loss_sum, n_utts, audio_s = 0.0, 0, 0.0
    accum = cfg.train.accum_steps
    bar = tqdm(total=len(run.sampler), desc=f"epoch {epoch}/{cfg.train.epochs}", leave=False,
               disable=not progress or not ctx.is_main)
    batches = iter(run.loader)
    generator = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + epoch * 1009 + ctx.rank)  # device SpecAugment
    while group := list(itertools.islice(batches, accum)):
        n_step = ctx.sum(sum(len(b.ids) for b in group))
        run.optimizer.zero_grad(set_to_none=True)
        for k, batch in enumerate(group):
            last = k == len(group) - 1
            with contextlib.nullcontext() if last or not ctx.active else run.net.no_sync():
                feats, feat_lens = batch_on_device(run, batch, generator)
                audio_s += float(feat_lens.sum()) * cfg.features.hop_ms / 1000
                loss = batch_loss(run, batch, feats, feat_lens, generator)
                (loss * ctx.world / n_step).backward()
            loss_sum += float(loss.detach())
            n_utts += len(batch.ids)
            bar.update(1)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.train.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        run.steps += 1
        if cfg.train.check_replicas:
            check_replicas(run)
        bar.set_postfix(loss=f"{float(loss.detach()) / len(group[-1].ids):.2f}",
                        lr=f"{run.scheduler.get_last_lr()[0]:.1e}")
    bar.close()
    return EpochResult(ctx.sum(loss_sum) / max(ctx.sum(n_utts), 1), ctx.sum(audio_s), time.time() - t0)


def batch_loss(run: RunState, batch, feats: torch.Tensor, feat_lens: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The training loss of one batch, summed over its utterances (see train_one_epoch)."""
    cfg, dev = run.cfg, run.device
    targets, target_lens = batch.targets.to(dev), batch.target_lens.to(dev)
    views = cfg.train.cr_ctc_weight > 0
    if views:  # CR-CTC: every utterance twice, masked apart (asr.consistency)
        feats, feat_lens = two_views(feats, feat_lens, cfg.augment, generator)
        targets, target_lens = targets.repeat(2, 1), target_lens.repeat(2)
    with torch.autocast(dev.type, dtype=run.amp_dtype or torch.bfloat16, enabled=run.amp_dtype is not None):
        log_probs, out_lens, inter = run.net(feats, feat_lens)
    if batch.teacher is None:
        loss = ctc_loss_sum(log_probs.float(), out_lens, targets, target_lens)
    else:
        loss = distill_objective(log_probs, out_lens, targets, target_lens,
                                 batch.teacher.to(dev), batch.teacher_lens, cfg.distill)
    if inter is not None:  # intermediate CTC (model.inter_ctc_layer)
        w = cfg.train.inter_ctc_weight
        loss = (1 - w) * loss + w * ctc_loss_sum(inter, out_lens, targets, target_lens)
    if views:  # the mean over the two views, plus the consistency term
        loss = 0.5 * (loss + cfg.train.cr_ctc_weight * consistency_loss(log_probs, out_lens))
    return loss


def batch_on_device(run: RunState, batch, generator: torch.Generator | None = None):
    """The batch's features and their lengths on the training device: moved there, or (a
    WaveBatch, train.features_on_device) computed there."""
    if isinstance(batch, WaveBatch):
        return run.frontend(batch, run.device, generator)
    return batch.feats.to(run.device, non_blocking=True), batch.feat_lens.to(run.device, non_blocking=True)


def check_replicas(run: RunState) -> None:
    """AsrError unless every rank holds bit-identical weights (train.check_replicas)."""
    digests = run.ctx.gather(content_checksum(run.model.state_dict()))
    if len(set(digests)) > 1:
        raise AsrError(f"after step {run.steps}: ranks hold different weights ({', '.join(d[:8] for d in digests)})")


def validate(run: RunState, model: AcousticModel | None = None) -> tuple[Summary, float]:
    """Greedy WER/CER on the dev set and the mean dev CTC loss per utterance of `model` (the
    run's own by default); each rank decodes its share, rank 0 scores them all."""
    model = run.model if model is None else model
    hyps, dev_loss = decode_dataset(model, run.dev_data, GreedyDecoder(run.tokenizer), run.device)
    shares = run.ctx.gather((hyps, dev_loss * len(run.dev_data)))
    all_hyps = {uid: h for share, _ in shares for uid, h in share.items()}
    return score_hypotheses(run.dev_utts, all_hyps), sum(loss for _, loss in shares) / max(len(run.dev_utts), 1)


def checkpoint_state(run: RunState, epoch: int) -> dict:
    return {
        "config": to_dict(run.cfg), "tokens": run.tokenizer.tokens, "tokenizer": run.tokenizer.to_dict(),
        "stats": run.stats.to_dict(), "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "epoch": epoch, "best_wer": run.best_wer, "steps": run.steps,
        "rng": rng_state(), "rng_ranks": run.ctx.gather(rng_state()) if run.ctx.active else None,
        "average": run.average.to_dict() if run.average.epochs else None,
    }


def rng_state() -> dict:
    _, keys, pos, has_gauss, cached = np.random.get_state()  # ("MT19937", uint32 keys, ...), as tensors and numbers
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                       "cached": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """The random generators as a checkpoint saved them (numpy and CUDA where it has them)."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "numpy" in state:
        n = state["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def best_saved_wer(exp_dir: Path) -> float:
    """The dev WER of the model.pt on disk (inf if none or unreadable): after falling back over a
    damaged checkpoint, a retrained epoch must beat it to replace it."""
    try:
        return float(load_checkpoint_file(exp_dir / "model.pt").get("info", {}).get("dev_wer", math.inf))
    except (AsrError, TypeError, ValueError):
        return math.inf


def train(
    cfg: RunConfig | None,
    train_utts: Sequence[Utterance],
    dev_utts: Sequence[Utterance],
    exp_dir: str | Path,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Train, evaluate on dev after each epoch; returns the path of the best model bundle.

    cfg None: the defaults, or, when resuming, the config the run was started with. Under
    torchrun every rank calls this; rank 0 alone logs and writes (and locks the folder).
    """
    exp_dir = Path(exp_dir)
    ctx = distributed.from_environment()
    if ctx.is_main:
        try:
            exp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a file where the folder should be, no permission
            raise AsrError(f"{exp_dir}: cannot make the experiment folder ({e.strerror})") from None

    def log_line(text: str) -> None:
        if not ctx.is_main:
            return
        log(text)
        with open(exp_dir / "train.log", "a") as f:
            f.write(text + "\n")

    lock = folder_lock(exp_dir, exp_dir / ".lock", "experiment folder") if ctx.is_main else contextlib.nullcontext()
    finished = False
    try:
        with lock:
            run = restore_or_start(cfg, train_utts, dev_utts, exp_dir, resume, device, progress, log_line, ctx)
            for epoch in range(run.start_epoch, run.cfg.train.epochs + 1):
                run_epoch(run, epoch, progress, log_line)
            if run.cfg.train.check_replicas and ctx.active:
                log_line(f"replicas: the {ctx.world} ranks held identical weights after each of {run.steps} steps")
        finished = True
    finally:
        distributed.shutdown(ctx, finished)
    return exp_dir / "model.pt"


def run_epoch(run: RunState, epoch: int, progress: bool, log_line: Callable[[str], None]) -> None:
    """Train one epoch, validate, and (rank 0) log it and write model.pt and the checkpoint."""
    t0 = time.time()
    result = train_one_epoch(run, epoch, progress)
    summary, dev_loss = validate(run)
    is_best = summary.wer < run.best_wer
    run.best_wer = min(run.best_wer, summary.wer)
    log_line(
        f"epoch {epoch:3d} | train loss {result.loss:7.3f} | dev loss {dev_loss:7.3f} "
        f"| dev WER {summary.wer:6.2f} CER {summary.cer:6.2f} "
        f"| {result.audio_seconds / result.seconds:6.1f} audio-s/s "
        f"| {time.time() - t0:6.1f}s{' *' if is_best else ''}"
    )
    average_epoch(run, epoch, log_line)
    state = checkpoint_state(run, epoch)  # every rank: its random state is gathered into it
    if run.ctx.is_main:
        if is_best:
            info = {"epoch": epoch, "dev_wer": summary.wer, "dev_cer": summary.cer, "n_params": run.n_params}
            save_bundle(run.exp_dir / "model.pt", cfg=run.cfg, tokenizer=run.tokenizer, stats=run.stats,
                        model=run.model, info=info)
        save_epoch_checkpoint(run.exp_dir, epoch, run.cfg.train.keep_checkpoints, state)
    run.ctx.barrier()


def average_epoch(run: RunState, epoch: int, log_line: Callable[[str], None]) -> None:
    """train.average_last = N: add the weights after `epoch`, if it is one of the last N, to the
    run's running mean and write that mean as model_avg.pt (rank 0); after the last epoch, also
    score it on dev. An average that does not lead up to `epoch` within the window (train.epochs
    or average_last changed on resume) starts again."""
    n, last = run.cfg.train.average_last, run.cfg.train.epochs
    first = last - n + 1
    done = run.average.epochs
    if done and (n <= 0 or done[0] < first or done[-1] != epoch - 1):
        if n > 0:
            log_line(f"average: epochs {done[0]}-{done[-1]} do not lead up to epoch {epoch} within the last {n}; "
                     "it starts again")
        run.average = RunningAverage()
    if n <= 0 or epoch < first:
        return
    if not run.average.epochs and epoch > first:
        log_line(f"average: it starts at epoch {epoch}, not {first} (the checkpoint resumed from holds none)")
    run.average.add(run.model.state_dict(), epoch)
    if not (run.ctx.is_main or epoch == last):  # other ranks only join the final dev score
        return
    model = copy.deepcopy(run.model)
    model.load_state_dict(run.average.mean(run.model.state_dict()))
    epochs = list(run.average.epochs)
    info = {"averaged_epochs": epochs, "n_params": run.n_params}
    if epoch == last:
        summary, dev_loss = validate(run, model)
        info.update(dev_wer=summary.wer, dev_cer=summary.cer)
        short = f" ({len(epochs)} of the {n} asked for)" if len(epochs) < n else ""
        log_line(f"model_avg.pt: the mean of epochs {epochs[0]}-{epochs[-1]}{short} | dev loss {dev_loss:7.3f} "
                 f"| dev WER {summary.wer:6.2f} CER {summary.cer:6.2f}")
    if run.ctx.is_main:
        save_bundle(run.exp_dir / "model_avg.pt", cfg=run.cfg, tokenizer=run.tokenizer, stats=run.stats,
                    model=model, info=info)
