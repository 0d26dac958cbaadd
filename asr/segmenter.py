"""Cutting long audio into segments at pauses, as it streams in, in bounded memory.

A voice-activity detector marks each 30 ms frame speech or not: WebRTC's (the
`webrtcvad-wheels` package; its cost is negligible, RTF below 0.0001 here), or, where it is
not installed, an energy rule (a frame is speech when it is 12 dB above the quietest
frames of the last 30 s, or above -38 dBFS). silero-vad is more accurate but costs about as much as the whole
recognizer on a 2-core CPU (RTF 0.0065 against 0.0057), so it is not used.

The Segmenter cuts in the middle of every pause of at least `min_pause` seconds, so a cut
never falls inside a word; a stretch of speech longer than `max_seconds` without such a
pause is cut in its longest pause (or, without any, at its quietest frame), so no segment
exceeds `max_seconds`. A lone speech frame (`max_blip`, 30 ms: a click, a breath, a noise
burst) does not break a pause: the energy rule marks many such frames in the silence between
utterances, and ignoring them found 100 rather than 89 of the 110 utterance boundaries of AN4
dev joined into one recording. Segments that hold no speech frame at all are dropped. Every sample
of the input belongs to at most one segment, and each keeps its offset in the stream.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import groupby
from typing import Iterator

import numpy as np

FRAME_SECONDS = 0.03  # WebRTC VAD takes 10, 20 or 30 ms frames
BLIP_SECONDS = 0.03  # speech this short between silent frames does not end a pause


@dataclass
class AudioSegment:
    start: int  # first sample, counted from the start of the stream
    samples: np.ndarray  # float32, mono
    speech: bool = True  # whether the VAD found speech in it

    def seconds(self, sample_rate: int) -> tuple[float, float]:
        return self.start / sample_rate, (self.start + len(self.samples)) / sample_rate


class EnergyVad:
    """Speech where a frame's energy is 12 dB above the floor: the 5th percentile of the last
    30 s, or -50 dBFS where that is higher (so that audio without quiet frames, loud from the
    start, counts as speech rather than being dropped)."""

    def __init__(self, margin_db: float = 12.0, history_frames: int = 1000, max_floor_db: float = -50.0):
        self.margin_db = margin_db
        self.max_floor_db = max_floor_db
        self.history = deque(maxlen=history_frames)

    def __call__(self, frame: np.ndarray, sample_rate: int) -> bool:
        energy = 10 * np.log10(float(np.mean(np.square(frame, dtype=np.float64))) + 1e-10)
        self.history.append(energy)
        floor = min(float(np.percentile(self.history, 5)), self.max_floor_db)
        return energy > floor + self.margin_db


class WebRtcVad:
    def __init__(self, aggressiveness: int = 2):
        import webrtcvad

        self.vad = webrtcvad.Vad(aggressiveness)

    def __call__(self, frame: np.ndarray, sample_rate: int) -> bool:
        pcm = (np.clip(frame, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        return self.vad.is_speech(pcm, sample_rate)


def make_vad(kind: str = "auto", sample_rate: int = 16000):
    """"webrtc", "energy", or "auto" (WebRTC where installed and the rate is one it takes)."""
    if kind in ("auto", "webrtc") and sample_rate in (8000, 16000, 32000, 48000):
        try:
            return WebRtcVad()
        except ImportError:
            if kind == "webrtc":
                raise
    elif kind == "webrtc":
        raise ValueError(f"the WebRTC VAD does not take {sample_rate} Hz audio")
    return EnergyVad()


class Segmenter:
    """feed(samples) -> finished segments; finish() -> the rest. Holds at most about
    `max_seconds` of audio, whatever the length of the stream.

    A pause of at least `min_pause` seconds ends a segment: the segment keeps `margin`
    seconds of the pause (as much as the training utterances had around them, at most
    half the pause), the next one starts `margin` before the pause ends, and the silence
    between is dropped.
    """

    def __init__(self, sample_rate: int = 16000, max_seconds: float = 20.0, min_pause: float = 0.5,
                 margin: float = 0.25, vad: str = "auto", max_blip: float = BLIP_SECONDS):
        if max_seconds < 1.0 or not 0 < min_pause < max_seconds or margin < 0:
            raise ValueError("need max_seconds >= 1, 0 < min_pause < max_seconds and margin >= 0")
        self.rate = sample_rate
        self.frame = int(round(FRAME_SECONDS * sample_rate))
        self.max_frames = int(max_seconds / FRAME_SECONDS)
        self.min_pause_frames = max(1, int(round(min_pause / FRAME_SECONDS)))
        self.margin_frames = int(round(margin / FRAME_SECONDS))
        self.blip_frames = int(round(max_blip / FRAME_SECONDS))
        self.vad = make_vad(vad, sample_rate)
        self.start = 0  # stream position of buffer[0]
        self.buffer = np.zeros(0, dtype=np.float32)  # audio not yet in a finished segment
        self.raw: list[bool] = []  # the VAD's verdict on each whole frame of the buffer
        self.flags: list[bool] = []  # the same, blips in pauses counted as silence
        self.energies: list[float] = []

    def feed(self, samples: np.ndarray) -> list[AudioSegment]:
        self.buffer = np.concatenate([self.buffer, np.asarray(samples, dtype=np.float32)])
        while (len(self.raw) + 1) * self.frame <= len(self.buffer):
            frame = self.buffer[len(self.raw) * self.frame:(len(self.raw) + 1) * self.frame]
            self.raw.append(bool(self.vad(frame, self.rate)))
            self.energies.append(float(np.mean(np.square(frame, dtype=np.float64))))
        self.flags = without_blips(self.raw, self.blip_frames)
        out = []
        self._trim_leading_silence()
        while (pause := self._pause()) is not None or len(self.flags) > self.max_frames:
            a, b = pause or (0, 0)  # frames [a, b) are a pause with speech before it
            keep = min(self.margin_frames, (b - a) // 2)
            if pause is None or a + keep > self.max_frames:  # no pause early enough
                out += self._emit(self._forced_cut())
                continue
            out += self._emit(a + keep)
            self._trim_leading_silence()  # the silence between the two margins
        return out

    def finish(self) -> list[AudioSegment]:
        out = []
        while len(self.flags) > self.max_frames:
            out += self._emit(self._forced_cut())
            self._trim_leading_silence()
        speech = [i for i, flag in enumerate(self.flags) if flag]
        if not speech:
            return out
        end = min(len(self.flags), speech[-1] + 1 + self.margin_frames)  # trailing silence but a margin
        return out + self._emit(end, len(self.buffer) if end == len(self.flags) else None)

    def _trim_leading_silence(self) -> None:
        """Drop silence at the start of the buffer but the last `margin` of it, once speech
        follows it (or it fills the buffer)."""
        lead = next((i for i, flag in enumerate(self.flags) if flag), None)
        if lead is None:
            lead = len(self.flags) if len(self.flags) > self.max_frames else 0
        if lead > self.margin_frames:
            self._drop(lead - self.margin_frames)

    def _pause(self) -> tuple[int, int] | None:
        """The first finished pause of min_pause or more after some speech (a pause still
        going on counts as finished once the buffer is full)."""
        run, seen_speech = 0, False
        for i, speech in enumerate(self.flags):
            if speech:
                if run >= self.min_pause_frames and seen_speech:
                    return i - run, i
                run, seen_speech = 0, True
            else:
                run += 1
        if run >= self.min_pause_frames and seen_speech and len(self.flags) > self.max_frames:
            return len(self.flags) - run, len(self.flags)
        return None

    def _forced_cut(self) -> int:
        """No long-enough pause in max_seconds: cut in the middle of the longest pause of the
        first max_frames frames, else at the quietest frame of their second half."""
        flags = self.flags[: self.max_frames]
        best, best_len, run_start = None, 0, None
        for i, speech in enumerate(flags + [True]):
            if not speech and run_start is None:
                run_start = i
            elif speech and run_start is not None:
                if i - run_start > best_len and run_start > 0:
                    best, best_len = (run_start + i) // 2, i - run_start
                run_start = None
        if best is not None:
            return best
        lo = self.max_frames // 2
        return lo + int(np.argmin(self.energies[lo: self.max_frames]))

    def _emit(self, n_frames: int, n_samples: int | None = None) -> list[AudioSegment]:
        """The first n_frames frames (or n_samples samples) as a segment, if they hold speech."""
        n_samples = n_frames * self.frame if n_samples is None else n_samples
        seg = AudioSegment(self.start, self.buffer[:n_samples].copy(), any(self.flags[:n_frames]))
        self._drop(n_frames, n_samples)
        return [seg] if seg.speech and len(seg.samples) else []

    def _drop(self, n_frames: int, n_samples: int | None = None) -> None:
        n_samples = n_frames * self.frame if n_samples is None else n_samples
        self.buffer = self.buffer[n_samples:]
        self.raw, self.flags, self.energies = self.raw[n_frames:], self.flags[n_frames:], self.energies[n_frames:]
        self.start += n_samples


def without_blips(flags: list[bool], max_frames: int) -> list[bool]:
    """The flags with each run of at most max_frames speech frames (a click, a breath, a noise
    burst in a pause) counted as silence. A run at the start is taken to follow silence (the
    buffer starts in a pause or at the start of the stream); one at the end counts as silence
    until it grows longer, so that how the stream is cut into blocks changes nothing."""
    out: list[bool] = []
    for speech, run in groupby(flags):
        n = len(list(run))
        out += [speech and n > max_frames] * n
    return out


def segment_audio(samples: np.ndarray, sample_rate: int = 16000, **kwargs) -> Iterator[AudioSegment]:
    """The segments of audio held in memory (the Segmenter fed in 10 s blocks)."""
    seg = Segmenter(sample_rate, **kwargs)
    block = 10 * sample_rate
    for i in range(0, len(samples), block):
        yield from seg.feed(samples[i:i + block])
    yield from seg.finish()
