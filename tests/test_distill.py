import math

import numpy as np
import pytest
import torch

from asr.augment import WaveAugmenter
from asr.checkpoint import load_bundle
from asr.config import load_config
from asr.data import SpeechDataset, collate, features_of, load_utterance
from asr.distill import distill_loss_sum, distill_objective, load_teachers, teacher_targets
from asr.model import ctc_loss_sum
from asr.errors import AsrError
from asr.features import speed_perturb
from asr.manifest import read_manifest
from asr.train import train
from tests.conftest import save_tiny_model
from tests.test_train import TINY

QUIET = {"progress": False, "log": lambda s: None}


def test_distill_loss_is_the_kl_divergence_over_valid_frames():
    torch.manual_seed(0)
    student = torch.randn(2, 6, 5).log_softmax(-1)
    teacher = torch.randn(2, 6, 5).log_softmax(-1)
    out_lens, teacher_lens = torch.tensor([6, 4]), torch.tensor([6, 3])
    loss = distill_loss_sum(student, out_lens, teacher, teacher_lens)
    expected = sum(
        float((teacher[b, t].exp() * (teacher[b, t] - student[b, t])).sum())
        for b, n in ((0, 6), (1, 3)) for t in range(n))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(distill_loss_sum(teacher, out_lens, teacher, teacher_lens)) == pytest.approx(0.0, abs=1e-5)
    # frames past an utterance's length, and utterances without targets, count nothing
    changed = student.clone()
    changed[1, 3:] = torch.randn(3, 5).log_softmax(-1)
    assert float(distill_loss_sum(changed, out_lens, teacher, teacher_lens)) == pytest.approx(expected, rel=1e-5)
    assert float(distill_loss_sum(student, out_lens, teacher, torch.tensor([0, 0]))) == 0.0


def test_distill_temperature_softens_both_sides_and_scales_by_its_square():
    torch.manual_seed(1)
    student = torch.randn(1, 4, 5).log_softmax(-1)
    teacher = torch.randn(1, 4, 5).log_softmax(-1)
    lens = torch.tensor([4])
    s, t = (student / 2).log_softmax(-1), (teacher / 2).log_softmax(-1)
    expected = 4 * float((t.exp() * (t - s)).sum())
    assert float(distill_loss_sum(student, lens, teacher, lens, temperature=2.0)) == pytest.approx(expected, rel=1e-5)


def test_joined_utterances_without_targets_get_ctc_alone():
    torch.manual_seed(2)
    log_probs = torch.randn(3, 8, 5).log_softmax(-1)
    out_lens, targets, target_lens = torch.tensor([8, 8, 6]), torch.tensor([[1, 2], [3, 3], [4, 0]]), torch.tensor([2, 2, 1])
    teacher = torch.randn(3, 8, 5).log_softmax(-1)
    teacher_lens = torch.tensor([8, 0, 6])  # the second utterance has no targets (a joined one)
    cfg = load_config(None, ["distill.weight=0.75"]).distill
    got = distill_objective(log_probs, out_lens, targets, target_lens, teacher, teacher_lens, cfg)
    ctc = ctc_loss_sum(log_probs, out_lens, targets, target_lens, reduction="none")
    kd = distill_loss_sum(log_probs, out_lens, teacher, teacher_lens)
    assert float(got) == pytest.approx(float(0.25 * ctc[0] + ctc[1] + 0.25 * ctc[2] + 0.75 * kd), rel=1e-5)


def test_distill_config_takes_paths():
    assert load_config(None, ["distill.teachers=a.pt"]).distill.teachers == ("a.pt",)
    assert load_config(None, ["distill.teachers="]).distill.teachers == ()
    assert load_config(None, ["distill.teachers=[a.pt, b.pt]"]).distill.teachers == ("a.pt", "b.pt")
    with pytest.raises(AsrError, match="distill.teachers"):
        load_config(None, ["distill.teachers=[1, 2]"])
    with pytest.raises(AsrError, match="speed_factors"):
        load_config(None, ["augment.speed_factors=[fast]"])
    with pytest.raises(AsrError, match="distill.weight"):
        load_config(None, ["distill.weight=1.5"])


def perturbed_copy(path, out):
    """The bundle at `path` with other weights (same tokens and features): another teacher."""
    from asr.checkpoint import save_bundle

    b = load_bundle(path)
    torch.manual_seed(5)
    with torch.no_grad():
        for p in b.model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    save_bundle(out, cfg=b.config, tokenizer=b.tokenizer, stats=b.stats, model=b.model, info={})
    return out


@pytest.fixture(scope="module")
def teacher(an4_prepared, tmp_path_factory):
    """A tiny model trained for one epoch on six AN4 utterances, and those utterances."""
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:6]
    exp = tmp_path_factory.mktemp("teacher")
    train(load_config(None, TINY + ["train.epochs=1"]), utts, utts[:2], exp, **QUIET)
    return exp / "model.pt", utts


