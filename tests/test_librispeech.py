"""LibriSpeech / Mini LibriSpeech preparation on tiny fake copies of the real layout."""

import functools
import gzip
import hashlib
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from asr.corpora import librispeech
from asr.corpora.common import PrepareReport
from asr.corpora.librispeech import (
    download_librispeech,
    normalize_librispeech,
    prepare_librispeech,
    read_part,
)
from asr.errors import AsrError
from asr.manifest import Utterance, read_manifest


def write_flac(path, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * 16000)) / 16000
    sf.write(str(path), 0.2 * np.sin(2 * np.pi * 300 * t), 16000, format="FLAC")


# part -> {(speaker, chapter): [(utterance number, seconds, transcript line text)]}
FAKE = {
    "train-clean-100": {
        ("103", "1240"): [(0, 1.5, "CHAPTER ONE MISSUS RACHEL LYNDE IS SURPRISED"), (1, 0.75, "THAT HAD ITS SOURCE")],
        ("1034", "121119"): [(0, 1.0, "I'M NOT SURE")],
    },
    "train-clean-360": {("100", "121669"): [(0, 0.5, "TOM THE PIPER'S SON")]},
    "dev-clean": {("1272", "128104"): [(0, 1.25, "MISTER QUILTER IS THE APOSTLE")]},
}


def fake_librispeech(root, parts=FAKE):
    """root/LibriSpeech/<part>/<speaker>/<chapter>/ with FLAC files and .trans.txt, as OpenSLR ships them."""
    for part, chapters in parts.items():
        for (spk, chap), utts in chapters.items():
            folder = root / "LibriSpeech" / part / spk / chap
            lines = []
            for n, seconds, text in utts:
                uid = f"{spk}-{chap}-{n:04d}"
                write_flac(folder / f"{uid}.flac", seconds)
                lines.append(f"{uid} {text}\n")
            (folder / f"{spk}-{chap}.trans.txt").write_text("".join(lines))
    return root


def expected(root, part):
    return [
        Utterance(id=f"{spk}-{chap}-{n:04d}",
                  audio=str((root / "LibriSpeech" / part / spk / chap / f"{spk}-{chap}-{n:04d}.flac").resolve()),
                  duration=seconds, text=text, speaker=spk)
        for (spk, chap), utts in sorted(FAKE[part].items()) for n, seconds, text in utts
    ]


def test_normalization_keeps_librispeech_text_as_it_is():
    assert normalize_librispeech("MISTER QUILTER'S  APOSTLE ") == "MISTER QUILTER'S APOSTLE"
    assert normalize_librispeech("i'm not sure") == "I'M NOT SURE"  # case is folded
    for bad in ("CHAPTER 1", "HELLO, WORLD", "CAFÉ", "   "):
        with pytest.raises(ValueError):
            normalize_librispeech(bad)


def test_manifests_from_an_extracted_copy(tmp_path):
    src = fake_librispeech(tmp_path / "src")
    dirs = download_librispeech(["train-clean-100", "train-clean-360", "dev-clean"], src, tmp_path / "work")
    assert dirs == {p: src / "LibriSpeech" / p for p in ("train-clean-100", "train-clean-360", "dev-clean")}
    report = prepare_librispeech(dirs, tmp_path / "work" / "manifests")
    assert report.kept == {"train-clean-100": 3, "train-clean-360": 1, "dev-clean": 1, "train": 4}
    assert report.skipped == {}
    m = tmp_path / "work" / "manifests"
    for part in FAKE:
        assert read_manifest(m / f"{part}.jsonl") == expected(src, part)
    assert read_manifest(m / "train.jsonl") == expected(src, "train-clean-100") + expected(src, "train-clean-360")
    assert not (tmp_path / "work" / "corpus").exists()  # used in place


def test_broken_items_are_skipped_and_counted(tmp_path):
    src = fake_librispeech(tmp_path / "src", {"dev-clean": FAKE["dev-clean"]})
    chapter = src / "LibriSpeech" / "dev-clean" / "1272" / "128104"
    (chapter / "1272-128104-0005.flac").write_bytes(b"fLaC but not really")
    write_flac(chapter / "1272-128104-0006.flac", 0.5)
    with open(chapter / "1272-128104.trans.txt", "a") as f:
        f.write("1272-128104-0003 NO AUDIO FOR THIS ONE\n"
                "1272-128104-0005 CORRUPT AUDIO\n"
                "1272-128104-0006 CHAPTER 6\n"
                "9999-1-0001 WRONG SPEAKER\n"
                "\n"
                "1272-128104-0006\n")
    report = PrepareReport()
    utts = read_part(src / "LibriSpeech" / "dev-clean", "dev-clean", report)
    assert utts == expected(src, "dev-clean")
    reasons = report.skipped["dev-clean"]
    assert [r.split(": ", 1)[0] for r in reasons] == [f"{chapter / '1272-128104.trans.txt'}:{n}" for n in (2, 3, 4, 5, 7)]
    for reason, fragment in zip(reasons, ["audio file missing", "unreadable audio", "unexpected characters '6'",
                                          "not an utterance of speaker 1272", "empty transcript"]):
        assert fragment in reason


