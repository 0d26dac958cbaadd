"""LibriSpeech (OpenSLR 12) and Mini LibriSpeech (OpenSLR 31): read English audiobooks, 16 kHz FLAC.

Layout of every part (both resources):
  LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
  LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   lines "<utt id> TEXT"

prepare_librispeech writes manifests/<part>.jsonl for each part, and manifests/train.jsonl
joining the training parts (train-*) asked for. Speaker = LibriSpeech speaker id.

Text: transcripts are already upper-case words of A-Z and apostrophes (numbers spelled
out, no punctuation); normalize_librispeech keeps exactly that and refuses anything else.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from asr.corpora.common import PrepareReport, audio_duration, download, extract_tar
from asr.errors import AsrError
from asr.manifest import Utterance, write_manifest

OPENSLR = "https://www.openslr.org/resources"  # mirrors: https://openslr.elda.org/resources, https://us.openslr.org/resources
ENV_VAR = "ASR_LIBRISPEECH_SOURCE"  # a folder holding LibriSpeech/<part>/ folders or <part>.tar.gz archives
LM_ENV_VAR = "ASR_LIBRISPEECH_LM_SOURCE"  # a local librispeech-lm-norm.txt(.gz)
DESCRIPTION = "LibriSpeech, OpenSLR 12 (960 h of read English; 100 h setup: 7.7 GB download)"

# part -> (OpenSLR resource number, checksum algorithm, digest).
# sha256 of the OpenSLR 12 archives: torchaudio 2.11, torchaudio/datasets/librispeech.py (_CHECKSUMS).
# md5 of the OpenSLR 31 archives: OpenSLR's resources/31/md5sum.txt as copied in PaddleSpeech's
# dataset/mini_librispeech/mini_librispeech.py (MD5_TRAIN_CLEAN, MD5_DEV_CLEAN).
PARTS = {
    "dev-clean": (12, "sha256", "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3"),
    "dev-other": (12, "sha256", "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365"),
    "test-clean": (12, "sha256", "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23"),
    "test-other": (12, "sha256", "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29"),
    "train-clean-100": (12, "sha256", "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2"),
    "train-clean-360": (12, "sha256", "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf"),
    "train-other-500": (12, "sha256", "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2"),
    "train-clean-5": (31, "md5", "5df7d4e78065366204ca6845bb08f490"),
    "dev-clean-2": (31, "md5", "6d7ab67ac6a1d2c993d050e16d61080d"),
}
SETUP_100H = ("train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other")
SETUP_960H = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other", "test-clean",
              "test-other")

# The normalized LM text of OpenSLR 11 (about 40M sentences, 800M words; 1.4 GB gzipped).
# md5 as listed for OpenSLR 11 in sdrobert/pytorch-database-prep's librispeech.py (FILE2MD5),
# the same value thu-spmi/CAT's LibriSpeech recipe checks.
LM_TEXT = "librispeech-lm-norm.txt.gz"
LM_TEXT_MD5 = "c83c64c726a1aedfe65f80aa311de402"

_TEXT = re.compile(r"[A-Z']+( [A-Z']+)*")


def normalize_librispeech(text: str) -> str:
    """Upper-case, single spaces; only A-Z and apostrophes. Raises ValueError otherwise."""
    text = " ".join(text.upper().split())
    if not text:
        raise ValueError("empty transcript")
    if not _TEXT.fullmatch(text):
        bad = "".join(sorted({c for c in text if not (c.isascii() and (c.isupper() or c in "' "))}))
        raise ValueError(f"unexpected characters {bad!r} in transcript")
    return text


def part_url(part: str, mirror: str | None = None) -> str:
    resource = PARTS[part][0]
    return f"{(mirror or OPENSLR).rstrip('/')}/{resource}/{part}.tar.gz"


def find_part(folder: Path, part: str) -> Path | None:
    """`folder`/LibriSpeech/<part> or `folder`/<part>, if it is there."""
    for candidate in (folder / "LibriSpeech" / part, folder / part):
        if candidate.is_dir():
            return candidate
    return None


def download_librispeech(
    parts: list[str] | tuple[str, ...],
    source: str | Path | None,
    work_dir: str | Path,
    mirror: str | None = None,
    env_var: str = ENV_VAR,
) -> dict[str, Path]:
    """Folder of each part, extracting or downloading what is not there yet.

    `source` (else the environment variable `env_var`) is a folder with extracted parts
    (LibriSpeech/<part>/ or <part>/, used in place) and/or the archives <part>.tar.gz.
    Parts found in neither are downloaded from OpenSLR (or `mirror`) into
    work_dir/downloads, checked against their published checksums, and extracted under
    work_dir/corpus/LibriSpeech.
    """
    work_dir = Path(work_dir)
    source = source or os.environ.get(env_var) or None
    if source is not None and not Path(source).is_dir():
        raise AsrError(f"{source}: no such folder (expected LibriSpeech/<part>/ folders or <part>.tar.gz archives)")
    corpus = work_dir / "corpus" / "LibriSpeech"
    dirs = {}
    for part in parts:
        if part not in PARTS:
            raise AsrError(f"unknown LibriSpeech part '{part}' (known: {', '.join(PARTS)})")
        found = (find_part(Path(source), part) if source else None) or find_part(corpus.parent, part)
        if found:
            dirs[part] = found
            continue
        archive = Path(source) / f"{part}.tar.gz" if source else None
        if archive is None or not archive.is_file():
            _, algorithm, digest = PARTS[part]
            if source:
                print(f"{part}: not in {source}; downloading it")
            archive = download(part_url(part, mirror), work_dir / "downloads" / f"{part}.tar.gz",
                               **{algorithm: digest})
        dirs[part] = extract_part(archive, part, corpus)
    return dirs


def extract_part(archive: Path, part: str, corpus: Path) -> Path:
    """Extract the archive of one part and move its LibriSpeech/<part> folder into `corpus`."""
    tmp = corpus.parent.parent / f"corpus.partial-{part}"
    shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted extraction
    extract_tar(archive, tmp)
    extracted = find_part(tmp, part)
    if extracted is None:
        raise AsrError(f"{archive}: does not hold LibriSpeech/{part}/")
    corpus.mkdir(parents=True, exist_ok=True)
    extracted.rename(corpus / part)
    shutil.rmtree(tmp)
    return corpus / part


def read_part(part_dir: Path, part: str, report: PrepareReport) -> list[Utterance]:
    """The utterances of one part, in speaker/chapter order; broken items are skipped and counted."""
    transcripts = sorted(part_dir.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise AsrError(f"{part_dir}: no <speaker>/<chapter>/*.trans.txt files (not a LibriSpeech part)")
    utts = []
    for trans in transcripts:
        speaker, chapter = trans.parent.parent.name, trans.parent.name
        try:
            lines = trans.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            report.skip(part, f"{trans}: unreadable ({e})")
            continue
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            try:
                if not re.fullmatch(rf"{re.escape(speaker)}-{re.escape(chapter)}-\d+", uid):
                    raise ValueError(f"'{uid}' is not an utterance of speaker {speaker}, chapter {chapter}")
                text = normalize_librispeech(text)
                audio = trans.parent / f"{uid}.flac"
                duration = audio_duration(audio)
            except ValueError as e:
                report.skip(part, f"{trans}:{n}: {e}")
                continue
            utts.append(Utterance(id=uid, audio=str(audio.resolve()), duration=round(duration, 4), text=text,
                                  speaker=speaker))
    if not utts:
        raise AsrError(f"{part_dir}: no usable utterances in {part}")
    return utts


def prepare_librispeech(part_dirs: dict[str, Path], out_dir: str | Path) -> PrepareReport:
    """Write out_dir/<part>.jsonl for each part, and out_dir/train.jsonl joining the train-* parts."""
    out_dir = Path(out_dir)
    report = PrepareReport()
    train: list[Utterance] = []
    for part, folder in part_dirs.items():
        utts = read_part(Path(folder), part, report)
        report.kept[part] = write_manifest(utts, out_dir / f"{part}.jsonl")
        if part.startswith("train-"):
            train += utts
    if train:
        report.kept["train"] = write_manifest(train, out_dir / "train.jsonl")
    return report


def download_lm_text(source: str | Path | None, work_dir: str | Path, mirror: str | None = None) -> Path:
    """The LibriSpeech LM text: `source` (else $ASR_LIBRISPEECH_LM_SOURCE), or OpenSLR 11's
    librispeech-lm-norm.txt.gz downloaded into work_dir/downloads and checked."""
    source = source or os.environ.get(LM_ENV_VAR) or None
    if source is not None:
        if not Path(source).is_file():
            raise AsrError(f"{source}: no such LM text file")
        return Path(source)
    url = f"{(mirror or OPENSLR).rstrip('/')}/11/{LM_TEXT}"
    return download(url, Path(work_dir) / "downloads" / LM_TEXT, md5=LM_TEXT_MD5)


def add_parts_arguments(parser, default_parts: tuple[str, ...]) -> None:
    """Options shared by `asr prepare librispeech` and `asr prepare mini_librispeech`."""
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(default_parts), metavar="PART",
                        help=f"parts to prepare (default: {' '.join(default_parts)}; known: {', '.join(PARTS)})")
    parser.add_argument("--mirror", help=f"OpenSLR mirror to download from instead of {OPENSLR}")
    parser.add_argument("--lm-text", action="store_true",
                        help=f"only fetch the LM text {LM_TEXT} (OpenSLR 11, 1.4 GB) into OUT/downloads")
    parser.add_argument("--lm-source", help=f"local copy of the LM text (default: ${LM_ENV_VAR}, else download)")


def prepare_parts(args, env_var: str) -> tuple[Path, PrepareReport]:
    if args.lm_text:
        return download_lm_text(args.lm_source, args.out, args.mirror), PrepareReport()
    source = args.source or os.environ.get(env_var) or None
    dirs = download_librispeech(args.parts, source, args.out, args.mirror, env_var)
    root = Path(source) if source else Path(args.out) / "corpus"
    return root, prepare_librispeech(dirs, Path(args.out) / "manifests")


def add_arguments(parser) -> None:
    add_parts_arguments(parser, SETUP_100H)


def run_prepare(args) -> tuple[Path, PrepareReport]:
    return prepare_parts(args, ENV_VAR)
