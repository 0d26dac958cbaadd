"""Multi-seed dev experiments: asr.experiments' table, and recipes/an4/seeds.sh on a small
slice of AN4 (a tiny model, two seeds at once, then again: nothing is redone)."""

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from asr.errors import AsrError
from asr.experiments import main, read_experiment, run_figures, table
from asr.manifest import read_manifest, write_manifest
from tests.conftest import REPO


def fake_run(folder: Path, greedy: float, conditions: dict[str, float]) -> Path:
    (folder / "decode_dev_greedy").mkdir(parents=True)
    (folder / "decode_dev_greedy" / "summary.json").write_text(json.dumps({"wer": greedy, "n_sentences": 92}))
    (folder / "conditions_dev").mkdir()
    rows = [{"condition": c, "wer": w, "utterances": 92} for c, w in conditions.items()]
    (folder / "conditions_dev" / "conditions.json").write_text(json.dumps({"title": "t", "conditions": rows}))
    return folder


def test_run_figures_read_greedy_beam_and_the_conditions_mean(tmp_path):
    run = fake_run(tmp_path / "s1", 10.0, {"clean": 8.0, "white10": 14.0, "band8k": 11.0})
    assert run_figures(run) == {"greedy, clean": 10.0, "beam + LM, clean": 8.0, "beam + LM, white10": 14.0,
                                "beam + LM, band8k": 11.0, "beam + LM, mean of the conditions": 12.5}


def test_table_gives_median_mean_and_every_seed_per_experiment(tmp_path):
    base, variant = tmp_path / "base", tmp_path / "variant"
    for seed, (g, c, n) in {1234: (11.0, 8.0, 14.0), 1235: (12.0, 9.5, 15.0), 1236: (10.0, 7.0, 13.0)}.items():
        fake_run(base / f"s{seed}", g, {"clean": c, "white10": n})
    for seed, (g, c, n) in {1234: (10.0, 7.5, 12.0), 1235: (13.0, 8.0, 16.0)}.items():
        fake_run(variant / f"s{seed}", g, {"clean": c, "white10": n})
    (variant / "s1236").mkdir()  # still training: no reports yet
    (variant / "s1236.log").write_text("epoch 1")  # not a run folder
    (variant / "notes").mkdir()  # nor this
    exps = [read_experiment(base), read_experiment(variant)]
    assert sorted(exps[0].figures) == [1234, 1235, 1236] and sorted(exps[1].figures) == [1234, 1235]
    assert exps[1].incomplete == ["s1236"]
    text = table(exps)
    lines = text.splitlines()
    assert lines[0] == ("| dev WER % | base: median, mean (seeds 1234 / 1235 / 1236) "
                        "| variant: median, mean (seeds 1234 / 1235) |")
    assert lines[2] == "| greedy, clean | 11.00, 11.00 (11.00 / 12.00 / 10.00) | 11.50, 11.50 (10.00 / 13.00) |"
    clean = next(line for line in lines if line.startswith("| beam + LM, clean |"))
    assert clean == "| beam + LM, clean | 8.00, 8.17 (8.00 / 9.50 / 7.00) | 7.75, 7.75 (7.50 / 8.00) |"
    mean_row = next(line for line in lines if line.startswith("| beam + LM, mean of the conditions |"))
    assert mean_row.split(" | ")[1].startswith(f"{statistics.median([14.0, 15.0, 13.0]):.2f}, 14.00")
    assert "variant: no reports yet for s1236 (left out)" in text


def test_unreadable_report_and_missing_folder_are_one_line_errors(tmp_path, capsys):
    run = fake_run(tmp_path / "exp" / "s1", 10.0, {"clean": 8.0})
    (run / "decode_dev_greedy" / "summary.json").write_text("{not json")
    with pytest.raises(AsrError, match="s1: unreadable report"):
        read_experiment(tmp_path / "exp")
    assert main([str(tmp_path / "exp")]) == 1
    assert "unreadable report" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 1
    assert "no such experiment folder" in capsys.readouterr().err


def test_cli_writes_the_table_it_prints(tmp_path, capsys):
    fake_run(tmp_path / "base" / "s7", 10.0, {"clean": 8.0, "white10": 14.0})
    assert main([str(tmp_path / "base"), "--out", str(tmp_path / "table.md")]) == 0
    out = capsys.readouterr().out
    assert out == (tmp_path / "table.md").read_text() and "| beam + LM, white10 | 14.00, 14.00 (14.00) |" in out


