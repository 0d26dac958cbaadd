"""Multi-seed dev experiments: asr.experiments' table, and recipes/an4/seeds.sh on a small
slice of AN4 (a tiny model, two seeds at once, then again: nothing is redone)."""

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from asr.errors import AsrError
from asr.checkpoint import load_bundle
from asr.cli import main
from asr.experiments import DONE, read_experiment, run_figures, table
from asr.manifest import read_manifest, write_manifest
from tests.conftest import REPO

# A line for the stand-in asr scripts below: answer `asr device` as a CPU without native bf16 does.
ANSWER_DEVICE = '[ "$1" != device ] || { echo "cpu float32"; exit 0; }\n'


def stand_in_asr(tmp_path: Path, head: str = ANSWER_DEVICE) -> Path:
    """A stand-in asr for seeds.sh: runs the shell lines `head`, then writes an empty file
    wherever -o or --out points."""
    fake = tmp_path / "asr"
    fake.write_text(f'#!/bin/sh\n{head}while [ $# -gt 0 ]; do case $1 in -o|--out) mkdir -p "$(dirname "$2")"; '
                    ': > "$2" ;; esac; shift; done\n')
    fake.chmod(0o755)
    return fake


def asr_answering_device(tmp_path: Path, answer: str = "cpu float32") -> Path:
    """A stand-in asr that answers `asr device` with `answer` and hands every other command to
    the real asr: seeds.sh on this machine as on one with (or without) native bf16."""
    wrapper = tmp_path / "asr"
    real = Path(sys.executable).parent / "asr"
    wrapper.write_text(f'#!/bin/sh\nif [ "$1" = device ]; then echo "{answer}"; exit 0; fi\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def fake_run(folder: Path, greedy: float, conditions: dict[str, float], split: str = "dev") -> Path:
    (folder / f"decode_{split}_greedy").mkdir(parents=True)
    (folder / f"decode_{split}_greedy" / "summary.json").write_text(json.dumps({"wer": greedy, "n_sentences": 92}))
    (folder / f"conditions_{split}").mkdir()
    rows = [{"condition": c, "wer": w, "utterances": 92} for c, w in conditions.items()]
    (folder / f"conditions_{split}" / "conditions.json").write_text(json.dumps({"title": "t", "conditions": rows}))
    (folder / DONE[split]).touch()
    return folder


def test_run_figures_read_greedy_beam_and_the_conditions_mean(tmp_path):
    run = fake_run(tmp_path / "s1", 10.0, {"clean": 8.0, "white10": 14.0, "band8k": 11.0})
    assert run_figures(run) == {"greedy, clean": 10.0, "beam + LM, clean": 8.0, "beam + LM, white10": 14.0,
                                "beam + LM, band8k": 11.0, "beam + LM, mean of white10 band8k": 12.5}


def test_table_gives_median_mean_every_seed_and_paired_differences(tmp_path):
    base, variant = tmp_path / "base", tmp_path / "variant"
    for seed, (g, c, n) in {1234: (11.0, 8.0, 14.0), 1235: (12.0, 9.5, 15.0), 1236: (10.0, 7.0, 13.0)}.items():
        fake_run(base / f"s{seed}", g, {"clean": c, "white10": n})
    for seed, (g, c, n) in {1234: (10.0, 7.5, 12.0), 1236: (13.0, 8.0, 16.0)}.items():
        fake_run(variant / f"s{seed}", g, {"clean": c, "white10": n})
    fake_run(variant / "s1237", 1.0, {"clean": 1.0}).joinpath(".done").unlink()  # still going: left out
    (variant / "s1238.log").write_text("epoch 1")  # not a run folder
    (variant / "notes").mkdir()  # nor this
    exps = [read_experiment(base), read_experiment(variant)]
    assert sorted(exps[0].figures) == [1234, 1235, 1236] and sorted(exps[1].figures) == [1234, 1236]
    assert exps[1].incomplete == ["s1237"]
    lines = table(exps).splitlines()
    assert lines[0] == ("| dev WER % | base: median, mean (seed: value) | variant: median, mean (seed: value) "
                        "| variant - base, paired: median |")
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines[2:] if line.startswith("| ")}
    assert rows["greedy, clean"] == ["11.00, 11.00 (1234: 11.00 / 1235: 12.00 / 1236: 10.00)",
                                     "11.50, 11.50 (1234: 10.00 / 1236: 13.00)",
                                     # 10 - 11 and 13 - 10: seeds 1234 and 1236 only, whose medians are 10.5 and 11.5
                                     "+1.00 (1 of 2 lower; medians on these seeds 10.50 -> 11.50) |"]
    assert rows["beam + LM, clean"][0] == "8.00, 8.17 (1234: 8.00 / 1235: 9.50 / 1236: 7.00)"
    assert rows["beam + LM, clean"][2] == "+0.25 (1 of 2 lower; medians on these seeds 7.50 -> 7.75) |"
    assert rows["beam + LM, mean of white10"][2] == (f"{statistics.median([12.0 - 14.0, 16.0 - 13.0]):+.2f} "
                                                     "(1 of 2 lower; medians on these seeds 13.50 -> 14.00) |")
    assert "variant: not finished, left out: s1237" in lines


