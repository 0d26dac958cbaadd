"""CMU AN4 (census) database: 948 training and 130 test utterances of spelled words and numbers.

prepare_an4 writes train/dev/test manifests; dev holds out about 10% of the training
speakers. Both transcription styles of the archive are parsed:
  train: `<s> ENTER SIX TWO FOUR </s> (an87-fbbh-b)`
  test:  `ENTER SIX TWO FOUR (an87-fbbh-b)`
"""

from __future__ import annotations

import re
from pathlib import Path

from asr.corpora.common import PrepareReport, audio_duration, fetch_corpus, split_speakers
from asr.errors import AsrError
from asr.manifest import Utterance, write_manifest
from asr.scoring import normalize_text

URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"  # CMU publishes no checksum for it
ENV_VAR = "ASR_AN4_SOURCE"  # a local an4_sphere.tar.gz or extracted folder
DESCRIPTION = "CMU AN4 census database (64 MB, downloaded from CMU)"
DEV_SPEAKER_FRACTION = 0.1
DEV_SEED = 4

_LINE = re.compile(r"^\s*(?:<s>)?\s*(?P<text>.*?)\s*(?:</s>)?\s*\((?P<id>[^()\s]+)\)\s*$")


def parse_transcription_line(line: str) -> tuple[str, str]:
    """`<s> TEXT </s> (id)` or `TEXT (id)` -> (id, normalized text). Raises ValueError."""
    m = _LINE.match(line)
    if not m:
        raise ValueError("expected 'TEXT (utterance-id)'")
    return m["id"], normalize_text(m["text"])


def find_an4_root(path: Path) -> Path | None:
    for candidate in (path, path / "an4"):
        if (candidate / "etc" / "an4_train.transcription").is_file():
            return candidate
    return None


def download_an4(source: str | Path | None, work_dir: str | Path) -> Path:
    """Return the AN4 root folder (with etc/ and wav/), extracting or downloading as needed.

    `source` is a local archive, an extracted folder, or None to use $ASR_AN4_SOURCE or,
    failing that, to download CMU's archive into work_dir/downloads.
    """
    return fetch_corpus(source, work_dir, env_var=ENV_VAR, find_root=find_an4_root, name="AN4",
                        holds="AN4 (no an4/etc/an4_train.transcription)", url=URL,
                        archive_name="an4_sphere.tar.gz")


def read_split(root: Path, name: str, report: PrepareReport, split: str) -> list[Utterance]:
    """Read one of AN4's lists (name 'train' or 'test') into utterances with checked audio."""
    etc = root / "etc"
    ids_path, trans_path = etc / f"an4_{name}.fileids", etc / f"an4_{name}.transcription"
    try:
        fileids = ids_path.read_text(encoding="utf-8").split()
        lines = trans_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise AsrError(f"{root}: incomplete AN4 copy ({e})") from None
    audio_by_id = {Path(f).name: root / "wav" / f"{f}.sph" for f in fileids}
    utts = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            uid, text = parse_transcription_line(line)
            if not text:
                raise ValueError("empty transcript")
            if uid not in audio_by_id:
                raise ValueError(f"'{uid}' is not in an4_{name}.fileids")
            audio = audio_by_id[uid]
            duration = audio_duration(audio)
        except ValueError as e:
            report.skip(split, f"{trans_path}:{n}: {e}")
            continue
        speaker = audio.parent.name
        utts.append(Utterance(id=uid, audio=str(audio.resolve()), duration=round(duration, 4), text=text, speaker=speaker))
    return utts


def prepare_an4(root: str | Path, out_dir: str | Path) -> PrepareReport:
    """Write train.jsonl, dev.jsonl and test.jsonl for AN4 under out_dir."""
    root, out_dir = Path(root), Path(out_dir)
    report = PrepareReport()
    train_all = read_split(root, "train", report, "train")
    test = read_split(root, "test", report, "test")
    train, dev = split_speakers(train_all, DEV_SPEAKER_FRACTION, DEV_SEED)
    for split, utts in (("train", train), ("dev", dev), ("test", test)):
        report.kept[split] = write_manifest(utts, out_dir / f"{split}.jsonl")
    return report


def add_arguments(parser) -> None:
    """AN4 needs no options beyond --source and --out."""


def run_prepare(args) -> tuple[Path, PrepareReport]:
    root = download_an4(args.source, args.out)
    return root, prepare_an4(root, Path(args.out) / "manifests")
