"""Audio files -> transcripts (and word timings) with a trained model bundle."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from asr.align import WordSpan, align_words
from asr.audio import load_audio
from asr.checkpoint import Bundle
from asr.decoding import Hypothesis
from asr.errors import AsrError
from asr.data import features_of
from asr.model import frame_log_probs

MODEL_ENV_VAR = "ASR_MODEL"
# Where recipes/an4/run.sh leaves its models, relative to the repository root: the one
# tuned with an LM (beam search) first, else the acoustic model alone (greedy).
AN4_MODEL = Path("data") / "an4" / "exp" / "model.pt"
AN4_MODELS = (AN4_MODEL.with_name("model_lm.pt"), AN4_MODEL)
FORMATS = ("text", "json", "srt", "vtt")
MAX_CUE_WORDS = 8
MAX_CUE_SECONDS = 5.0


@dataclass
class Transcript:
    file: str
    duration: float  # seconds
    hypothesis: Hypothesis
    words: list[WordSpan] = field(default_factory=list)  # filled when timestamps are asked for


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


def frame_seconds(bundle: Bundle) -> float:
    """Duration of one model output frame in seconds."""
    return bundle.config.features.hop_ms / 1000 * bundle.config.model.subsampling_factor


@torch.no_grad()
def transcribe_file(
    bundle: Bundle, decoder, path: str | Path, device: torch.device, timestamps: bool = False
) -> Transcript:
    """Transcribe one file (any sample rate, channel count and format soundfile reads)."""
    feat_cfg = bundle.config.features
    wave = load_audio(path, feat_cfg.sample_rate)
    feats = bundle.stats.normalize(features_of(wave, str(path), feat_cfg))  # (T, F)
    model = bundle.model.to(device).eval()
    if feats.shape[0] < model.min_frames():
        raise AsrError(f"{path}: audio too short to transcribe ({len(wave) / feat_cfg.sample_rate:.3f}s)")
    lens = torch.tensor([feats.shape[0]], device=device)
    log_probs, out_lens = model(feats.unsqueeze(0).to(device), lens)  # (1, T, F) -> (1, T', V)
    log_probs, out_lens = log_probs.cpu(), out_lens.cpu()
    hyp = decoder(log_probs, out_lens)[0]
    words = align_words(frame_log_probs(log_probs)[0], hyp.text, bundle.tokenizer, frame_seconds(bundle)) if timestamps else []
    return Transcript(str(path), len(wave) / feat_cfg.sample_rate, hyp, words)


def format_transcript(t: Transcript, fmt: str, with_name: bool = False) -> str:
    """One transcript as text, a JSON line, or SRT / WebVTT subtitles (cues of a few words)."""
    if fmt == "json":
        record = {"file": t.file, "text": t.hypothesis.text, "duration": round(t.duration, 3),
                  "score": round(t.hypothesis.score, 4)}
        if t.words:
            record["words"] = [asdict(w) for w in t.words]
        return json.dumps(record) + "\n"
    if fmt == "text":
        lines = [f"{t.file}\t{t.hypothesis.text}" if with_name else t.hypothesis.text]
        lines += [f"{w.start:8.3f} {w.end:8.3f}  {w.word}" for w in t.words]
        return "\n".join(lines) + "\n"
    cues = subtitle_cues(t)
    if fmt == "srt":
        return "".join(f"{i}\n{_clock(a, ',')} --> {_clock(b, ',')}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "".join(f"{_clock(a, '.')} --> {_clock(b, '.')}\n{text}\n\n" for a, b, text in cues)
    raise ValueError(f"unknown format {fmt!r}")


def subtitle_cues(t: Transcript) -> list[tuple[float, float, str]]:
    """Group words into cues of at most MAX_CUE_WORDS words and MAX_CUE_SECONDS seconds."""
    if not t.words:
        return [(0.0, t.duration, t.hypothesis.text)] if t.hypothesis.text else []
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
