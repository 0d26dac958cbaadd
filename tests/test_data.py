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


def _write_speakers(folder, gains):
    """Two utterances per speaker (noise of 0.6 s and 1.1 s), utterance k of speaker s
    scaled by gains[s][k]; returns the manifest records."""
    import numpy as np
    import soundfile as sf

    from asr.manifest import Utterance

    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    utts = []
    for spk, utt_gains in gains.items():
        for k, (seconds, gain) in enumerate(zip((0.6, 1.1), utt_gains)):
            wave = (0.05 * gain * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
            path = folder / f"{spk}-{k}.wav"
            sf.write(str(path), wave, 16000, subtype="FLOAT")
            utts.append(Utterance(f"{spk}-{k}", str(path), seconds, "A B", spk))
    return utts


def test_speaker_means_are_frame_weighted_means_over_each_speaker(tmp_path):
    from asr.data import speaker_means, utterance_features

    utts = _write_speakers(tmp_path, {"s1": (1.0, 1.0), "s2": (3.0, 3.0)})
    means = speaker_means(utts, FeatureConfig(mean_norm="speaker"), factors=(1.0, 1.1))
    assert set(means) == {("s1", 1.0), ("s1", 1.1), ("s2", 1.0), ("s2", 1.1)}
    s1 = torch.cat([utterance_features(u, FeatureConfig()) for u in utts if u.speaker == "s1"])
    torch.testing.assert_close(means[("s1", 1.0)], s1.mean(0))
    assert not torch.allclose(means[("s1", 1.0)], means[("s1", 1.1)])  # a perturbed copy: its own mean
    assert (means[("s2", 1.0)] - means[("s1", 1.0)]).mean() > 2.0  # gain 3: log(9) ≈ 2.2 higher


def test_speaker_mean_norm_removes_a_speakers_gain_and_keeps_its_utterances_apart(tmp_path):
    """Scaling all of a speaker's audio changes nothing after per-speaker CMN, while the
    level difference between two of its utterances stays (per-utterance CMN removes it)."""
    from asr.data import SpeechDataset
    from asr.features import FeatureStats
    from asr.tokenizer import CharTokenizer

    tok, stats = CharTokenizer.build(["A B"]), FeatureStats(torch.zeros(80), torch.ones(80))
    cfg = FeatureConfig(mean_norm="speaker")
    quiet = SpeechDataset(_write_speakers(tmp_path / "q", {"s1": (1.0, 2.0)}), tok, cfg, stats)
    loud = SpeechDataset(_write_speakers(tmp_path / "l", {"s1": (4.0, 8.0)}), tok, cfg, stats)
    for i in range(2):  # log-mel floor: exact only up to the quietest bins
        torch.testing.assert_close(loud[i].feats, quiet[i].feats, atol=2e-2, rtol=0)
    both = torch.cat([quiet[0].feats, quiet[1].feats])
    torch.testing.assert_close(both.mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    level = (quiet[1].feats.mean(0) - quiet[0].feats.mean(0)).mean()
    assert 1.2 < level < 1.6  # gain 2: log(4) ≈ 1.39
    per_utt = SpeechDataset(quiet.utts, tok, FeatureConfig(mean_norm="utterance"), stats)
    assert abs((per_utt[1].feats.mean(0) - per_utt[0].feats.mean(0)).mean()) < 1e-4


def test_speaker_mean_norm_subtracts_the_given_mean_or_else_the_utterances_own():
    cfg = FeatureConfig(mean_norm="speaker")
    wave = 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(0))
    shift = torch.linspace(-1, 1, 80)
    torch.testing.assert_close(features_of(wave, "x.wav", cfg, mean=shift),
                               features_of(wave, "x.wav", FeatureConfig()) - shift)
    # No speaker mean at hand (a single file to transcribe): the utterance's own mean.
    torch.testing.assert_close(features_of(wave, "x.wav", cfg),
                               features_of(wave, "x.wav", FeatureConfig(mean_norm="utterance")))
