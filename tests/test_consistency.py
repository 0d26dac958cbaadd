"""Consistency-regularized CTC (asr/consistency.py, train.cr_ctc_weight)."""

from types import SimpleNamespace

import pytest
import torch

from asr.checkpoint import build_model
from asr.config import AugmentConfig, load_config
from asr.consistency import consistency_loss, two_views
from asr.data import SpeechDataset, utterance_features
from asr.errors import AsrError
from asr.features import FeatureStats
from asr.manifest import read_manifest
from asr.model import WithIntermediate, ctc_loss_sum
from asr.tokenizer import CharTokenizer
from asr.train import batch_loss, train

TINY = ["model.hidden_size=16", "model.n_layers=1", "model.conv_channels=4", "train.warmup_steps=2",
        "train.max_batch_frames=1500", "augment.speed_factors=[0.9, 1.1]"]


def test_two_views_masks_each_copy_independently():
    feats = torch.randn(3, 50, 20) + 5.0  # no value is 0 before masking
    lens = torch.tensor([50, 40, 30])
    aug = AugmentConfig(n_freq_masks=2, freq_mask_width=6, n_time_masks=2, time_mask_width=10, time_mask_ratio=0.3)
    out, lens2 = two_views(feats, lens, aug, torch.Generator().manual_seed(0))
    assert out.shape == (6, 50, 20) and lens2.tolist() == [50, 40, 30, 50, 40, 30]
    for b in range(3):
        for view in (out[b], out[3 + b]):
            kept = view != 0
            assert torch.equal(view[kept], feats[b][kept])  # only masked (zeroed), nothing else changed
        assert not torch.equal(out[b], out[3 + b])  # two draws, two different masks
    plain, _ = two_views(feats, lens, None)
    assert torch.equal(plain[:3], feats) and torch.equal(plain[3:], feats)


def test_consistency_loss_is_the_kl_between_the_views_over_valid_frames():
    torch.manual_seed(0)
    a, b = torch.randn(2, 7, 5).log_softmax(-1), torch.randn(2, 7, 5).log_softmax(-1)
    lens = torch.tensor([7, 4, 7, 4])
    log_probs = torch.cat([a, b]).requires_grad_()
    loss = consistency_loss(log_probs, lens)

    def kl(p, q):  # sum over tokens of p (log p - log q), per frame
        return (p.exp() * (p - q)).sum(-1)

    expected = sum((kl(b[i], a[i]) + kl(a[i], b[i]))[:n].sum() for i, n in enumerate([7, 4]))
    assert torch.allclose(loss, expected, atol=1e-5)
    # the other view is held fixed: d loss / d log q = -p(other), and nothing on padded frames
    loss.backward()
    assert torch.allclose(log_probs.grad[0], -b[0].exp(), atol=1e-6)
    assert torch.allclose(log_probs.grad[3, :4], -a[1, :4].exp(), atol=1e-6)
    assert torch.equal(log_probs.grad[1, 4:], torch.zeros(3, 5))
    same = torch.cat([a, a])
    assert float(consistency_loss(same, lens)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="even"):
        consistency_loss(a[:1], lens[:1])


@pytest.mark.parametrize("on_device", [False, True])
def test_cr_ctc_trains_on_two_differently_masked_views(an4_prepared, tmp_path, monkeypatch, on_device):
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:6]
    seen = []
    forward = WithIntermediate.forward

    def spy(self, feats, feat_lens):
        if self.training:
            seen.append((feats.detach().clone(), feat_lens.clone()))
        return forward(self, feats, feat_lens)

    monkeypatch.setattr(WithIntermediate, "forward", spy)
    log = []
    cfg = load_config(None, TINY + ["train.epochs=1", "train.cr_ctc_weight=0.2", "augment.time_mask_ratio=0.2",
                                    f"train.features_on_device={str(on_device).lower()}"])
    train(cfg, utts, utts[:2], tmp_path, progress=False, log=log.append)
    assert (tmp_path / "model.pt").is_file()
    assert sum(f.shape[0] for f, _ in seen) == 2 * len(utts)  # every utterance twice
    differ = 0
    for feats, lens in seen:
        n = feats.shape[0] // 2
        assert torch.equal(lens[:n], lens[n:])
        a, b = feats[:n], feats[n:]
        both = (a != 0) & (b != 0)
        assert torch.equal(a[both], b[both])  # the same audio, speed and noise
        differ += int(not torch.equal(a, b))
    assert differ == len(seen)  # and different masks
    loss = float(next(line for line in log if line.startswith("epoch")).split("train loss")[1].split("|")[0])
    assert loss == loss and loss > 0


def test_cr_ctc_settings_are_checked():
    with pytest.raises(AsrError, match="cr_ctc_weight"):
        load_config(None, ["train.cr_ctc_weight=-1"])
    with pytest.raises(AsrError, match="distill.teachers"):
        load_config(None, ["train.cr_ctc_weight=0.2", "distill.teachers=a.pt"])


def test_without_masks_in_the_loader_items_are_the_plain_features(an4_prepared):
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:2]
    cfg = load_config(None, ["augment.time_mask_ratio=0.5", "augment.n_time_masks=4"])
    tok = CharTokenizer.build(u.text for u in utts)
    stats = FeatureStats.compute(utterance_features(u, cfg.features) for u in utts)
    plain = SpeechDataset(utts, tok, cfg.features, stats)
    for mask, same in ((False, True), (True, False)):
        data = SpeechDataset(utts, tok, cfg.features, stats, augment=cfg.augment, mask=mask)
        assert torch.equal(data[0].feats, plain[0].feats) is same  # masked once, in the step, or here


def test_batch_loss_is_the_views_mean_ctc_plus_half_the_weighted_kl_of_both_directions():
    torch.manual_seed(0)
    cfg = load_config(None, ["model.hidden_size=16", "model.n_layers=1", "model.conv_channels=4",
                             "train.cr_ctc_weight=0.7", "augment.time_mask_ratio=0.3", "train.precision=fp32"])
    model = build_model(cfg, 6).eval()  # no dropout: the views differ by their masks alone
    run = SimpleNamespace(cfg=cfg, device=torch.device("cpu"), net=WithIntermediate(model), amp_dtype=None)
    feats, lens = torch.randn(2, 60, cfg.features.n_mels), torch.tensor([60, 44])
    targets, target_lens = torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([3, 2])
    batch = SimpleNamespace(targets=targets, target_lens=target_lens, teacher=None)
    loss = batch_loss(run, batch, feats, lens, torch.Generator().manual_seed(3))

    views, lens2 = two_views(feats, lens, cfg.augment, torch.Generator().manual_seed(3))
    with torch.no_grad():
        (a, a_lens), (b, b_lens) = (model(views[:2], lens2[:2]), model(views[2:], lens2[2:]))
    ctc = 0.5 * (ctc_loss_sum(a, a_lens, targets, target_lens) + ctc_loss_sum(b, b_lens, targets, target_lens))
    kl = sum((p.exp() * (p - q)).sum(-1)[:n].sum() + (q.exp() * (q - p)).sum(-1)[:n].sum()
             for p, q, n in zip(a, b, a_lens.tolist()))
    assert float(loss.detach()) == pytest.approx(float(ctc + 0.7 * 0.5 * kl), rel=1e-4)
