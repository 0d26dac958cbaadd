"""TED-LIUM 3: a fake release in the real layout (legacy split, SPHERE talks, STM segments)."""

import os
import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import load_audio
from asr.config import FeatureConfig
from asr.corpora.tedlium import (
    download_tedlium,
    normalize_transcript,
    parse_stm_line,
    prepare_tedlium,
)
from asr.data import utterance_features
from asr.errors import AsrError
from asr.features import log_mel
from asr.manifest import Utterance, read_manifest

TRAIN_STM_1 = """\
AlGore_2009 1 AlGore_2009 0.00 2.50 <o,f0,male> it 's a {NOISE} good(2) day
AlGore_2009 1 inter_segment_gap 2.50 3.00 <o,,unknown> ignore_time_segment_in_scoring
AlGore_2009 1 AlGore_2009 3.00 5.25 <o,f0,male> we 're <sil> here and they 've <unk> come
AlGore_2009 1 AlGore_2009 5.25 6.00 <o,f0,male> {BREATH}
AlGore_2009 1 AlGore_2009 6.00 7.10 <NA> the students ' books
"""
TRAIN_STM_2 = """\
;; a comment line
JaneDoe_2010X 1 JaneDoe_2010X 0.50 1.75 <o,f0,female> that 's what i 've seen (JaneDoe_2010X-1)
JaneDoe_2010X 1 JaneDoe_2010X abc 2.00 <o,f0,female> bad start time
JaneDoe_2010X 1 JaneDoe_2010X 3.00 3.00 <o,f0,female> empty span
JaneDoe_2010X 1 JaneDoe_2010X 2.00
Missing_2000 1 Missing_2000 0.00 1.00 <o,f0,male> no audio for this talk
JaneDoe_2010X 1 JaneDoe_2010X 2.00 4.00 <o,f0,female> twenty two
"""
DEV_STM = """\
DevTalk_2011 1 DevTalk_2011 1.00 3.00 <F0_M> so <unk> said it 's true
DevTalk_2011 1 DevTalk_2011 3.00 4.00 <F0_M> ignore_time_segment_in_scoring
"""
TEST_STM = """\
TestTalk_2012 1 TestTalk_2012 0.25 1.25 <o,f0,female> o k
TestTalk_2012 1 TestTalk_2012 9.00 9.50 <o,f0,female> after the end
"""


def write_sph(path, seconds, seed=0):
    rng = np.random.default_rng(seed)
    sf.write(str(path), 0.1 * rng.standard_normal(int(seconds * 16000)), 16000, format="NIST", subtype="PCM_16")


def fake_tedlium(base):
    """TEDLIUM_release-3 with data/ and legacy/; one legacy talk is a link into data/."""
    root = base / "TEDLIUM_release-3"
    legacy = [f"legacy/{split}/{kind}" for split in ("train", "dev", "test") for kind in ("sph", "stm")]
    for folder in ("data/sph", "data/stm", *legacy):
        (root / folder).mkdir(parents=True)
    write_sph(root / "legacy/train/sph/AlGore_2009.sph", 7.0, seed=1)
    write_sph(root / "data/sph/JaneDoe_2010X.sph", 4.0, seed=2)
    os.symlink("../../../data/sph/JaneDoe_2010X.sph", root / "legacy/train/sph/JaneDoe_2010X.sph")
    write_sph(root / "legacy/dev/sph/DevTalk_2011.sph", 4.0, seed=3)
    write_sph(root / "legacy/test/sph/TestTalk_2012.sph", 2.0, seed=4)
    (root / "legacy/train/stm/AlGore_2009.stm").write_text(TRAIN_STM_1)
    (root / "legacy/train/stm/JaneDoe_2010X.stm").write_text(TRAIN_STM_2)
    (root / "legacy/dev/stm/DevTalk_2011.stm").write_text(DEV_STM)
    (root / "legacy/test/stm/TestTalk_2012.stm").write_text(TEST_STM)
    return root


@pytest.mark.parametrize("transcript, expected", [
    ("it 's a {NOISE} good(2) day", ("IT'S A GOOD DAY", 0)),
    ("we 're <sil> here and they 've <unk> come", ("WE'RE HERE AND THEY'VE COME", 1)),
    ("john <unk> 's car", ("JOHN 'S CAR", 1)),  # no joining across a dropped <unk>
    ("that 's what i 've seen (JaneDoe_2010X-1)", ("THAT'S WHAT I'VE SEEN", 0)),
    ("{BREATH} {COUGH}", ("", 0)),
])
def test_normalize_transcript(transcript, expected):
    assert normalize_transcript(transcript) == expected


def test_parse_stm_line():
    seg = parse_stm_line("AlGore_2009 1 AlGore_2009 13.96 18.87 <o,f0,male> one of the things")
    assert seg == ("AlGore_2009", "AlGore_2009", 13.96, 18.87, "one of the things")
    assert parse_stm_line("t 1 s 0 1 <unk> word").transcript == "<unk> word"  # <unk> is no label
    assert parse_stm_line(";; LABEL") is None and parse_stm_line("  ") is None
    with pytest.raises(ValueError, match="does not end after it starts"):
        parse_stm_line("t 1 s 2.0 1.0 <o> x")


