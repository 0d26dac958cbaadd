"""Utterance manifests: JSONL, one record per line, validated on read.

Fields: id, audio (path, absolute or relative to the manifest's folder), duration
(seconds), text, speaker, and optionally offset (seconds into the audio file).

Without an offset a record is the whole audio file. With one (0 included) it is the
segment [offset, offset + duration) of a longer file, which is read without cutting it
out (TED-LIUM's talks, for instance).

Ids and speakers must be writable to sclite trn files (no spaces or parentheses), and
durations at most MAX_DURATION seconds: both are checked when the manifest is read, before
any decoding. Each record keeps where it came from (`source`, "manifest:line"), so that an
audio fault found later names the manifest line as well as the file.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from asr.atomic import write_text_atomic
from asr.errors import ManifestError

REQUIRED = {"id": str, "audio": str, "duration": (int, float), "text": str, "speaker": str}
MAX_DURATION = 24 * 3600.0  # seconds; longer is a wrong duration (or a recording to segment first)
_NOT_IN_TRN = re.compile(r"[\s()]")


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: str
    duration: float
    text: str
    speaker: str
    offset: float | None = None  # None: the whole file; a number: a segment starting there
    source: str | None = field(default=None, compare=False, repr=False)  # "manifest:line", for errors

    def where(self) -> str:
        """The audio file, after the manifest line it comes from (if known), for errors."""
        return f"{self.source}: {self.audio}" if self.source else self.audio


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read and validate a manifest; relative audio paths are resolved against its folder."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read manifest ({e})") from None
    utts, seen = [], set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        utt = parse_record(line, f"{path}:{n}", base=path.parent)
        if utt.id in seen:
            raise ManifestError(f"{path}:{n}: duplicate id '{utt.id}'")
        seen.add(utt.id)
        utts.append(utt)
    if not utts:
        raise ManifestError(f"{path}: manifest holds no utterances")
    return utts


def parse_record(line: str, where: str, base: Path | None = None) -> Utterance:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(rec, dict):
        raise ManifestError(f"{where}: expected a JSON object")
    for name, kind in REQUIRED.items():
        if name not in rec:
            raise ManifestError(f"{where}: missing field '{name}'")
        if not isinstance(rec[name], kind) or isinstance(rec[name], bool):
            raise ManifestError(f"{where}: field '{name}' has the wrong type")
    offset = rec.get("offset")
    if offset is not None and (
        not isinstance(offset, (int, float)) or isinstance(offset, bool) or not math.isfinite(offset) or offset < 0
    ):
        raise ManifestError(f"{where}: field 'offset' must be a number >= 0")
    if not math.isfinite(rec["duration"]) or rec["duration"] <= 0:
        raise ManifestError(f"{where}: field 'duration' must be a finite number > 0")
    if rec["duration"] > MAX_DURATION:
        raise ManifestError(f"{where}: field 'duration' is {rec['duration']:g} s, more than {MAX_DURATION / 3600:g} h "
                            "(a wrong duration, or a recording to cut into segments first)")
    if not rec["id"]:
        raise ManifestError(f"{where}: field 'id' is empty")
    for name in ("id", "speaker"):
        if _NOT_IN_TRN.search(rec[name]):
            raise ManifestError(f"{where}: field '{name}' {rec[name]!r} holds spaces or parentheses, "
                                "which sclite trn files cannot hold")
    audio = rec["audio"]
    if base is not None and not os.path.isabs(audio):
        audio = str(base / audio)
    return Utterance(
        id=rec["id"],
        audio=audio,
        duration=float(rec["duration"]),
        text=rec["text"],
        speaker=rec["speaker"],
        offset=None if offset is None else float(offset),
        source=where,
    )


def write_manifest(utts: Iterable[Utterance], path: str | Path) -> int:
    """Write atomically (temporary file, then rename); returns the number of records."""
    lines = []
    for u in utts:
        rec = asdict(u)
        del rec["source"]
        if rec["offset"] is None:
            del rec["offset"]
        lines.append(json.dumps(rec, ensure_ascii=False))
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    return len(lines)


def file_stem(uid: str) -> str:
    """A file name for an utterance id: the id where it is a safe name, else its safe
    characters and a short hash of it (never a path, never hidden)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", uid).lstrip(".") or "_"
    if safe == uid:
        return uid
    import hashlib

    return f"{safe[:80]}-{hashlib.sha1(uid.encode()).hexdigest()[:8]}"
