"""TIMIT: the 61 -> 39 phone folding and a fake copy in the LDC layout (upper and lower case)."""

import tarfile

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from asr.corpora.timit import (
    CORE_TEST_SPEAKERS,
    DEV_SPEAKERS,
    FOLD_61_TO_39,
    PHONES_39,
    fold_phones,
    locate_timit,
    prepare_timit,
)
from asr.errors import AsrError
from asr.manifest import Utterance, read_manifest

# FCJF0/SI1027 ("she had your dark suit ..."), shortened; closures, q, pau, epi and h# inside.
PHN = """\
0 3050 h#
3050 4559 sh
4559 5723 ix
5723 6642 hv
6642 8772 eh
8772 9190 dcl
9190 10337 jh
10337 11517 ih
11517 12640 dcl
12640 14714 d
14714 15870 ah
15870 16334 kcl
16334 18088 k
18088 20417 s
20417 21199 ux
21199 22560 q
22560 22720 en
22720 24229 gcl
24229 25566 g
25566 27156 r
27156 28064 ix
28064 29660 s
29660 31719 iy
31719 32500 w
32500 34000 pau
34000 35000 epi
35000 36000 h#
"""
FOLDED = "sil sh ih hh eh sil jh ih sil d ah sil k s uw n sil g r ih s iy w sil"
SHORT_PHN = "0 2000 h#\n2000 6000 ao\n6000 8000 h#\n"


def write_utterance(folder, sentence, phn, seconds, lower):
    name = sentence.lower() if lower else sentence
    ext = (lambda e: e.lower()) if lower else (lambda e: e)
    rate = 16000
    wave = 0.1 * np.sin(np.arange(int(seconds * rate)) / 3)
    # Like the LDC's files: NIST SPHERE behind a .WAV extension.
    sf.write(str(folder / f"{name}{ext('.WAV')}"), wave, rate, format="NIST", subtype="PCM_16")
    (folder / f"{name}{ext('.PHN')}").write_text(phn)
    (folder / f"{name}{ext('.TXT')}").write_text(f"0 {int(seconds * rate)} Some words.\n")
    (folder / f"{name}{ext('.WRD')}").write_text(f"0 {int(seconds * rate)} words\n")


def fake_timit(base, lower=False):
    name = (lambda s: s.lower()) if lower else (lambda s: s)
    root = base / name("TIMIT")
    speakers = {
        ("TRAIN", "DR1", "FCJF0"): [("SA1", SHORT_PHN, 0.5), ("SI1027", PHN, 2.25), ("SX127", SHORT_PHN, 0.5)],
        ("TRAIN", "DR2", "MABC0"): [("SX1", "0 100 h#\n100 200 xx\n", 0.5), ("SI2", SHORT_PHN, 0.75)],
        ("TEST", "DR1", "MDAB0"): [("SA2", SHORT_PHN, 0.5), ("SI1039", SHORT_PHN, 1.0)],  # core test
        ("TEST", "DR1", "FAKS0"): [("SX223", SHORT_PHN, 0.75)],  # dev
        ("TEST", "DR2", "MXYZ0"): [("SX9", SHORT_PHN, 0.5)],  # neither: not used
    }
    for (part, region, speaker), sentences in speakers.items():
        folder = root / name(part) / name(region) / name(speaker)
        folder.mkdir(parents=True)
        for sentence, phn, seconds in sentences:
            write_utterance(folder, sentence, phn, seconds, lower)
    # A sentence whose audio is missing.
    (root / name("TRAIN") / name("DR2") / name("MABC0") / name("SX3.PHN")).write_text(SHORT_PHN)
    (root / name("TRAIN") / name("README.DOC")).write_text("not a dialect region")
    return root


def test_folding_table():
    assert len(FOLD_61_TO_39) == 61
    assert len(PHONES_39) == 39 and "sil" in PHONES_39 and "q" not in PHONES_39
    assert FOLD_61_TO_39["q"] is None
    for phone in ("h#", "pau", "epi", "bcl", "dcl", "gcl", "pcl", "tcl", "kcl"):
        assert FOLD_61_TO_39[phone] == "sil"
    folds = {"ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l", "em": "m",
             "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw"}
    for a, b in folds.items():
        assert FOLD_61_TO_39[a] == b
    unchanged = [p for p, q in FOLD_61_TO_39.items() if p == q]
    assert len(unchanged) == 38  # the 39 classes are these phones and sil
    assert fold_phones(["h#", "bcl", "b", "q", "ao", "pau", "epi", "h#"]) == ["sil", "b", "aa", "sil"]


