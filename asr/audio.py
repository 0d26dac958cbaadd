"""Reading audio: any format soundfile reads, mixed to mono, resampled to 16 kHz."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.errors import AudioError, first_line

SAMPLE_RATE = 16000
MIN_RATE, MAX_RATE = 1000, 768000  # Hz: outside this a header is corrupt, not a recording
BLOCK_SAMPLES = 1 << 20  # read in blocks: memory follows the samples really there, not the header's claim


def load_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    offset: float = 0.0,
    duration: float | None = None,
) -> torch.Tensor:
    """Read `path` (optionally a segment of it) as a mono float32 waveform at `sample_rate`.

    Raises AudioError, naming the file, when it is missing, not a regular file, empty, not
    audio, corrupt, at an implausible sample rate or holds no samples.
    """
    path = Path(path)
    check_audio_path(path)
    try:
        with sf.SoundFile(str(path)) as f:
            native_rate = f.samplerate
            if not MIN_RATE <= native_rate <= MAX_RATE:
                raise AudioError(f"{path}: implausible sample rate {native_rate} Hz (a corrupt header?)")
            start = int(round(offset * native_rate))
            frames = None if duration is None else int(round(duration * native_rate))
            if start:
                f.seek(start)
            data = _read_blocks(f, frames)  # (N, C)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError, MemoryError, TypeError) as e:
        raise AudioError(f"{path}: cannot read audio ({first_line(e)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio has no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    wave = torch.from_numpy(data.mean(axis=1, dtype=np.float32))  # (N, C) -> (N,)
    if native_rate != sample_rate:
        wave = AF.resample(wave, native_rate, sample_rate)
    return wave


def check_audio_path(path: Path) -> None:
    """AudioError unless `path` is a non-empty regular file (not a folder, device or FIFO)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioError(f"{path}: no such audio file") from None
    except OSError as e:
        raise AudioError(f"{path}: cannot open ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(f"{path}: not a regular file (a device, FIFO or socket), not an audio file")
    if st.st_size == 0:
        raise AudioError(f"{path}: file is empty")


def _read_blocks(f: sf.SoundFile, frames: int | None) -> np.ndarray:
    """Up to `frames` frames (None: to the end) as float32 (N, C), read in bounded blocks."""
    block = max(1, BLOCK_SAMPLES // max(f.channels, 1))
    parts, remaining = [], frames
    while remaining is None or remaining > 0:
        n = block if remaining is None else min(block, remaining)
        part = f.read(frames=n, dtype="float32", always_2d=True)
        if part.shape[0]:
            parts.append(part)
        if remaining is not None:
            remaining -= part.shape[0]
        if part.shape[0] < n:
            break
    if not parts:
        return np.zeros((0, max(f.channels, 1)), dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
