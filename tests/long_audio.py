"""Long recordings made of a manifest's utterances, for the long-audio test and benchmark.

join_utterances writes the utterances of a manifest one after another, each with the silence
it was recorded with (its natural pauses), plus `gap` seconds of near-silence between them
(default none), repeated until the file is at least `minutes` long; it returns the reference
text of the whole and the utterances it holds, in order (for the per-utterance WER of the
very same ones).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import load_audio
from asr.manifest import read_manifest


def join_utterances(manifest: str | Path, out: str | Path, minutes: float = 5.0, gap: float = 0.0,
                    sample_rate: int = 16000, seed: int = 0) -> tuple[str, float, list]:
    """Write the joined recording to `out` (16-bit WAV, written block by block, so that an hour
    takes no more memory than one utterance); returns (reference text, seconds, utterances)."""
    utts = read_manifest(manifest)
    rng = np.random.default_rng(seed)
    texts, used, n = [], [], 0
    with sf.SoundFile(str(out), "w", samplerate=sample_rate, channels=1, subtype="PCM_16") as f:
        while n < minutes * 60 * sample_rate:
            for u in utts:
                wave = load_audio(u.audio, sample_rate).numpy()
                pause = (1e-4 * rng.standard_normal(int(gap * sample_rate))).astype(np.float32)
                f.write(np.concatenate([wave, pause]))
                n += len(wave) + len(pause)
                texts.append(u.text)
                used.append(u)
                if n >= minutes * 60 * sample_rate:
                    break
    return " ".join(texts), n / sample_rate, used
