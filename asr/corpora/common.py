"""Helpers shared by corpus recipes: fetching, extraction once (asr.corpora.archive), audio checks,
speaker splits."""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from asr.corpora.archive import extract_tar
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


def download(url: str, dest: str | Path, *, md5: str | None = None, sha256: str | None = None,
             progress: bool = True) -> Path:
    """Fetch `url` to `dest`, resuming an interrupted download, and check its digest.

    A file already at `dest` is reused without a request (and checked when a digest is
    given). Bytes arrive in `dest.part`; a `.part` left by an interrupted run is resumed
    with an HTTP Range request. Only a complete file whose digest matches is renamed to
    `dest`; a mismatch deletes the partial file and raises AsrError with both digests.
    """
    dest = Path(dest)
    expected = ("md5", md5.lower()) if md5 else ("sha256", sha256.lower()) if sha256 else None
    if dest.is_file():
        if expected and file_digest(dest, expected[0]) != expected[1]:
            raise AsrError(f"{dest}: {expected[0]} is {file_digest(dest, expected[0])}, expected {expected[1]} "
                           f"(from {url}); delete the file to download it again")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _fetch_to(url, part, progress)
    except (OSError, http.client.HTTPException) as e:
        raise AsrError(
            f"cannot download {url} ({first_line(e)}); run again to resume, or pass a local copy "
            "with --source or the environment variable"
        ) from None
    if expected:
        actual = file_digest(part, expected[0])
        if actual != expected[1]:
            part.unlink()
            raise AsrError(f"{url}: {expected[0]} of the download is {actual}, expected {expected[1]}")
    os.replace(part, dest)
    return dest


def _fetch_to(url: str, part: Path, progress: bool) -> None:
    """Write the bytes of `url` into `part`, appending to what an earlier attempt left there."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # no bytes after `have`: complete, if the sizes agree
            size = re.fullmatch(r"bytes \*/(\d+)", e.headers.get("Content-Range", ""))
            if size is None or int(size.group(1)) == have:
                return
            part.unlink()
            raise OSError(f"the partial download was longer than the file ({have} > {size.group(1)} bytes); "
                          "it was removed") from None
        raise
    with response:
        start = 0  # 200: the whole file (the server ignored the Range request, or none was sent)
        if response.status == 206:
            m = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                part.unlink()
                raise OSError(f"the server resumed at an unexpected place ({response.headers.get('Content-Range')}); "
                              "the partial download was removed")
            start = have
        length = response.headers.get("Content-Length", "")
        total = start + int(length) if length.isdigit() else None
        with open(part, "r+b" if start else "wb") as f, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"),
            disable=not progress or None, leave=False,
        ) as bar:
            f.seek(start)
            f.truncate()
            while chunk := response.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk))
        if total is not None and part.stat().st_size != total:
            raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes")


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest (md5, sha256, ...) of a file, read in blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def extract_once(archive: Path, work_dir: Path, find_root: Callable[[Path], Path | None], holds: str) -> Path:
    """The corpus root in work_dir/corpus, extracting `archive` there first unless that is done.

    Extraction goes to work_dir/corpus.partial, renamed only once it holds the corpus;
    `holds` names what it must hold in the error otherwise ("ARCHIVE: does not hold ...").
    """
    extracted = work_dir / "corpus"
    root = find_root(extracted)
    if root is None:
        tmp = work_dir / "corpus.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        extract_tar(archive, tmp)
        if find_root(tmp) is None:
            raise AsrError(f"{archive}: does not hold {holds}")
        tmp.rename(extracted)
        root = find_root(extracted)
    return root


def fetch_corpus(
    source: str | Path | None,
    work_dir: str | Path,
    *,
    env_var: str,
    find_root: Callable[[Path], Path | None],
    name: str,
    holds: str,
    url: str,
    archive_name: str,
    md5: str | None = None,
    sha256: str | None = None,
) -> Path:
    """The root folder of a downloadable corpus.

    `source` (or $env_var) is an extracted folder, used as it is, or a local archive; with
    neither, the archive at `url` is downloaded (and checked) into work_dir/downloads.
    Archives are extracted once into work_dir/corpus.
    """
    work_dir = Path(work_dir)
    source = source or os.environ.get(env_var) or None
    if source is not None and (root := find_root(Path(source))) is not None:
        return root
    if (root := find_root(work_dir / "corpus")) is not None:
        return root
    if source is None:
        archive = download(url, work_dir / "downloads" / archive_name, md5=md5, sha256=sha256)
    else:
        archive = Path(source)
        if not archive.is_file():
            raise AsrError(f"{archive}: no such {name} archive or folder")
    return extract_once(archive, work_dir, find_root, holds)


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