def test_unreadable_report_and_missing_folder_are_one_line_errors(tmp_path, capsys):
    run = fake_run(tmp_path / "exp" / "s1", 10.0, {"clean": 8.0})
    (run / "decode_dev_greedy" / "summary.json").write_text("{not json")
    with pytest.raises(AsrError, match="s1: unreadable report"):
        read_experiment(tmp_path / "exp")
    assert main(["experiments", str(tmp_path / "exp")]) == 1
    assert "unreadable report" in capsys.readouterr().err
    (run / "decode_dev_greedy" / "summary.json").unlink()
    assert main(["experiments", str(tmp_path / "exp")]) == 1
    err = capsys.readouterr().err
    assert "finished, but" in err and "summary.json is missing" in err and err.count("\n") == 1
    assert main(["experiments", str(tmp_path / "nowhere")]) == 1
    assert "no such experiment folder" in capsys.readouterr().err


def test_cli_writes_the_table_it_prints(tmp_path, capsys):
    fake_run(tmp_path / "base" / "s7", 10.0, {"clean": 8.0, "white10": 14.0})
    assert main(["experiments", str(tmp_path / "base"), "--out", str(tmp_path / "table.md")]) == 0
    out = capsys.readouterr().out
    assert out == (tmp_path / "table.md").read_text() and "| beam + LM, white10 | 14.00, 14.00 (7: 14.00) |" in out


