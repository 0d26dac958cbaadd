"""Reading audio: any format soundfile reads, mixed to mono, resampled to 16 kHz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.errors import AudioError, first_line

SAMPLE_RATE = 16000


def load_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    offset: float = 0.0,
    duration: float | None = None,
) -> torch.Tensor:
    """Read `path` (optionally a segment of it) as a mono float32 waveform at `sample_rate`.

    Raises AudioError, naming the file, when it is missing, empty, not audio, corrupt
    or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty")
    try:
        with sf.SoundFile(str(path)) as f:
            native_rate = f.samplerate
            start = int(round(offset * native_rate))
            frames = -1 if duration is None else int(round(duration * native_rate))
            if start:
                f.seek(start)
            data = f.read(frames=frames, dtype="float32", always_2d=True)  # (N, C)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as e:
        raise AudioError(f"{path}: cannot read audio ({first_line(e)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio has no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    wave = torch.from_numpy(data.mean(axis=1))  # (N, C) -> (N,)
    if native_rate != sample_rate:
        wave = AF.resample(wave, native_rate, sample_rate)
    return wave