def test_archives_in_the_source_are_extracted_once(tmp_path):
    fake_librispeech(tmp_path / "tree", {"dev-clean": FAKE["dev-clean"]})
    src = tmp_path / "archives"
    src.mkdir()
    with tarfile.open(src / "dev-clean.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "tree" / "LibriSpeech", arcname="LibriSpeech")
    work = tmp_path / "work"
    dirs = download_librispeech(["dev-clean"], src, work)
    assert dirs == {"dev-clean": work / "corpus" / "LibriSpeech" / "dev-clean"}
    prepare_librispeech(dirs, work / "manifests")
    assert read_manifest(work / "manifests" / "dev-clean.jsonl") == expected(work / "corpus", "dev-clean")
    assert not list(work.glob("corpus.partial-*"))
    (src / "dev-clean.tar.gz").unlink()
    assert download_librispeech(["dev-clean"], src, work) == dirs  # the extracted copy is reused


@pytest.fixture
def openslr(tmp_path):
    """A local stand-in for OpenSLR: serves tmp_path/site as <url>/<resource>/<file>."""
    site = tmp_path / "site"
    site.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield site, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_checks_the_published_checksum(tmp_path, openslr, monkeypatch):
    site, url = openslr
    fake_librispeech(tmp_path / "tree", {"dev-clean": FAKE["dev-clean"]})
    (site / "31").mkdir()
    with tarfile.open(site / "31" / "dev-clean-2.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "tree" / "LibriSpeech" / "dev-clean", arcname="LibriSpeech/dev-clean-2")
    # The fake archive is not OpenSLR's: the real checksum refuses it.
    with pytest.raises(AsrError, match="md5 of the download is .* expected 6d7ab67ac6a1d2c993d050e16d61080d"):
        download_librispeech(["dev-clean-2"], None, tmp_path / "work", mirror=url)
    assert not (tmp_path / "work" / "downloads" / "dev-clean-2.tar.gz").exists()
    md5 = hashlib.md5((site / "31" / "dev-clean-2.tar.gz").read_bytes()).hexdigest()
    monkeypatch.setitem(librispeech.PARTS, "dev-clean-2", (31, "md5", md5))
    monkeypatch.delenv("ASR_MINI_LIBRISPEECH_SOURCE", raising=False)
    assert main(["prepare", "mini_librispeech", "--out", str(tmp_path / "work"), "--mirror", url,
                 "--parts", "dev-clean-2"]) == 0
    utts = read_manifest(tmp_path / "work" / "manifests" / "dev-clean-2.jsonl")
    assert [u.id for u in utts] == ["1272-128104-0000"] and utts[0].text == "MISTER QUILTER IS THE APOSTLE"
    assert utts[0].audio == str((tmp_path / "work" / "corpus" / "LibriSpeech" / "dev-clean-2" / "1272" / "128104"
                                 / "1272-128104-0000.flac").resolve())


def test_lm_text_is_fetched_or_taken_from_a_local_copy(tmp_path, openslr, monkeypatch, capsys):
    site, url = openslr
    (site / "11").mkdir()
    data = gzip.compress(b"THE FIRST SENTENCE\nAND THE SECOND\n")
    (site / "11" / "librispeech-lm-norm.txt.gz").write_bytes(data)
    monkeypatch.setattr(librispeech, "LM_TEXT_MD5", hashlib.md5(data).hexdigest())
    monkeypatch.delenv("ASR_LIBRISPEECH_LM_SOURCE", raising=False)
    work = tmp_path / "work"
    assert main(["prepare", "librispeech", "--out", str(work), "--lm-text", "--mirror", url]) == 0
    assert (work / "downloads" / "librispeech-lm-norm.txt.gz").read_bytes() == data
    assert "librispeech-lm-norm.txt.gz" in capsys.readouterr().out
    (tmp_path / "mine.txt").write_text("MY OWN TEXT\n")
    monkeypatch.setenv("ASR_LIBRISPEECH_LM_SOURCE", str(tmp_path / "mine.txt"))
    assert librispeech.download_lm_text(None, work) == tmp_path / "mine.txt"
    with pytest.raises(AsrError, match="no such LM text file"):
        librispeech.download_lm_text(tmp_path / "nope.gz", work)


def test_cli_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ASR_LIBRISPEECH_SOURCE", raising=False)
    assert main(["prepare", "librispeech", "--source", str(tmp_path / "nowhere"), "--out", str(tmp_path / "w")]) == 1
    assert "nowhere: no such folder" in capsys.readouterr().err
    (tmp_path / "empty" / "LibriSpeech" / "dev-clean").mkdir(parents=True)
    assert main(["prepare", "librispeech", "--source", str(tmp_path / "empty"), "--out", str(tmp_path / "w"),
                 "--parts", "dev-clean"]) == 1
    assert "not a LibriSpeech part" in capsys.readouterr().err
