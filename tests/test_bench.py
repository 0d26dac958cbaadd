"""The benchmark scripts still run against the code they measure (tiny settings, no timings checked)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_train_throughput_runs_the_training_step(tmp_path):
    # intermediate CTC makes the model return a third output: the bench must take the training
    # loss from asr.train, not call the model itself
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "train_throughput.py"), "--synthetic", "6", "--steps", "2",
         "--warmup", "1", "--set", "model.hidden_size=32", "--set", "model.n_layers=2",
         "--set", "model.inter_ctc_layer=1", "--set", "train.max_batch_frames=3000"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["steps"] == 2 and record["precision"] in ("float32", "torch.bfloat16")
    assert record["audio_s_per_s"] > 0 and 0 <= record["data_wait_share"] < 1