def test_manifests(tmp_path):
    root = fake_tedlium(tmp_path)
    report = prepare_tedlium(root, tmp_path / "m")
    legacy = root.resolve() / "legacy"
    algore, jane = str(legacy / "train/sph/AlGore_2009.sph"), str(root.resolve() / "data/sph/JaneDoe_2010X.sph")
    assert read_manifest(tmp_path / "m" / "train.jsonl") == [
        Utterance("AlGore_2009-0000000-0000250", algore, 2.5, "IT'S A GOOD DAY", "AlGore_2009", offset=0.0),
        # 7.10 s runs past the 7 s talk: cut at its end.
        Utterance("AlGore_2009-0000600-0000710", algore, 1.0, "THE STUDENTS' BOOKS", "AlGore_2009", offset=6.0),
        Utterance("JaneDoe_2010X-0000050-0000175", jane, 1.25, "THAT'S WHAT I'VE SEEN", "JaneDoe_2010X", offset=0.5),
        Utterance("JaneDoe_2010X-0000200-0000400", jane, 2.0, "TWENTY TWO", "JaneDoe_2010X", offset=2.0),
    ]
    assert read_manifest(tmp_path / "m" / "dev.jsonl") == [
        Utterance("DevTalk_2011-0000100-0000300", str(legacy / "dev/sph/DevTalk_2011.sph"), 2.0, "SO SAID IT'S TRUE",
                  "DevTalk_2011", offset=1.0),
    ]
    assert read_manifest(tmp_path / "m" / "test.jsonl") == [
        Utterance("TestTalk_2012-0000025-0000125", str(legacy / "test/sph/TestTalk_2012.sph"), 1.0, "O K",
                  "TestTalk_2012", offset=0.25),
    ]
    stm2 = root / "legacy/train/stm/JaneDoe_2010X.stm"
    assert report.kept == {"train": 4, "dev": 1, "test": 1}
    assert report.skipped["train"] == [
        f"{stm2}:3: start and end must be numbers, got 'abc' and '2.00'",
        f"{stm2}:4: segment 3.00-3.00 does not end after it starts",
        f"{stm2}:5: expected '<talk> <channel> <speaker> <start> <end> <label> <transcript>'",
        f"{stm2}:6: Missing_2000.sph: audio file missing",
    ]
    assert report.skipped["test"] == [
        f"{root / 'legacy/test/stm/TestTalk_2012.stm'}:2: segment starts at 9.0 s, after its audio ends (2.0 s)",
    ]
    assert report.notes == [
        "train: left out by rule: 1 marked ignore_time_segment_in_scoring, 1 with <unk>, 1 without words",
        ("dev: left out by rule: 1 marked ignore_time_segment_in_scoring, 0 without words; "
         "1 <unk> words dropped from the references"),
        ("test: left out by rule: 0 marked ignore_time_segment_in_scoring, 0 without words; "
         "0 <unk> words dropped from the references"),
    ]
    # A segment is read from its talk: the same features as the span cut out by hand.
    utt = read_manifest(tmp_path / "m" / "train.jsonl")[1]
    cut = load_audio(algore)[6 * 16000 :]
    assert torch.equal(utterance_features(utt, FeatureConfig()), log_mel(cut, FeatureConfig()))


def test_archive_with_links_is_extracted_and_reused(tmp_path):
    root = fake_tedlium(tmp_path / "src")
    with tarfile.open(tmp_path / "TEDLIUM_release-3.tgz", "w:gz") as tar:
        tar.add(root, arcname="TEDLIUM_release-3")
    work = tmp_path / "work"
    found = download_tedlium(tmp_path / "TEDLIUM_release-3.tgz", work)
    assert found == work / "corpus" / "TEDLIUM_release-3"
    assert sf.info(str(found / "legacy/train/sph/JaneDoe_2010X.sph")).duration == 4.0  # the link inside works
    assert download_tedlium(None, work) == found  # already extracted: no download
    assert download_tedlium(root, tmp_path / "elsewhere") == root  # a folder is used as it is
    assert prepare_tedlium(found, work / "m").kept == {"train": 4, "dev": 1, "test": 1}


def test_bad_sources(tmp_path):
    with pytest.raises(AsrError, match="no such TED-LIUM archive"):
        download_tedlium(tmp_path / "nope.tgz", tmp_path / "work")
    (tmp_path / "bad.tgz").write_bytes(b"not a tarball")
    with pytest.raises(AsrError, match="cannot extract"):
        download_tedlium(tmp_path / "bad.tgz", tmp_path / "work")
    root = fake_tedlium(tmp_path / "src")
    for stm in (root / "legacy/dev/stm").glob("*.stm"):
        stm.unlink()
    with pytest.raises(AsrError, match="no STM files"):
        prepare_tedlium(root, tmp_path / "m")
