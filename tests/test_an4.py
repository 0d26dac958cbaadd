import numpy as np
import pytest
import soundfile as sf

from asr.corpora.an4 import download_an4, parse_transcription_line, prepare_an4
from asr.errors import AsrError
from asr.manifest import read_manifest


def test_parses_both_transcription_styles():
    assert parse_transcription_line("<s> ENTER SIX TWO FOUR </s> (an87-fbbh-b)") == ("an87-fbbh-b", "ENTER SIX TWO FOUR")
    assert parse_transcription_line("ENTER SIX TWO FOUR (an87-fbbh-b)") == ("an87-fbbh-b", "ENTER SIX TWO FOUR")
    assert parse_transcription_line("<s> yes </s> (x-1)") == ("x-1", "YES")
    with pytest.raises(ValueError):
        parse_transcription_line("NO ID HERE")


def test_prepared_splits(an4_prepared):
    m = an4_prepared / "manifests"
    train, dev, test = (read_manifest(m / f"{s}.jsonl") for s in ("train", "dev", "test"))
    train_spk, dev_spk = {u.speaker for u in train}, {u.speaker for u in dev}
    assert len(train_spk) + len(dev_spk) == 74 and not train_spk & dev_spk
    assert len(dev_spk) == 7  # about 10% of the training speakers, held out
    assert len({u.speaker for u in test}) == 10
    u = next(x for x in test if x.id == "an406-fcaw-b")
    assert u.text == "RUBOUT G M E F THREE NINE" and u.speaker == "fcaw"
    assert u.audio.endswith("wav/an4test_clstk/fcaw/an406-fcaw-b.sph")
    assert sf.info(u.audio).samplerate == 16000 and abs(sf.info(u.audio).duration - u.duration) < 1e-3
    assert all("<s>" not in x.text and x.text == x.text.upper() for x in train + dev + test)


def test_extracted_folder_is_reused(an4_prepared):
    root = download_an4(None, an4_prepared)  # already extracted under corpus/
    assert root == an4_prepared / "corpus" / "an4"
    assert download_an4(root, an4_prepared / "elsewhere") == root  # a folder is used as it is


def fake_an4(tmp_path):
    root = tmp_path / "an4"
    (root / "etc").mkdir(parents=True)
    spk = root / "wav" / "an4_clstk" / "spk1"
    spk.mkdir(parents=True)
    tone = 0.1 * np.sin(np.arange(8000) / 5)
    for uid in ("good-1", "empty-text"):
        sf.write(str(spk / f"{uid}.sph"), tone, 16000, format="NIST", subtype="PCM_16")
    (spk.parent / "spk2").mkdir()
    sf.write(str(spk.parent / "spk2" / "good-2.sph"), tone, 16000, format="NIST", subtype="PCM_16")
    (spk / "corrupt.sph").write_bytes(b"NIST_1A\n   1024\nnot really sphere")
    ids = ["good-1", "good-2", "corrupt", "missing", "empty-text"]
    (root / "etc" / "an4_train.fileids").write_text(
        "".join(f"an4_clstk/{'spk2' if i == 'good-2' else 'spk1'}/{i}\n" for i in ids)
    )
    (root / "etc" / "an4_train.transcription").write_text(
        "<s> ONE </s> (good-1)\n<s> TWO </s> (good-2)\n<s> THREE </s> (corrupt)\n"
        "<s> FOUR </s> (missing)\n<s> </s> (empty-text)\nno id on this line\n<s> FIVE </s> (unlisted)\n"
    )
    test_dir = root / "wav" / "an4test_clstk" / "spk9"
    test_dir.mkdir(parents=True)
    sf.write(str(test_dir / "t-1.sph"), tone, 16000, format="NIST", subtype="PCM_16")
    (root / "etc" / "an4_test.fileids").write_text("an4test_clstk/spk9/t-1\n")
    (root / "etc" / "an4_test.transcription").write_text("SIX (t-1)\n")
    return root


def test_broken_items_are_skipped_and_counted(tmp_path):
    root = fake_an4(tmp_path)
    report = prepare_an4(root, tmp_path / "manifests")
    assert report.kept == {"train": 1, "dev": 1, "test": 1}  # one of the two speakers held out
    reasons = report.skipped["train"]
    assert len(reasons) == 5
    text = "\n".join(reasons)
    for expected in ("unreadable audio", "audio file missing", "empty transcript", "expected 'TEXT (utterance-id)'",
                     "'unlisted' is not in an4_train.fileids"):
        assert expected in text
    assert all("an4_train.transcription:" in r for r in reasons)  # file and line named
    assert "train: 1 utterances kept, 5 skipped" in report.lines()


def test_bad_sources(tmp_path):
    with pytest.raises(AsrError, match="no such AN4 archive"):
        download_an4(tmp_path / "nope.tar.gz", tmp_path / "work")
    (tmp_path / "bad.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(AsrError, match="cannot extract"):
        download_an4(tmp_path / "bad.tar.gz", tmp_path / "work")


def test_incomplete_sources(tmp_path):
    import gzip

    # A gzip stream cut short.
    data = gzip.compress(b"x" * 100000)
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(AsrError, match="cannot extract"):
        download_an4(tmp_path / "cut.tar.gz", tmp_path / "work")
    # Transcripts but no audio at all: every utterance is skipped, then a clear error.
    root = fake_an4(tmp_path)
    import shutil

    shutil.rmtree(root / "wav")
    with pytest.raises(AsrError, match="no usable utterances"):
        prepare_an4(root, tmp_path / "m")
    (root / "etc" / "an4_test.fileids").unlink()
    with pytest.raises(AsrError, match="incomplete AN4 copy"):
        prepare_an4(root, tmp_path / "m2")
