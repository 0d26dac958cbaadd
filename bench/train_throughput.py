"""Training throughput: audio seconds per second, for the whole step (data included) and the
model step alone, the share of time spent waiting for data, utterances per second, peak host
and device memory. One JSON line.

    python bench/train_throughput.py --config recipes/an4/conf/train.yaml \\
        --manifest data/an4/manifests/train.jsonl [--steps 40] [--epoch 1] [--device cpu|cuda] [--set k=v ...]
    python bench/train_throughput.py --config recipes/librispeech/conf/train_960h.yaml \\
        --synthetic 2000 [--device cuda]       # LibriSpeech-like lengths (2-20 s), generated audio
    torchrun --nproc-per-node 4 bench/train_throughput.py ...   # per-rank figures, summed on rank 0

The loader, model, loss and optimizer are asr.train's own (restore_or_start, and the step of
train_one_epoch with its loss, batch_loss): a step waits for its batch (data time), then runs
the features on the device if train.features_on_device is set, forward, the training loss,
backward and the optimizer (model time, synchronized on CUDA; its first part, the batch's
move to the device and the features there, is also given alone). The first --warmup steps are
not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def synthetic_utterance(i: int, folder: Path, seed: int):
    """Utterance i: 2-20 s (gamma-distributed, LibriSpeech-like) of a noise-modulated tone with a
    random letter text, written as FLAC."""
    import numpy as np
    import soundfile as sf

    from asr.manifest import Utterance

    rng = np.random.default_rng([seed, i])
    seconds = float(np.clip(rng.gamma(4.0, 3.0), 2.0, 20.0))
    t = np.arange(int(seconds * 16000)) / 16000
    wave = 0.1 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) * (1 + np.sin(2 * np.pi * 3 * t))
    wave += 0.01 * rng.standard_normal(len(t))
    path = folder / f"s{i}.flac"
    sf.write(str(path), wave.astype(np.float32), 16000)
    words = ["".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), rng.integers(2, 8))) for _ in
             range(int(seconds * 2.5))]
    return Utterance(f"s{i}", str(path), round(seconds, 3), " ".join(words), f"spk{i % 50}")


def synthetic_manifest(n: int, folder: Path, seed: int = 0) -> Path:
    """n synthetic utterances (synthetic_utterance), written by a process per core, and their manifest."""
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    from asr.manifest import write_manifest

    folder.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max(1, min(os.cpu_count() or 1, n // 50))) as pool:
        utts = list(pool.map(partial(synthetic_utterance, folder=folder, seed=seed), range(n), chunksize=16))
    write_manifest(utts, folder / "synthetic.jsonl")
    return folder / "synthetic.jsonl"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML overrides (a recipe's conf file)")
    p.add_argument("--set", action="append", default=[], help="more overrides, e.g. train.num_workers=2")
    p.add_argument("--manifest", help="training manifest (real audio)")
    p.add_argument("--synthetic", type=int, help="generate this many LibriSpeech-like utterances instead")
    p.add_argument("--synthetic-dir", help="where to write them (kept, for another run's --manifest); "
                   "default: a temporary folder")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--epoch", type=int, default=1,
                   help="the loader's first epoch (what it augments depends on it: e.g. the AN4 recipe's "
                   "noise, rooms and telephone start at augment.wave_augment_from_epoch 10)")
    p.add_argument("--device")
    a = p.parse_args()

    import torch

    from asr import distributed
    from asr.config import load_config
    from asr.manifest import read_manifest
    from asr.train import batch_loss, batch_on_device, restore_or_start

    ctx = distributed.from_environment()
    work = Path(tempfile.mkdtemp(prefix="asr-throughput-"))
    manifest = a.manifest or synthetic_manifest(a.synthetic or 500, Path(a.synthetic_dir or work / "data"))
    utts = read_manifest(manifest)
    cfg = load_config(a.config, a.set + ["train.epochs=1000"])
    run = restore_or_start(cfg, utts, utts[:2], work / f"exp{ctx.rank}", False, a.device, False,
                           lambda s: None, ctx)
    dev = run.device
    run.net.train()
    generator = torch.Generator().manual_seed(cfg.train.seed)  # device SpecAugment, as in training
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    data_s = model_s = front_s = audio = 0.0
    n_utts = steps = 0
    epoch = a.epoch
    while steps < a.steps + a.warmup:
        run.sampler.set_epoch(epoch)
        run.loader.dataset.set_epoch(epoch)
        batches = iter(run.loader)
        while steps < a.steps + a.warmup:
            t0 = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                epoch += 1
                break
            t1 = time.perf_counter()
            feats, lens = batch_on_device(run, batch, generator)
            if cuda:
                torch.cuda.synchronize(dev)
            t_front = time.perf_counter()
            loss = batch_loss(run, batch, feats, lens, generator)
            run.optimizer.zero_grad(set_to_none=True)
            (loss / len(batch.ids)).backward()
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.train.grad_clip)
            run.optimizer.step()
            if cuda:
                torch.cuda.synchronize(dev)
            t2 = time.perf_counter()
            steps += 1
            if steps > a.warmup:
                data_s += t1 - t0
                model_s += t2 - t1
                front_s += t_front - t1
                audio += float(lens.sum()) * cfg.features.hop_ms / 1000
                n_utts += len(batch.ids)
    total = data_s + model_s
    record = {
        "ranks": ctx.world, "device": str(dev), "params": run.n_params, "steps": a.steps,
        "threads": torch.get_num_threads(), "num_workers": cfg.train.num_workers,
        "precision": str(run.amp_dtype or "float32"),
        "audio_s_per_s": round(ctx.sum(audio) / total, 1),  # ranks run in parallel: their audio adds up
        "model_step_audio_s_per_s": round(ctx.sum(audio) / model_s, 1),
        "data_wait_share": round(data_s / total, 3),
        "frontend_share": round(front_s / total, 3),  # batch to the device (+ log-mel, SpecAugment there)
        "utts_per_s": round(ctx.sum(n_utts) / total, 1),
        "peak_host_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_device_mb": round(torch.cuda.max_memory_allocated(dev) / 2**20) if cuda else None,
        "first_epoch": a.epoch, "manifest": str(manifest), "config": a.config, "overrides": a.set,
    }
    if ctx.is_main:
        print(json.dumps(record))
    distributed.shutdown(ctx)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
