"""NIST sclite `trn` transcripts: one utterance per line, `TEXT (speaker-uttid)`.

The id in parentheses is what `sclite -i spu_id` expects: the speaker is the part before
the first '-', so a '-' in a speaker name is written as '_' (sclite would otherwise cut
the name there). Lines starting with ';;' are comments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from asr.errors import AsrError

_LINE = re.compile(r"^(?P<text>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")


class TrnEntry(NamedTuple):
    id: str  # the utterance id (after the speaker)
    speaker: str
    text: str


def trn_id(speaker: str, uid: str) -> str:
    """The `speaker-uttid` written between the parentheses."""
    speaker = speaker.replace("-", "_") or "unknown"
    for part, what in ((speaker, "speaker"), (uid, "utterance id")):
        if not part or re.search(r"[\s()]", part):
            raise AsrError(f"{what} {part!r} cannot be written to a trn file (empty, spaces or parentheses)")
    return f"{speaker}-{uid}"


def format_trn(entries: Iterable[TrnEntry]) -> str:
    lines = []
    for e in entries:
        if "(" in e.text or ")" in e.text or "\n" in e.text:
            raise AsrError(f"{e.id}: text with parentheses or line breaks cannot be written to a trn file")
        lines.append(f"{e.text} ({trn_id(e.speaker, e.id)})\n")
    return "".join(lines)


def split_trn_id(full_id: str) -> tuple[str, str]:
    """`speaker-uttid` -> (speaker, uttid), split as sclite's spu_id does: at the first '-',
    else at the first '_'; an id with neither is its own speaker."""
    for sep in "-_":
        if sep in full_id:
            speaker, uid = full_id.split(sep, 1)
            return speaker, uid
    return full_id, full_id


def read_trn(path: str | Path) -> list[TrnEntry]:
    """Read a trn file; one-line errors name the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise AsrError(f"{path}: no such trn file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AsrError(f"{path}: cannot read trn file ({e})") from None
    entries, seen = [], set()
    for n, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith(";;"):
            continue
        m = _LINE.match(line)
        if not m:
            raise AsrError(f"{path}:{n}: expected 'TEXT (speaker-utterance)'")
        speaker, uid = split_trn_id(m["id"])
        if uid in seen:
            raise AsrError(f"{path}:{n}: duplicate utterance id '{uid}'")
        seen.add(uid)
        entries.append(TrnEntry(uid, speaker, m["text"]))
    if not entries:
        raise AsrError(f"{path}: trn file holds no utterances")
    return entries
