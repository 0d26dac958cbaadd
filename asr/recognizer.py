"""The front door: load a model once, then transcribe audio in any form.

    import asr
    recognizer = asr.load_model("data/an4/exp/model_lm.pt")
    print(recognizer.transcribe("recording.wav").text)

`audio` is a file path, a numpy array or torch tensor of samples (mono, or (samples,
channels)), or the bytes of an audio file. Audio longer than `max_seconds` is read in
blocks and cut at pauses (asr.segmenter), each segment decoded on its own and the text
joined, so memory stays bounded however long the recording is; word times are offset into
the file. The CLI (`asr transcribe`, `asr evaluate`, `asr tune`) goes through this class.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import soundfile as sf
import torch

from asr.align import WordSpan, align_words
from asr.audio import MAX_RATE, MIN_RATE, check_audio_path, load_audio
from asr.checkpoint import Bundle, load_bundle
from asr.config import apply_overrides
from asr.data import features_of
from asr.device import pick_device
from asr.errors import AsrError, AudioError, first_line
from asr.evaluate import bundle_decoder, bundle_delays, compute_emissions, decode_manifest
from asr.features import min_samples
from asr.manifest import Utterance
from asr.model import frame_log_probs
from asr.segmenter import AudioSegment, Segmenter
from asr.shifts import average_copies, delayed, mean_delay_seconds

BLOCK_SECONDS = 30.0  # long files are read this much at a time
MAX_BATCH_FRAMES = 20000  # feature frames per forward pass when decoding segments together
PAD_FRAMES = 64  # forward passes take a multiple of this many frames (bounded set of input shapes)


@dataclass
class Segment:
    start: float  # seconds into the audio
    end: float
    text: str
    words: list[WordSpan] = field(default_factory=list)


@dataclass
class Transcript:
    text: str
    duration: float  # seconds of audio
    score: float  # the decoder's score, summed over segments
    words: list[WordSpan] = field(default_factory=list)  # with timestamps=True; times in the audio
    segments: list[Segment] = field(default_factory=list)
    source: str | None = None  # the file, when the audio came from one

    def to_dict(self) -> dict:
        return {"file": self.source, "text": self.text, "duration": round(self.duration, 3),
                "score": round(self.score, 4), "words": [asdict(w) for w in self.words],
                "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in self.segments]}


class Recognizer:
    """A model bundle, its decoder and the device it runs on.

    `max_seconds`: audio up to this long is decoded in one pass; longer audio is segmented
    at pauses of at least `min_pause` seconds into pieces of at most `max_seconds`, with the
    `vad`. Each defaults to the bundle's decode settings (max_segment_seconds, min_pause, vad).
    """

    def __init__(self, bundle: Bundle, device: str | torch.device | None = None, lm: str | Path | None = None,
                 lexicon: str | Path | None = None, lexicon_free: bool = False,
                 max_seconds: float | None = None, min_pause: float | None = None, vad: str | None = None):
        given = (("max_segment_seconds", max_seconds), ("min_pause", min_pause), ("vad", vad))
        if any(v is not None for _, v in given):  # checked by the config's own rules
            bundle = dataclasses.replace(bundle, config=apply_overrides(
                bundle.config, [f"decode.{k}={v}" for k, v in given if v is not None], allowed=("decode",)))
        self.bundle = bundle
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.model = bundle.model.to(self.device).eval()
        self.lm, self.lexicon, self.lexicon_free = lm, lexicon, lexicon_free
        self.decoder = bundle_decoder(bundle, lm, lexicon, lexicon_free)

    @property
    def max_seconds(self) -> float:
        return self.bundle.config.decode.max_segment_seconds

    @property
    def min_pause(self) -> float:
        return self.bundle.config.decode.min_pause

    @property
    def vad(self) -> str:
        return self.bundle.config.decode.vad

    @property
    def sample_rate(self) -> int:
        return self.bundle.config.features.sample_rate

    @property
    def frame_seconds(self) -> float:
        """Duration of one model output frame."""
        return self.bundle.config.features.hop_ms / 1000 * self.bundle.config.model.subsampling_factor

    def with_decode(self, **settings) -> "Recognizer":
        """The same model with other decode settings (e.g. lm_weight=0.5, method="beam")."""
        other = dataclasses.replace(self.bundle, config=dataclasses.replace(
            self.bundle.config, decode=dataclasses.replace(self.bundle.config.decode, **settings)))
        clone = object.__new__(Recognizer)
        clone.__dict__.update(self.__dict__, bundle=other,
                              decoder=bundle_decoder(other, self.lm, self.lexicon, self.lexicon_free))
        return clone

    # -- audio in any form ----------------------------------------------------------------

    def blocks(self, audio, sample_rate: int | None = None) -> Iterator[np.ndarray]:
        """`audio` as float32 mono blocks at the model's rate (a file is read BLOCK_SECONDS at a
        time, whatever its length; arrays and bytes are held in memory already)."""
        if isinstance(audio, (str, Path)):
            yield from self._file_blocks(Path(audio))
            return
        wave = self.read(audio, sample_rate)
        block = int(BLOCK_SECONDS * self.sample_rate)
        for i in range(0, len(wave), block):
            yield wave[i:i + block]

    def read(self, audio, sample_rate: int | None = None, max_seconds: float | None = None) -> np.ndarray:
        """The whole of `audio` as a float32 mono waveform at the model's rate; with
        `max_seconds`, a file or bytes longer than that raise AudioTooLong before decoding."""
        if isinstance(audio, (str, Path)):
            if max_seconds is not None:
                check_audio_path(Path(audio))
                info = sf.info(str(audio))
                if info.frames / info.samplerate > max_seconds:
                    raise AudioTooLong(info.frames / info.samplerate, max_seconds)
            return load_audio(audio, self.sample_rate).numpy()
        if isinstance(audio, (bytes, bytearray, memoryview)):
            return self._decode_bytes(bytes(audio), max_seconds)
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        if not isinstance(audio, np.ndarray):
            raise AsrError(f"cannot transcribe a {type(audio).__name__}: give a path, an array of samples or bytes")
        wave = audio.astype(np.float32) / 32768.0 if audio.dtype == np.int16 else audio.astype(np.float32)
        if wave.ndim == 2:
            wave = wave.mean(axis=1)  # (samples, channels) -> (samples,)
        if wave.ndim != 1 or not len(wave):
            raise AudioError(f"<array>: expected samples (N,) or (N, channels), got shape {audio.shape}")
        if not np.isfinite(wave).all():
            raise AudioError("<array>: audio holds NaN or infinite samples")
        rate = sample_rate or self.sample_rate
        if rate != self.sample_rate:
            import torchaudio.functional as AF

            wave = AF.resample(torch.from_numpy(wave), rate, self.sample_rate).numpy()
        return wave

    def _decode_bytes(self, data: bytes, max_seconds: float | None = None) -> np.ndarray:
        """The audio in `data`, refused before decoding when its header gives an implausible
        rate or more than max_seconds (a small compressed file can hold hours of silence)."""
        rate, frames = bytes_info(data)
        if max_seconds is not None and frames / rate > max_seconds:
            raise AudioTooLong(frames / rate, max_seconds)
        try:
            wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, MemoryError) as e:
            raise AudioError(f"<bytes>: cannot read audio ({first_line(e)})") from None
        if not len(wave):
            raise AudioError("<bytes>: audio has no samples")
        return self.read(wave, rate)

    def _file_blocks(self, path: Path) -> Iterator[np.ndarray]:
        check_audio_path(path)
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(f"{path}: cannot read audio ({first_line(e)})") from None
        if info.frames <= 0 or info.frames / info.samplerate <= BLOCK_SECONDS:
            yield load_audio(path, self.sample_rate).numpy()
            return
        block = int(BLOCK_SECONDS * info.samplerate)
        for offset in range(0, info.frames, block):
            wave = load_audio(path, self.sample_rate, offset / info.samplerate, block / info.samplerate).numpy()
            if len(wave):
                yield wave

    # -- transcription -------------------------------------------------------------------

    def transcribe(self, audio, sample_rate: int | None = None, timestamps: bool = False) -> Transcript:
        """Transcribe one recording (see the module docstring for what `audio` may be)."""
        source = str(audio) if isinstance(audio, (str, Path)) else None
        segments, n_samples = [], 0
        segmenter = Segmenter(self.sample_rate, self.max_seconds, self.min_pause, vad=self.vad)
        pending: list[np.ndarray] = []  # audio kept whole while it is short enough for one pass
        short = True
        for block in self.blocks(audio, sample_rate):
            n_samples += len(block)
            if short:
                pending.append(block)
                if n_samples <= self.max_seconds * self.sample_rate:
                    continue
                short, block, pending = False, np.concatenate(pending), []
            segments += self._decode_segments(segmenter.feed(block), timestamps, source)
        if short:  # short audio: one pass over all of it, silence included
            wave = np.concatenate(pending) if pending else np.zeros(0, np.float32)
            segments = self._decode_segments([AudioSegment(0, wave)], timestamps, source, keep_empty=True)
        else:
            segments += self._decode_segments(segmenter.finish(), timestamps, source)
        return _join(segments, n_samples / self.sample_rate, source)

    def transcribe_batch(self, audios: Iterable, sample_rate: int | None = None,
                         timestamps: bool = False) -> list[Transcript]:
        """Transcribe several recordings, in order. Recordings up to max_seconds share
        forward passes (batched by length); longer ones are segmented one at a time."""
        audios = list(audios)
        results: list[Transcript | None] = [None] * len(audios)
        short: list[tuple[int, AudioSegment, str | None]] = []
        for i, audio in enumerate(audios):
            source = str(audio) if isinstance(audio, (str, Path)) else None
            if self._is_long(audio, sample_rate):
                results[i] = self.transcribe(audio, sample_rate, timestamps)
            else:
                short.append((i, AudioSegment(0, self.read(audio, sample_rate)), source))
        decoded = self._decode_segments([seg for _, seg, _ in short], timestamps, None, keep_empty=True,
                                        sources=[src for _, _, src in short])
        for (i, seg, source), (segment, score) in zip(short, decoded):
            results[i] = _join([(segment, score)], len(seg.samples) / self.sample_rate, source)
        return results

    def _is_long(self, audio, sample_rate: int | None) -> bool:
        if isinstance(audio, (str, Path)):
            check_audio_path(Path(audio))
            try:
                info = sf.info(str(audio))
            except (sf.LibsndfileError, RuntimeError) as e:
                raise AudioError(f"{audio}: cannot read audio ({first_line(e)})") from None
            return info.frames / info.samplerate > self.max_seconds
        if isinstance(audio, (np.ndarray, torch.Tensor)):
            return audio.shape[0] / (sample_rate or self.sample_rate) > self.max_seconds
        if isinstance(audio, (bytes, bytearray, memoryview)):
            rate, frames = bytes_info(bytes(audio))
            return frames / rate > self.max_seconds
        return False

    def _decode_segments(self, segments: Sequence[AudioSegment], timestamps: bool, source: str | None,
                         keep_empty: bool = False, sources: Sequence[str | None] | None = None
                         ) -> list[tuple[Segment, float]]:
        """Decode segments in batches of similar length; returns (Segment, score) for each, in
        the order given. keep_empty: a segment too short for the model is an error (a whole
        recording), not a piece to skip. `sources` names each segment's file in errors."""
        delays = bundle_delays(self.bundle)
        # the copies' frames are late by their delays: word times count from the mean one
        shift = mean_delay_seconds(delays, self.sample_rate)
        feats = []  # ((segment index, copy index), segment, features)
        for k, seg in enumerate(segments):
            where = (sources[k] if sources else source) or "<audio>"
            if len(seg.samples) < min_samples(self.bundle.config.features):
                f = None
            else:
                f = self._features(seg.samples, where)
            if f is None or f.shape[0] < self.model.min_frames():
                if keep_empty:
                    raise AudioError(f"{where}: audio too short to transcribe "
                                     f"({len(seg.samples) / self.sample_rate:.3f}s)")
                continue
            feats += [((k, j), seg, f if d == 0 else self._features(delayed(seg.samples, d), where))
                      for j, d in enumerate(delays)]
        copies: dict[int, list] = {}  # segment index -> log-probs (T', V) of its copies so far
        out = []
        for batch in _batches(feats, MAX_BATCH_FRAMES):
            lens = torch.tensor([f.shape[0] for _, _, f in batch])
            padded = torch.nn.utils.rnn.pad_sequence([f for _, _, f in batch], batch_first=True)
            # Padded to a multiple of PAD_FRAMES: the CPU kernels keep a cached plan per input
            # shape, and an hour of segments of every length made memory grow ~2.5 MB a minute.
            padded = torch.nn.functional.pad(padded, (0, 0, 0, -padded.shape[1] % PAD_FRAMES))
            with torch.no_grad():
                log_probs, out_lens = self.model(padded.to(self.device), lens.to(self.device))
            log_probs, out_lens = log_probs.cpu(), out_lens.cpu()
            for row, ((k, _), seg, _) in enumerate(batch):
                copies.setdefault(k, []).append(log_probs[row, :int(out_lens[row])])
                if len(copies[k]) == len(delays):  # every copy of the segment is in: decode it
                    lp = average_copies(copies.pop(k)).unsqueeze(0)  # (T', V) -> (1, T', V)
                    hyp = self.decoder(lp, torch.tensor([lp.shape[1]]))[0]
                    start, end = seg.seconds(self.sample_rate)
                    words = self.align(lp, hyp.text, start - shift) if timestamps and hyp.text else []
                    out.append((k, Segment(round(start, 3), round(end, 3), hyp.text, words), hyp.score))
        out.sort(key=lambda item: item[0])
        return [(segment, score) for _, segment, score in out]

    def _features(self, samples: np.ndarray, where: str) -> torch.Tensor:
        return self.bundle.stats.normalize(features_of(torch.from_numpy(np.ascontiguousarray(samples)), where,
                                                       self.bundle.config.features))

    def align(self, log_probs: torch.Tensor, text: str, offset: float = 0.0) -> list[WordSpan]:
        """Word times of `text` in log-probs (1, T', V) by CTC forced alignment, `offset` seconds on."""
        return [dataclasses.replace(w, start=round(w.start + offset, 3), end=round(w.end + offset, 3))
                for w in align_words(frame_log_probs(log_probs)[0], text, self.bundle.tokenizer, self.frame_seconds)]

    def stream(self, timestamps: bool = False):
        """A Stream: feed(samples) -> partial text as audio arrives, finish() -> the Transcript
        (asr.streaming). Samples: float mono at the model's rate (16 kHz)."""
        from asr.streaming import Stream

        return Stream(self, timestamps)

    # -- manifests (asr evaluate, asr tune) ---------------------------------------------------

    def decode_utterances(self, utts: Sequence[Utterance]):
        """Hypotheses by id for a manifest's utterances (batched), and what a report records."""
        return decode_manifest(self.bundle, utts, self.device, self.lexicon, self.lm, self.lexicon_free,
                               decoder=self.decoder)

    def emissions(self, utts: Sequence[Utterance]):
        """The model's log-probabilities of each utterance, by id, and the mean CTC loss."""
        from asr.data import SpeechDataset

        dataset = SpeechDataset(utts, self.bundle.tokenizer, self.bundle.config.features, self.bundle.stats)
        return compute_emissions(self.model, dataset, self.device, delays=bundle_delays(self.bundle))


