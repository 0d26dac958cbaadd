"""Streaming recognition: audio in as it arrives, partial text out, the same final text as
offline decoding.

`Recognizer.stream()` gives a Stream: `feed(samples) -> partial text`, `finish() -> Transcript`.

- The final text is the offline one (Recognizer.transcribe): up to max_seconds of audio in one
  pass, longer audio segment by segment at pauses (asr.segmenter), each segment decoded as
  soon as it ends, so memory stays bounded however long the stream.
- A unidirectional model (`model.bidirectional: false`) also gives live partial text: log-mel
  frames are computed as soon as their window is complete (the same frames `log_mel` gives
  for the whole recording: reflect padding at the start, and at the end on finish()), the
  conv subsampling runs over the frames whose receptive field is complete, and each
  recurrent layer carries its state, so its emissions equal the offline ones (tested); the
  partial text is the greedy text of the audio not yet final.
- A bidirectional model needs the whole of a stretch of speech before it can say anything:
  its partial text is that of the finished segments.
"""

from __future__ import annotations

import numpy as np
import torch

from asr.features import LOG_FLOOR, _mel_transform, hop_length
from asr.model import AcousticModel
from asr.segmenter import AudioSegment, Segmenter


class StreamingLogMel:
    """Incremental log-mel: push(samples) -> new frames (T, n_mels); finish() -> the last ones.

    Frame t of centred framing covers padded samples [t*hop, t*hop + n_fft) where padded is
    the waveform with n_fft/2 samples reflected at each end, so a frame is ready once those
    samples have arrived (the right reflection only exists at the end of the stream).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.n_fft, self.hop = cfg.n_fft, hop_length(cfg)
        self.half = cfg.n_fft // 2
        mel = _mel_transform(cfg)
        self.spectrogram = mel.spectrogram  # torchaudio Spectrogram (centred); used on padded audio below
        self.mel_scale = mel.mel_scale
        self.head = np.zeros(0, dtype=np.float32)  # the first samples, until the left pad can be made
        self.padded: np.ndarray | None = None  # padded stream from sample `base` on
        self.base = 0  # index in the padded stream of padded[0]
        self.next_frame = 0
        self.total = 0

    def push(self, samples: np.ndarray) -> torch.Tensor:
        samples = np.asarray(samples, dtype=np.float32)
        self.total += len(samples)
        if self.padded is None:
            self.head = np.concatenate([self.head, samples])
            if len(self.head) <= self.half:
                return self._empty()
            left = self.head[1:self.half + 1][::-1]  # torch's reflect pad: x[half] .. x[1]
            self.padded, self.head = np.concatenate([left, self.head]), None
        else:
            self.padded = np.concatenate([self.padded, samples])
        return self._frames(final=False)

    def finish(self) -> torch.Tensor:
        if self.padded is None:  # shorter than half a window: log_mel refuses it too
            return self._empty()
        tail = self.padded[-(self.half + 1):-1][::-1]  # x[N-2] .. x[N-1-half]
        self.padded = np.concatenate([self.padded, tail])
        return self._frames(final=True)

    def _frames(self, final: bool) -> torch.Tensor:
        start = self.next_frame * self.hop - self.base  # first sample of the next frame in self.padded
        n = (len(self.padded) - start - self.n_fft) // self.hop + 1 if len(self.padded) - start >= self.n_fft else 0
        if n <= 0:
            return self._empty()
        chunk = torch.from_numpy(np.ascontiguousarray(self.padded[start:start + (n - 1) * self.hop + self.n_fft]))
        spec = torch.stft(chunk, self.n_fft, self.hop, self.spectrogram.win_length, self.spectrogram.window,
                          center=False, return_complex=True).abs().pow(2)  # (n_fft/2+1, n)
        feats = torch.log(self.mel_scale(spec) + LOG_FLOOR).transpose(0, 1).contiguous()  # -> (n, n_mels)
        self.next_frame += n
        keep_from = self.next_frame * self.hop - self.base  # samples before this are no longer needed
        keep_from = min(keep_from, len(self.padded) - (self.half + 1))  # but the end pad needs the last ones
        if keep_from > 0 and not final:
            self.padded, self.base = self.padded[keep_from:], self.base + keep_from
        return feats

    def _empty(self) -> torch.Tensor:
        return torch.zeros(0, self.cfg.n_mels)


class StreamingModel:
    """A unidirectional AcousticModel run over feature chunks with its state carried:
    push(feats) -> new log-probs (T', V). The same outputs as the model on all the frames."""

    def __init__(self, model):
        if model.cfg.bidirectional:
            raise ValueError("a bidirectional model cannot stream frame by frame")
        self.model = model
        self.sub = model.subsample
        if model.cfg.subsampling == "conv":
            self.context, self.stride = (7, 4) if model.cfg.subsampling_factor == 4 else (3, 2)
        else:
            self.context = self.stride = model.cfg.subsampling_factor
        self.frames: torch.Tensor | None = None  # feature frames not yet consumed by the subsampling
        self.states: list = [None] * len(model.rnn.layers)

    @torch.no_grad()
    def push(self, feats: torch.Tensor) -> torch.Tensor:
        self.frames = feats if self.frames is None else torch.cat([self.frames, feats])
        n = self.frames.shape[0]
        n_out = (n - self.context) // self.stride + 1 if n >= self.context else 0
        if n_out <= 0:
            return torch.zeros(0, self.model.output.out_features)
        used = (n_out - 1) * self.stride + self.context
        device = self.model.output.weight.device
        x, _ = self.sub(self.frames[:used].unsqueeze(0).to(device), torch.tensor([used], device=device))  # (1, n_out, H)
        self.frames = self.frames[n_out * self.stride:]
        for i, dirs in enumerate(self.model.rnn.layers):
            x, self.states[i] = dirs[0](x, self.states[i])  # the forward direction only, state carried
        return self.model.output(x).float().log_softmax(dim=-1)[0].cpu()


class LivePartial:
    """The greedy text of a unidirectional model as the audio arrives: log-mel, subsampling
    and recurrent state carried chunk by chunk (StreamingLogMel, StreamingModel). Tokens are
    kept with their output frame, and dropped once the audio before them is final."""

    def __init__(self, recognizer):
        cfg = recognizer.bundle.config
        if cfg.features.mean_norm != "global":
            raise ValueError(f"features.mean_norm {cfg.features.mean_norm!r} needs the whole utterance; "
                             "a streaming model needs 'global'")
        self.features = StreamingLogMel(cfg.features)
        self.model = StreamingModel(recognizer.model)
        self.stats, self.tokenizer = recognizer.bundle.stats, recognizer.bundle.tokenizer
        self.samples_per_frame = hop_length(cfg.features) * cfg.model.subsampling_factor
        self.tokens: list[tuple[int, int]] = []  # (output frame, token) of the greedy path, repeats merged
        self.previous, self.frame = None, 0

    def push(self, samples: np.ndarray) -> None:
        feats = self.features.push(samples)
        if not feats.shape[0]:
            return
        log_probs = self.model.push(self.stats.normalize(feats))
        for token in log_probs.argmax(-1).tolist():
            if token != self.previous and token != self.tokenizer.blank_id:
                self.tokens.append((self.frame, token))
            self.previous = token
            self.frame += 1

    def text_since(self, sample: int) -> str:
        """The greedy text of the audio from stream position `sample` on (what is before it is
        forgotten)."""
        first = sample // self.samples_per_frame
        self.tokens = [(f, t) for f, t in self.tokens if f >= first]
        return self.tokenizer.decode([t for _, t in self.tokens])


class Stream:
    """feed(samples) -> partial text; finish() -> the final Transcript. Samples are float
    mono at the recognizer's sample rate (see Recognizer.stream).

    The final text is what Recognizer.transcribe gives for the same audio: audio up to
    max_seconds in one pass, longer audio segment by segment at pauses (asr.segmenter),
    each segment decoded as soon as it ends, so memory stays bounded. The partial text is
    the final text of the finished segments, followed, for a unidirectional model, by the
    live greedy text of the audio since (LivePartial); a bidirectional model has nothing to
    say about a segment before it ends.
    """

    def __init__(self, recognizer, timestamps: bool = False):
        self.rec = recognizer
        self.timestamps = timestamps
        self.n_samples = 0
        self.segmenter = Segmenter(recognizer.sample_rate, recognizer.max_seconds, recognizer.min_pause,
                                   vad=recognizer.vad)
        self.head: list[np.ndarray] | None = []  # the audio while it is short enough for one pass
        self.segments: list = []  # (Segment, score) of the finished segments
        self.final_until = 0  # stream position up to which the text is final
        unidirectional = isinstance(recognizer.model, AcousticModel) and not recognizer.model.cfg.bidirectional
        self.live = LivePartial(recognizer) if unidirectional else None

    def feed(self, samples) -> str:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.n_samples += len(samples)
        if self.live is not None:
            self.live.push(samples)
        if self.head is not None:
            self.head.append(samples)
            if self.n_samples <= self.rec.max_seconds * self.rec.sample_rate:
                return self._partial()
            samples, self.head = np.concatenate(self.head), None
        for segment in self.segmenter.feed(samples):
            self.segments += self.rec._decode_segments([segment], self.timestamps, None)
            self.final_until = segment.start + len(segment.samples)
        return self._partial()

    def _partial(self) -> str:
        final = " ".join(s.text for s, _ in self.segments if s.text)
        live = self.live.text_since(self.final_until) if self.live is not None else ""
        return f"{final} {live}".strip()

    def finish(self):
        from asr.recognizer import _join

        if self.head is not None:  # short: one pass, as offline
            wave = np.concatenate(self.head) if self.head else np.zeros(0, np.float32)
            segments = self.rec._decode_segments([AudioSegment(0, wave)], self.timestamps, None, keep_empty=True)
        else:
            segments = self.segments + self.rec._decode_segments(self.segmenter.finish(), self.timestamps, None)
        return _join(segments, self.n_samples / self.rec.sample_rate, None)


def _greedy_text(ids: list[int], tokenizer) -> str:
    out, prev = [], None
    for i in ids:
        if i != prev and i != tokenizer.blank_id:
            out.append(i)
        prev = i
    return tokenizer.decode(out)
