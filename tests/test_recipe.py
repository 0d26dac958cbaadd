"""recipes/an4/run.sh end to end with a tiny model: every stage runs, writes its outputs,
and a second run does nothing. Its decodes of AN4's dev and test sets are real model
output: their reports must agree with NIST sclite and sc_stats."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asr.cli import main
from asr.compare import compare_reports
from tests.conftest import REPO, an4_source
from tests.sclite_tools import (
    assert_report_agrees_with_sclite,
    require_tool,
    sc_stats_mapsswe,
)

TINY = """
model: {rnn_type: gru, n_layers: 1, hidden_size: 32, conv_channels: 4}
train: {epochs: 1, max_batch_frames: 20000}
decode: {beam_size: 8, candidates: 5}
"""
DECODES = ("decode_dev_greedy", "decode_test_greedy", "decode_dev_beam_lm", "decode_test_beam_lm")


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    source = an4_source()
    if source is None:
        if os.environ.get("CI"):
            pytest.fail("AN4 archive not found")
        pytest.skip("AN4 archive not available (set ASR_AN4_SOURCE)")
    tmp_path = tmp_path_factory.mktemp("recipe")
    (tmp_path / "tiny.yaml").write_text(TINY)
    census = tmp_path / "census"  # a few names in the census lists' layout, for the LM (recipes/an4/lm.sh)
    census.mkdir()
    for file, names in (("dist.all.last", "SMITH JOHNSON PITTS"), ("dist.female.first", "LINDA MARY"),
                        ("dist.male.first", "DONALD MARK")):
        (census / file).write_text("".join(f"{n:<15}0.500  0.500 {k:>6}\n" for k, n in enumerate(names.split(), 1)))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("ASR_CENSUS_NAMES", None)
    cmd = ["bash", str(REPO / "recipes" / "an4" / "run.sh"), "--source", str(source), "--names", str(census),
           "--work", str(tmp_path / "an4"), "--config", str(tmp_path / "tiny.yaml"), "--conditions", "white10 band8k"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    return tmp_path, cmd, env, first


def test_an4_recipe_runs_all_stages_once(recipe_run):
    tmp_path, cmd, env, first = recipe_run
    assert first.returncode == 0, first.stderr[-2000:]
    exp = tmp_path / "an4" / "exp"
    for name in DECODES:
        summary = json.loads((exp / name / "summary.json").read_text())
        assert summary["n_sentences"] in (92, 130)
        assert (exp / name / "report.html").is_file()
    assert json.loads((exp / "decode_test_beam_lm" / "summary.json").read_text())["decode"]["method"] == "beam"
    assert (tmp_path / "an4" / "lm" / "3gram.arpa").is_file() and (exp / "model_lm.pt").is_file()
    from asr.checkpoint import load_bundle
    from asr.lm import read_arpa
    from asr.manifest import read_manifest

    # the LM: the transcripts' trigram mixed with the spelled names (weights fitted on dev)
    lm = tmp_path / "an4" / "lm"
    assert (lm / "names.txt").read_text().splitlines()[:2] == ["S M I T H", "J O H N S O N"]
    assert read_arpa(lm / "names6.arpa").order == 6
    mixed = read_arpa(lm / "names_mix.arpa")
    assert mixed.order == 6 and ("<s>", "D", "O", "N", "A", "L") in mixed.prob
    assert load_bundle(exp / "model_lm.pt").lm_arpa == (lm / "names_mix.arpa").read_text()
    assert "prior weights" in first.stdout
    counts = {split: len(read_manifest(tmp_path / "an4" / "manifests" / f"{split}.jsonl"))
              for split in ("train", "dev", "test")}
    assert counts == {"train": 856, "dev": 92, "test": 130}
    for split in ("dev", "test"):
        for method in ("greedy", "beam_lm"):
            summary = json.loads((exp / f"decode_{split}_{method}" / "summary.json").read_text())
            assert summary["n_sentences"] == counts[split], (split, method)
    tuned = load_bundle(exp / "model_lm.pt").info
    assert tuned["tuned_on"] == f"{tmp_path / 'an4'}/manifests/dev.jsonl" and tuned["tuned_utterances"] == 92
    times = (tmp_path / "an4" / "stage_times.txt").read_text()
    assert all(f"stage {n} " in times for n in (0, 1, 2, 3, 4, 5, 10, 11))
    # stages 10-11: dev and test under recording conditions, beside clean
    for split, n in (("dev", 92), ("test", 130)):
        table = json.loads((exp / f"conditions_{split}" / "conditions.json").read_text())["conditions"]
        assert [row["condition"] for row in table] == ["clean", "white10", "band8k"]
        assert all(row["utterances"] == n for row in table)
        clean = json.loads((exp / f"conditions_{split}" / "clean" / "summary.json").read_text())
        assert clean["wer"] == json.loads((exp / f"decode_{split}_beam_lm" / "summary.json").read_text())["wer"]
    assert "== test under recording conditions" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert second.returncode == 0
    assert second.stdout.count("already done, skipping") == 8
    assert (tmp_path / "an4" / "stage_times.txt").read_text() == times  # nothing ran again


def test_an4_decodes_agree_with_sclite_and_sc_stats(recipe_run, capsys):
    require_tool("sclite")
    require_tool("sc_stats")
    tmp_path, _, _, first = recipe_run
    assert first.returncode == 0, first.stderr[-2000:]
    exp = tmp_path / "an4" / "exp"
    assert sum(assert_report_agrees_with_sclite(exp / name) for name in DECODES) == 2 * (92 + 130)
    greedy, beam = exp / "decode_test_greedy", exp / "decode_test_beam_lm"
    ours = compare_reports(greedy, beam).mapsswe
    theirs = sc_stats_mapsswe(greedy / "ref.trn", greedy / "hyp.trn", beam / "hyp.trn", tmp_path / "sc_stats")
    assert (ours.n_segments, ours.n_ref, ours.errors_a, ours.errors_b) == (
        theirs["n_segments"], theirs["n_ref"], theirs["errors_a"], theirs["errors_b"])
    if ours.std > 0:
        assert ours.z == pytest.approx(theirs["z"], abs=6e-4)
    assert main(["compare", str(greedy), str(beam), "--out", str(tmp_path / "compare.txt")]) == 0
    assert capsys.readouterr().out == (tmp_path / "compare.txt").read_text()


@pytest.mark.slow  # about 2.5 min on a 2-core CPU: `python -m pytest -m slow tests/test_recipe.py`
def test_an4_recipe_ensemble_stages(recipe_run):
    tmp_path, cmd, env, first = recipe_run
    assert first.returncode == 0, first.stderr[-2000:]
    work = tmp_path / "an4"
    bad = subprocess.run(cmd + ["--ensemble", "two"], capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "--ensemble needs a number" in bad.stderr
    run = subprocess.run(cmd + ["--ensemble", "2"], capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    # stages 0-5 and the recording conditions (10-11) of the single model: the ensemble's
    # stages do not make those run again
    assert run.stdout.count("already done, skipping") == 8
    assert "== stage 11 (evaluate_conditions): already done, skipping" in run.stdout
    assert "seed: 2" in (work / "exp_seed2" / "config.yaml").read_text()
    from asr.checkpoint import load_bundle

    ensemble = load_bundle(work / "exp_ensemble" / "model_lm.pt")
    assert ensemble.model.combine == "sequence" and len(ensemble.model.members) == 2
    assert ensemble.config.decode.method == "beam" and ensemble.lm_arpa
    for split, n in (("dev", 92), ("test", 130)):
        summary = json.loads((work / "exp_ensemble" / f"decode_{split}_beam_lm" / "summary.json").read_text())
        assert summary["n_sentences"] == n
    assert f"== test, beam_lm ({work}/exp_ensemble/decode_test_beam_lm)" in run.stdout
    again = subprocess.run(cmd + ["--ensemble", "2"], capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert again.returncode == 0 and again.stdout.count("already done, skipping") == 12

    # --distill: one more model taught by the ensemble's two members (stages 12-15)
    bad = subprocess.run(cmd + ["--distill"], capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "--distill needs --ensemble" in bad.stderr
    run = subprocess.run(cmd + ["--ensemble", "2", "--distill"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("already done, skipping") == 12
    student = load_bundle(work / "exp_distilled" / "model_lm.pt")
    assert student.config.distill.teachers == (f"{work}/exp/model.pt", f"{work}/exp_seed2/model.pt")
    assert "teacher targets: 2 teacher(s), 856 utterance copies" in (work / "exp_distilled" / "train.log").read_text()
    for split, n in (("dev", 92), ("test", 130)):
        for name in (f"decode_{split}_greedy", f"decode_{split}_beam_lm", f"conditions_{split}/clean"):
            assert json.loads((work / "exp_distilled" / name / "summary.json").read_text())["n_sentences"] == n
    assert f"== test, beam_lm ({work}/exp_distilled/decode_test_beam_lm)" in run.stdout


def test_an4_lm_is_the_trigram_unless_names_are_given(tmp_path):
    script = f"""
