"""One training loop, top to bottom: CTC loss, AdamW, warm-up + cosine decay, clipping.

Outputs in `exp_dir`:
  tokens.txt, stats.pt        token list and feature statistics (from the training set)
  tokenizer.model             the sentencepiece model (bpe / unigram units only; also in model.pt)
  config.yaml                 the full run config
  checkpoints/epoch-N.pt      resumable state after each epoch (the last few are kept)
  model.pt                    bundle of the epoch with the best dev WER
  train.log                   one line per epoch
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from asr.atomic import save_torch_atomic, write_text_atomic
from asr.checkpoint import build_model, load_checkpoint_file, save_bundle
from asr.config import RunConfig, config_differences, from_dict, save_config, to_dict
from asr.data import SpeechDataset, make_loader, speaker_means, speaker_of, utterance_features
from asr.decoding import GreedyDecoder
from asr.errors import AsrError
from asr.evaluate import decode_dataset, score_hypotheses
from asr.features import FeatureStats
from asr.manifest import Utterance
from asr.model import count_parameters, ctc_loss_sum
from asr.tokenizer import (
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    build_tokenizer,
    tokenizer_from_dict,
)


def pick_device(name: str | None = None) -> torch.device:
    """The named torch device, or cuda when available, else cpu."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AsrError(f"--device {name}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AsrError(f"--device {name}: CUDA is not available on this machine")
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for train.precision on `device`, or None for float32."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


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
    """Global feature statistics of `utts` (after speaker mean normalization, given `means`)."""
    if path.exists():
        return FeatureStats.from_dict(torch.load(path, weights_only=True))
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
RESUMABLE_CHANGES = ("train.epochs", "train.keep_checkpoints", "train.num_workers")


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


