"""Transcripts as text, JSON lines, SRT or WebVTT subtitles; where the default model is.

Transcription itself is asr.recognizer's (Recognizer.transcribe)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from asr.errors import AsrError
from asr.recognizer import Transcript

MODEL_ENV_VAR = "ASR_MODEL"
# Where recipes/an4/run.sh leaves its models, relative to the repository root: the one
# tuned with an LM (beam search) first, else the acoustic model alone (greedy).
AN4_MODEL = Path("data") / "an4" / "exp" / "model.pt"
AN4_MODELS = (AN4_MODEL.with_name("model_lm.pt"), AN4_MODEL)
FORMATS = ("text", "json", "srt", "vtt")
MAX_CUE_WORDS = 8
MAX_CUE_SECONDS = 5.0


def default_model_path() -> Path:
    """$ASR_MODEL, else the AN4 recipe's model (in the current folder or the source checkout)."""
    if os.environ.get(MODEL_ENV_VAR):
        return Path(os.environ[MODEL_ENV_VAR])
    checkout = Path(__file__).resolve().parent.parent
    for base in (Path.cwd(), checkout):
        for model in AN4_MODELS:
            if (base / model).is_file():
                return base / model
    raise AsrError(
        "no model given and none found: train one with `bash recipes/an4/run.sh` "
        f"(it writes {AN4_MODEL}), or pass --model PATH or set {MODEL_ENV_VAR}"
    )


def format_transcript(t: Transcript, fmt: str, with_name: bool = False) -> str:
    """One transcript as text, a JSON line (with its segments, and words when timed), or SRT /
    WebVTT subtitles (cues of a few words, or one per segment without word times)."""
    if fmt == "json":
        record = t.to_dict()
        if not t.words:
            del record["words"]
        return json.dumps(record, ensure_ascii=False) + "\n"
    if fmt == "text":
        lines = [f"{t.source}\t{t.text}" if with_name else t.text]
        lines += [f"{w.start:8.3f} {w.end:8.3f}  {w.word}" for w in t.words]
        return "\n".join(lines) + "\n"
    cues = subtitle_cues(t)
    if fmt == "srt":
        return "".join(f"{i}\n{_clock(a, ',')} --> {_clock(b, ',')}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "".join(f"{_clock(a, '.')} --> {_clock(b, '.')}\n{text}\n\n" for a, b, text in cues)
    raise ValueError(f"unknown format {fmt!r}")


def subtitle_cues(t: Transcript) -> list[tuple[float, float, str]]:
    """Group words into cues of at most MAX_CUE_WORDS words and MAX_CUE_SECONDS seconds (without
    word times: one cue per segment)."""
    if not t.words:
        return [(seg.start, seg.end, seg.text) for seg in t.segments if seg.text]
    cues, group = [], []
    for w in t.words:
        if group and (len(group) == MAX_CUE_WORDS or w.end - group[0].start > MAX_CUE_SECONDS):
            cues.append(group)
            group = []
        group.append(w)
    cues.append(group)
    return [(g[0].start, g[-1].end, " ".join(w.word for w in g)) for g in cues]


def _clock(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"
