"""Waveform augmentation for real recording conditions: noise, rooms, telephone lines, gain.

Pure functions on 1-D float32 numpy waveforms, each drawing its randomness from a numpy
Generator it is given (the same generator state gives the same audio), and `WaveAugmenter`,
which applies them with the probabilities and ranges of an AugmentConfig, in the order a
recording meets them: the room (reverberation), sounds in the room (noise), the line
(telephone band and codec), the recording level (gain).

- noise: coloured noise generated here (white, pink 1/f, brown 1/f^2 power spectra),
  babble mixed from other training utterances, or recordings from a folder (e.g. MUSAN),
  added at an SNR drawn in a range (speech and noise power over the whole utterance);
- reverberation: impulse responses of shoebox rooms simulated with pyroomacoustics (image
  source method, RT60 drawn in a range), or measured ones from a folder;
- telephone: band-limited to 8 kHz sampling (nothing above 4 kHz), then with equal odds no
  codec, G.711 mu-law or GSM 06.10 (libsndfile's codec, through soundfile);
- gain: a level change in dB (clipping at full scale, as a real recorder would).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import scipy.fft
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.audio import load_audio
from asr.errors import AsrError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".sph", ".mp3", ".aiff", ".aif")
NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f^k
TELEPHONE_RATE = 8000
CODECS = ("none", "mulaw", "gsm")


def power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """n samples of Gaussian noise with a 1/f^k power spectrum, unit power.

    Coloured noise is shaped in the frequency domain over next_fast_len(n) samples and cut to
    n: an FFT of a length with a large prime factor is slow (52,931 samples: 25 ms here, against
    1.3 ms for 54,000; recipes/an4/RESULTS.md, "A loader process for the augmented epochs")."""
    k = NOISE_COLOURS[colour]
    if not k:
        noise = rng.standard_normal(n)
    else:
        m = scipy.fft.next_fast_len(n, real=True)
        spectrum = scipy.fft.rfft(rng.standard_normal(m))
        f = np.arange(len(spectrum), dtype=np.float64)
        f[0] = f[1] if len(f) > 1 else 1.0  # no infinite DC gain
        noise = scipy.fft.irfft(spectrum / f ** (k / 2), m)[:n]
    return (noise / math.sqrt(max(power(noise), 1e-20))).astype(np.float32)


def fit_length(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`noise` cut or looped to n samples, starting at a random place."""
    if len(noise) == 0:
        raise ValueError("empty noise")
    start = int(rng.integers(len(noise)))
    reps = math.ceil((start + n) / len(noise))
    return np.tile(noise, reps)[start:start + n]


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise scaled so that 10 log10(P_speech / P_noise) = snr_db (noise at least as
    long as speech; its first len(speech) samples are used)."""
    noise = noise[: len(speech)]
    p_speech, p_noise = power(speech), power(noise)
    if p_noise <= 0 or p_speech <= 0:
        return speech.copy()
    scale = math.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    return (speech + scale * noise).astype(np.float32)


def resample(wave: np.ndarray, orig: int, new: int) -> np.ndarray:
    return AF.resample(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), orig, new).numpy()


def mu_law(wave: np.ndarray) -> np.ndarray:
    """G.711 mu-law (256 levels) encoded and decoded."""
    x = torch.from_numpy(np.clip(wave, -1.0, 1.0).astype(np.float32))
    return AF.mu_law_decoding(AF.mu_law_encoding(x, 256), 256).numpy()


def gsm(wave: np.ndarray) -> np.ndarray:
    """GSM 06.10 full-rate coded and decoded (libsndfile); input and output at 8 kHz."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), TELEPHONE_RATE, format="WAV", subtype="GSM610")
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    return out[: len(wave)] if len(out) >= len(wave) else np.pad(out, (0, len(wave) - len(out)))


def telephone(wave: np.ndarray, sample_rate: int, codec: str = "none") -> np.ndarray:
    """The waveform as a phone line carries it: 8 kHz sampling (a 4 kHz band), then `codec`
    ("none", "mulaw", "gsm"), back at `sample_rate`."""
    narrow = resample(wave, sample_rate, TELEPHONE_RATE)
    if codec == "mulaw":
        narrow = mu_law(narrow)
    elif codec == "gsm":
        narrow = gsm(narrow)
    elif codec != "none":
        raise ValueError(f"unknown codec {codec!r} (known: {', '.join(CODECS)})")
    out = resample(narrow, TELEPHONE_RATE, sample_rate)
    return _same_length(out, len(wave))


