import torch

from asr.config import FeatureConfig
from asr.data import BucketBatchSampler, Example, collate, features_of


def test_bucket_sampler_covers_all_once_and_respects_budget():
    frames = [50 + (i * 37) % 400 for i in range(200)]
    sampler = BucketBatchSampler(frames, max_frames=2000, shuffle=True, seed=7)
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(200))
        for b in batches:
            assert max(frames[i] for i in b) * len(b) <= 2000 or len(b) == 1
    sampler.set_epoch(1)
    first = list(sampler)
    sampler.set_epoch(2)
    assert list(sampler) != first  # batches change between epochs
    sampler.set_epoch(1)
    assert list(sampler) == first  # and are reproducible


def test_sortagrad_epochs_go_from_short_to_long():
    frames = [50 + (i * 37) % 400 for i in range(200)]
    sampler = BucketBatchSampler(frames, max_frames=2000, shuffle=True, seed=7, sorted_epochs=1)
    sampler.set_epoch(1)
    longest = [max(frames[i] for i in b) for b in sampler]
    assert longest == sorted(longest)
    sampler.set_epoch(2)
    longest = [max(frames[i] for i in b) for b in sampler]
    assert longest != sorted(longest)


def test_bucket_sampler_groups_similar_lengths():
    frames = [100] * 10 + [1000] * 10
    batches = BucketBatchSampler(frames, max_frames=5000, shuffle=False).batches()
    assert all(len({frames[i] for i in b}) == 1 for b in batches)
    assert BucketBatchSampler([6000], max_frames=5000).batches() == [[0]]  # an oversized one still runs


def test_collate_pads_and_records_lengths():
    ex = [Example("a", torch.ones(3, 2), torch.tensor([1, 2])), Example("b", torch.ones(5, 2), torch.tensor([3]))]
    b = collate(ex)
    assert b.feats.shape == (2, 5, 2) and b.feats[0, 3:].abs().sum() == 0
    assert b.feat_lens.tolist() == [3, 5] and b.target_lens.tolist() == [2, 1]
    assert b.targets.tolist() == [[1, 2], [3, 0]] and b.ids == ["a", "b"]


def test_count_batches_matches_the_batches_each_epoch_gives():
    frames = [50 + (i * 37) % 400 for i in range(200)]
    sampler = BucketBatchSampler(frames, max_frames=2000, shuffle=True, seed=7, sorted_epochs=1)
    sampler.set_epoch(5)
    per_epoch = []
    for epoch in range(1, 6):
        sampler.set_epoch(epoch)
        per_epoch.append(len(list(sampler)))
    assert len(set(per_epoch)) > 1  # the count does vary, so one epoch's count times 5 is wrong
    sampler.set_epoch(3)
    assert sampler.count_batches(range(1, 6)) == sum(per_epoch)
    assert sampler.epoch == 3  # unchanged


def test_segments_load_exactly_the_span_of_the_longer_file(tmp_path):
    """A manifest segment (offset, duration) gives the features of that span cut out by hand,
    also for a segment starting at 0 (which is not the whole file)."""
    import numpy as np
    import soundfile as sf

    from asr.config import FeatureConfig
    from asr.data import utterance_features
    from asr.features import log_mel
    from asr.audio import load_audio
    from asr.manifest import Utterance

    rate = 16000
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(3 * rate)).astype(np.float32)
    sf.write(str(tmp_path / "talk.sph"), wave, rate, format="NIST", subtype="PCM_16")
    cfg = FeatureConfig()
    for offset, duration in ((0.0, 1.25), (1.5, 0.75)):
        start, stop = int(offset * rate), int((offset + duration) * rate)
        sf.write(str(tmp_path / "cut.wav"), sf.read(str(tmp_path / "talk.sph"))[0][start:stop], rate, subtype="PCM_16")
        expected = log_mel(load_audio(tmp_path / "cut.wav"), cfg)
        utt = Utterance("seg", str(tmp_path / "talk.sph"), duration, "X", "s", offset=offset)
        got = utterance_features(utt, cfg)
        assert got.shape == expected.shape and torch.equal(got, expected)
    whole = utterance_features(Utterance("all", str(tmp_path / "talk.sph"), 1.0, "X", "s"), cfg)
    assert whole.shape == log_mel(load_audio(tmp_path / "talk.sph"), cfg).shape  # no offset: the whole file


def test_utterance_mean_norm_removes_a_constant_gain():
    """With features.mean_norm "utterance", each bin has zero mean over the utterance, so
    scaling the waveform (a constant shift of every log-mel bin) changes nothing."""
    cfg = FeatureConfig(mean_norm="utterance")
    wave = 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(0))  # energy in every bin
    feats = features_of(wave, "x.wav", cfg)
    torch.testing.assert_close(feats.mean(0), torch.zeros(cfg.n_mels), atol=1e-4, rtol=0)
    torch.testing.assert_close(features_of(4 * wave, "x.wav", cfg), feats, atol=5e-3, rtol=0)
    plain = features_of(wave, "x.wav", FeatureConfig())
    assert (features_of(4 * wave, "x.wav", FeatureConfig()) - plain).mean() > 2.5  # log(16) ≈ 2.77
