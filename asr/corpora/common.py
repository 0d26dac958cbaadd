"""Helpers shared by corpus recipes: fetching, safe extraction, audio checks, speaker splits."""

from __future__ import annotations

import random
import shutil
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import soundfile as sf

from asr.atomic import atomic_path
from asr.errors import AsrError, first_line
from asr.manifest import Utterance


@dataclass
class PrepareReport:
    """What preparation kept and skipped, per split."""

    kept: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # split -> reasons
    notes: list[str] = field(default_factory=list)  # decisions worth showing (character set, items left out by rule)

    def skip(self, split: str, reason: str) -> None:
        self.skipped.setdefault(split, []).append(reason)

    def lines(self) -> list[str]:
        out = []
        for split, n in self.kept.items():
            skipped = self.skipped.get(split, [])
            out.append(f"{split}: {n} utterances kept, {len(skipped)} skipped")
            out += [f"  skipped: {r}" for r in skipped[:10]]
            if len(skipped) > 10:
                out.append(f"  ... and {len(skipped) - 10} more")
        return out + self.notes


def download(url: str, dest: Path) -> Path:
    """Fetch `url` to `dest` (atomically); a file already there is reused."""
    if dest.is_file():
        return dest
    try:
        with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
    except OSError as e:
        raise AsrError(
            f"cannot download {url} ({e}); pass a local copy with --source or the environment variable"
        ) from None
    return dest


def extract_tar(archive: Path, dest: Path) -> None:
    """Extract `archive` into `dest`, refusing members that would land outside it."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise AsrError(f"{archive}: cannot extract archive ({e or type(e).__name__})") from None


def audio_duration(path: Path) -> float:
    """Duration in seconds; raises ValueError with a reason if the file is not usable audio."""
    if not path.is_file():
        raise ValueError("audio file missing")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise ValueError(f"unreadable audio ({first_line(e)})") from None
    if info.frames <= 0:
        raise ValueError("audio has no samples")
    return info.frames / info.samplerate


def split_speakers(utts: Sequence[Utterance], fraction: float, seed: int) -> tuple[list[Utterance], list[Utterance]]:
    """Hold out about `fraction` of the speakers (at least one): returns (kept, held_out)."""
    speakers = sorted({u.speaker for u in utts})
    if not speakers:
        raise AsrError("no usable utterances to split into train and dev")
    n_held = max(1, round(fraction * len(speakers)))
    held = set(random.Random(seed).sample(speakers, n_held))
    return [u for u in utts if u.speaker not in held], [u for u in utts if u.speaker in held]
