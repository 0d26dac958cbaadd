"""recipes/{common_voice,tedlium,timit}: the prepare stage on fake corpora through run.sh, and
configs that load. Training on these corpora is not tested here (no real data)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asr.config import load_config
from asr.manifest import read_manifest
from tests.conftest import REPO
from tests.test_common_voice import fake_russian
from tests.test_tedlium import fake_tedlium
from tests.test_timit import fake_timit

FAKES = {"common_voice": fake_russian, "tedlium": fake_tedlium, "timit": fake_timit}
KEPT = {"common_voice": (1, 1, 0), "tedlium": (4, 1, 1), "timit": (3, 1, 1)}


@pytest.mark.parametrize("corpus", sorted(FAKES))
def test_prepare_stage_runs_once(tmp_path, corpus):
    source = FAKES[corpus](tmp_path / "src")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    work = tmp_path / "work"
    cmd = ["bash", str(REPO / "recipes" / corpus / "run.sh"), "--source", str(source), "--work", str(work),
           "--stop-stage", "0"]
    first = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (work / ".done.0.prepare").is_file()
    for split, n in zip(("train", "dev", "test"), KEPT[corpus]):
        path = work / "manifests" / f"{split}.jsonl"
        assert (len(read_manifest(path)) if n else len(path.read_text())) == n
    second = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert second.returncode == 0 and "stage 0 (prepare): already done, skipping" in second.stdout


def test_recipe_help_and_configs():
    titles = {"common_voice": "Common Voice recipe", "tedlium": "TED-LIUM 3 recipe", "timit": "TIMIT phone recognition"}
    for corpus, title in titles.items():
        run = REPO / "recipes" / corpus / "run.sh"
        out = subprocess.run(["bash", str(run), "--help"], check=False, capture_output=True, text=True).stdout
        assert out.startswith(f"# {title}") and "--source" in out and "set -euo" not in out
    for conf in ("common_voice/conf/train.yaml", "common_voice/conf/large.yaml", "tedlium/conf/train.yaml"):
        load_config(REPO / "recipes" / conf)
    timit = load_config(REPO / "recipes" / "timit" / "conf" / "train.yaml")
    assert timit.tokenizer.unit == "word"  # phones as tokens
    assert timit.model.subsampling_factor == 2


def test_timit_recipe_trains_on_phones_and_reports_per(tmp_path):
    """All stages on a fake TIMIT with a tiny model: phones are the tokens (tokenizer.unit word)."""
    source = fake_timit(tmp_path / "src")
    (tmp_path / "tiny.yaml").write_text(
        "tokenizer: {unit: word}\n"
        "model: {rnn_type: gru, n_layers: 1, hidden_size: 16, conv_channels: 4, subsampling_factor: 2}\n"
        "train: {epochs: 1, max_batch_frames: 20000}\n"
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = ["bash", str(REPO / "recipes" / "timit" / "run.sh"), "--source", str(source),
           "--work", str(tmp_path / "work"), "--config", str(tmp_path / "tiny.yaml")]
    run = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "PER (phone error rate)" in run.stdout
    tokens = (tmp_path / "work" / "exp" / "tokens.txt").read_text().split()
    assert "sil" in tokens and "aa" in tokens and "|" not in tokens  # phones, not characters