def test_teacher_targets_are_the_teachers_output_on_the_clean_audio(teacher):
    path, utts = teacher
    cfg = load_config(None, TINY)
    bundle = load_bundle(path)
    targets = teacher_targets(load_teachers([str(path)], cfg, bundle.tokenizer), utts[:2], cfg, log=lambda s: None)
    assert set(targets) == {(u.id, f) for u in utts[:2] for f in (0.9, 1.1)}
    utt = utts[0]
    feats = features_of(speed_perturb(load_utterance(utt, cfg.features), 1.1), "x", cfg.features)
    with torch.inference_mode():
        expected, _ = bundle.model(bundle.stats.normalize(feats).unsqueeze(0), torch.tensor([feats.shape[0]]))
    got = targets[(utt.id, 1.1)].float()
    assert got.shape == expected[0].shape
    torch.testing.assert_close(got.exp(), expected[0].exp(), atol=2e-3, rtol=0)
    # two teachers: the mean of their probabilities, frame by frame
    other = perturbed_copy(path, path.parent / "other_teacher.pt")
    other_alone = teacher_targets(load_teachers([str(other)], cfg, bundle.tokenizer), utts[:1], cfg, log=lambda s: None)
    both = teacher_targets(load_teachers([str(path), str(other)], cfg, bundle.tokenizer), utts[:1], cfg,
                           log=lambda s: None)
    key = (utt.id, 0.9)
    mean = (targets[key].float().exp() + other_alone[key].float().exp()) / 2
    assert not torch.allclose(targets[key].float().exp(), other_alone[key].float().exp(), atol=0.05)
    torch.testing.assert_close(both[key].float().exp(), mean, atol=2e-3, rtol=0)


def test_targets_line_up_with_the_augmented_audio(teacher):
    """Noise, rooms and phone lines keep the length: the student's frames are the teacher's."""
    path, utts = teacher
    cfg = load_config(None, TINY + ["augment.noise_prob=1", "augment.reverb_prob=1", "augment.telephone_prob=1",
                                    "augment.gain_prob=1", "augment.rir_bank=2"])
    bundle = load_bundle(path)
    targets = teacher_targets(load_teachers([str(path)], cfg, bundle.tokenizer), utts, cfg, log=lambda s: None)
    augmenter = WaveAugmenter(cfg.augment, 16000, babble_pool=utts, load=lambda u: load_utterance(u, cfg.features))
    data = SpeechDataset(utts, bundle.tokenizer, cfg.features, bundle.stats, augment=cfg.augment,
                         wave_augmenter=augmenter, teacher_targets=targets)
    batch = collate([data[i] for i in range(len(utts))])
    assert batch.teacher is not None and batch.teacher.shape[0] == len(utts)
    with torch.inference_mode():
        _, out_lens = bundle.model(batch.feats, batch.feat_lens)
    assert torch.equal(out_lens, batch.teacher_lens)
    clean = collate([SpeechDataset(utts, bundle.tokenizer, cfg.features, bundle.stats)[i] for i in range(2)])
    assert clean.teacher is None


def test_training_with_a_teacher_caches_its_targets(teacher, tmp_path):
    path, utts = teacher
    cfg = load_config(None, TINY + ["train.epochs=1", f"distill.teachers={path}", "distill.weight=0.7"])
    log = []
    train(cfg, utts, utts[:2], tmp_path / "student", progress=False, log=log.append)
    assert any("teacher targets: 1 teacher(s), 12 utterance copies" in line for line in log)
    assert (tmp_path / "student" / "teacher.pt").exists()
    first = [line for line in log if line.startswith("epoch   1")]
    loss = float(first[0].split("train loss")[1].split("|")[0])
    assert math.isfinite(loss) and loss > 0
    # a second run reuses them; other teachers are not mistaken for them
    log = []
    train(load_config(None, TINY + ["train.epochs=2", f"distill.teachers={path}", "distill.weight=0.7"]), utts,
          utts[:2], tmp_path / "student", resume=True, progress=False, log=log.append)
    assert any("utterance copies from" in line for line in log)
    other_teacher = perturbed_copy(path, tmp_path / "other_teacher.pt")
    log = []
    train(load_config(None, TINY + ["train.epochs=1", f"distill.teachers={other_teacher}"]), utts, utts[:2],
          tmp_path / "student_b", progress=False, log=log.append)
    (tmp_path / "student_b" / "teacher.pt").replace(tmp_path / "student" / "teacher.pt")
    log = []
    train(load_config(None, TINY + ["train.epochs=3", f"distill.teachers={path}", "distill.weight=0.7"]), utts,
          utts[:2], tmp_path / "student", resume=True, progress=False, log=log.append)
    assert any("made from other teachers or data: recomputing" in line for line in log)
    other = save_tiny_model(tmp_path / "other.pt", text="XYZ")
    with pytest.raises(AsrError, match=r"other.pt: the teacher's tokens differ"):
        train(load_config(None, TINY + ["train.epochs=1", f"distill.teachers={other}"]), utts, utts[:2],
              tmp_path / "student2", **QUIET)


def test_distillation_pulls_the_student_to_its_teacher(teacher, tmp_path, monkeypatch):
    """weight 1: the loss is the distillation alone, every batch has targets, and training lowers it."""
    import asr.train

    path, utts = teacher
    calls = []
    real = asr.train.distill_objective
    monkeypatch.setattr(asr.train, "distill_objective",
                        lambda *a, **k: calls.append(int((a[5] > 0).sum())) or real(*a, **k))
    log = []
    cfg = load_config(None, TINY + ["train.epochs=3", f"distill.teachers={path}", "distill.weight=1.0",
                                    "augment.speed_factors=[1.0]", "augment.n_freq_masks=0", "augment.n_time_masks=0",
                                    "train.lr=0.01"])
    train(cfg, utts, utts[:2], tmp_path / "student", progress=False, log=log.append)
    losses = [float(line.split("train loss")[1].split("|")[0]) for line in log if line.startswith("epoch")]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert np.isfinite(losses).all()
    assert len(calls) >= 3 and sum(calls) == 3 * len(utts)  # every utterance taught in every epoch
