import pytest
import torch

from asr.checkpoint import load_bundle
from asr.config import load_config
from asr.errors import AsrError
from asr.manifest import Utterance, read_manifest
from asr.tokenizer import CharTokenizer
from asr.train import autocast_dtype, lr_lambda, train, trainable

TINY = ["model.hidden_size=16", "model.n_layers=1", "model.conv_channels=4", "train.warmup_steps=2",
        "train.max_batch_frames=1500", "augment.speed_factors=[0.9, 1.1]"]


def test_lr_schedule_warms_up_then_decays():
    values = [lr_lambda(s, warmup=10, total=100, final_ratio=0.1) for s in range(120)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert values[100] == pytest.approx(0.1) and values[119] == pytest.approx(0.1)


def test_precision_picks_the_autocast_dtype():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("fp32", torch.device("cuda")) is None  # no CUDA call needed to say so


def test_trainable_drops_unusable_utterances():
    tok = CharTokenizer.build(["AB"])
    utts = [Utterance("ok", "a", 1.0, "AB", "s"), Utterance("unknown", "a", 1.0, "ABC", "s"),
            Utterance("short", "a", 0.05, "ABABAB", "s"), Utterance("empty", "a", 1.0, " ", "s")]
    assert [u.id for u in trainable(utts, tok, seconds_per_output=0.04)] == ["ok"]


def test_resume_reproduces_an_uninterrupted_run(an4_prepared, tmp_path):
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:6]
    full = load_config(None, TINY + ["train.epochs=2"])
    train(full, utts, utts[:2], tmp_path / "straight", progress=False, log=lambda s: None)
    # Stop after epoch 1, then resume to epoch 2 from the epoch-1 checkpoint.
    train(load_config(None, TINY + ["train.epochs=2"]), utts, utts[:2], tmp_path / "resumed",
          progress=False, log=lambda s: None)
    (tmp_path / "resumed" / "checkpoints" / "epoch-2.pt").unlink()
    log = []
    train(full, utts, utts[:2], tmp_path / "resumed", resume=True, progress=False, log=log.append)
    assert any("resuming from" in line and "epoch-1.pt" in line for line in log)
    a = torch.load(tmp_path / "straight" / "checkpoints" / "epoch-2.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "epoch-2.pt", weights_only=True)["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)
    # The learning rate decays over exactly the steps taken: it ends at its floor.
    state = torch.load(tmp_path / "straight" / "checkpoints" / "epoch-2.pt", weights_only=True)
    assert state["scheduler"]["_last_lr"][0] == pytest.approx(full.train.lr * full.train.final_lr_ratio)
    bundle = load_bundle(tmp_path / "resumed" / "model.pt")
    assert bundle.info["n_params"] > 0 and bundle.stats.mean.shape == (80,)


def test_resume_may_add_epochs_but_not_change_the_model(an4_prepared, tmp_path):
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:4]
    quiet = {"progress": False, "log": lambda s: None}
    train(load_config(None, TINY + ["train.epochs=1"]), utts, utts[:2], tmp_path, **quiet)
    with pytest.raises(AsrError, match=r"different config \(model.hidden_size"):
        train(load_config(None, TINY + ["train.epochs=1", "model.hidden_size=24"]), utts, utts[:2], tmp_path,
              resume=True, **quiet)
    # decode settings (unused in training) may change too: the bundle carries the new ones
    train(load_config(None, TINY + ["train.epochs=2", "decode.rescore=true"]), utts, utts[:2], tmp_path,
          resume=True, **quiet)
    state = torch.load(tmp_path / "checkpoints" / "epoch-2.pt", weights_only=True)
    assert state["epoch"] == 2 and state["config"]["train"]["epochs"] == 2
    assert state["config"]["decode"]["rescore"] is True


def test_speaker_mean_norm_trains_and_decodes(an4_prepared, tmp_path):
    from asr.evaluate import decode_manifest

    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:6]
    log = []
    train(load_config(None, TINY + ["train.epochs=1", "features.mean_norm=speaker"]), utts, utts[:2], tmp_path,
          progress=False, log=log.append)
    speakers = len({u.speaker for u in utts})
    assert any(line.startswith(f"speaker means of {speakers} speakers x 3 speeds") for line in log)
    bundle = load_bundle(tmp_path / "model.pt")
    assert bundle.config.features.mean_norm == "speaker"
    hyps, _ = decode_manifest(bundle, utts[:3], torch.device("cpu"))
    assert set(hyps) == {u.id for u in utts[:3]}
