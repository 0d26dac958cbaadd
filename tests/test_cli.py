"""Bad input gives a one-line error naming the file, a non-zero exit and no traceback."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from tests.conftest import lock_held_elsewhere, save_tiny_model, write_tone


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "model.pt")


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "asr.cli", *args], capture_output=True, text=True, env=env)


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for f in fragments:
        assert f in lines[0]


def test_transcribe_missing_file_subprocess(tiny_model, tmp_path):
    r = run_cli("transcribe", "--model", str(tiny_model), str(tmp_path / "nope.wav"))
    assert_one_line_error(r, "nope.wav", "no such audio file")


def test_transcribe_bad_files_reports_each_and_goes_on(tiny_model, tmp_path, capsys):
    good = write_tone(tmp_path / "good.wav", seconds=0.5)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("hello\n" * 50)
    sf.write(str(tmp_path / "zero.wav"), np.zeros(0), 16000)
    short = write_tone(tmp_path / "short.wav", seconds=0.02)
    files = [tmp_path / n for n in ("empty.wav", "text.wav", "zero.wav")] + [short, good]
    assert main(["transcribe", "--model", str(tiny_model), "--json", *map(str, files)]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 4
    for name, msg in [("empty.wav", "file is empty"), ("text.wav", "cannot read audio"),
                      ("zero.wav", "no samples"), ("short.wav", "too short")]:
        assert any(name in e and msg in e for e in errors), (name, errors)
    assert json.loads(captured.out)["file"] == str(good)  # the good file is still transcribed


def test_transcribe_without_model_says_how_to_train(monkeypatch, tmp_path, capsys):
    import asr.transcribe

    monkeypatch.delenv("ASR_MODEL", raising=False)
    monkeypatch.setattr(asr.transcribe, "AN4_MODELS", (tmp_path / "no" / "model.pt",))
    assert main(["transcribe", str(write_tone(tmp_path / "a.wav"))]) == 1
    err = capsys.readouterr().err
    assert "recipes/an4/run.sh" in err and "--model" in err and len(err.strip().splitlines()) == 1


def test_corrupt_model_file(tmp_path):
    (tmp_path / "m.pt").write_text("not a model")
    r = run_cli("transcribe", "--model", str(tmp_path / "m.pt"), str(write_tone(tmp_path / "a.wav")))
    assert_one_line_error(r, "m.pt", "not a readable model file")


def test_evaluate_bad_manifest_line(tiny_model, tmp_path, capsys):
    good = {"id": "a", "audio": str(write_tone(tmp_path / "a.wav")), "duration": 1.0, "text": "A", "speaker": "s"}
    (tmp_path / "m.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({"id": "b"}) + "\n")
    assert main(["evaluate", "--model", str(tiny_model), "--manifest", str(tmp_path / "m.jsonl"),
                 "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"asr: error: {tmp_path / 'm.jsonl'}:2: missing field 'audio'"


def test_evaluate_corrupt_audio_in_manifest(tiny_model, tmp_path, capsys):
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    rec = {"id": "a", "audio": "bad.wav", "duration": 1.0, "text": "A", "speaker": "s"}
    (tmp_path / "m.jsonl").write_text(json.dumps(rec) + "\n")
    assert main(["evaluate", "--model", str(tiny_model), "--manifest", str(tmp_path / "m.jsonl"),
                 "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "bad.wav") in err and "cannot read audio" in err
    assert not (tmp_path / "out" / "summary.json").exists()


def test_train_bad_override_and_missing_manifest(tmp_path, capsys):
    assert main(["train", "--train", "x.jsonl", "--dev", "y.jsonl", "--exp", str(tmp_path), "--set", "train.epochs=many"]) == 1
    assert "train.epochs: expected int" in capsys.readouterr().err
    assert main(["train", "--train", str(tmp_path / "x.jsonl"), "--dev", "y.jsonl", "--exp", str(tmp_path)]) == 1
    assert "x.jsonl: no such manifest" in capsys.readouterr().err


def test_prepare_missing_source(tmp_path):
    r = run_cli("prepare", "an4", "--source", str(tmp_path / "nothing.tar.gz"), "--out", str(tmp_path / "w"))
    assert_one_line_error(r, "nothing.tar.gz", "no such AN4 archive")


def test_very_short_audio_and_bad_devices(tiny_model, tmp_path, capsys):
    tiny = write_tone(tmp_path / "tiny.wav", seconds=0.01)
    assert main(["transcribe", "--model", str(tiny_model), str(tiny)]) == 1
    assert "tiny.wav: audio too short" in capsys.readouterr().err
    assert main(["transcribe", "--model", str(tiny_model), "--device", "floppy", str(tiny)]) == 1
    assert "--device floppy: not a torch device" in capsys.readouterr().err


def test_decoding_options_are_checked(tiny_model, tmp_path, capsys):
    audio = str(write_tone(tmp_path / "a.wav"))
    assert main(["transcribe", "--model", str(tiny_model), "--lm", str(tmp_path / "no.arpa"), audio]) == 1
    assert "no.arpa: no such language model file" in capsys.readouterr().err
    (tmp_path / "lower.arpa").write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\tabc\n-1\t</s>\n\n\\end\\\n")
    assert main(["transcribe", "--model", str(tiny_model), "--lm", str(tmp_path / "lower.arpa"), audio]) == 1
    assert "none of its words can be spelled" in capsys.readouterr().err
    assert main(["transcribe", "--model", str(tiny_model), "--lexicon-free", "--lm", str(tmp_path / "lower.arpa"),
                 audio]) == 1
    assert "--lexicon-free searches characters" in capsys.readouterr().err
    (tmp_path / "bad_lex.txt").write_text("ABC a b c\n")
    assert main(["transcribe", "--model", str(tiny_model), "--lexicon", str(tmp_path / "bad_lex.txt"), audio]) == 1
    assert "cannot set up beam search" in capsys.readouterr().err
    dup = tmp_path / "d"
    dup.mkdir()
    write_tone(dup / "a.wav")
    assert main(["transcribe", "--model", str(tiny_model), "--format", "srt", "--output-dir", str(tmp_path / "o"),
                 audio, str(dup / "a.wav")]) == 1
    assert "same name" in capsys.readouterr().err


def test_training_refuses_to_overwrite_an_earlier_run(tmp_path, capsys):
    (tmp_path / "exp" / "checkpoints").mkdir(parents=True)
    (tmp_path / "exp" / "checkpoints" / "epoch-3.pt").write_bytes(b"x")
    rec = {"id": "a", "audio": str(write_tone(tmp_path / "a.wav")), "duration": 1.0, "text": "A", "speaker": "s"}
    (tmp_path / "m.jsonl").write_text(json.dumps(rec) + "\n")
    m = str(tmp_path / "m.jsonl")
    assert main(["train", "--train", m, "--dev", m, "--exp", str(tmp_path / "exp")]) == 1
    assert "holds checkpoints of an earlier run" in capsys.readouterr().err


def test_manifest_audio_faults_name_the_manifest_line(tiny_model, tmp_path, capsys):
    good = write_tone(tmp_path / "good.wav", seconds=0.5)
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    recs = [{"id": "a", "audio": str(good), "duration": 0.5, "text": "A", "speaker": "s"},
            {"id": "b", "audio": "bad.wav", "duration": 1.0, "text": "A", "speaker": "s"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert main(["evaluate", "--model", str(tiny_model), "--manifest", str(tmp_path / "m.jsonl"),
                 "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"asr: error: {tmp_path / 'm.jsonl'}:2: {tmp_path / 'bad.wav'}: cannot read audio")
    assert len(err.splitlines()) == 1


def test_devices_and_empty_folders_are_not_missing_files(tiny_model, tmp_path):
    assert_one_line_error(run_cli("transcribe", "--model", str(tiny_model), "/dev/zero"), "/dev/zero",
                          "not a regular file")
    assert_one_line_error(run_cli("transcribe", "--model", str(tiny_model), str(tmp_path)),
                          f"no audio files in {tmp_path}")


@pytest.mark.parametrize("field, value, message", [
    ("duration", 1e12, "field 'duration' is 1e+12 s, more than 24 h"),
    ("id", "an4 test", "field 'id' 'an4 test' holds spaces or parentheses"),
    ("id", "u(1)", "field 'id' 'u(1)' holds spaces or parentheses"),
    ("speaker", "Jo Smith", "field 'speaker' 'Jo Smith' holds spaces or parentheses"),
])
def test_manifest_records_that_cannot_be_scored_are_refused_on_read(tiny_model, tmp_path, field, value, message):
    write_tone(tmp_path / "a.wav", seconds=0.5)
    rec = {"id": "a", "audio": "a.wav", "duration": 0.5, "text": "A", "speaker": "s"}
    (tmp_path / "m.jsonl").write_text(json.dumps({**rec, "id": "ok"}) + "\n" + json.dumps({**rec, field: value}) + "\n")
    r = run_cli("evaluate", "--model", str(tiny_model), "--manifest", str(tmp_path / "m.jsonl"),
                "--out", str(tmp_path / "out"))
    assert_one_line_error(r, f"m.jsonl:2: {message}")
    assert not (tmp_path / "out").exists()


def test_evaluate_into_a_folder_another_run_writes_stops_before_decoding(tiny_model, tmp_path):
    write_tone(tmp_path / "a.wav", seconds=0.5)
    (tmp_path / "m.jsonl").write_text(json.dumps(
        {"id": "a", "audio": "a.wav", "duration": 0.5, "text": "A", "speaker": "s"}) + "\n")
    out = tmp_path / "out"
    with lock_held_elsewhere("report", out) as pid:
        r = run_cli("evaluate", "--model", str(tiny_model), "--manifest", str(tmp_path / "m.jsonl"), "--out", str(out))
        assert_one_line_error(r, f"{out}: another asr process (pid {pid}) is writing this report folder")
        assert "decoding took" not in r.stdout and not out.exists()


def test_batch_job_over_a_folder_with_bad_files_and_resume(tiny_model, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name, seconds in (("a.wav", 0.6), ("sub/b.flac", 1.5), ("c.wav", 2.5)):
        write_tone(folder / name, seconds=seconds)
    (folder / "broken.wav").write_bytes(b"RIFF not really")
    (folder / "notes.txt").write_text("not audio")
    (folder / "unreadable.wav").write_bytes(b"x")
    (folder / "unreadable.wav").chmod(0)
    out = tmp_path / "out.jsonl"
    r = run_cli("transcribe", "--model", str(tiny_model), str(folder), "--jsonl", str(out))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_file = {Path(rec["file"]).name: rec for rec in lines}
    assert set(by_file) == {"a.wav", "b.flac", "c.wav", "broken.wav", "unreadable.wav"}
    assert all("text" in by_file[n] and "segments" in by_file[n] for n in ("a.wav", "b.flac", "c.wav"))
    assert "cannot read audio" in by_file["broken.wav"]["error"]
    assert "3 transcribed, 2 failed" in r.stderr and "notes.txt" in r.stderr
    # --resume does only what is not done (the failures again), and appends
    (folder / "broken.wav").unlink()
    write_tone(folder / "broken.wav", seconds=0.7)
    r2 = run_cli("transcribe", "--model", str(tiny_model), str(folder), "--jsonl", str(out), "--resume")
    assert "1 transcribed, 1 failed, 3 already done" in r2.stderr
    assert len(out.read_text().splitlines()) == len(lines) + 2
    r3 = run_cli("transcribe", "--model", str(tiny_model), str(folder), "--jsonl", str(out))
    assert_one_line_error(r3, "out.jsonl: exists; pass --resume")


def test_batch_job_from_a_manifest_and_a_glob(tiny_model, tmp_path):
    write_tone(tmp_path / "x1.wav", seconds=0.8)
    write_tone(tmp_path / "x2.wav", seconds=1.1)
    recs = [{"id": "one", "audio": "x1.wav", "duration": 0.8, "text": "A", "speaker": "s"},
            {"id": "gone", "audio": "nowhere.wav", "duration": 1.0, "text": "A", "speaker": "s"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "o.jsonl"
    r = run_cli("transcribe", "--model", str(tiny_model), str(tmp_path / "m.jsonl"), str(tmp_path / "x*.wav"),
                "--jsonl", str(out), "--no-progress")
    files = {json.loads(line)["file"]: json.loads(line) for line in out.read_text().splitlines()}
    assert set(files) == {"one", "gone", str(tmp_path / "x1.wav"), str(tmp_path / "x2.wav")}
    assert "no such audio file" in files["gone"]["error"] and r.returncode == 1


def test_device_says_what_training_would_use_here(tmp_path, capsys, monkeypatch):
    """asr device: the device type and arithmetic asr train would use with this config, which
    recipes/an4/seeds.sh keeps in an experiment's settings."""
    import asr.device

    assert main(["device", "--device", "cpu", "--set", "train.precision=fp32"]) == 0
    assert capsys.readouterr().out == "cpu float32\n"
    assert main(["device", "--device", "cpu", "--set", "train.precision=bf16"]) == 0
    assert capsys.readouterr().out == "cpu bf16\n"
    for native, want in ((True, "cpu bf16\n"), (False, "cpu float32\n")):  # auto: native bf16 or not
        monkeypatch.setattr(asr.device, "cpu_has_bf16", lambda native=native: native)
        assert main(["device", "--device", "cpu"]) == 0
        assert capsys.readouterr().out == want
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  precision: fp32\n")
    assert main(["device", "--device", "cpu", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "cpu float32\n"
    assert main(["device", "--set", "train.precision=fp16"]) == 1
    err = capsys.readouterr().err
    assert "train.precision must be one of auto, bf16, fp32" in err and err.count("\n") == 1