def simulate_rir(sample_rate: int, rt60: float, rng: np.random.Generator, max_order: int = 60) -> np.ndarray:
    """The impulse response between a random source and microphone in a random shoebox room
    (3-10 m x 3-8 m x 2.5-4 m) whose walls give reverberation time `rt60` (Sabine)."""
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(3, 10), rng.uniform(3, 8), rng.uniform(2.5, 4)])
    for _ in range(20):  # a big room cannot be as dry as a short rt60 asks: shrink it until it can
        try:
            absorption, order = pra.inverse_sabine(rt60, dims)
            break
        except ValueError:
            dims = np.maximum(dims * 0.8, 1.5)
    else:
        raise AsrError(f"no room can have an RT60 of {rt60} s")
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=min(order, max_order))
    margin = 0.5
    source = [rng.uniform(margin, d - margin) for d in dims]
    mic = [rng.uniform(margin, d - margin) for d in dims]
    room.add_source(source)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float32)
    return rir / max(float(np.abs(rir).max()), 1e-12)


def reverberate(wave: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """`wave` convolved with `rir`, shifted so that the direct path (the response's peak) stays
    where the speech was, at the input's power."""
    from scipy.signal import fftconvolve  # a tenth of torchaudio's time on one thread here

    wet = fftconvolve(np.asarray(wave, dtype=np.float32), np.asarray(rir, dtype=np.float32))
    peak = int(np.abs(rir).argmax())
    wet = wet[peak: peak + len(wave)]
    p_dry, p_wet = power(wave), power(wet)
    return (wet * math.sqrt(p_dry / p_wet) if p_wet > 0 else wet).astype(np.float32)


def apply_gain(wave: np.ndarray, gain_db: float) -> np.ndarray:
    return np.clip(wave * 10 ** (gain_db / 20), -1.0, 1.0).astype(np.float32)


def _same_length(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


def audio_files(folder: str | Path, what: str) -> list[Path]:
    """The audio files under `folder` (recursively), sorted; AsrError if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AsrError(f"{folder}: no such {what} folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise AsrError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this {what} folder")
    return files


class WaveAugmenter:
    """Applies an AugmentConfig's waveform augmentations to training utterances.

    `babble_pool`: utterances whose audio babble noise is made of; `load(utt)` reads one as a
    waveform at `sample_rate`. Simulated impulse responses (`rir_bank` of them) are drawn once,
    from `seed`, when the augmenter is built; noise and RIR files are read when used.
    """

    def __init__(self, cfg, sample_rate: int, babble_pool: Sequence = (), load: Callable | None = None,
                 seed: int = 0):
        self.cfg = cfg
        self.sample_rate = sample_rate
        self.babble_pool = list(babble_pool)
        self.load = load
        self.noise_files = audio_files(cfg.noise_dir, "noise") if cfg.noise_dir else []
        self.rir_files = audio_files(cfg.rir_dir, "impulse response") if cfg.rir_dir else []
        self.rirs: list[np.ndarray] = []
        if cfg.reverb_prob > 0 and not self.rir_files:
            rng = np.random.default_rng([seed, 0x5EED])
            self.rirs = [simulate_rir(sample_rate, float(rng.uniform(*cfg.rt60)), rng) for _ in range(cfg.rir_bank)]
        sources = []  # (kind, weight)
        for kind, weight in zip(("coloured", "babble", "files"), cfg.noise_weights):
            if weight > 0 and (kind != "babble" or len(self.babble_pool) > 1) and (kind != "files" or self.noise_files):
                sources.append((kind, weight))
        self.noise_kinds = [k for k, _ in sources]
        total = sum(w for _, w in sources)
        self.noise_odds = [w / total for _, w in sources] if total else []

    @property
    def active(self) -> bool:
        c = self.cfg
        return any(p > 0 for p in (c.noise_prob, c.reverb_prob, c.telephone_prob, c.gain_prob))

    def __call__(self, wave: np.ndarray, rng: np.random.Generator, exclude: str | None = None) -> np.ndarray:
        c = self.cfg
        out = np.asarray(wave, dtype=np.float32)
        if c.reverb_prob > 0 and rng.random() < c.reverb_prob:
            out = reverberate(out, self._rir(rng))
        if c.noise_prob > 0 and self.noise_kinds and rng.random() < c.noise_prob:
            noise = self._noise(len(out), rng, exclude)
            out = mix_at_snr(out, noise, float(rng.uniform(*c.noise_snr_db)))
        if c.telephone_prob > 0 and rng.random() < c.telephone_prob:
            out = telephone(out, self.sample_rate, CODECS[int(rng.integers(len(CODECS)))])
        if c.gain_prob > 0 and rng.random() < c.gain_prob:
            out = apply_gain(out, float(rng.uniform(*c.gain_db)))
        return out

    def _rir(self, rng: np.random.Generator) -> np.ndarray:
        if self.rir_files:
            path = self.rir_files[int(rng.integers(len(self.rir_files)))]
            rir = self._read(path)
            return rir / max(float(np.abs(rir).max()), 1e-12)
        return self.rirs[int(rng.integers(len(self.rirs)))]

    def _noise(self, n: int, rng: np.random.Generator, exclude: str | None) -> np.ndarray:
        kind = self.noise_kinds[int(rng.choice(len(self.noise_kinds), p=self.noise_odds))]
        if kind == "coloured":
            return coloured_noise(n, list(NOISE_COLOURS)[int(rng.integers(len(NOISE_COLOURS)))], rng)
        if kind == "files":
            return fit_length(self._read(self.noise_files[int(rng.integers(len(self.noise_files)))]), n, rng)
        return self.babble(n, rng, exclude)

    def babble(self, n: int, rng: np.random.Generator, exclude: str | None = None) -> np.ndarray:
        """Several other utterances (babble_speakers of them), each at unit power, summed."""
        lo, hi = self.cfg.babble_speakers
        k = int(rng.integers(int(lo), int(hi) + 1))
        total = np.zeros(n, dtype=np.float32)
        picked = 0
        for i in rng.permutation(len(self.babble_pool)):
            utt = self.babble_pool[int(i)]
            if utt.id == exclude:
                continue
            talker = np.asarray(self.load(utt), dtype=np.float32)
            if power(talker) > 0:
                total += fit_length(talker, n, rng) / math.sqrt(power(talker))
                picked += 1
            if picked == k:
                break
        return total

    def _read(self, path: Path) -> np.ndarray:
        return load_audio(path, self.sample_rate).numpy()


def concatenated_utterances(utts: Sequence, fraction: float, counts: tuple[float, float], folder: Path,
                            seed: int, sample_rate: int, load: Callable, max_seconds: float = 20.0) -> list:
    """fraction x len(utts) extra training utterances, each 2-3 (`counts`) utterances of one
    speaker said one after another with a pause of 0.2-0.8 s between them, filled with that
    speaker's own background (the quietest 100 ms of the utterance before, repeated), as a
    long recording has them. Written once into `folder` (16-bit FLAC; kept, and reused when
    the same request comes again) and returned as Utterances."""
    import dataclasses
    import json

    from asr.manifest import read_manifest, write_manifest

    n = int(round(fraction * len(utts)))
    manifest = folder / "concatenated.jsonl"
    request = {"n": n, "counts": list(counts), "seed": seed, "ids": [u.id for u in utts][:50]}
    if manifest.is_file() and (folder / "request.json").is_file() and \
            json.loads((folder / "request.json").read_text()) == request:
        return read_manifest(manifest)
    by_speaker: dict[str, list] = {}
    for u in utts:
        by_speaker.setdefault(u.speaker or u.id, []).append(u)
    speakers = sorted(s for s, us in by_speaker.items() if len(us) >= 2)
    if not speakers or n == 0:
        return []
    rng = np.random.default_rng([seed, 0xC0CA7])
    out = []
    for i in range(n):
        pool = by_speaker[speakers[int(rng.integers(len(speakers)))]]
        k = min(int(rng.integers(int(counts[0]), int(counts[1]) + 1)), len(pool))
        chosen = [pool[int(j)] for j in rng.choice(len(pool), size=k, replace=False)]
        parts, texts, seconds = [], [], 0.0
        for u in chosen:
            wave = np.asarray(load(u), dtype=np.float32)
            if parts:
                pause = int(rng.uniform(0.2, 0.8) * sample_rate)
                parts.append(fit_length(quietest(parts[-1], sample_rate // 10), pause, rng))
            if seconds + len(wave) / sample_rate > max_seconds and parts:
                parts.pop()
                break
            parts.append(wave)
            texts.append(u.text)
            seconds += len(wave) / sample_rate
        if len(texts) < 2:
            continue
        joined = np.concatenate(parts)
        path = folder / "audio" / f"concat{i:06d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.clip(joined, -1, 1), sample_rate, format="FLAC", subtype="PCM_16")
        out.append(dataclasses.replace(chosen[0], id=f"concat{i:06d}", audio=str(path.resolve()),
                                       duration=round(len(joined) / sample_rate, 4), text=" ".join(texts), offset=None))
    write_manifest(out, manifest)
    (folder / "request.json").write_text(json.dumps(request))
    return out


def quietest(wave: np.ndarray, n: int) -> np.ndarray:
    """The quietest n samples of `wave` (by mean square, in steps of n/2)."""
    if len(wave) <= n:
        return wave
    starts = range(0, len(wave) - n + 1, max(1, n // 2))
    best = min(starts, key=lambda s: float(np.mean(np.square(wave[s:s + n], dtype=np.float64))))
    return wave[best:best + n]