def latest_checkpoint(exp_dir: Path) -> Path | None:
    ckpts = sorted((exp_dir / "checkpoints").glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    return ckpts[-1] if ckpts else None


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

    cfg None: the defaults, or, when resuming, the config the run was started with.
    """
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    if cfg is None:
        ckpt = latest_checkpoint(exp_dir) if resume else None
        cfg = from_dict(RunConfig, load_checkpoint_file(ckpt)["config"], where=str(ckpt)) if ckpt else RunConfig()
    dev = pick_device(device)
    tc = cfg.train
    seed_everything(tc.seed)

    def log_line(text: str) -> None:
        log(text)
        with open(exp_dir / "train.log", "a") as f:
            f.write(text + "\n")

    state = None
    if not resume and latest_checkpoint(exp_dir) is not None:
        raise AsrError(f"{exp_dir}: holds checkpoints of an earlier run; pass --resume to continue it, "
                       "or choose a new --exp folder")
    if not resume:
        (exp_dir / "stats.pt").unlink(missing_ok=True)
    if resume:
        ckpt = latest_checkpoint(exp_dir)
        if ckpt is None:
            log_line("no checkpoint to resume from; starting from scratch")
        else:
            state = load_checkpoint_file(ckpt)
            cfg = resume_config(from_dict(RunConfig, state["config"], where=str(ckpt)), cfg, ckpt)
            tc = cfg.train
            log_line(f"resuming from {ckpt}")

    if state is not None:
        tokenizer = tokenizer_from_dict(state["tokenizer"]) if "tokenizer" in state else CharTokenizer(state["tokens"])
    else:
        tokenizer = build_tokenizer(cfg.tokenizer, (u.text for u in train_utts))
    write_text_atomic(exp_dir / "tokens.txt", "".join(t + "\n" for t in tokenizer.tokens))
    if isinstance(tokenizer, SentencePieceTokenizer):
        tokenizer.save(exp_dir / "tokenizer.model")
    save_config(cfg, exp_dir / "config.yaml")
    means = None
    if cfg.features.mean_norm == "speaker":
        t0 = time.time()
        factors = (1.0, *[f for f in cfg.augment.speed_factors if f != 1.0])
        means = speaker_means(train_utts, cfg.features, factors)
        log_line(f"speaker means of {len({s for s, _ in means})} speakers x {len(factors)} speeds "
                 f"in {time.time() - t0:.1f}s")
    stats = prepare_stats(train_utts, cfg, exp_dir / "stats.pt", log_line, progress, means)

    model = build_model(cfg, len(tokenizer)).to(dev)
    seconds_per_output = cfg.features.hop_ms / 1000 * cfg.model.subsampling_factor
    train_set = trainable(train_utts, tokenizer, seconds_per_output)
    if len(train_set) < len(train_utts):
        log_line(f"skipping {len(train_utts) - len(train_set)} training utterances "
                 "(empty, too short for their text, or unknown characters)")
    if not train_set:
        raise AsrError("no usable training utterances")
    train_data = SpeechDataset(train_set, tokenizer, cfg.features, stats, augment=cfg.augment, means=means)
    dev_data = SpeechDataset(dev_utts, tokenizer, cfg.features, stats)
    loader, sampler = make_loader(
        train_data, tc.max_batch_frames, True, tc.seed, tc.num_workers, tc.sortagrad_epochs
    )
    # Batches per epoch vary a little (length jitter, sorted first epochs): count them all,
    # so that the learning-rate decay ends on the last step.
    total_steps = sampler.count_batches(range(1, tc.epochs + 1))

    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_lambda(s, tc.warmup_steps, total_steps, tc.final_lr_ratio)
    )
    start_epoch, best_wer = 1, float("inf")
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best_wer = state["epoch"] + 1, state["best_wer"]
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
    n_params = count_parameters(model)
    amp_dtype = autocast_dtype(tc.precision, dev)
    if start_epoch == 1:
        log_line(f"model: {n_params:,} parameters; {len(train_set)} training utterances "
                 f"({sum(u.duration for u in train_set) / 3600:.2f} h), {total_steps / tc.epochs:.1f} batches/epoch; "
                 f"device {dev}, {'bf16 autocast' if amp_dtype else 'float32'}")

    decoder = GreedyDecoder(tokenizer)
    for epoch in range(start_epoch, tc.epochs + 1):
        t0 = time.time()
        model.train()
        sampler.set_epoch(epoch)
        loss_sum, n_utts, audio_s = 0.0, 0, 0.0
        bar = tqdm(loader, desc=f"epoch {epoch}/{tc.epochs}", leave=False, disable=not progress)
        for batch in bar:
            feats, feat_lens = batch.feats.to(dev), batch.feat_lens.to(dev)
            with torch.autocast(dev.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                log_probs, out_lens = model(feats, feat_lens)
            loss = ctc_loss_sum(log_probs.float(), out_lens, batch.targets.to(dev), batch.target_lens.to(dev))
            n = len(batch.ids)
            optimizer.zero_grad(set_to_none=True)
            (loss / n).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach())
            n_utts += n
            audio_s += float(batch.feat_lens.sum()) * cfg.features.hop_ms / 1000
            bar.set_postfix(loss=f"{float(loss.detach()) / n:.2f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
        train_time = time.time() - t0
        hyps, dev_loss = decode_dataset(model, dev_data, decoder, dev)
        summary = score_hypotheses(dev_utts, hyps)
        wall = time.time() - t0
        is_best = summary.wer < best_wer
        best_wer = min(best_wer, summary.wer)
        log_line(
            f"epoch {epoch:3d} | train loss {loss_sum / max(n_utts, 1):7.3f} | dev loss {dev_loss:7.3f} "
            f"| dev WER {summary.wer:6.2f} CER {summary.cer:6.2f} | {audio_s / train_time:6.1f} audio-s/s "
            f"| {wall:6.1f}s{' *' if is_best else ''}"
        )
        info = {"epoch": epoch, "dev_wer": summary.wer, "dev_cer": summary.cer, "n_params": n_params}
        if is_best:
            save_bundle(exp_dir / "model.pt", cfg=cfg, tokenizer=tokenizer, stats=stats, model=model, info=info)
        save_epoch_checkpoint(
            exp_dir, epoch, tc.keep_checkpoints,
            {
                "config": to_dict(cfg), "tokens": tokenizer.tokens, "tokenizer": tokenizer.to_dict(),
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": epoch, "best_wer": best_wer,
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
            },
        )
    return exp_dir / "model.pt"


def save_epoch_checkpoint(exp_dir: Path, epoch: int, keep: int, state: dict) -> None:
    ckpt_dir = exp_dir / "checkpoints"
    save_torch_atomic(state, ckpt_dir / f"epoch-{epoch}.pt")
    old = sorted(ckpt_dir.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    for p in old[: max(0, len(old) - max(keep, 1))]:
        p.unlink()
