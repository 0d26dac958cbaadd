"""Condition sets (asr degrade) and their evaluation beside clean (asr evaluate --condition)."""

import json

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio
from asr.cli import main
from asr.conditions import CONDITIONS, write_condition_set
from asr.errors import AsrError
from asr.manifest import Utterance, read_manifest, write_manifest
from tests.test_augment import band_energy, snr_db, speech_like
from tests.test_cli import tiny_model  # noqa: F401  (fixture)


@pytest.fixture
def small_set(tmp_path):
    utts = []
    for k in range(4):
        path = tmp_path / "clean" / f"u{k}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(str(path), speech_like(1.0 + 0.2 * k, seed=k), 16000, subtype="FLOAT")
        utts.append(Utterance(f"u{k}", str(path), 1.0 + 0.2 * k, "A B", f"s{k}"))
    write_manifest(utts, tmp_path / "dev.jsonl")
    return read_manifest(tmp_path / "dev.jsonl")


@pytest.mark.parametrize("name, target", [("white20", 20.0), ("white10", 10.0), ("white5", 5.0), ("babble10", 10.0)])
def test_noisy_copies_have_the_condition_snr(tmp_path, small_set, name, target):
    n, skipped = write_condition_set(small_set, name, tmp_path / f"dev.{name}.jsonl")
    assert n == 4 and skipped == []
    copies = read_manifest(tmp_path / f"dev.{name}.jsonl")
    assert [(u.id, u.text, u.speaker) for u in copies] == [(u.id, u.text, u.speaker) for u in small_set]
    for clean, noisy in zip(small_set, copies):
        a, b = load_audio(clean.audio).numpy(), load_audio(noisy.audio).numpy()
        assert len(a) == len(b) and noisy.duration == pytest.approx(clean.duration, abs=1e-3)
        assert snr_db(a, b) == pytest.approx(target, abs=0.5)


def test_telephone_copies_have_no_energy_above_4_khz(tmp_path, small_set):
    for name in ("band8k", "gsm"):
        write_condition_set(small_set, name, tmp_path / f"dev.{name}.jsonl")
        for u in read_manifest(tmp_path / f"dev.{name}.jsonl"):
            assert band_energy(load_audio(u.audio).numpy(), 4000) < 1e-4


def test_copies_are_deterministic_per_seed(tmp_path, small_set):
    write_condition_set(small_set, "reverb", tmp_path / "a.jsonl", seed=1)
    write_condition_set(small_set[::-1], "reverb", tmp_path / "b.jsonl", seed=1)  # order does not matter
    write_condition_set(small_set, "reverb", tmp_path / "c.jsonl", seed=2)
    a, b, c = ({u.id: load_audio(u.audio).numpy() for u in read_manifest(tmp_path / f"{x}.jsonl")} for x in "abc")
    assert all(np.array_equal(a[k], b[k]) for k in a) and not all(np.array_equal(a[k], c[k]) for k in a)


def test_unknown_condition_and_broken_audio(tmp_path, small_set):
    with pytest.raises(AsrError, match="unknown condition 'rain'"):
        write_condition_set(small_set, "rain", tmp_path / "x.jsonl")
    (tmp_path / "clean" / "u1.wav").write_bytes(b"broken")
    n, skipped = write_condition_set(read_manifest(tmp_path / "dev.jsonl"), "white10", tmp_path / "y.jsonl")
    assert n == 3 and len(skipped) == 1 and "dev.jsonl:2:" in skipped[0]


def test_evaluate_reports_conditions_beside_clean(tmp_path, small_set, tiny_model, capsys):  # noqa: F811
    assert main(["degrade", "--manifest", str(tmp_path / "dev.jsonl"), "--condition", "white10",
                 "--out", str(tmp_path / "dev.white10.jsonl")]) == 0
    assert "4 utterances of" in capsys.readouterr().out
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(tiny_model), "--manifest", str(tmp_path / "dev.jsonl"), "--out", str(out),
                 "--condition", f"white10={tmp_path / 'dev.white10.jsonl'}"]) == 0
    printed = capsys.readouterr().out
    table = json.loads((out / "conditions.json").read_text())["conditions"]
    assert [row["condition"] for row in table] == ["clean", "white10"] and all(r["utterances"] == 4 for r in table)
    for row in table:
        summary = json.loads((out / row["condition"] / "summary.json").read_text())
        assert summary["wer"] == row["wer"]
    assert "| white10 | 4 |" in (out / "conditions.md").read_text() and "| white10 | 4 |" in printed
    assert main(["evaluate", "--model", str(tiny_model), "--manifest", str(tmp_path / "dev.jsonl"), "--out", str(out),
                 "--condition", "clean=x.jsonl"]) == 1
    assert "each condition needs a name of its own" in capsys.readouterr().err


def test_every_condition_is_described():
    assert all(c.description for c in CONDITIONS.values())


@pytest.mark.parametrize("name", ["reverb", "babble10"])
def test_processes_write_the_same_copies(tmp_path, small_set, name):
    # jobs > 1 shares the utterances among processes: the same audio, manifest and skipped
    # utterances (u1's file broken: skipped, and left out of the others' babble) as one process
    (tmp_path / "clean" / "u1.wav").write_bytes(b"broken")
    one = write_condition_set(small_set, name, tmp_path / "one.jsonl")
    three = write_condition_set(small_set, name, tmp_path / "three.jsonl", jobs=3)
    assert one == three and one[0] == 3 and len(one[1]) == 1 and f"{tmp_path / 'dev.jsonl'}:2: " in one[1][0]
    a, b = read_manifest(tmp_path / "one.jsonl"), read_manifest(tmp_path / "three.jsonl")
    assert [(u.id, u.duration) for u in a] == [(u.id, u.duration) for u in b]
    assert [u.id for u in b] == ["u0", "u2", "u3"] and all("three_audio" in u.audio for u in b)
    assert all(np.array_equal(load_audio(x.audio).numpy(), load_audio(y.audio).numpy()) for x, y in zip(a, b))


def test_degrade_command_refuses_no_processes(tmp_path, small_set, capsys):
    assert main(["degrade", "--manifest", str(tmp_path / "dev.jsonl"), "--condition", "white10",
                 "--out", str(tmp_path / "x.jsonl"), "--jobs", "0"]) != 0
    assert "--jobs must be at least 1 (got 0)" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def test_babble_without_a_readable_talker_names_the_utterance(tmp_path, small_set):
    from asr.conditions import _SetTask

    (tmp_path / "clean" / "u1.wav").write_bytes(b"broken")
    with pytest.raises(AsrError, match=r"no utterance could be degraded \(2 skipped\)"):
        write_condition_set(small_set[:2], "babble10", tmp_path / "x.jsonl")  # u1 unreadable, u0 without babble
    task = _SetTask(small_set[:2], "babble10", tmp_path / "z", 0, 16000)
    with pytest.raises(AsrError, match=f"{tmp_path / 'dev.jsonl'}:1: .*u0.wav: no other utterance of the set could"):
        task.babble(100, np.random.default_rng(0), small_set[0])