def test_speaker_lists():
    assert len(CORE_TEST_SPEAKERS) == 24 and len(set(CORE_TEST_SPEAKERS)) == 24
    assert len(DEV_SPEAKERS) == 50 and len(set(DEV_SPEAKERS)) == 50
    assert not set(DEV_SPEAKERS) & set(CORE_TEST_SPEAKERS)
    assert sum(s.startswith("F") for s in CORE_TEST_SPEAKERS) == 8  # one woman per dialect region


@pytest.mark.parametrize("lower", [False, True])
def test_manifests(tmp_path, lower):
    root = fake_timit(tmp_path, lower)
    report = prepare_timit(root, tmp_path / "m")
    n = (lambda s: s.lower()) if lower else (lambda s: s)
    r = root.resolve()

    def wav(part, region, speaker, sentence):
        return str(r / n(part) / n(region) / n(speaker) / f"{n(sentence)}{n('.WAV')}")

    assert read_manifest(tmp_path / "m" / "train.jsonl") == [
        Utterance("FCJF0_SI1027", wav("TRAIN", "DR1", "FCJF0", "SI1027"), 2.25, FOLDED, "FCJF0"),
        Utterance("FCJF0_SX127", wav("TRAIN", "DR1", "FCJF0", "SX127"), 0.5, "sil aa sil", "FCJF0"),
        Utterance("MABC0_SI2", wav("TRAIN", "DR2", "MABC0", "SI2"), 0.75, "sil aa sil", "MABC0"),
    ]
    assert read_manifest(tmp_path / "m" / "dev.jsonl") == [
        Utterance("FAKS0_SX223", wav("TEST", "DR1", "FAKS0", "SX223"), 0.75, "sil aa sil", "FAKS0"),
    ]
    assert read_manifest(tmp_path / "m" / "test.jsonl") == [
        Utterance("MDAB0_SI1039", wav("TEST", "DR1", "MDAB0", "SI1039"), 1.0, "sil aa sil", "MDAB0"),
    ]
    mabc0 = root / n("TRAIN") / n("DR2") / n("MABC0")
    assert report.kept == {"train": 3, "dev": 1, "test": 1}
    assert report.skipped["train"] == [
        f"{mabc0 / n('SX1.PHN')}: line 2: 'xx' is not one of TIMIT's 61 phones",
        f"{mabc0 / n('SX3.PHN')}: no SX3.WAV beside it",
    ]
    assert report.notes[0] == (
        "left out by rule: 2 SA1/SA2 sentences; 1 TEST speakers outside the dev and core test sets"
    )
    assert report.notes[1].startswith("dev: 49 of its speakers not found: FADG0 FCAL1")
    assert report.notes[2].startswith("test: 23 of its speakers not found: FDHC0")


def test_sources(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ASR_TIMIT_SOURCE", raising=False)
    with pytest.raises(AsrError, match="licensed by the Linguistic Data Consortium"):
        locate_timit(None, tmp_path / "work")
    with pytest.raises(AsrError, match="no such TIMIT archive or folder"):
        locate_timit(tmp_path / "timit.tgz", tmp_path / "work")
    root = fake_timit(tmp_path / "ldc" / "LDC93S1")  # TIMIT/ two levels down
    assert locate_timit(tmp_path / "ldc", tmp_path / "work") == root
    (tmp_path / "empty").mkdir()
    with pytest.raises(AsrError, match="holds no TIMIT copy"):
        locate_timit(tmp_path / "empty", tmp_path / "work")
    with tarfile.open(tmp_path / "timit.tgz", "w:gz") as tar:
        tar.add(root, arcname="TIMIT")
    assert locate_timit(tmp_path / "timit.tgz", tmp_path / "work3") == tmp_path / "work3" / "corpus" / "TIMIT"
    monkeypatch.setenv("ASR_TIMIT_SOURCE", str(root))
    assert main(["prepare", "timit", "--out", str(tmp_path / "work")]) == 0
    assert "train: 3 utterances kept, 2 skipped" in capsys.readouterr().out
    assert len(read_manifest(tmp_path / "work" / "manifests" / "train.jsonl")) == 3
