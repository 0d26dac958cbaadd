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


def test_portable_manifests_copy_the_samples_exactly_with_relative_paths(tmp_path):
    import numpy as np
    import soundfile as sf

    from asr.audio import load_audio
    from asr.manifest import Utterance, read_manifest, write_manifest
    from tests.conftest import write_tone

    src = tmp_path / "src"
    src.mkdir()
    a = str(write_tone(src / "a.wav", 0.5, subtype="PCM_16"))
    utts = [Utterance("a/1", a, 0.5, "A", "s"),
            Utterance("b", str(write_tone(src / "b.wav", 0.3, rate=8000, subtype="PCM_16")), 0.3, "B", "s"),
            Utterance("seg", a, 0.2, "A", "s", offset=0.1)]  # a segment of a longer file
    write_manifest(utts, src / "dev.jsonl")
    out = tmp_path / "moved" / "manifests"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "portable_manifests.py"), str(src / "dev.jsonl"),
                          "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    names = [json.loads(line)["audio"] for line in (out / "dev.jsonl").read_text().splitlines()]
    assert names[0].startswith("audio/a_1-") and names[0].endswith(".flac")  # a safe file name for "a/1"
    assert names[1] == "audio/b.wav"  # resampled from 8 kHz: not 16-bit samples, so a float WAV
    assert names[2] == "audio/seg.flac"
    (tmp_path / "moved").rename(tmp_path / "elsewhere")  # relative paths: the folder can move
    copies = read_manifest(tmp_path / "elsewhere" / "manifests" / "dev.jsonl")
    for utt, copy in zip(utts, copies):
        assert (copy.id, copy.text, copy.duration, copy.offset) == (utt.id, utt.text, utt.duration, None)
        assert sf.info(copy.audio).samplerate == 16000  # as training reads it
        original = load_audio(utt.audio, offset=utt.offset or 0.0, duration=utt.duration if utt.offset else None)
        assert np.array_equal(load_audio(copy.audio).numpy(), original.numpy())
