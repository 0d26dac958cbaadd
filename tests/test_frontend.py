"""Features on the device (train.features_on_device): batched log-mel, normalization and
SpecAugment equal the loader's per-utterance path (checked here on CPU tensors), and a
training run uses them."""

import pytest
import torch

from asr.config import AugmentConfig, load_config
from asr.data import DeviceFrontend, SpeechDataset, collate, speaker_means
from asr.features import FeatureStats, batch_log_mel, log_mel, reflect_pad, spec_augment, spec_augment_batch
from asr.manifest import read_manifest
from asr.tokenizer import CharTokenizer


@pytest.fixture(scope="module")
def utts(an4_prepared):
    return read_manifest(an4_prepared / "manifests" / "train.jsonl")[:5]


@pytest.mark.parametrize("mean_norm", ["global", "utterance", "speaker"])
def test_device_features_equal_the_loader_features(utts, mean_norm):
    cfg = load_config(None, [f"features.mean_norm={mean_norm}"])
    tok = CharTokenizer.build([u.text for u in utts])
    stats = FeatureStats(torch.randn(80), torch.rand(80) + 0.5)
    means = speaker_means(utts, cfg.features) if mean_norm == "speaker" else None
    loader_path = collate([SpeechDataset(utts, tok, cfg.features, stats, means=means)[i] for i in range(len(utts))])
    waves = collate([SpeechDataset(utts, tok, cfg.features, stats, means=means, waves_only=True)[i]
                     for i in range(len(utts))])
    feats, lens = DeviceFrontend(cfg.features, stats)(waves, torch.device("cpu"))
    assert torch.equal(lens, loader_path.feat_lens)
    torch.testing.assert_close(feats, loader_path.feats, atol=1e-4, rtol=1e-5)
    assert torch.equal(waves.targets, loader_path.targets)


def test_batched_features_on_another_device_leave_the_cpu_front_end_on_the_cpu():
    """Training with features on a GPU still computes log-mel on the CPU (statistics, dev
    decoding): the batched path once moved the shared cached transform to its device, and the
    next CPU log_mel failed ("stft input and window must be on the same device"). The meta
    device stands in for CUDA here."""
    cfg = load_config().features
    wave = torch.randn(16000) * 0.1
    before = log_mel(wave, cfg)
    padded = reflect_pad(wave, cfg)
    feats, _ = batch_log_mel(padded[None].to("meta"), torch.tensor([len(padded)]), cfg)
    assert feats.device.type == "meta"
    torch.testing.assert_close(log_mel(wave, cfg), before)


def test_batched_spec_augment_draws_the_masks_spec_augment_draws():
    cfg = AugmentConfig(n_freq_masks=2, freq_mask_width=20, n_time_masks=3, time_mask_width=30, time_mask_ratio=0.2)
    lens = torch.tensor([120, 75, 200])
    feats = torch.randn(3, 200, 80)
    for b, n in enumerate(lens.tolist()):
        feats[b, n:] = 0
    batched = spec_augment_batch(feats, lens, cfg, torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)
    for b, n in enumerate(lens.tolist()):
        torch.testing.assert_close(batched[b, :n], spec_augment(feats[b, :n], cfg, gen))
        assert torch.equal(batched[b, n:], feats[b, n:])  # padding untouched
    assert (batched == 0).sum() > (feats == 0).sum()  # masks were applied


def test_training_with_features_on_the_device(utts, tmp_path):
    from asr.checkpoint import load_bundle
    from asr.train import train

    cfg = load_config(None, ["model.hidden_size=16", "model.n_layers=1", "model.conv_channels=4",
                             "train.epochs=1", "train.features_on_device=true", "augment.speed_factors=[0.9, 1.0]"])
    train(cfg, utts, utts[:2], tmp_path, progress=False, log=lambda s: None)
    assert load_bundle(tmp_path / "model.pt").config.train.features_on_device