class AudioTooLong(AudioError):
    def __init__(self, seconds: float, limit: float):
        super().__init__(f"audio of {seconds:.1f} s is longer than the limit of {limit:g} s")
        self.seconds, self.limit = seconds, limit


def bytes_info(data: bytes) -> tuple[int, int]:
    """(sample rate, frames) from an audio file's header in memory; AudioError if it has none
    or its rate is implausible."""
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        raise AudioError(f"<bytes>: cannot read audio ({first_line(e)})") from None
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioError(f"<bytes>: implausible sample rate {info.samplerate} Hz (a corrupt header?)")
    return info.samplerate, info.frames


def _batches(items: list, max_frames: int) -> Iterator[list]:
    """Items (index, segment, feats) in batches of similar length, padded size under max_frames."""
    order = sorted(items, key=lambda item: item[-1].shape[0])
    batch: list = []
    for item in order:
        if batch and item[-1].shape[0] * (len(batch) + 1) > max_frames:
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _join(segments: list[tuple[Segment, float]], duration: float, source: str | None) -> Transcript:
    segs = [s for s, _ in segments]
    return Transcript(text=" ".join(s.text for s in segs if s.text), duration=duration,
                      score=float(sum(score for _, score in segments)),
                      words=[w for s in segs for w in s.words], segments=segs, source=source)


def load_model(path: str | Path | None = None, device: str | torch.device | None = None,
               lm: str | Path | None = None, lexicon: str | Path | None = None, lexicon_free: bool = False,
               max_seconds: float | None = None, min_pause: float | None = None,
               **decode_overrides) -> Recognizer:
    """A Recognizer for the model bundle at `path` (default: $ASR_MODEL, else the AN4 recipe's
    model). `decode_overrides` change its decode settings, e.g. method="greedy", beam_size=100,
    vad="energy"; max_seconds and min_pause default to the bundle's segmentation settings."""
    from asr.transcribe import default_model_path  # noqa: I001 (asr.transcribe imports this module)

    bundle = load_bundle(path or default_model_path())
    if decode_overrides:
        bundle.config = apply_overrides(bundle.config, [f"decode.{k}={v}" for k, v in decode_overrides.items()],
                                        allowed=("decode",))
    return Recognizer(bundle, device, lm, lexicon, lexicon_free, max_seconds=max_seconds, min_pause=min_pause)
