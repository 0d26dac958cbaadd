"""LJSpeech preparation on a tiny fake copy of LJSpeech-1.1 (metadata.csv + wavs/)."""

import tarfile

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from asr.corpora.common import PrepareReport
from asr.corpora.ljspeech import (
    download_ljspeech,
    normalize_ljspeech,
    prepare_ljspeech,
    read_metadata,
)
from asr.errors import AsrError
from asr.manifest import Utterance, read_manifest

RATE = 22050
# id -> (samples, raw column, normalized column); lines as LJSpeech writes them.
CLIPS = {
    "LJ001-0001": (77175, "Printing, in the only sense with which we are at present concerned,",
                   "Printing, in the only sense with which we are at present concerned,"),
    "LJ002-0026": (66150, 'in 1801, the "Grand Jury" said -- it was in part',
                   'in eighteen oh one, the "Grand Jury" said -- it was in part'),
    "LJ005-0101": (11025, "whom he didn't know; he was 'honest'",
                   "whom he didn\u2019t know; he was 'honest'"),
    "LJ010-0031": (26460, "Mr. Fouché, the prisoners' chief",
                   "Mister Fouch\u00e9, the prisoners' chief"),
    "LJ030-0005": (17640, "at 12:30 p.m.", "at twelve thirty p.m."),
}
BROKEN = [
    "LJ003-0001|Raw only",  # 2 fields
    "LJ004-0001|The 3rd|The 3rd",  # digits left in the normalized column
    "LJ006-0001|No audio|No audio",  # no wav file
    "LJ007-0001|Quotes!|  ",  # empty normalized column
    "LJX-1|bad id|bad id",
]


def fake_ljspeech(base):
    root = base / "LJSpeech-1.1"
    (root / "wavs").mkdir(parents=True)
    for uid, (n, _, _) in CLIPS.items():
        sf.write(str(root / "wavs" / f"{uid}.wav"), 0.1 * np.sin(np.arange(n) / 9), RATE, subtype="PCM_16")
    lines = [f"{uid}|{raw}|{norm}" for uid, (_, raw, norm) in CLIPS.items()]
    (root / "metadata.csv").write_text("\n".join(lines[:2] + BROKEN + lines[2:]) + "\n", encoding="utf-8")
    return root


def utt(root, uid, text):
    return Utterance(id=uid, audio=str((root / "wavs" / f"{uid}.wav").resolve()),
                     duration=round(CLIPS[uid][0] / RATE, 4), text=text, speaker="LJ")


def test_normalization():
    assert normalize_ljspeech('in eighteen oh one, the "Grand Jury" said -- it was') == (
        "IN EIGHTEEN OH ONE THE GRAND JURY SAID IT WAS")
    assert normalize_ljspeech("whom he didn\u2019t know; he was 'honest'") == "WHOM HE DIDN'T KNOW HE WAS HONEST"
    assert normalize_ljspeech("Mister Fouch\u00e9, the prisoners' chief") == "MISTER FOUCHE THE PRISONERS CHIEF"
    assert normalize_ljspeech("a well-known (and [bracketed]) text: yes! no? mrs.") == (
        "A WELL KNOWN AND BRACKETED TEXT YES NO MRS")
    for bad, message in (("the 3rd", "'3'"), ("\u00e6on", "'\u00c6'"), (' -- "" ', "empty")):
        with pytest.raises(ValueError, match=message):
            normalize_ljspeech(bad)


def test_manifests_are_exact(tmp_path):
    root = fake_ljspeech(tmp_path)
    assert download_ljspeech(tmp_path, tmp_path / "work") == root  # a folder is used in place
    report = prepare_ljspeech(root, tmp_path / "m")
    assert report.kept == {"train": 2, "dev": 1, "test": 2}
    m = tmp_path / "m"
    assert read_manifest(m / "train.jsonl") == [
        utt(root, "LJ001-0001", "PRINTING IN THE ONLY SENSE WITH WHICH WE ARE AT PRESENT CONCERNED"),
        utt(root, "LJ002-0026", "IN EIGHTEEN OH ONE THE GRAND JURY SAID IT WAS IN PART"),
    ]
    assert read_manifest(m / "dev.jsonl") == [utt(root, "LJ005-0101", "WHOM HE DIDN'T KNOW HE WAS HONEST")]
    assert read_manifest(m / "test.jsonl") == [
        utt(root, "LJ010-0031", "MISTER FOUCHE THE PRISONERS CHIEF"),
        utt(root, "LJ030-0005", "AT TWELVE THIRTY P M"),
    ]


def test_broken_lines_are_skipped_and_counted(tmp_path):
    root = fake_ljspeech(tmp_path)
    report = PrepareReport()
    assert len(read_metadata(root, report)) == 5
    reasons = report.skipped["train"]
    assert [r.split(": ", 1)[0] for r in reasons] == [f"{root / 'metadata.csv'}:{n}" for n in range(3, 8)]
    for reason, fragment in zip(reasons, ["expected 3 fields", "'3' left", "audio file missing", "empty transcript",
                                          "not an LJSpeech clip id"]):
        assert fragment in reason
    assert "train: 2 utterances kept, 5 skipped" in prepare_ljspeech(root, tmp_path / "m").lines()


def test_archive_is_extracted_once_and_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ASR_LJSPEECH_SOURCE", raising=False)
    fake_ljspeech(tmp_path / "tree")
    with tarfile.open(tmp_path / "LJSpeech-1.1.tar.bz2", "w:bz2") as tar:
        tar.add(tmp_path / "tree" / "LJSpeech-1.1", arcname="LJSpeech-1.1")
    work = tmp_path / "work"
    assert main(["prepare", "ljspeech", "--source", str(tmp_path / "LJSpeech-1.1.tar.bz2"), "--out", str(work)]) == 0
    root = work / "corpus" / "LJSpeech-1.1"
    assert read_manifest(work / "manifests" / "dev.jsonl") == [utt(root, "LJ005-0101", "WHOM HE DIDN'T KNOW HE WAS HONEST")]
    assert "test: 2 utterances kept, 0 skipped" in capsys.readouterr().out
    (tmp_path / "LJSpeech-1.1.tar.bz2").unlink()
    assert download_ljspeech(None, work) == root  # extracted before: no archive needed
    assert main(["prepare", "ljspeech", "--source", str(tmp_path / "nothing"), "--out", str(tmp_path / "w2")]) == 1
    assert "nothing: no such LJSpeech archive or folder" in capsys.readouterr().err
    with pytest.raises(AsrError, match="no usable clips for the dev set"):
        (root / "metadata.csv").write_text("LJ001-0001|a|a\n")
        prepare_ljspeech(root, tmp_path / "m")


def test_recipe_runs_all_stages(tmp_path):
    import json

    from tests.test_recipes_librispeech import run_recipe

    fake_ljspeech(tmp_path / "src")
    work = tmp_path / "lj"
    r = run_recipe("ljspeech", tmp_path, "--work", str(work), ASR_LJSPEECH_SOURCE=str(tmp_path / "src"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "dev: 1 utterances kept, 0 skipped" in r.stdout
    for split, n in (("dev", 1), ("test", 2)):
        for name in ("greedy", "beam_lm"):
            assert json.loads((work / "exp" / f"decode_{split}_{name}" / "summary.json").read_text())["n_sentences"] == n
    assert all(f"stage {n} " in (work / "stage_times.txt").read_text() for n in range(6))
