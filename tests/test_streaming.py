"""Streaming: exact incremental log-mel, a unidirectional model carrying its state equals the
model over the whole input, final text equals offline decoding; bidirectional models stream
segment by segment."""

import pytest
import torch

from asr.checkpoint import build_model, load_bundle, save_bundle
from asr.config import load_config
from asr.features import FeatureStats, log_mel
from asr.recognizer import Recognizer
from asr.streaming import StreamingLogMel, StreamingModel
from asr.tokenizer import CharTokenizer
from tests.test_segmenter import bursts


def chunks(audio, sizes):
    i, k = 0, 0
    while i < len(audio):
        n = sizes[k % len(sizes)]
        yield audio[i:i + n]
        i, k = i + n, k + 1


@pytest.mark.parametrize("sizes", [[160], [1000, 37, 4096], [16000]])
def test_streaming_log_mel_equals_log_mel(sizes):
    cfg = load_config().features
    audio, _ = bursts([("p", 0.3), ("s", 1.2), ("p", 0.4)], seed=2)
    stream = StreamingLogMel(cfg)
    frames = [stream.push(c) for c in chunks(audio, sizes)] + [stream.finish()]
    streamed = torch.cat(frames)
    offline = log_mel(torch.from_numpy(audio), cfg)
    assert streamed.shape == offline.shape
    torch.testing.assert_close(streamed, offline, atol=1e-4, rtol=1e-5)


def uni_bundle(tmp_path, subsampling="conv", factor=4):
    cfg = load_config(None, ["model.bidirectional=false", "model.hidden_size=24", "model.n_layers=2",
                             "model.rnn_type=lstm", "model.conv_channels=4", f"model.subsampling={subsampling}",
                             f"model.subsampling_factor={factor}"])
    tok = CharTokenizer.build(["ABC DE"])
    torch.manual_seed(0)
    model = build_model(cfg, len(tok))
    with torch.no_grad():  # a sharper output layer, so that the text is not all blanks
        model.output.weight.mul_(8)
    path = tmp_path / "uni.pt"
    save_bundle(path, cfg=cfg, tokenizer=tok, stats=FeatureStats(torch.full((80,), -6.0), torch.full((80,), 3.0)),
                model=model, info={})
    return load_bundle(path)


@pytest.mark.parametrize("subsampling, factor", [("conv", 4), ("conv", 2), ("stack", 3)])
def test_state_carrying_model_equals_the_whole_input(tmp_path, subsampling, factor):
    bundle = uni_bundle(tmp_path, subsampling, factor)
    feats = torch.randn(203, 80)
    with torch.no_grad():
        offline, n = bundle.model(feats.unsqueeze(0), torch.tensor([203]))
    stream = StreamingModel(bundle.model)
    out = torch.cat([stream.push(feats[i:i + k]) for i, k in zip(range(0, 203, 13), [13] * 16)])
    assert out.shape[0] == int(n[0])
    torch.testing.assert_close(out, offline[0], atol=1e-5, rtol=1e-5)


def test_unidirectional_stream_gives_the_offline_text(tmp_path):
    bundle = uni_bundle(tmp_path)
    rec = Recognizer(bundle, "cpu")
    audio, _ = bursts([("p", 0.2), ("s", 2.0), ("p", 0.5), ("s", 1.5)], seed=4)
    stream = rec.stream(timestamps=True)
    partials = [stream.feed(c) for c in chunks(audio, [1600])]  # 100 ms chunks
    final = stream.finish()
    offline = rec.transcribe(audio, timestamps=True)
    assert final.text == offline.text and final.text
    assert [(w.word, w.start, w.end) for w in final.words] == [(w.word, w.start, w.end) for w in offline.words]
    assert partials[-1] and final.text.startswith(partials[len(partials) // 2][:1])
    greedy = rec.with_decode(method="greedy")
    s2 = greedy.stream()
    for c in chunks(audio, [3000]):
        s2.feed(c)
    assert s2.finish().text == greedy.transcribe(audio).text


def test_bidirectional_model_streams_segment_by_segment(tmp_path):
    cfg = load_config(None, ["model.hidden_size=16", "model.n_layers=1", "model.conv_channels=4"])
    tok = CharTokenizer.build(["ABC"])
    torch.manual_seed(0)
    save_bundle(tmp_path / "bi.pt", cfg=cfg, tokenizer=tok, stats=FeatureStats(torch.zeros(80), torch.ones(80)),
                model=build_model(cfg, len(tok)), info={})
    rec = Recognizer(load_bundle(tmp_path / "bi.pt"), "cpu", max_seconds=6.0)
    audio, _ = bursts([("s", 2.0), ("p", 0.8), ("s", 2.5), ("p", 1.0)] * 3, seed=5)
    stream = rec.stream()
    for c in chunks(audio, [4000]):
        stream.feed(c)
    final = stream.finish()
    offline = rec.transcribe(audio)
    assert final.text == offline.text
    assert [(s.start, s.end) for s in final.segments] == [(s.start, s.end) for s in offline.segments]
    short = rec.stream()
    short.feed(audio[:32000])
    assert short.finish().text == rec.transcribe(audio[:32000]).text


def test_stream_needs_global_normalization(tmp_path):
    bundle = uni_bundle(tmp_path)
    bundle.config = load_config(None, ["model.bidirectional=false", "features.mean_norm=utterance"])
    rec = Recognizer(bundle, "cpu")
    with pytest.raises(ValueError, match="needs the whole utterance"):
        rec.stream()


def test_cli_streams_pcm_from_stdin_even_cut_mid_sample(tmp_path):
    import subprocess
    import sys

    bundle_path = tmp_path / "uni.pt"
    uni_bundle(tmp_path)
    audio, _ = bursts([("p", 0.2), ("s", 2.0), ("p", 0.3)], seed=6)
    pcm = (audio * 32767).astype("<i2").tobytes() + b"\x01"  # one odd byte: cut in the middle of a sample
    r = subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", "--model", str(bundle_path), "--stream", "-",
                        "--latency", "--set", "decode.method=greedy"], input=pcm, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    err = r.stderr.decode()
    assert "ended in the middle of a sample" in err and "chunks of 100 ms: processing per chunk mean" in err
    offline = Recognizer(load_bundle(bundle_path), "cpu").with_decode(method="greedy")
    expected = offline.transcribe((audio * 32767).astype("<i2")).text
    assert r.stdout.decode().strip() == expected
    bad = subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", "--model", str(bundle_path), "--stream", "x"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "--stream x: expected - (stdin) or mic" in bad.stderr


def test_a_long_unidirectional_stream_gives_the_offline_segments_and_live_partials(tmp_path):
    bundle = uni_bundle(tmp_path)
    rec = Recognizer(bundle, "cpu", max_seconds=6.0)
    audio, _ = bursts([("s", 2.0), ("p", 0.8), ("s", 2.5), ("p", 1.0)] * 4, seed=7)
    stream = rec.stream()
    partials = [stream.feed(c) for c in chunks(audio, [1600])]
    final = stream.finish()
    offline = rec.transcribe(audio)
    assert final.text == offline.text and len(final.segments) == len(offline.segments) > 2
    assert [(s.start, s.end) for s in final.segments] == [(s.start, s.end) for s in offline.segments]
    assert any(p for p in partials[:20])  # text before the first segment has ended: the live part
    assert len(stream.live.tokens) < 200  # tokens of finished segments are forgotten
