"""asr.augment: the numbers of each augmentation (SNR, band limit, power, spectra), seeding,
and its use in training data."""

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.augment import (
    CODECS,
    WaveAugmenter,
    coloured_noise,
    mix_at_snr,
    power,
    reverberate,
    simulate_rir,
    telephone,
)
from asr.config import AugmentConfig, load_config
from asr.errors import AsrError
from asr.manifest import Utterance

RATE = 16000


def speech_like(seconds=2.0, seed=0):
    """Harmonics with a syllable-rate envelope: power that varies over time, as speech's does."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    wave = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / k for k, f in enumerate((140, 280, 560, 1100, 2300, 5200), 1))
    return (0.2 * wave * (0.3 + np.abs(np.sin(2 * np.pi * 3 * t)))).astype(np.float32)


def snr_db(clean, mixed):
    return 10 * np.log10(power(clean) / power(mixed - clean))


def band_energy(wave, low_hz):
    spectrum = np.abs(np.fft.rfft(wave.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / RATE)
    return spectrum[freqs > low_hz].sum() / spectrum.sum()


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
@pytest.mark.parametrize("target", [-5.0, 0.0, 5.0, 10.0, 20.0])
def test_noise_is_mixed_at_the_target_snr(colour, target):
    speech = speech_like()
    noise = coloured_noise(len(speech), colour, np.random.default_rng(1))
    assert snr_db(speech, mix_at_snr(speech, noise, target)) == pytest.approx(target, abs=0.5)


@pytest.mark.parametrize("n", [2 ** 18, 262139])  # a power of two; a prime (shaped over a longer FFT, then cut)
def test_noise_colours_have_their_spectral_slopes(n):
    """Power per octave band: white rises 3 dB an octave, pink is flat, brown falls 3 dB."""
    rng = np.random.default_rng(0)
    for colour, slope in (("white", 3.0), ("pink", 0.0), ("brown", -3.0)):
        noise = coloured_noise(n, colour, rng)
        assert len(noise) == n and noise.dtype == np.float32
        assert power(noise) == pytest.approx(1.0, rel=1e-3)
        spectrum = np.abs(np.fft.rfft(noise.astype(np.float64))) ** 2
        freqs = np.fft.rfftfreq(len(noise), 1 / RATE)
        bands = [spectrum[(freqs >= f) & (freqs < 2 * f)].sum() for f in (250, 500, 1000, 2000)]
        per_octave = np.diff(10 * np.log10(bands))
        assert per_octave == pytest.approx([slope] * 3, abs=0.6), colour


@pytest.mark.parametrize("codec", CODECS)
def test_telephone_channel_has_no_energy_above_4_khz(codec):
    speech = speech_like()
    assert band_energy(speech, 4000) > 0.01  # the 5.2 kHz harmonic is there before
    phone = telephone(speech, RATE, codec)
    assert len(phone) == len(speech) and phone.dtype == np.float32
    assert band_energy(phone, 4000) < 1e-4  # below -40 dB of the total
    assert power(phone) > 0.3 * power(speech)  # the band below 4 kHz gets through


def test_reverberation_keeps_power_and_timing():
    rng = np.random.default_rng(0)
    rir = simulate_rir(RATE, 0.5, rng)
    assert np.abs(rir).max() == pytest.approx(1.0)
    click = np.zeros(RATE, dtype=np.float32)
    click[4000] = 1.0
    wet = reverberate(click, rir)
    assert int(np.abs(wet).argmax()) == 4000  # the direct path stays where the sound was
    assert (np.abs(wet[4100:]) > 1e-3).sum() > 100  # and the room's tail follows it
    speech = speech_like()
    assert power(reverberate(speech, rir)) == pytest.approx(power(speech), rel=1e-4)


def augmenter(tmp_path, **changes):
    pool = []
    for k in range(4):
        path = tmp_path / f"talker{k}.wav"
        sf.write(str(path), speech_like(1.0 + 0.3 * k, seed=k), RATE)
        pool.append(Utterance(f"t{k}", str(path), 1.0, "A", f"s{k}"))
    from asr.audio import load_audio

    cfg = dataclasses.replace(AugmentConfig(), **changes)
    return WaveAugmenter(cfg, RATE, pool, load=lambda u: load_audio(u.audio).numpy(), seed=3)


def test_the_same_seed_gives_the_same_audio(tmp_path):
    aug = augmenter(tmp_path, noise_prob=1.0, reverb_prob=1.0, telephone_prob=1.0, gain_prob=1.0, rir_bank=4)
    speech = speech_like()
    a = aug(speech, np.random.default_rng([7, 1, 0]), exclude="t0")
    b = aug(speech, np.random.default_rng([7, 1, 0]), exclude="t0")
    c = aug(speech, np.random.default_rng([7, 2, 0]), exclude="t0")
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert a.shape == speech.shape and np.isfinite(a).all() and np.abs(a).max() <= 1.0


def test_babble_mixes_other_utterances_at_the_target_snr(tmp_path):
    aug = augmenter(tmp_path, noise_prob=1.0, noise_weights=(0.0, 1.0, 0.0), noise_snr_db=(5.0, 5.0),
                    babble_speakers=(2.0, 2.0))
    speech = speech_like(seed=9)
    out = aug(speech, np.random.default_rng(0), exclude="t0")
    assert snr_db(speech, out) == pytest.approx(5.0, abs=0.5)
    babble = aug.babble(len(speech), np.random.default_rng(0), exclude="t0")
    assert power(babble) > 0 and not np.allclose(babble, 0)


def test_noise_folder_recordings_are_used(tmp_path):
    noise_dir = tmp_path / "noise" / "sub"
    noise_dir.mkdir(parents=True)
    sf.write(str(noise_dir / "hum.flac"), 0.05 * np.sin(2 * np.pi * 50 * np.arange(8000) / RATE), RATE)
    aug = augmenter(tmp_path, noise_prob=1.0, noise_weights=(0.0, 0.0, 1.0), noise_snr_db=(10.0, 10.0),
                    noise_dir=str(tmp_path / "noise"))
    speech = speech_like()
    out = aug(speech, np.random.default_rng(0))
    residual = out - speech
    assert snr_db(speech, out) == pytest.approx(10.0, abs=0.5)
    freqs = np.fft.rfftfreq(len(residual), 1 / RATE)
    assert freqs[np.abs(np.fft.rfft(residual)).argmax()] == pytest.approx(50, abs=1)  # the hum, looped


def test_missing_folders_and_bad_ranges_are_refused(tmp_path):
    with pytest.raises(AsrError, match="no such noise folder"):
        augmenter(tmp_path, noise_prob=0.5, noise_dir=str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AsrError, match="no audio files"):
        augmenter(tmp_path, reverb_prob=0.5, rir_dir=str(tmp_path / "empty"))
    for override, message in (("augment.noise_prob=1.5", "augment.noise_prob must be a probability"),
                              ("augment.noise_snr_db=[20, 0]", "augment.noise_snr_db must be"),
                              ("augment.noise_weights=[1, 1]", "augment.noise_weights must be three")):
        with pytest.raises(AsrError, match=message):
            load_config(None, [override])


def test_training_examples_are_seeded_by_epoch_and_index(tmp_path):
    from asr.data import SpeechDataset
    from asr.features import FeatureStats
    from asr.tokenizer import CharTokenizer

    aug = augmenter(tmp_path, noise_prob=1.0, noise_weights=(1.0, 0.0, 0.0))
    utts = aug.babble_pool
    ds = SpeechDataset(utts, CharTokenizer.build(["A"]), load_config().features,
                       FeatureStats(torch.zeros(80), torch.ones(80)), wave_augmenter=aug, seed=5)
    first = ds[1].feats
    assert torch.equal(first, ds[1].feats)  # the same (seed, epoch, index): the same features
    ds.set_epoch(2)
    assert not torch.equal(first, ds[1].feats)  # another epoch: another noise
    clean = SpeechDataset(utts, CharTokenizer.build(["A"]), load_config().features,
                          FeatureStats(torch.zeros(80), torch.ones(80)))
    assert not torch.equal(first, clean[1].feats)


def test_joined_utterances_are_one_speakers_with_natural_pauses(tmp_path):
    from asr.augment import concatenated_utterances

    rng = np.random.default_rng(0)
    utts = []
    for k in range(6):
        path = tmp_path / f"u{k}.wav"
        quiet = 0.001 * rng.standard_normal(4000)  # the speaker's room, before and after
        sf.write(str(path), np.concatenate([quiet, speech_like(1.0, seed=k), quiet]).astype(np.float32), RATE)
        utts.append(Utterance(f"u{k}", str(path), 1.5, f"W{k}", "spk_a" if k < 3 else "spk_b"))
    from asr.audio import load_audio

    load = lambda u: load_audio(u.audio).numpy()  # noqa: E731
    joined = concatenated_utterances(utts, 1.0, (2.0, 3.0), tmp_path / "c", seed=1, sample_rate=RATE, load=load)
    assert len(joined) == 6
    texts = {u.id: u.text for u in utts}
    for j in joined:
        words = j.text.split()
        assert 2 <= len(words) <= 3 and len(set(words)) == len(words)
        speakers = {next(u.speaker for u in utts if u.text == w) for w in words}
        assert speakers == {j.speaker}  # one speaker's utterances
        wave = load(j)
        assert len(wave) / RATE == pytest.approx(j.duration, abs=1e-3)
        # between the utterances: 0.2-0.8 s of that speaker's background, never louder than it was
        assert 1.5 * len(words) + 0.2 * (len(words) - 1) - 0.01 <= j.duration <= 1.5 * len(words) + 0.8 * (len(words) - 1) + 0.01
    again = concatenated_utterances(utts, 1.0, (2.0, 3.0), tmp_path / "c", seed=1, sample_rate=RATE, load=load)
    assert [(u.id, u.text) for u in again] == [(u.id, u.text) for u in joined]  # the same request reuses them
    assert set(texts.values()) >= {w for j in joined for w in j.text.split()}


def test_wave_augmentation_waits_for_its_epoch(tmp_path):
    from asr.data import SpeechDataset
    from asr.features import FeatureStats
    from asr.tokenizer import CharTokenizer

    aug = augmenter(tmp_path, noise_prob=1.0, noise_weights=(1.0, 0.0, 0.0))
    cfg = dataclasses.replace(AugmentConfig(n_freq_masks=0, n_time_masks=0), wave_augment_from_epoch=3)
    args = (aug.babble_pool, CharTokenizer.build(["A"]), load_config().features, FeatureStats(torch.zeros(80), torch.ones(80)))
    augmented = SpeechDataset(*args, augment=cfg, wave_augmenter=aug, seed=5)
    clean = SpeechDataset(*args, augment=cfg)
    augmented.set_epoch(2)
    assert torch.equal(augmented[0].feats, clean[0].feats)
    augmented.set_epoch(3)
    assert not torch.equal(augmented[0].feats, clean[0].feats)


def test_a_loader_worker_process_augments_as_the_training_process_does(tmp_path):
    """With train.num_workers > 0 the worker, forked for each epoch, sees the epoch that
    set_epoch gave the dataset: the same noise, from the same epoch on, as without workers."""
    from asr.data import SpeechDataset, make_loader
    from asr.features import FeatureStats
    from asr.tokenizer import CharTokenizer

    aug = augmenter(tmp_path, noise_prob=1.0, noise_weights=(1.0, 0.0, 0.0))
    cfg = dataclasses.replace(AugmentConfig(n_freq_masks=0, n_time_masks=0), wave_augment_from_epoch=3)
    args = (aug.babble_pool, CharTokenizer.build(["A"]), load_config().features, FeatureStats(torch.zeros(80), torch.ones(80)))
    feats = {}
    for name, workers, wave_augmenter in (("clean", 0, None), ("main", 0, aug), ("worker", 1, aug)):
        ds = SpeechDataset(*args, augment=cfg, wave_augmenter=wave_augmenter, seed=5)
        loader, sampler = make_loader(ds, 400, True, seed=1, num_workers=workers)
        for epoch in (2, 3):
            sampler.set_epoch(epoch)
            ds.set_epoch(epoch)
            feats[name, epoch] = [b.feats for b in loader]
    same = lambda x, y: len(x) == len(y) > 1 and all(torch.equal(a, b) for a, b in zip(x, y))  # noqa: E731
    assert same(feats["worker", 2], feats["main", 2]) and same(feats["worker", 3], feats["main", 3])
    assert same(feats["worker", 2], feats["clean", 2])  # no noise before epoch 3
    assert not same(feats["worker", 3], feats["clean", 3])


def test_shift_drops_a_random_start_of_at_most_shift_seconds():
    from asr.data import random_start
    from asr.features import min_samples

    feat = load_config().features
    wave = torch.arange(RATE, dtype=torch.float32)  # sample i holds i: what is left shows the cut
    firsts = [int(random_start(wave, 0.15, feat)[0]) for _ in range(300)]
    assert min(firsts) >= 0 and max(firsts) <= int(0.15 * RATE)
    assert len(set(firsts)) > 200 and max(firsts) > 0.1 * RATE  # any sample, across the range
    short = torch.zeros(min_samples(feat) + 10)
    assert all(len(random_start(short, 0.15, feat)) >= min_samples(feat) for _ in range(50))
    assert torch.equal(random_start(wave, 0.0, feat), wave)


def test_shift_applies_to_training_examples_only_when_set(tmp_path):
    from asr.data import SpeechDataset
    from asr.features import FeatureStats
    from asr.tokenizer import CharTokenizer

    aug = augmenter(tmp_path)
    args = (aug.babble_pool, CharTokenizer.build(["A"]), load_config().features, FeatureStats(torch.zeros(80), torch.ones(80)))
    plain = AugmentConfig(n_freq_masks=0, n_time_masks=0)
    full = SpeechDataset(*args, augment=plain)[0].feats.shape[0]
    shifted = SpeechDataset(*args, augment=dataclasses.replace(plain, shift_seconds=0.5))
    lengths = {shifted[0].feats.shape[0] for _ in range(20)}
    assert max(lengths) <= full and min(lengths) < full and len(lengths) > 1
    assert {SpeechDataset(*args, augment=plain)[0].feats.shape[0] for _ in range(5)} == {full}


def test_shift_is_refused_out_of_range_and_with_teachers():
    with pytest.raises(AsrError, match="augment.shift_seconds must be in"):
        load_config(None, ["augment.shift_seconds=-0.1"])
    with pytest.raises(AsrError, match="cannot be used with distill.teachers"):
        load_config(None, ["augment.shift_seconds=0.1", "distill.teachers=[a.pt]"])