asr=false work={tmp_path}
. {REPO}/recipes/lib.sh
. {REPO}/recipes/an4/lm.sh
names=none; an4_lm_path
names={tmp_path}/census; an4_lm_path
names=census; an4_lm_path
names=; an4_lm_path
"""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == [f"{tmp_path}/lm/{name}.arpa" for name in ("3gram", "names_mix", "names_mix", "3gram")]


def test_switching_the_lm_makes_stage_3_and_what_follows_run_again(tmp_path):
    """standard_stages with a stand-in asr (true): which stages run as the LM changes."""
    def stages(names):
        script = f"""set -euo pipefail
ASR=true work={tmp_path} stage=0 stop_stage=5 config=x names={names}
. {REPO}/recipes/lib.sh
. {REPO}/recipes/an4/lm.sh
lm_stage=build_an4_lm decode_lm=$(an4_lm_path)
standard_stages an4
"""
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
        return [line.split("(")[1].split(")")[0] for line in out.splitlines()
                if line.startswith("== stage") and "skipping" not in line]

    assert stages("none") == ["prepare", "train", "evaluate", "lm", "tune", "evaluate_lm"]
    assert stages("none") == []
    assert stages("census") == ["lm_names_mix", "tune", "evaluate_lm"]
    assert stages("census") == []
    assert stages("none") == ["lm", "tune", "evaluate_lm"]  # the trigram's stage was done before, not last
    assert sorted(p.name for p in tmp_path.glob(".done.3.*")) == [".done.3.lm"]


@pytest.mark.parametrize("script, args", [
    ("run.sh", ["--stage", "3", "--stop-stage", "3"]),
    ("seeds.sh", ["--name", "x", "--conditions", "white10"]),
])
def test_the_recipe_lm_needs_the_census_names_by_default_and_says_how_to_do_without(tmp_path, script, args):
    """run.sh and seeds.sh mix the census names into the LM unless --names none: where the lists
    cannot be had, the LM stage stops with a line that names the ways out, and writes no LM."""
    work = tmp_path / "an4"
    (work / "manifests").mkdir(parents=True)
    for split in ("train", "dev"):
        (work / "manifests" / f"{split}.jsonl").write_text(
            json.dumps({"id": "u1", "audio": "u1.wav", "duration": 1.0, "text": "L I N D A", "speaker": "s"}) + "\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "ASR_CENSUS_NAMES": str(tmp_path / "no-such-folder")}
    cmd = ["bash", str(REPO / "recipes" / "an4" / script), "--work", str(work)] + args
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert r.returncode != 0
    assert "no-such-folder: no such folder" in r.stderr
    assert "--names DIR" in r.stderr.splitlines()[-1] and "--names none" in r.stderr.splitlines()[-1]
    assert (work / "lm" / "3gram.arpa").is_file() and not (work / "lm" / "names_mix.arpa").exists()
