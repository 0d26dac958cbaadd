"""Batch transcription jobs: many files in, one JSON line out per file, resumable.

Inputs (`asr transcribe DIR | GLOB | manifest.jsonl | FILE ...`):
- a folder: every file under it (recursively) whose extension is an audio one
  (AUDIO_SUFFIXES); other files are counted and named in the summary, not read;
- a glob pattern (quote it: `asr transcribe 'calls/*.wav'`);
- a manifest (.jsonl): the audio of each record (its segment, if it has an offset);
- a file.

Each file's line is appended to the output as soon as it is done (and flushed to disk), so an
interrupted job loses nothing finished; `--resume` skips the files the output already has a
transcript for (a file that failed is tried again; the last line of a file is its result).
A file that cannot be read gets a line with its "error" and is counted in the summary; it
never stops the job. Files up to the recognizer's max_seconds are decoded in batches of
similar length; longer ones one at a time, segmented.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import soundfile as sf
from tqdm import tqdm

from asr.augment import AUDIO_SUFFIXES
from asr.errors import AsrError
from asr.manifest import read_manifest

BATCH_SECONDS = 120.0  # audio per batch of short files


@dataclass(frozen=True)
class Item:
    key: str  # the file (or manifest id) its output line is written under
    path: str
    offset: float | None = None
    duration: float | None = None


@dataclass
class BatchSummary:
    done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, error)
    skipped_done: int = 0  # already in the output (--resume)
    not_audio: list[str] = field(default_factory=list)  # files of a folder without an audio extension

    def lines(self) -> list[str]:
        out = [f"{self.done} transcribed, {len(self.failed)} failed"
               + (f", {self.skipped_done} already done" if self.skipped_done else "")]
        out += [f"failed: {key}: {error}" for key, error in self.failed[:20]]
        if len(self.failed) > 20:
            out.append(f"... and {len(self.failed) - 20} more failures (see the output lines)")
        if self.not_audio:
            out.append(f"{len(self.not_audio)} file(s) without an audio extension were not read: "
                       + ", ".join(self.not_audio[:5]) + (" ..." if len(self.not_audio) > 5 else ""))
        return out


def collect(specs: Sequence[str], summary: BatchSummary) -> list[Item]:
    """The files the inputs name, in order, each once."""
    items, seen = [], set()
    for spec in specs:
        for item in _expand(spec, summary):
            if item.key not in seen:
                seen.add(item.key)
                items.append(item)
    return items


def _expand(spec: str, summary: BatchSummary) -> Iterator[Item]:
    path = Path(spec)
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            if p.suffix.lower() in AUDIO_SUFFIXES:
                yield Item(str(p), str(p))
            else:
                summary.not_audio.append(str(p))
    elif path.suffix == ".jsonl" and path.is_file():
        for u in read_manifest(path):
            yield Item(u.id, u.audio, u.offset, u.duration if u.offset is not None else None)
    elif glob.has_magic(spec):
        matches = sorted(glob.glob(spec, recursive=True))
        if not matches:
            raise AsrError(f"{spec}: no file matches this pattern")
        for m in matches:
            if Path(m).is_file():
                yield Item(m, m)
    else:
        yield Item(spec, spec)  # a missing file is reported in its own line


def finished(output: Path) -> set[str]:
    """Keys whose last line in `output` is a transcript (not an error)."""
    status: dict[str, bool] = {}
    if not output.is_file():
        return set()
    with open(output, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if isinstance(rec, dict) and isinstance(rec.get("file"), str):
                status[rec["file"]] = "error" not in rec
    return {key for key, ok in status.items() if ok}


def end_with_a_newline(path: Path) -> None:
    """Cut a last line that a crash left half-written, so that new lines start clean."""
    if not path.is_file() or not path.stat().st_size:
        return
    with open(path, "rb+") as f:
        data = f.read()
        if not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def run(recognizer, items: Sequence[Item], output: Path, resume: bool = False, timestamps: bool = False,
        progress: bool = True, summary: BatchSummary | None = None) -> BatchSummary:
    """Transcribe `items`, appending one JSON line per file to `output`."""
    summary = summary or BatchSummary()
    output.parent.mkdir(parents=True, exist_ok=True)
    if not resume and output.exists() and output.stat().st_size:
        raise AsrError(f"{output}: exists; pass --resume to continue that job, or choose another output")
    done = finished(output) if resume else set()
    if resume:
        end_with_a_newline(output)
    todo = [it for it in items if it.key not in done]
    summary.skipped_done = len(items) - len(todo)
    with open(output, "a", encoding="utf-8") as out, tqdm(total=len(todo), unit="file", disable=not progress or None,
                                                           desc="transcribe") as bar:
        def write(record: dict) -> None:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
            bar.update(1)

        for batch in _batches(todo, recognizer.max_seconds):
            try:
                transcripts = recognizer.transcribe_batch([audio_of(it, recognizer) for it in batch],
                                                          timestamps=timestamps)
            except AsrError:  # one bad file in the batch: do them one by one to name it
                transcripts = None
            for k, it in enumerate(batch):
                try:
                    t = transcripts[k] if transcripts else recognizer.transcribe(audio_of(it, recognizer),
                                                                                 timestamps=timestamps)
                except AsrError as e:
                    summary.failed.append((it.key, str(e)))
                    write({"file": it.key, "error": str(e)})
                    continue
                record = t.to_dict()
                record["file"] = it.key
                if not timestamps:
                    del record["words"]
                write(record)
                summary.done += 1
    return summary


def audio_of(item: Item, recognizer):
    """What to hand the recognizer: the path, or the segment of a manifest record."""
    if item.offset is None:
        return item.path
    from asr.audio import load_audio

    return load_audio(item.path, recognizer.sample_rate, item.offset, item.duration).numpy()


def _batches(items: Sequence[Item], max_seconds: float) -> Iterator[list[Item]]:
    """Short files in groups of similar length (BATCH_SECONDS of audio each); a long file,
    or one whose length cannot be read, alone."""
    sized, alone = [], []
    for it in items:
        seconds = it.duration if it.offset is not None else _seconds(it.path)
        if seconds is None or seconds > max_seconds:
            alone.append(it)
        else:
            sized.append((seconds, it))
    sized.sort(key=lambda x: x[0])
    batch, total = [], 0.0
    for seconds, it in sized:
        if batch and total + seconds > BATCH_SECONDS:
            yield batch
            batch, total = [], 0.0
        batch.append(it)
        total += seconds
    if batch:
        yield batch
    for it in alone:
        yield [it]


def _seconds(path: str) -> float | None:
    try:
        info = sf.info(path)
        return info.frames / info.samplerate if info.samplerate else None
    except Exception:  # unreadable: transcribed alone, where its error gets its own line
        return None
