"""asr.segmenter: long audio cut at pauses, in order, without losing or doubling speech."""

import numpy as np
import pytest

from asr.segmenter import FRAME_SECONDS, Segmenter, segment_audio

RATE = 16000


def bursts(spec, seed=0):
    """Audio of (kind, seconds) parts: "s" a noisy tone burst (speech), "p" near-silence.
    Returns the audio and the sample ranges of the bursts."""
    rng = np.random.default_rng(seed)
    parts, ranges, pos = [], [], 0
    for kind, seconds in spec:
        n = int(seconds * RATE)
        if kind == "s":
            t = np.arange(n) / RATE
            parts.append((0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32))
            ranges.append((pos, pos + n))
        else:
            parts.append((1e-4 * rng.standard_normal(n)).astype(np.float32))
        pos += n
    return np.concatenate(parts), ranges


def check(segments, ranges, max_seconds):
    spans = [(s.start, s.start + len(s.samples)) for s in segments]
    assert all(a < b for a, b in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))  # in order, no overlap
    assert all(b - a <= max_seconds * RATE + 1 for a, b in spans)
    frame = int(FRAME_SECONDS * RATE)
    for a, b in ranges:  # every burst sample is in a segment (the frame at its edges aside)
        covered = sum(max(0, min(b, y) - max(a, x)) for x, y in spans)
        assert covered >= (b - a) - 2 * frame, (a, b)
    return spans


def test_cuts_fall_in_pauses_and_silence_is_dropped():
    spec = [("p", 1.0), ("s", 2.0), ("p", 0.2), ("s", 1.5), ("p", 3.0), ("s", 2.5), ("p", 0.8), ("s", 1.0), ("p", 2.0)]
    audio, ranges = bursts(spec)
    segments = list(segment_audio(audio, RATE, max_seconds=20.0, min_pause=0.5, vad="energy"))
    spans = check(segments, ranges, 20.0)
    # the 0.2 s pause does not end a segment; the 3.0 s and 0.8 s ones do
    assert len(spans) == 3
    for a, b in ranges:
        assert sum(x <= a and b <= y for x, y in spans) == 1  # each burst whole, in one segment
    kept = sum(b - a for a, b in spans) / RATE
    assert kept < len(audio) / RATE - 4.0  # most of the long silences are gone


def test_no_segment_exceeds_max_seconds_without_pauses():
    audio, ranges = bursts([("s", 50.0)])
    segments = list(segment_audio(audio, RATE, max_seconds=12.0, min_pause=0.5, vad="energy"))
    spans = check(segments, ranges, 12.0)
    assert len(spans) >= 5 and sum(b - a for a, b in spans) == len(audio)  # nothing lost, nothing doubled


def test_long_speech_with_short_pauses_is_cut_in_its_longest_pause():
    spec = [("s", 4.0), ("p", 0.2), ("s", 4.0), ("p", 0.35), ("s", 4.0), ("p", 0.2), ("s", 4.0)]
    audio, ranges = bursts(spec)
    spans = check(list(segment_audio(audio, RATE, max_seconds=10.0, min_pause=1.0, vad="energy")), ranges, 10.0)
    cut = spans[1][0] / RATE
    assert 8.2 < cut < 8.55  # inside the 0.35 s pause, not in a word


@pytest.mark.parametrize("block_seconds", [0.01, 0.7, 13.0])
def test_block_size_does_not_change_the_segments(block_seconds):
    spec = [("p", 0.5), ("s", 3.0), ("p", 1.0), ("s", 6.0), ("p", 0.6), ("s", 2.0)]
    audio, _ = bursts(spec, seed=3)
    whole = [(s.start, len(s.samples)) for s in segment_audio(audio, RATE, vad="energy")]
    seg = Segmenter(RATE, vad="energy")
    step = int(block_seconds * RATE)
    pieces = [s for i in range(0, len(audio), step) for s in seg.feed(audio[i:i + step])] + seg.finish()
    assert [(s.start, len(s.samples)) for s in pieces] == whole


def test_memory_stays_bounded_on_a_long_stream():
    seg = Segmenter(RATE, max_seconds=10.0, vad="energy")
    audio, _ = bursts([("s", 3.0), ("p", 1.0)] * 3)
    most = 0
    for _ in range(20):  # 4 minutes
        seg.feed(audio)
        most = max(most, len(seg.buffer))
    assert most <= (10.0 + 12.0) * RATE  # max_seconds plus one block


def test_webrtc_vad_is_used_where_installed():
    pytest.importorskip("webrtcvad")
    from asr.segmenter import WebRtcVad, make_vad

    assert isinstance(make_vad("auto", 16000), WebRtcVad)
    with pytest.raises(ValueError):
        make_vad("webrtc", 22050)


def test_a_click_in_a_pause_does_not_join_the_speech_around_it():
    audio, ranges = bursts([("p", 0.5), ("s", 1.5), ("p", 0.3), ("p", 0.3), ("s", 1.5), ("p", 0.5)])
    frame = int(FRAME_SECONDS * RATE)
    click = int(2.3 * RATE) // frame * frame  # one whole 30 ms frame, mid-pause
    audio[click:click + frame] = 0.3
    cut = list(segment_audio(audio, RATE, max_seconds=20.0, min_pause=0.4, vad="energy"))
    joined = list(segment_audio(audio, RATE, max_seconds=20.0, min_pause=0.4, vad="energy", max_blip=0.0))
    assert len(check(cut, ranges, 20.0)) == 2  # the 0.6 s pause still ends the first segment
    assert len(check(joined, ranges, 20.0)) == 1  # as a speech frame, the click splits the pause in two


def test_without_blips_keeps_speech_and_drops_lone_frames():
    from asr.segmenter import without_blips

    T, F = True, False
    assert without_blips([F, T, F, T, T, F, T], 1) == [F, F, F, T, T, F, F]  # a lone frame at the end: not yet speech
    assert without_blips([T, F, F, T, T, T], 2) == [F, F, F, T, T, T]
    assert without_blips([T, F, T], 0) == [T, F, T]
