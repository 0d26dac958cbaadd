"""asr prepare tts: synthetic voices read a manifest's transcripts (flite, espeak-ng, festival)."""

import os
import shutil

import pytest
import soundfile as sf

from asr.cli import main
from asr.manifest import Utterance, read_manifest, write_manifest


def test_voices_read_the_transcripts(tmp_path, capsys):
    missing = [e for e in ("flite", "espeak-ng", "text2wave") if shutil.which(e) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} not installed (.ci/run installs flite, espeak-ng and festival)")
        pytest.skip(f"needs {', '.join(missing)}")
    utts = [Utterance("u1", "x.wav", 1.0, "ENTER SIX TWO FOUR", "s"), Utterance("u2", "x.wav", 1.0, "G M E F", "s")]
    write_manifest(utts, tmp_path / "dev.jsonl")
    assert main(["prepare", "tts", "--manifest", str(tmp_path / "dev.jsonl"), "--out", str(tmp_path / "tts"),
                 "--voices", "flite_slt", "espeak_us_m3", "festival_kal"]) == 0
    assert "dev: 6 utterances kept, 0 skipped" in capsys.readouterr().out
    out = read_manifest(tmp_path / "tts" / "manifests" / "dev.jsonl")
    assert {u.speaker for u in out} == {"flite_slt", "espeak_us_m3", "festival_kal"}
    assert {u.text for u in out} == {"ENTER SIX TWO FOUR", "G M E F"}
    for u in out:
        info = sf.info(u.audio)
        assert info.samplerate == 16000 and 0.5 < info.duration < 5
        assert info.duration == pytest.approx(u.duration, abs=1e-3)