def test_the_test_split_reads_only_the_runs_decoded_on_test(tmp_path, capsys):
    """--split test: the final system's report, from the seeds that seeds.sh --test decoded."""
    exp = tmp_path / "base"
    fake_run(exp / "s1", 10.0, {"clean": 8.0, "white10": 14.0})  # finished on dev, not decoded on test
    fake_run(exp / "s2", 12.0, {"clean": 9.0, "white10": 15.0})
    fake_run(exp / "s2", 9.0, {"clean": 6.0, "white10": 12.0}, split="test")
    assert read_experiment(exp).figures[2]["greedy, clean"] == 12.0  # dev, as before
    on_test = read_experiment(exp, "test")
    assert on_test.figures == {2: {"greedy, clean": 9.0, "beam + LM, clean": 6.0, "beam + LM, white10": 12.0,
                                   "beam + LM, mean of white10": 12.0}}
    assert on_test.incomplete == ["s1"]
    assert main(["experiments", str(exp), "--split", "test"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| test WER % | base: median, mean (seed: value) |"
    assert "| beam + LM, clean | 6.00, 6.00 (2: 6.00) |" in lines and "base: not decoded on test, left out: s1" in lines


TINY = """
model: {rnn_type: gru, n_layers: 1, hidden_size: 32, conv_channels: 4}
train: {epochs: 1, max_batch_frames: 20000}
decode: {beam_size: 4, candidates: 3}
"""


@pytest.mark.slow  # about a minute on a 2-core CPU: `python -m pytest -m slow tests/test_experiments.py`
def test_seeds_script_trains_tunes_decodes_dev_and_tabulates(an4_prepared, tmp_path):
    work = tmp_path / "an4"
    (work / "manifests").mkdir(parents=True)
    for split, n in (("train", 120), ("dev", 12), ("test", 12)):  # a slice: the script's steps, not a model
        write_manifest(read_manifest(an4_prepared / "manifests" / f"{split}.jsonl")[:n],
                       work / "manifests" / f"{split}.jsonl")
    (tmp_path / "tiny.yaml").write_text(TINY)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHON": sys.executable}
    script = str(REPO / "recipes" / "an4" / "seeds.sh")
    base = ["bash", script, "--work", str(work), "--config", str(tmp_path / "tiny.yaml"), "--conditions", "white10",
            "--names", "none"]  # the trigram alone (the census lists are tested with run.sh)

    def seeds(*args):
        return subprocess.run(base + list(args), capture_output=True, text=True, env=env, cwd=tmp_path, check=False)

    root = work / "seeds" / "tiny"
    root.mkdir(parents=True)
    (root / "s5").write_text("not a folder")  # seed 5 fails at once; 3 and 4 go on
    first = seeds("--name", "tiny", "--seeds", "3 4 5", "--parallel", "2")
    assert first.returncode == 1, first.stderr[-2000:] + first.stdout[-2000:]
    assert first.stderr.splitlines() == [f"an4/seeds.sh: seed 5 failed: see {root}/s5.log"]
    for seed in (3, 4):
        run = root / f"s{seed}"
        assert f"seed: {seed}" in (run / "config.yaml").read_text()
        assert (run / ".done").is_file() and (run / "model_lm.pt").is_file()
        assert json.loads((run / "decode_dev_greedy" / "summary.json").read_text())["n_sentences"] == 12
        rows = json.loads((run / "conditions_dev" / "conditions.json").read_text())["conditions"]
        assert [(r["condition"], r["utterances"]) for r in rows] == [("clean", 12), ("white10", 12)]
        assert not list(run.glob("*test*"))  # test is never decoded here
    assert (work / "lm" / "3gram.arpa").is_file() and (work / "conditions" / "dev.white10.jsonl").is_file()
    assert "tiny.yaml" in (root / "settings.txt").read_text()
    assert sorted(read_experiment(root).figures) == [3, 4]
    assert first.stdout.endswith((root / "table.md").read_text())
    assert "| greedy, clean |" in first.stdout and "| tiny: median, mean (seed: value) |" in first.stdout

    # again: finished seeds are skipped; other settings are refused; a second experiment is
    # tabulated beside it (--against), with the paired difference
    (root / "s5").unlink()
    again = seeds("--name", "tiny", "--seeds", "3 4")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "== seed 3: done before, skipping" in again.stdout and "== seed 4: done before, skipping" in again.stdout
    assert (root / "s3" / "train.log").read_text().count("epoch   1 |") == 1
    other = seeds("--name", "tiny", "--seeds", "3 4", "--set", "model.hidden_size=16")
    assert other.returncode == 2 and "run with other settings" in other.stderr
    shutil.copytree(root / "s4", work / "seeds" / "other" / "s4")  # a finished run of another experiment
    both = seeds("--name", "other", "--seeds", "4", "--against", "tiny")
    assert both.returncode == 0, both.stderr[-2000:]
    assert ("| dev WER % | tiny: median, mean (seed: value) | other: median, mean (seed: value) "
            "| other - tiny, paired: median |") in both.stdout
    greedy = json.loads((root / "s4" / "decode_dev_greedy" / "summary.json").read_text())["wer"]
    assert (f"| {greedy:.2f}, {greedy:.2f} (4: {greedy:.2f}) | +0.00 (0 of 1 lower; "
            f"medians on these seeds {greedy:.2f} -> {greedy:.2f}) |") in both.stdout

    # a decoding-only experiment: tiny's models, tuned and decoded with another LM
    bigram = tmp_path / "bigram.arpa"
    subprocess.run([sys.executable, "-m", "asr", "lm", "build", "--backend", "python", "--order", "2", "--manifest",
                    str(work / "manifests" / "train.jsonl"), "-o", str(bigram)], check=True, capture_output=True)
    lm2 = seeds("--name", "lm2", "--seeds", "3 4", "--models-of", "tiny", "--lm", str(bigram), "--against", "tiny")
    assert lm2.returncode == 0, lm2.stderr[-2000:]
    for seed in (3, 4):
        run = work / "seeds" / "lm2" / f"s{seed}"
        assert (run / "model.pt").is_symlink() and (run / "model.pt").resolve() == (root / f"s{seed}" / "model.pt")
        assert (run / ".done").is_file() and not (run / "train.log").exists()
        assert load_bundle(run / "model_lm.pt").lm_arpa == bigram.read_text()  # tuned with the other LM
        assert (run / "conditions_dev" / "conditions.json").is_file()
    settings = (work / "seeds" / "lm2" / "settings.txt").read_text()
    assert "models of: tiny" in settings and "lm: " in settings and "config:" not in settings
    assert "| lm2: median, mean (seed: value) |" in lm2.stdout
    # the final report: tiny's seeds decoded on test, once each
    reported = seeds("--name", "tiny", "--seeds", "3 4", "--test")
    assert reported.returncode == 0, reported.stderr[-2000:]
    for seed in (3, 4):
        run = root / f"s{seed}"
        assert (run / ".done_test").is_file()
        assert json.loads((run / "decode_test_greedy" / "summary.json").read_text())["n_sentences"] == 12
        rows = json.loads((run / "conditions_test" / "conditions.json").read_text())["conditions"]
        assert [(r["condition"], r["utterances"]) for r in rows] == [("clean", 12), ("white10", 12)]
    assert reported.stdout.endswith((root / "test_table.md").read_text())
    assert "| test WER % | tiny: median, mean (seed: value) |" in reported.stdout
    trigram_line = f"lm: {hashlib.sha256((work / 'lm' / '3gram.arpa').read_bytes()).hexdigest()} ({work}/lm/3gram.arpa)"
    assert trigram_line in (root / "settings.txt").read_text().splitlines()
    # settings written before --lm existed (no lm line) were the trigram's: still accepted
    settings = root / "settings.txt"
    settings.write_text("\n".join(line for line in settings.read_text().splitlines() if not line.startswith("lm: ")))
    refused = seeds("--name", "tiny", "--seeds", "3", "--lm", str(bigram))
    assert refused.returncode == 2 and "run with other settings" in refused.stderr
    assert seeds("--name", "tiny", "--seeds", "3").returncode == 0
    assert trigram_line in settings.read_text().splitlines()  # written back with its lm line
    trigram = work / "lm" / "3gram.arpa"
    trigram.write_text(trigram.read_text().replace("\\end\\", "\n\\end\\"))  # another trigram now
    refused = seeds("--name", "tiny", "--seeds", "3")
    assert refused.returncode == 2 and "run with other settings" in refused.stderr


@pytest.mark.parametrize("args, message", [
    ([], "--name needs a plain folder name"),
    (["--name", "../x"], "--name needs a plain folder name"),
    (["--name"], "--name needs a value"),
    (["--name", "--seeds", "1"], "--name needs a value"),
    (["--name", "x", "--parallel", "0"], "--parallel needs a number >= 1"),
    (["--name", "x", "--parallel", "00"], "--parallel needs a number >= 1"),
    (["--name", "x", "--seeds", "1 two"], "seeds are numbers without leading zeros, got 'two'"),
    (["--name", "x", "--seeds", "0123"], "seeds are numbers without leading zeros, got '0123'"),
    (["--name", "x", "--seeds", "5 6 5"], "seed 5 is given twice"),
    (["--name", "x", "--seeds", " "], "--seeds names no seed"),
    (["--name", "x", "--set", "train.seed=3"], "--set train.seed: the seeds come from --seeds"),
    (["--name", "x", "--against", "missing"], "no such experiment (--against)"),
    (["--name", "x", "--config", "missing.yaml"], "missing.yaml: no such config file"),
    (["--name", "x", "--bogus", "1"], "unknown option --bogus"),
    (["--name", "x", "--lm", "missing.arpa"], "missing.arpa: no such language model (--lm)"),
    (["--name", "x", "--models-of", "missing"], "no such experiment (--models-of)"),
    (["--name", "x", "--models-of", "../x"], "--models-of needs a plain folder name"),
    (["--name", "x", "--lm", "missing.arpa", "--names", "census"], "no such language model"),
    (["--name", "x", "--average", "0"], "--average needs a number >= 1, got '0'"),
    (["--name", "x", "--average", "last"], "--average needs a number >= 1, got 'last'"),
])
def test_seeds_script_refuses_bad_arguments(tmp_path, args, message):
    r = subprocess.run(["bash", str(REPO / "recipes" / "an4" / "seeds.sh"), "--work", str(tmp_path)] + args,
                       capture_output=True, text=True, check=False, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert list(tmp_path.iterdir()) == []  # refused before writing anything


@pytest.mark.parametrize("args, message", [
    (["--name", "base", "--models-of", "base"], "--models-of names this experiment itself"),
    (["--name", "x", "--models-of", "base", "--set", "model.hidden_size=8"], "with --models-of nothing is trained"),
    (["--name", "x", "--models-of", "base", "--seeds", "1 2"], "seeds/base/s2: not a finished seed (--models-of)"),
    (["--name", "x", "--lm", "seeds/base/s1/.done", "--names", "census"], "--lm and --names: give one"),
    (["--name", "x", "--models-of", "base", "--seeds", "1", "--average", "5"], "with --models-of nothing is trained"),
])
def test_seeds_script_decoding_only_needs_finished_models(tmp_path, args, message):
    (tmp_path / "seeds" / "base" / "s1").mkdir(parents=True)
    (tmp_path / "seeds" / "base" / "s1" / ".done").touch()
    (tmp_path / "seeds" / "base" / "s2").mkdir()  # not finished
    r = subprocess.run(["bash", str(REPO / "recipes" / "an4" / "seeds.sh"), "--work", str(tmp_path)] + args,
                       capture_output=True, text=True, check=False, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert sorted(p.name for p in (tmp_path / "seeds").iterdir()) == ["base"]  # nothing written


def test_seeds_script_refuses_an_experiment_run_with_other_settings(tmp_path):
    root = tmp_path / "seeds" / "x"
    root.mkdir(parents=True)
    (root / "settings.txt").write_text("config: 0123 (elsewhere.yaml)\nset: \nconditions: white10\ndevice: cpu\n")
    r = subprocess.run(["bash", str(REPO / "recipes" / "an4" / "seeds.sh"), "--work", str(tmp_path), "--name", "x"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "run with other settings; use another --name" in r.stderr
    assert sorted(p.name for p in root.iterdir()) == ["settings.txt"]


@pytest.mark.parametrize("answer, line", [("cpu bf16", "device: cpu, bf16"), ("cuda float32", "device: gpu, float32"),
                                          ("cpu float32", "device: cpu"), ("cuda bf16", "device: gpu")])
def test_seeds_script_keeps_the_arithmetic_of_the_runs_apart(tmp_path, answer, line):
    """The settings say where and in what arithmetic the seeds train (asr device): a CPU with
    native bf16 trains in bf16 where another trains in float32, so an experiment begun on one is
    refused on the other instead of mixing seeds of both in one table. The user's --set reaches
    asr device (train.precision decides it)."""
    work = tmp_path / "an4"
    (work / "manifests").mkdir(parents=True)
    (work / "manifests" / "dev.jsonl").write_text("{}\n")
    log = tmp_path / "calls.txt"
    fake = stand_in_asr(tmp_path, f'if [ "$1" = device ]; then echo "$*" >> {log}; echo "{answer}"; exit 0; fi\n')
    args = ["bash", str(REPO / "recipes" / "an4" / "seeds.sh"), "--work", str(work), "--name", "x", "--seeds", "1",
            "--names", str(tmp_path), "--conditions", "white10", "--set", "train.precision=auto"]
    r = subprocess.run(args, capture_output=True, text=True, check=False, cwd=tmp_path, env={**os.environ, "ASR": str(fake)})
    assert r.returncode == 0, r.stderr
    config = REPO / "recipes" / "an4" / "conf" / "train.yaml"
    assert log.read_text().split() == ["device", "--config", str(config), "--set", "train.precision=auto"]
    assert (work / "seeds" / "x" / "settings.txt").read_text().splitlines()[-1] == line
    other = "cpu float32" if answer != "cpu float32" else "cpu bf16"  # the same experiment on another machine
    fake.write_text(fake.read_text().replace(f'echo "{answer}"', f'echo "{other}"'))
    r = subprocess.run(args[:7] + ["2"] + args[8:], capture_output=True, text=True, check=False, cwd=tmp_path,
                       env={**os.environ, "ASR": str(fake)})
    assert r.returncode == 2 and "run with other settings; use another --name" in r.stderr, r.stderr
    assert not (work / "seeds" / "x" / "s2").exists()
    fake.write_text(fake.read_text().replace(f'echo "{other}"', 'echo "tpu int4"'))
    r = subprocess.run(args[:5] + ["y"] + args[6:], capture_output=True, text=True, check=False, cwd=tmp_path,
                       env={**os.environ, "ASR": str(fake)})
    assert r.returncode == 2 and "asr device printed 'tpu int4'" in r.stderr and not (work / "seeds" / "y").exists()


def _settings_of_the_recipe(work: Path, lm_line: str) -> str:
    config = REPO / "recipes" / "an4" / "conf" / "train.yaml"
    sha = hashlib.sha256(config.read_bytes()).hexdigest()
    return (f"config: {sha} ({config})\nset: \nconditions: white20 white10 white5 reverb band8k\n"
            f"{lm_line}device: cpu\n")


@pytest.mark.parametrize("lm_line", ["lm: 0123 (data/an4/lm/3gram.arpa)\n", ""])  # "": settings from before --lm
def test_seeds_script_asks_for_names_none_to_go_on_with_a_trigram_experiment(tmp_path, lm_line):
    work = tmp_path / "an4"
    (work / "seeds" / "old").mkdir(parents=True)
    (work / "seeds" / "old" / "settings.txt").write_text(_settings_of_the_recipe(work, lm_line))
    r = subprocess.run(["bash", str(REPO / "recipes" / "an4" / "seeds.sh"), "--work", str(work), "--name", "old"],
                       capture_output=True, text=True, check=False, cwd=tmp_path,
                       env={**os.environ, "ASR": str(asr_answering_device(tmp_path))})  # its "device: cpu"
    assert r.returncode == 2 and "add --names none" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert sorted(p.name for p in work.iterdir()) == ["seeds"]  # refused before making the census LM


def test_seeds_script_stops_at_a_failing_lm_step_and_keeps_the_trigram_it_has(tmp_path):
    """With a stand-in asr whose `lm spell` fails: the steps after it do not run, and the
    experiment's LM is made from the trigram already in WORK/lm, not a new one."""
    work = tmp_path / "an4"
    (work / "manifests").mkdir(parents=True)
    (work / "manifests" / "dev.jsonl").write_text("{}\n")
    (work / "lm").mkdir()
    (work / "lm" / "3gram.arpa").write_text("the trigram other experiments used\n")
    log = tmp_path / "calls.txt"
    fake = tmp_path / "asr"
    fake.write_text(f'#!/bin/sh\n{ANSWER_DEVICE}echo "$*" >> {log}\n[ "$1 $2" != "lm spell" ]\n')
    fake.chmod(0o755)
    r = subprocess.run(["bash", str(REPO / "recipes" / "an4" / "seeds.sh"), "--work", str(work), "--name", "x",
                        "--names", str(tmp_path)], capture_output=True, text=True, check=False, cwd=tmp_path,
                       env={**os.environ, "ASR": str(fake)})
    assert r.returncode != 0
    assert [line.split()[:2] for line in log.read_text().splitlines()] == [["lm", "census-names"], ["lm", "spell"]]
    assert (work / "lm" / "3gram.arpa").read_text() == "the trigram other experiments used\n"
    assert not (work / "seeds" / "x").exists()


def test_seeds_script_notes_an_experiment_compared_with_another_lms(tmp_path):
    work = tmp_path / "an4"
    (work / "manifests").mkdir(parents=True)
    (work / "manifests" / "dev.jsonl").write_text("{}\n")
    (work / "seeds" / "base").mkdir(parents=True)
    (work / "seeds" / "base" / "settings.txt").write_text("config: 0123 (x.yaml)\nlm: 4567 (old.arpa)\n")
    fake = stand_in_asr(tmp_path)
    args = ["bash", str(REPO / "recipes" / "an4" / "seeds.sh"), "--work", str(work), "--name", "x", "--seeds", "1",
            "--names", str(tmp_path), "--conditions", "white10", "--against", "base"]
    r = subprocess.run(args, capture_output=True, text=True, check=False, cwd=tmp_path, env={**os.environ, "ASR": str(fake)})
    assert "note: base was decoded with another LM (4567 (old.arpa))" in r.stderr, r.stderr
    empty = hashlib.sha256(b"").hexdigest()  # the stand-in's LM: an empty file
    (work / "seeds" / "base" / "settings.txt").write_text(f"config: 0123 (x.yaml)\nlm: {empty} (other/path.arpa)\n")
    r = subprocess.run(args[:5] + ["x2"] + args[6:], capture_output=True, text=True, check=False, cwd=tmp_path,
                       env={**os.environ, "ASR": str(fake)})
    assert "note:" not in r.stderr and (work / "seeds" / "x2" / "settings.txt").is_file(), r.stderr  # got past it


def test_seeds_script_decodes_the_average_of_the_last_epochs(tmp_path):
    """--average N: the runs keep the mean of their last N epochs while training
    (train.average_last, before the user's --set), sS/model_avg.pt is decoded and tuned, and
    the settings say so; a seed begun before that option goes on keeping N checkpoints, and
    `asr average` makes its model_avg.pt."""
    work = tmp_path / "an4"
    (work / "manifests").mkdir(parents=True)
    (work / "manifests" / "dev.jsonl").write_text("{}\n")
    log = tmp_path / "calls.txt"
    fake = stand_in_asr(tmp_path, f'{ANSWER_DEVICE}echo "$*" >> {log}\n')  # logs its arguments
    args = ["bash", str(REPO / "recipes" / "an4" / "seeds.sh"), "--work", str(work), "--name", "swa", "--seeds", "7",
            "--names", str(tmp_path), "--conditions", "white10", "--set", "train.final_lr_ratio=0.1"]
    r = subprocess.run(args + ["--average", "3"], capture_output=True, text=True, check=False, cwd=tmp_path,
                       env={**os.environ, "ASR": str(fake)})
    assert r.returncode == 0, r.stderr
    exp = work / "seeds" / "swa" / "s7"
    calls = [line.split() for line in log.read_text().splitlines()]
    train = next(c for c in calls if c[0] == "train")
    sets = [train[i + 1] for i, a in enumerate(train) if a == "--set"]
    assert sets == ["train.average_last=3", "train.final_lr_ratio=0.1", "train.seed=7"]
    after = calls[calls.index(train) + 1:]
    assert after[0][:3] == ["evaluate", "--model", str(exp / "model_avg.pt")]  # greedy, on dev
    assert after[1][:3] == ["tune", "--model", str(exp / "model_avg.pt")]
    assert (exp / ".done").is_file()
    old = work / "seeds" / "swa" / "s8"  # begun by the code of before: checkpoints, a config without the option
    (old / "checkpoints").mkdir(parents=True)
    (old / "config.yaml").write_text("train:\n  keep_checkpoints: 3\n")
    log.write_text("")
    r = subprocess.run(args[:7] + ["8"] + args[8:] + ["--average", "3"], capture_output=True, text=True, check=False,
                       cwd=tmp_path, env={**os.environ, "ASR": str(fake)})
    assert r.returncode == 0, r.stderr
    calls = [line.split() for line in log.read_text().splitlines()]
    train = next(c for c in calls if c[0] == "train")
    assert [train[i + 1] for i, a in enumerate(train) if a == "--set"][0] == "train.keep_checkpoints=3"
    assert calls[calls.index(train) + 1] == ["average", "--exp", str(old), "--last", "3", "--out",
                                             str(old / "model_avg.pt")]
    assert "average: last 3" in (work / "seeds" / "swa" / "settings.txt").read_text().splitlines()
    refused = subprocess.run(args, capture_output=True, text=True, check=False, cwd=tmp_path,
                             env={**os.environ, "ASR": str(fake)})  # the same experiment without averaging
    assert refused.returncode == 2 and "run with other settings" in refused.stderr
    # its models decoded with another LM: the averaged ones, as the experiment decoded them
    (tmp_path / "other.arpa").write_text("")
    lm2 = subprocess.run(args[:5] + ["swa_lm2", "--seeds", "7", "--models-of", "swa", "--lm", str(tmp_path / "other.arpa"),
                                     "--conditions", "white10"], capture_output=True, text=True, check=False,
                         cwd=tmp_path, env={**os.environ, "ASR": str(fake)})
    assert lm2.returncode == 0, lm2.stderr
    assert os.readlink(work / "seeds" / "swa_lm2" / "s7" / "model.pt") == "../../swa/s7/model_avg.pt"


def test_seeds_script_decodes_finished_seeds_on_test_once(tmp_path):
    """--test: nothing is trained or tuned; each finished seed's model is decoded on test (greedy,
    then its tuned bundle clean and under the conditions), once; a failed decode leaves the seed
    undecoded; an unfinished seed or an unknown experiment is refused."""
    work = tmp_path / "an4"
    (work / "manifests").mkdir(parents=True)
    for split in ("dev", "test"):
        (work / "manifests" / f"{split}.jsonl").write_text("{}\n")
    log = tmp_path / "calls.txt"
    fail = tmp_path / "fail"  # while it exists, the stand-in's greedy decode of test fails
    fake = stand_in_asr(tmp_path, f'{ANSWER_DEVICE}echo "$*" >> {log}\n'
                                  f'case "$*" in *test.jsonl*decode.method=greedy*) [ ! -e {fail} ] || exit 3 ;; esac\n')
    args = ["bash", str(REPO / "recipes" / "an4" / "seeds.sh"), "--work", str(work), "--name", "base", "--seeds", "7",
            "--names", str(tmp_path), "--conditions", "white10"]

    def seeds_sh(*extra):
        return subprocess.run(args + list(extra), capture_output=True, text=True, check=False, cwd=tmp_path,
                              env={**os.environ, "ASR": str(fake)})

    r = seeds_sh("--name", "other", "--test")
    assert r.returncode == 2 and "seeds/other: no such experiment (--test" in r.stderr, r.stderr
    assert seeds_sh().returncode == 0  # trains seed 7 (the stand-in), decodes dev
    r = seeds_sh("--seeds", "7 8", "--test")
    assert r.returncode == 2 and "seeds/base/s8: not a finished seed (--test" in r.stderr, r.stderr
    exp = work / "seeds" / "base" / "s7"
    log.write_text("")
    fail.touch()
    r = seeds_sh("--test")
    assert r.returncode == 2 and "seed 7: the test decode failed" in r.stderr, r.stderr
    assert not (exp / ".done_test").exists()
    fail.unlink()
    log.write_text("")
    r = seeds_sh("--test")
    assert r.returncode == 0, r.stderr
    calls = [line.split() for line in log.read_text().splitlines()]
    assert not [c for c in calls if c[0] in ("train", "tune", "prepare")]
    test_manifest = str(work / "manifests" / "test.jsonl")
    assert ["evaluate", "--model", str(exp / "model.pt"), "--manifest", test_manifest, "--out",
            str(exp / "decode_test_greedy"), "--set", "decode.method=greedy"] in calls
    assert ["evaluate", "--model", str(exp / "model_lm.pt"), "--manifest", test_manifest, "--out",
            str(exp / "conditions_test"), "--condition", f"white10={work}/conditions/test.white10.jsonl"] in calls
    assert calls[-1] == ["experiments", "--split", "test", str(work / "seeds" / "base"), "--out",
                         str(work / "seeds" / "base" / "test_table.md")]
    assert (exp / ".done_test").is_file()
    log.write_text("")
    r = seeds_sh("--test")  # again: the table only
    assert r.returncode == 0 and "seed 7: decoded on test before, not again" in r.stdout, r.stderr
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["experiments"]
