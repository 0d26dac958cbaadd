"""LJSpeech 1.1: 13,100 clips (about 24 h) of one speaker reading non-fiction, 22.05 kHz WAV.

Layout: LJSpeech-1.1/metadata.csv and LJSpeech-1.1/wavs/<id>.wav. metadata.csv has one
line per clip, `ID|raw transcription|normalized transcription`, split on `|` only: there
is no quoting, and fields may hold quote characters.

Text: the normalized column (numbers, ordinals and money already spelled out), then
normalize_ljspeech: accents folded (é -> E), upper-case, apostrophes kept inside words
(DON'T) and dropped elsewhere, every other punctuation mark and hyphen turned into a word
break. A clip whose text still holds digits or other letters after that is skipped.

Split (fixed, by chapter, so that no test sentence shares a chapter with training):
dev = LJ005, LJ025, LJ045; test = LJ010, LJ030, LJ050; train = the other 44 chapters.
Speaker "LJ".
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from asr.corpora.common import PrepareReport, audio_duration, fetch_corpus
from asr.errors import AsrError
from asr.manifest import Utterance, write_manifest

URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
# sha256 from torchaudio 2.11, torchaudio/datasets/ljspeech.py (_RELEASE_CONFIGS["release1"]).
SHA256 = "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"
ENV_VAR = "ASR_LJSPEECH_SOURCE"  # a local LJSpeech-1.1.tar.bz2 or extracted folder
DESCRIPTION = "LJSpeech 1.1, one speaker (24 h; 2.6 GB download)"
SPEAKER = "LJ"
DEV_CHAPTERS = ("LJ005", "LJ025", "LJ045")
TEST_CHAPTERS = ("LJ010", "LJ030", "LJ050")

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def normalize_ljspeech(text: str) -> str:
    """The normalized column -> A-Z, apostrophes inside words, single spaces. Raises ValueError."""
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    text = "".join(c for c in text if not unicodedata.combining(c)).upper()
    other = sorted({c for c in text if c.isalnum() and not ("A" <= c <= "Z")})
    if other:
        raise ValueError(f"characters {''.join(other)!r} left in the normalized transcription")
    text = re.sub(r"[^A-Z']+", " ", text)  # punctuation, hyphens, quotes: word breaks
    text = re.sub(r"(?<![A-Z])'|'(?![A-Z])", " ", text)  # apostrophes only inside words
    text = " ".join(text.split())
    if not text:
        raise ValueError("empty transcript")
    return text


def split_of(uid: str) -> str:
    chapter = uid.split("-")[0]
    return "dev" if chapter in DEV_CHAPTERS else "test" if chapter in TEST_CHAPTERS else "train"


def find_ljspeech_root(path: Path) -> Path | None:
    for candidate in (path, path / "LJSpeech-1.1"):
        if (candidate / "metadata.csv").is_file() and (candidate / "wavs").is_dir():
            return candidate
    return None


def download_ljspeech(source: str | Path | None, work_dir: str | Path) -> Path:
    """Return the LJSpeech-1.1 folder, extracting or downloading as needed.

    `source` is a local LJSpeech-1.1.tar.bz2, an extracted folder, or None to use
    $ASR_LJSPEECH_SOURCE or, failing that, to download the archive (checked against its
    sha256) into work_dir/downloads.
    """
    return fetch_corpus(source, work_dir, env_var=ENV_VAR, find_root=find_ljspeech_root, name="LJSpeech",
                        holds="LJSpeech (no LJSpeech-1.1/metadata.csv and wavs/)", url=URL,
                        archive_name="LJSpeech-1.1.tar.bz2", sha256=SHA256)


def read_metadata(root: Path, report: PrepareReport) -> list[Utterance]:
    """Every usable clip of metadata.csv, in file order; broken lines are skipped and counted."""
    path = root / "metadata.csv"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise AsrError(f"{path}: cannot read ({e})") from None
    utts = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        split = split_of(fields[0])
        try:
            if len(fields) != 3:
                raise ValueError(f"expected 3 fields separated by '|', found {len(fields)}")
            uid = fields[0].strip()
            if not re.fullmatch(r"LJ\d{3}-\d{4}", uid):
                raise ValueError(f"'{uid}' is not an LJSpeech clip id")
            text = normalize_ljspeech(fields[2])
            audio = root / "wavs" / f"{uid}.wav"
            duration = audio_duration(audio)
        except ValueError as e:
            report.skip(split, f"{path}:{n}: {e}")
            continue
        utts.append(Utterance(id=uid, audio=str(audio.resolve()), duration=round(duration, 4), text=text,
                              speaker=SPEAKER))
    return utts


def prepare_ljspeech(root: str | Path, out_dir: str | Path) -> PrepareReport:
    """Write train.jsonl, dev.jsonl and test.jsonl (the fixed chapter split) under out_dir."""
    root, out_dir = Path(root), Path(out_dir)
    report = PrepareReport()
    utts = read_metadata(root, report)
    for split in ("train", "dev", "test"):
        part = [u for u in utts if split_of(u.id) == split]
        if not part:
            raise AsrError(f"{root / 'metadata.csv'}: no usable clips for the {split} set")
        report.kept[split] = write_manifest(part, out_dir / f"{split}.jsonl")
    return report


def add_arguments(parser) -> None:
    """LJSpeech needs no options beyond --source and --out."""


def run_prepare(args) -> tuple[Path, PrepareReport]:
    root = download_ljspeech(args.source, args.out)
    return root, prepare_ljspeech(root, Path(args.out) / "manifests")
