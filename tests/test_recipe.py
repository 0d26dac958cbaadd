"""recipes/an4/run.sh end to end with a tiny model: every stage runs, writes its outputs,
and a second run does nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, an4_source

TINY = """
model: {rnn_type: gru, n_layers: 1, hidden_size: 32, conv_channels: 4}
train: {epochs: 1, max_batch_frames: 20000}
"""


def test_an4_recipe_runs_all_stages_once(tmp_path):
    source = an4_source()
    if source is None:
        if os.environ.get("CI"):
            pytest.fail("AN4 archive not found")
        pytest.skip("AN4 archive not available (set ASR_AN4_SOURCE)")
    (tmp_path / "tiny.yaml").write_text(TINY)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = ["bash", str(REPO / "recipes" / "an4" / "run.sh"), "--source", str(source),
           "--work", str(tmp_path / "an4"), "--config", str(tmp_path / "tiny.yaml")]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    exp = tmp_path / "an4" / "exp"
    for name in ("decode_dev_greedy", "decode_test_greedy", "decode_dev_beam_lm", "decode_test_beam_lm"):
        summary = json.loads((exp / name / "summary.json").read_text())
        assert summary["n_sentences"] in (92, 130)
    assert json.loads((exp / "decode_test_beam_lm" / "summary.json").read_text())["decode"]["method"] == "beam"
    assert (tmp_path / "an4" / "lm" / "3gram.arpa").is_file() and (exp / "model_lm.pt").is_file()
    times = (tmp_path / "an4" / "stage_times.txt").read_text()
    assert all(f"stage {n} " in times for n in range(6))
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert second.returncode == 0
    assert second.stdout.count("already done, skipping") == 6
    assert (tmp_path / "an4" / "stage_times.txt").read_text() == times  # nothing ran again