TINY = """
model: {rnn_type: gru, n_layers: 1, hidden_size: 32, conv_channels: 4}
train: {epochs: 1, max_batch_frames: 20000}
decode: {beam_size: 4, candidates: 3}
"""


@pytest.mark.slow  # about a minute on a 2-core CPU: `python -m pytest -m slow tests/test_experiments.py`
def test_seeds_script_trains_tunes_decodes_dev_and_tabulates(an4_prepared, tmp_path):
    work = tmp_path / "an4"
    (work / "manifests").mkdir(parents=True)
    for split, n in (("train", 120), ("dev", 12)):  # a slice: the script's steps, not a model
        write_manifest(read_manifest(an4_prepared / "manifests" / f"{split}.jsonl")[:n],
                       work / "manifests" / f"{split}.jsonl")
    (tmp_path / "tiny.yaml").write_text(TINY)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHON": sys.executable}
    script = str(REPO / "recipes" / "an4" / "seeds.sh")
    base = ["bash", script, "--work", str(work), "--config", str(tmp_path / "tiny.yaml"), "--conditions", "white10"]

    def seeds(*args):
        return subprocess.run(base + list(args), capture_output=True, text=True, env=env, cwd=tmp_path, check=False)

    first = seeds("--name", "tiny", "--seeds", "3 4", "--parallel", "2")
    assert first.returncode == 0, first.stderr[-2000:] + first.stdout[-2000:]
    root = work / "seeds" / "tiny"
    for seed in (3, 4):
        run = root / f"s{seed}"
        assert f"seed: {seed}" in (run / "config.yaml").read_text()
        assert (run / ".done").is_file() and (run / "model_lm.pt").is_file()
        assert json.loads((run / "decode_dev_greedy" / "summary.json").read_text())["n_sentences"] == 12
        rows = json.loads((run / "conditions_dev" / "conditions.json").read_text())["conditions"]
        assert [(r["condition"], r["utterances"]) for r in rows] == [("clean", 12), ("white10", 12)]
        assert not (run / "decode_test_greedy").exists()  # test is never decoded here
    assert (work / "lm" / "3gram.arpa").is_file() and (work / "conditions" / "dev.white10.jsonl").is_file()
    figures = read_experiment(root).figures
    assert sorted(figures) == [3, 4]
    assert first.stdout.endswith((root / "table.md").read_text())
    assert "| greedy, clean |" in first.stdout and "tiny: median, mean (seeds 3 / 4)" in first.stdout

    # again: finished seeds are skipped; a second experiment is tabulated beside it (--against)
    again = seeds("--name", "tiny", "--seeds", "3 4")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "== seed 3: done before, skipping" in again.stdout and "== seed 4: done before, skipping" in again.stdout
    assert (root / "s3" / "train.log").read_text().count("epoch   1 |") == 1
    shutil.copytree(root / "s4", work / "seeds" / "other" / "s4")  # a finished run of another experiment
    both = seeds("--name", "other", "--seeds", "4", "--against", "tiny")
    assert both.returncode == 0, both.stderr[-2000:]
    assert "| dev WER % | tiny: median, mean (seeds 3 / 4) | other: median, mean (seeds 4) |" in both.stdout
    greedy = json.loads((root / "s4" / "decode_dev_greedy" / "summary.json").read_text())["wer"]
    assert f"| {greedy:.2f}, {greedy:.2f} ({greedy:.2f}) |" in both.stdout


@pytest.mark.parametrize("args, message", [
    ([], "--name needs a plain folder name"),
    (["--name", "../x"], "--name needs a plain folder name"),
    (["--name", "x", "--parallel", "0"], "--parallel needs a number"),
    (["--name", "x", "--seeds", "1 two"], "seeds are numbers, got 'two'"),
    (["--name", "x", "--against", "missing"], "no such experiment (--against)"),
    (["--name", "x", "--bogus", "1"], "unknown option --bogus"),
    (["--name"], "--name needs a value"),
])
def test_seeds_script_refuses_bad_arguments(tmp_path, args, message):
    r = subprocess.run(["bash", str(REPO / "recipes" / "an4" / "seeds.sh"), "--work", str(tmp_path)] + args,
                       capture_output=True, text=True, check=False)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1
