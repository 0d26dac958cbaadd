"""TED-LIUM release 3 (OpenSLR 51): 452 hours of English TED talks, segmented by STM files.

TEDLIUM_release-3/ holds data/ (all talks), legacy/ and speaker-adaptation/ (two ways of
splitting them) and LM/. The legacy split is used: legacy/{train,dev,test}/{sph,stm}/,
whose dev (8 talks) and test (11 talks) are those of TED-LIUM 1 and 2, so results compare
with the literature. A folder with {train,dev,test}/{sph,stm}/ directly (the TED-LIUM 2
layout) is read the same way.

Each talk stays one NIST SPHERE file (16 kHz, 16 bit): a segment becomes a manifest entry
with audio = the talk's .sph, offset = its start and duration = end - start, and is read
straight from the talk, never cut into a file of its own. A segment running past the end
of its audio is cut at that end. Ids follow Kaldi's TED-LIUM recipe:
`<talk>-<start in centiseconds, 7 digits>-<end in centiseconds, 7 digits>`.

STM lines: `<talk> <channel> <speaker> <start> <end> <label> <transcript>`. Segments whose
transcript is `ignore_time_segment_in_scoring` (the gaps between speech) are left out and
counted, not reported as errors. Transcripts are normalized (`normalize_transcript`):
  - a trailing `(<utterance name>)` (TED-LIUM 1 training STMs) is removed;
  - `<sil>` and noise tags in braces ({NOISE}, {BREATH}, {COUGH}, {SMACK}) are removed:
    they are not words;
  - pronunciation variant markers go: `the(2)` -> `the`;
  - `<unk>` marks a word the transcribers could not make out. A training segment with one
    is left out (a character model cannot be taught to spell a word it is not given;
    the report counts them); in dev and test the token is dropped from the reference,
    so every scored segment is kept (a system is then not charged for that word);
  - TED-LIUM writes contractions apart (`it 's`, `we 're`): a token that starts with an
    apostrophe is joined to the word before it (as Kaldi's join_suffix.py does);
  - everything is upper-cased (as scoring compares).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from asr.corpora.common import PrepareReport, audio_duration, fetch_corpus
from asr.errors import AsrError
from asr.manifest import Utterance, write_manifest

URL = "https://www.openslr.org/resources/51/TEDLIUM_release-3.tgz"
ENV_VAR = "ASR_TEDLIUM_SOURCE"  # a local TEDLIUM_release-3.tgz or extracted folder
DESCRIPTION = "TED-LIUM release 3, legacy split (452 h of TED talks; 51 GB, downloaded from OpenSLR 51)"
SPLITS = ("train", "dev", "test")
IGNORED = "ignore_time_segment_in_scoring"
UNK = "<unk>"
_LABEL = re.compile(r"^<[^<>]*>$")  # <o,f0,male>, <F0_M>, <NA>
_NOT_A_WORD = re.compile(r"^(<sil>|\{[^{}]*\})$")  # <sil>, {NOISE}, {BREATH}, ...
_VARIANT = re.compile(r"\(\d+\)$")  # the(2)
_UTTERANCE_NAME = re.compile(r"^\(.*\)$")


class Segment(NamedTuple):
    """One STM line, its transcript as written."""

    talk: str
    speaker: str
    start: float  # seconds
    end: float
    transcript: str


def parse_stm_line(line: str) -> Segment | None:
    """A segment, or None for a blank or `;;` comment line. Raises ValueError."""
    if not line.strip() or line.startswith(";;"):
        return None
    fields = line.split()
    if len(fields) < 5:
        raise ValueError("expected '<talk> <channel> <speaker> <start> <end> <label> <transcript>'")
    talk, _channel, speaker, start, end, *words = fields
    if words and _LABEL.match(words[0]) and words[0] not in (UNK, "<sil>"):
        words = words[1:]
    try:
        start_s, end_s = float(start), float(end)
    except ValueError:
        raise ValueError(f"start and end must be numbers, got '{start}' and '{end}'") from None
    if not 0 <= start_s < end_s:
        raise ValueError(f"segment {start}-{end} does not end after it starts")
    return Segment(talk, speaker, start_s, end_s, " ".join(words))


def normalize_transcript(transcript: str) -> tuple[str, int]:
    """A TED-LIUM transcript as a training text, and the number of <unk> tokens it held."""
    words = transcript.split()
    if words and _UTTERANCE_NAME.match(words[-1]):
        words = words[:-1]
    out: list[str | None] = []  # None where an <unk> was: no apostrophe joins across it
    n_unk = 0
    for w in words:
        if w == UNK:
            n_unk += 1
            out.append(None)
        elif not _NOT_A_WORD.match(w):
            w = _VARIANT.sub("", w)
            if w.startswith("'") and out and out[-1] is not None:
                out[-1] += w
            else:
                out.append(w)
    return " ".join(w for w in out if w).upper(), n_unk


def segment_id(talk: str, start: float, end: float) -> str:
    return f"{talk}-{round(start * 100):07d}-{round(end * 100):07d}"


def split_folder(root: Path, split: str) -> Path:
    legacy = root / "legacy" / split
    return legacy if legacy.is_dir() else root / split


def find_tedlium_root(path: Path) -> Path | None:
    for candidate in (path, path / "TEDLIUM_release-3"):
        if (split_folder(candidate, "train") / "stm").is_dir():
            return candidate
    return None


def download_tedlium(source: str | Path | None, work_dir: str | Path) -> Path:
    """Return the TED-LIUM root folder, extracting or downloading as needed.

    `source` is a local archive, an extracted folder, or None to use $ASR_TEDLIUM_SOURCE or,
    failing that, to download OpenSLR's archive (51 GB) into work_dir/downloads.
    """
    return fetch_corpus(source, work_dir, env_var=ENV_VAR, find_root=find_tedlium_root, name="TED-LIUM",
                        holds="TED-LIUM (no legacy/train/stm or train/stm folder)", url=URL,
                        archive_name="TEDLIUM_release-3.tgz")


def read_split(root: Path, split: str, report: PrepareReport, counts: Counter) -> list[Utterance]:
    """The scored segments of one split's STM files, with their talks' audio checked."""
    folder = split_folder(root, split)
    stm_files = sorted((folder / "stm").glob("*.stm"))
    if not stm_files:
        raise AsrError(f"{folder / 'stm'}: no STM files (incomplete TED-LIUM copy?)")
    durations: dict[Path, float | str] = {}  # talk audio -> seconds, or why it is unusable
    utts, seen = [], set()
    for stm in stm_files:
        try:
            lines = stm.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            report.skip(split, f"{stm}: cannot read ({e})")
            continue
        for n, line in enumerate(lines, start=1):
            try:
                seg = parse_stm_line(line)
            except ValueError as e:
                report.skip(split, f"{stm}:{n}: {e}")
                continue
            if seg is None:
                continue
            if seg.transcript == IGNORED:
                counts[f"{split} ignored"] += 1
                continue
            text, n_unk = normalize_transcript(seg.transcript)
            if n_unk and split == "train":
                counts[f"{split} unk"] += 1
                continue
            counts[f"{split} unk words"] += n_unk
            if not text:
                counts[f"{split} no words"] += 1
                continue
            audio = (folder / "sph" / f"{seg.talk}.sph").resolve()
            if audio not in durations:
                try:
                    durations[audio] = audio_duration(audio)
                except ValueError as e:
                    durations[audio] = str(e)
            length = durations[audio]
            if isinstance(length, str):
                report.skip(split, f"{stm}:{n}: {audio.name}: {length}")
                continue
            if seg.start >= length:
                report.skip(split, f"{stm}:{n}: segment starts at {seg.start} s, after its audio ends ({length} s)")
                continue
            uid = segment_id(seg.talk, seg.start, seg.end)
            if uid in seen:
                report.skip(split, f"{stm}:{n}: a second segment with id '{uid}'")
                continue
            seen.add(uid)
            duration = round(min(seg.end, length) - seg.start, 4)
            utts.append(Utterance(uid, str(audio), duration, text, seg.speaker, offset=seg.start))
    return utts


def prepare_tedlium(root: str | Path, out_dir: str | Path) -> PrepareReport:
    """Write train.jsonl, dev.jsonl and test.jsonl of the legacy split under out_dir."""
    root, out_dir = Path(root), Path(out_dir)
    report, counts = PrepareReport(), Counter()
    for split in SPLITS:
        report.kept[split] = write_manifest(read_split(root, split, report, counts), out_dir / f"{split}.jsonl")
    for split in SPLITS:
        note = f"{split}: left out by rule: {counts[f'{split} ignored']} marked {IGNORED}"
        if split == "train":
            note += f", {counts['train unk']} with {UNK}"
        note += f", {counts[f'{split} no words']} without words"
        if split != "train":
            note += f"; {counts[f'{split} unk words']} {UNK} words dropped from the references"
        report.notes.append(note)
    return report


def add_arguments(parser) -> None:
    """TED-LIUM needs no options beyond --source and --out."""


def run_prepare(args) -> tuple[Path, PrepareReport]:
    root = download_tedlium(args.source, args.out)
    return root, prepare_tedlium(root, Path(args.out) / "manifests")
