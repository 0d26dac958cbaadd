"""Condition sets: copies of a manifest's audio under fixed, named recording conditions.

A model trained on clean, close-talking speech is scored on such copies of its dev and test
sets (`asr degrade`, then `asr evaluate --condition NAME=MANIFEST`), so that its loss of
accuracy in noise, rooms and on phone lines is measured, not guessed. Each copy is
deterministic: an utterance's degradation is drawn from a generator seeded by the set's
seed and the utterance id, whatever the order or the machine.

Conditions (CONDITIONS): white noise at 20, 10 and 5 dB SNR; babble of five other
utterances of the same set at 10 dB; reverberation in a simulated room (RT60 drawn in
0.3-0.9 s); the 8 kHz band of a phone line, alone or with GSM 06.10 coding.
"""

from __future__ import annotations

import dataclasses
import functools
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf

from asr.atomic import atomic_path
from asr.augment import coloured_noise, fit_length, mix_at_snr, power, reverberate, simulate_rir, telephone
from asr.config import FeatureConfig
from asr.data import load_utterance
from asr.errors import AsrError, first_line
from asr.manifest import Utterance, file_stem, write_manifest


@dataclasses.dataclass(frozen=True)
class Condition:
    description: str
    noise: str | None = None  # "white" or "babble"
    snr_db: float = 0.0
    rt60: tuple[float, float] | None = None
    codec: str | None = None  # telephone band with this codec ("none", "mulaw", "gsm")


CONDITIONS = {
    "white20": Condition("white noise, 20 dB SNR", noise="white", snr_db=20.0),
    "white10": Condition("white noise, 10 dB SNR", noise="white", snr_db=10.0),
    "white5": Condition("white noise, 5 dB SNR", noise="white", snr_db=5.0),
    "babble10": Condition("babble of 5 other utterances, 10 dB SNR", noise="babble", snr_db=10.0),
    "reverb": Condition("simulated room, RT60 0.3-0.9 s", rt60=(0.3, 0.9)),
    "band8k": Condition("8 kHz band (telephone, no codec)", codec="none"),
    "gsm": Condition("8 kHz band, GSM 06.10 coded", codec="gsm"),
}
BABBLE_TALKERS = 5


def condition(name: str) -> Condition:
    if name not in CONDITIONS:
        raise AsrError(f"unknown condition {name!r} (known: {', '.join(CONDITIONS)})")
    return CONDITIONS[name]


def utterance_rng(seed: int, name: str, uid: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), zlib.crc32(uid.encode())])


def degrade(wave: np.ndarray, cond: Condition, rng: np.random.Generator, sample_rate: int,
            babble: Callable[[int, np.random.Generator], np.ndarray] | None = None) -> np.ndarray:
    """`wave` under `cond` (the room first, then noise, then the phone line)."""
    out = np.asarray(wave, dtype=np.float32)
    if cond.rt60 is not None:
        out = reverberate(out, simulate_rir(sample_rate, float(rng.uniform(*cond.rt60)), rng))
    if cond.noise == "white":
        out = mix_at_snr(out, coloured_noise(len(out), "white", rng), cond.snr_db)
    elif cond.noise == "babble":
        out = mix_at_snr(out, babble(len(out), rng), cond.snr_db)
    if cond.codec is not None:
        out = telephone(out, sample_rate, cond.codec)
    return out


def write_condition_set(
    utts: Sequence[Utterance], name: str, manifest: str | Path, audio_dir: str | Path | None = None,
    seed: int = 0, sample_rate: int = 16000, jobs: int = 1,
) -> tuple[int, list[str]]:
    """Degrade every utterance of `utts` under condition `name`; write the audio (24-bit FLAC,
    scaled down only where it would clip) into `audio_dir` (default: MANIFEST-STEM_audio
    beside the manifest) and the manifest of the copies. Returns (written, skipped reasons).
    `jobs` processes share the utterances; each utterance's copy is the same for any number."""
    condition(name)  # an unknown name fails here, before any process starts
    manifest = Path(manifest)
    audio_dir = Path(audio_dir) if audio_dir else manifest.with_name(manifest.stem + "_audio")
    task = _SetTask(list(utts), name, audio_dir, seed, sample_rate)
    if jobs > 1 and len(task.pool) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(min(jobs, len(task.pool)), mp_context=multiprocessing.get_context("fork"),
                                     initializer=_start_worker, initargs=(task,)) as workers:
                results = list(workers.map(_degrade_in_worker, range(len(task.pool)), chunksize=4))
        except BrokenProcessPool:
            raise AsrError(f"{manifest}: a process degrading the audio died (out of memory?); "
                           "try fewer --jobs") from None
    else:
        results = [task.degrade(i) for i in range(len(task.pool))]
    out = [r for r in results if isinstance(r, Utterance)]
    skipped = [r for r in results if isinstance(r, str)]
    if not out:
        raise AsrError(f"no utterance could be degraded ({len(skipped)} skipped)")
    write_manifest(out, manifest)
    return len(out), skipped


@dataclasses.dataclass
class _SetTask:
    """One condition set's work: `degrade(i)` writes utterance i's copy and returns its manifest
    entry, or the reason it was skipped."""

    pool: list[Utterance]
    name: str
    audio_dir: Path
    seed: int
    sample_rate: int

    def babble(self, n: int, rng: np.random.Generator, exclude: Utterance) -> np.ndarray:
        """BABBLE_TALKERS utterances of the set other than `exclude`, drawn by `rng`, each at unit
        power, summed; a talker whose audio cannot be read is left out (it is skipped itself)."""
        total = np.zeros(n, dtype=np.float32)
        others = [u for u in self.pool if u.id != exclude.id]
        talkers = 0
        for i in rng.choice(len(others), size=min(BABBLE_TALKERS, len(others)), replace=False):
            try:
                talker = _load(others[int(i)], self.sample_rate)
            except AsrError:
                continue
            total += fit_length(talker, n, rng) / np.sqrt(max(power(talker), 1e-12))
            talkers += 1
        if not talkers:
            raise AsrError(f"{exclude.where()}: no other utterance of the set could be read for its babble")
        return total

    def degrade(self, i: int) -> Utterance | str:
        utt = self.pool[i]
        try:
            wave = _load(utt, self.sample_rate)
            rng = utterance_rng(self.seed, self.name, utt.id)
            degraded = degrade(wave, condition(self.name), rng, self.sample_rate,
                               functools.partial(self.babble, exclude=utt))
        except AsrError as e:
            return str(e)
        peak = float(np.abs(degraded).max())
        if peak > 0.999:
            degraded = degraded * (0.999 / peak)
        path = self.audio_dir / f"{file_stem(utt.id)}.flac"
        try:
            with atomic_path(path) as tmp:
                sf.write(str(tmp), degraded, self.sample_rate, format="FLAC", subtype="PCM_24")
        except (OSError, RuntimeError) as e:
            raise AsrError(f"{path}: cannot write audio ({first_line(e)})") from None
        return dataclasses.replace(utt, audio=str(path.resolve()), duration=round(len(degraded) / self.sample_rate, 4),
                                   offset=None)


_TASK: _SetTask | None = None  # a worker process's


def _start_worker(task: _SetTask) -> None:
    import signal

    import torch

    global _TASK
    _TASK = task
    torch.set_num_threads(1)  # the processes share the cores
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which stops the workers


def _degrade_in_worker(i: int) -> Utterance | str:
    return _TASK.degrade(i)


def _load(utt: Utterance, sample_rate: int) -> np.ndarray:
    return load_utterance(utt, FeatureConfig(sample_rate=sample_rate)).numpy()
