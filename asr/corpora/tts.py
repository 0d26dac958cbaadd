"""Synthetic voices reading a manifest's transcripts: speech from outside the training speakers.

    asr prepare tts --manifest data/an4/manifests/test.jsonl --out data/an4_tts [--voices ...]

Each transcript is spoken by every voice of three text-to-speech engines from Debian
(`apt-get install flite espeak-ng festival festvox-kallpc16k`): flite's five CMU voices
(slt, a US woman; rms and kal16, US men; awb, a Scottish man; kal, an 8 kHz diphone voice),
espeak-ng's formant voices with variants (US and British, male and female) and festival's
kal diphone voice. The audio is resampled to 16 kHz and written as FLAC; the manifest
OUT/manifests/<name>.jsonl (name: the input manifest's) has one record per transcript and
voice, the voice as the speaker. A voice whose engine is missing, or a line that fails to
synthesize, is skipped and counted.

None of these voices is in AN4's training data, and none is a human voice: they test how a
model trained on 74 AN4 speakers copes with voices unlike them, not how it copes with people.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import load_audio
from asr.corpora.common import PrepareReport
from asr.errors import AsrError
from asr.manifest import file_stem, read_manifest, write_manifest

ENV_VAR = "ASR_TTS_MANIFEST"
DESCRIPTION = "synthetic voices (flite, espeak-ng, festival) reading a manifest's transcripts"

# voice name -> command; {text} and {out} are filled in (festival reads the text from stdin).
VOICES = {
    "flite_slt": ["flite", "-voice", "slt", "-t", "{text}", "-o", "{out}"],
    "flite_rms": ["flite", "-voice", "rms", "-t", "{text}", "-o", "{out}"],
    "flite_awb": ["flite", "-voice", "awb", "-t", "{text}", "-o", "{out}"],
    "flite_kal16": ["flite", "-voice", "kal16", "-t", "{text}", "-o", "{out}"],
    "espeak_us_f3": ["espeak-ng", "-v", "en-us+f3", "-s", "150", "-w", "{out}", "--", "{text}"],
    "espeak_us_m3": ["espeak-ng", "-v", "en-us+m3", "-s", "160", "-w", "{out}", "--", "{text}"],
    "espeak_gb_f2": ["espeak-ng", "-v", "en-gb+f2", "-s", "150", "-w", "{out}", "--", "{text}"],
    "festival_kal": ["text2wave", "-o", "{out}"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="manifest whose transcripts the voices read")
    parser.add_argument("--voices", nargs="+", choices=sorted(VOICES), default=sorted(VOICES),
                        help="voices to use (default: all)")


def synthesize(voice: str, text: str, out: Path) -> None:
    cmd = [part.format(text=text.lower(), out=out) for part in VOICES[voice]]
    stdin = text.lower() if voice.startswith("festival") else None
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    if r.returncode or not out.is_file() or out.stat().st_size < 100:
        raise RuntimeError((r.stderr or "no audio").strip().splitlines()[-1] if (r.stderr or "").strip() else "no audio")


def prepare_tts(manifest: str | Path, out_dir: str | Path, voices=tuple(VOICES)) -> tuple[Path, PrepareReport]:
    utts = read_manifest(manifest)
    out_dir = Path(out_dir)
    name = Path(manifest).stem
    report = PrepareReport()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for voice in voices:
            engine = VOICES[voice][0]
            if shutil.which(engine) is None:
                report.skip(name, f"{voice}: {engine} is not installed (Debian: flite, espeak-ng, festival)")
                continue
            for u in utts:
                raw = Path(tmp) / f"{voice}.wav"
                raw.unlink(missing_ok=True)  # never the previous line's audio
                try:
                    synthesize(voice, u.text, raw)
                    wave = load_audio(raw, 16000).numpy()
                except (RuntimeError, subprocess.TimeoutExpired, AsrError) as e:
                    report.skip(name, f"{u.id} ({voice}): {e}")
                    continue
                audio = out_dir / "audio" / voice / f"{file_stem(u.id)}.flac"
                audio.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(audio), np.clip(wave, -1, 1), 16000, format="FLAC", subtype="PCM_16")
                records.append(dataclasses.replace(u, id=f"{u.id}_{voice}", audio=str(audio.resolve()),
                                                   duration=round(len(wave) / 16000, 4), speaker=voice, offset=None))
    if not records:
        raise AsrError(f"no voice could speak {manifest} (install flite, espeak-ng or festival)")
    report.kept[name] = write_manifest(records, out_dir / "manifests" / f"{name}.jsonl")
    report.notes.append(f"voices: {', '.join(sorted({r.speaker for r in records}))}")
    return out_dir, report


def run_prepare(args: argparse.Namespace):
    return prepare_tts(args.manifest, args.out, args.voices)
