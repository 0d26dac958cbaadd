"""Our duration-bucketing sampler against lhotse's DynamicBucketingSampler at scale.

    python bench/sampler_scale.py --utterances 300000 [--which ours|lhotse|both]

A synthetic manifest of N utterances (LibriSpeech-like durations: gamma-distributed, 1-35 s;
no audio is read: samplers only need durations) is written once; then each sampler runs in
a process of its own and reports its start-up time (reading the manifest and building the
sampler), its peak resident memory, and the batches per second of one full epoch of batch
index lists (both with about 600 s of padded audio per batch, shuffled, 2 ranks' view from
rank 0). One JSON line each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

OURS = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
t0 = time.perf_counter()
from asr.manifest import read_manifest
from asr.data import BucketBatchSampler
utts = read_manifest({manifest!r})
frames = [int(u.duration * 100) + 1 for u in utts]
sampler = BucketBatchSampler(frames, max_frames=60000, shuffle=True, seed=0, rank=0, world=2)
name = "asr BucketBatchSampler"
"""

LHOTSE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from lhotse import CutSet, Recording, SupervisionSegment, AudioSource
from lhotse.cut import MonoCut
from lhotse.dataset import DynamicBucketingSampler
cuts = []
with open({manifest!r}) as f:
    for line in f:
        r = json.loads(line)
        rec = Recording(id=r["id"], sources=[AudioSource(type="file", channels=[0], source=r["audio"])],
                        sampling_rate=16000, num_samples=int(r["duration"] * 16000), duration=r["duration"])
        sup = SupervisionSegment(id=r["id"], recording_id=r["id"], start=0.0, duration=r["duration"],
                                 text=r["text"], speaker=r["speaker"])
        cuts.append(MonoCut(id=r["id"], start=0.0, duration=r["duration"], channel=0, recording=rec,
                            supervisions=[sup]))
cuts = CutSet.from_cuts(cuts)
sampler = DynamicBucketingSampler(cuts, max_duration=600.0, num_buckets=30, shuffle=True, seed=0,
                                  world_size=2, rank=0)
name = "lhotse DynamicBucketingSampler"
"""

# After either: one epoch of batch index lists, timed.
REPORT = r"""
t1 = time.perf_counter()
n = sum(1 for _ in sampler)
t2 = time.perf_counter()
print(json.dumps({"sampler": name, "startup_s": round(t1 - t0, 2), "batches": n,
                  "batches_per_s": round(n / (t2 - t1)), "epoch_s": round(t2 - t1, 2),
                  "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def write_manifest(path: Path, n: int, seed: int = 0) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    durations = np.clip(rng.gamma(4.0, 3.2, n), 1.0, 35.0)
    with open(path, "w") as f:
        for i, d in enumerate(durations):
            f.write(json.dumps({"id": f"u{i}", "audio": f"/corpus/{i % 1000}/u{i}.flac", "duration": round(float(d), 2),
                                "text": "WORDS OF THE UTTERANCE", "speaker": f"s{i % 2000}"}) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--utterances", type=int, default=300_000)
    p.add_argument("--which", choices=("both", "ours", "lhotse"), default="both")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "synthetic.jsonl"
        write_manifest(manifest, a.utterances)
        for name, code in (("ours", OURS), ("lhotse", LHOTSE)):
            if a.which not in ("both", name):
                continue
            r = subprocess.run([sys.executable, "-c", code.format(repo=str(REPO), manifest=str(manifest)) + REPORT],
                               capture_output=True, text=True)
            if r.returncode:
                raise SystemExit(f"{name}: {r.stderr[-2000:]}")
            print(json.dumps({**json.loads(r.stdout.strip().splitlines()[-1]), "utterances": a.utterances}), flush=True)


if __name__ == "__main__":
    t0 = time.time()
    main()
