"""recipes/librispeech and recipes/mini_librispeech on tiny fake corpora: every stage runs
once, in order, with the outputs where the next stage looks for them."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.test_librispeech import FAKE, fake_librispeech

TINY = """
model: {rnn_type: gru, n_layers: 1, hidden_size: 32, conv_channels: 4}
train: {epochs: 1, max_batch_frames: 20000}
"""


def run_recipe(name, tmp_path, *args, **env):
    (tmp_path / "tiny.yaml").write_text(TINY)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env}
    cmd = ["bash", str(REPO / "recipes" / name / "run.sh"), "--config", str(tmp_path / "tiny.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, check=False)


def test_librispeech_recipe_runs_all_stages(tmp_path):
    parts = {p: FAKE["dev-clean"] for p in ("dev-clean", "dev-other", "test-clean", "test-other")}
    src = fake_librispeech(tmp_path / "src", {**parts, "train-clean-100": FAKE["train-clean-100"]})
    with gzip.open(tmp_path / "lm.txt.gz", "wt") as f:
        f.write("THAT HAD ITS SOURCE\nI'M NOT SURE\n" * 300)
    work = tmp_path / "ls"
    r = run_recipe("librispeech", tmp_path, "--setup", "100h", "--source", str(src), "--work", str(work),
                   ASR_LIBRISPEECH_LM_SOURCE=str(tmp_path / "lm.txt.gz"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in (work / "manifests").iterdir()) == [
        "dev-clean.jsonl", "dev-other.jsonl", "test-clean.jsonl", "test-other.jsonl", "train-clean-100.jsonl",
        "train.jsonl"]
    for split in ("dev-clean", "dev-other", "test-clean", "test-other"):
        for name in ("greedy", "beam_lm"):
            summary = json.loads((work / "exp" / f"decode_{split}_{name}" / "summary.json").read_text())
            assert summary["n_sentences"] == 1
    from asr.kenlm import find_kenlm

    if find_kenlm() is not None:  # lmplz takes the whole text: its 600 lines and the 3 training transcripts
        assert "order 3, 603 sentences, kenlm backend" in r.stdout
    else:  # the Python fallback: --every 200 keeps lines 1, 201 and 401 of the 600, plus the 3 transcripts
        assert "order 3, 6 sentences, python backend" in r.stdout
    assert len(json.loads((work / "exp" / "model_lm.tune.json").read_text())["grid"]) == 16
    times = (work / "stage_times.txt").read_text()
    assert all(f"stage {n} " in times for n in range(7))


def test_mini_librispeech_prepare_stage_and_bad_setup(tmp_path):
    parts = {"train-clean-5": FAKE["train-clean-100"], "dev-clean-2": FAKE["dev-clean"],
             "test-clean": FAKE["dev-clean"]}
    src = fake_librispeech(tmp_path / "src", parts)
    work = tmp_path / "mini"
    r = run_recipe("mini_librispeech", tmp_path, "--stop-stage", "0", "--work", str(work),
                   ASR_MINI_LIBRISPEECH_SOURCE=str(src))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "train: 3 utterances kept, 0 skipped" in r.stdout
    assert sorted(p.name for p in (work / "manifests").iterdir()) == [
        "dev-clean-2.jsonl", "test-clean.jsonl", "train-clean-5.jsonl", "train.jsonl"]
    r = run_recipe("librispeech", tmp_path, "--setup", "10h")
    assert r.returncode == 2 and "--setup must be 100h or 960h" in r.stderr
