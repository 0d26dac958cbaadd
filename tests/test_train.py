import pytest
import torch

from asr.checkpoint import load_bundle
from asr.config import load_config
from asr.errors import AsrError
from asr.manifest import Utterance, read_manifest
from asr.tokenizer import CharTokenizer
from asr.device import autocast_dtype
from asr.train import lr_lambda, train, trainable

TINY = ["model.hidden_size=16", "model.n_layers=1", "model.conv_channels=4", "train.warmup_steps=2",
        "train.max_batch_frames=1500", "augment.speed_factors=[0.9, 1.1]"]


def test_lr_schedule_warms_up_then_decays():
    values = [lr_lambda(s, warmup=10, total=100, final_ratio=0.1) for s in range(120)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert values[100] == pytest.approx(0.1) and values[119] == pytest.approx(0.1)


def test_precision_picks_the_autocast_dtype():
    from asr.device import cpu_has_bf16

    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is (torch.bfloat16 if cpu_has_bf16() else None)
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("fp32", torch.device("cuda")) is None  # no CUDA call needed to say so


@pytest.mark.parametrize("avx512_bf16, amx, want", [(False, False, None), (True, False, torch.bfloat16),
                                                    (False, True, torch.bfloat16)])
def test_auto_precision_on_cpu_needs_native_bf16(monkeypatch, avx512_bf16, amx, want):
    # plain AVX-512 (oneDNN emulates bf16 there, about 1.9x slower than float32): float32
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert autocast_dtype("auto", torch.device("cpu")) is want


def test_trainable_drops_unusable_utterances():
    tok = CharTokenizer.build(["AB"])
    utts = [Utterance("ok", "a", 1.0, "AB", "s"), Utterance("unknown", "a", 1.0, "ABC", "s"),
            Utterance("short", "a", 0.05, "ABABAB", "s"), Utterance("empty", "a", 1.0, " ", "s")]
    assert [u.id for u in trainable(utts, tok, seconds_per_output=0.04)] == ["ok"]


@pytest.mark.parametrize("workers", [0, 1])  # 1: speed factors and masks drawn in a loader process
def test_resume_reproduces_an_uninterrupted_run(an4_prepared, tmp_path, workers):
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:6]
    full = load_config(None, TINY + ["train.epochs=2", f"train.num_workers={workers}"])
    train(full, utts, utts[:2], tmp_path / "straight", progress=False, log=lambda s: None)
    # Stop after epoch 1, then resume to epoch 2 from the epoch-1 checkpoint.
    train(full, utts, utts[:2], tmp_path / "resumed", progress=False, log=lambda s: None)
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


QUIET = {"progress": False, "log": lambda s: None}


def test_model_pt_is_the_epoch_with_the_lowest_dev_wer(an4_prepared, tmp_path, monkeypatch):
    """Dev WERs 50, 30, 40: model.pt must hold epoch 2's weights, not the last epoch's."""
    import asr.train as train_module

    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:4]
    scripted = iter([50.0, 30.0, 40.0])

    class FakeSummary:
        def __init__(self, wer):
            self.wer, self.cer = wer, wer / 2

    monkeypatch.setattr(train_module, "validate", lambda run: (FakeSummary(next(scripted)), 1.0))
    cfg = load_config(None, TINY + ["train.epochs=3", "train.keep_checkpoints=3"])
    log = []
    train(cfg, utts, utts[:2], tmp_path, progress=False, log=log.append)
    bundle = load_bundle(tmp_path / "model.pt")
    assert bundle.info["epoch"] == 2 and bundle.info["dev_wer"] == 30.0
    epoch2 = torch.load(tmp_path / "checkpoints" / "epoch-2.pt", weights_only=True)["model"]
    epoch3 = torch.load(tmp_path / "checkpoints" / "epoch-3.pt", weights_only=True)["model"]
    for name, value in bundle.model.state_dict().items():
        assert torch.equal(value, epoch2[name]), name
    assert any(not torch.equal(epoch2[n], epoch3[n]) for n in epoch2)  # the epochs did differ
    stars = [line.split("|")[0].strip() for line in log if line.endswith("*")]
    assert stars == ["epoch   1", "epoch   2"]


def test_resume_alone_before_the_first_checkpoint_uses_the_runs_config(an4_prepared, tmp_path):
    """A run killed before its first epoch ended has config.yaml (and maybe stats.pt) but no
    checkpoint: `--resume` alone must train the run's own model, not the defaults."""
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:4]
    cfg = load_config(None, TINY + ["train.epochs=1", "features.n_mels=40"])
    train(cfg, utts, utts[:2], tmp_path, **QUIET)
    import shutil

    shutil.rmtree(tmp_path / "checkpoints")
    (tmp_path / "model.pt").unlink()
    # A stale stats.pt from another run (80 bins) must not crash the resumed 40-bin run.
    torch.save({"mean": torch.zeros(80), "std": torch.ones(80)}, tmp_path / "stats.pt")
    log = []
    train(None, utts, utts[:2], tmp_path, resume=True, progress=False, log=log.append)
    assert any("starting" in line and "again from epoch 1 with its config.yaml" in line for line in log)
    assert any("stats.pt: feature statistics are for 80 mel bins, the config has 40" in line for line in log)
    bundle = load_bundle(tmp_path / "model.pt")
    assert bundle.config == cfg and bundle.stats.mean.shape == (40,)
    assert load_config(tmp_path / "config.yaml") == cfg


def test_resume_with_nothing_to_resume_is_refused(tmp_path):
    with pytest.raises(AsrError, match="nothing to resume .*start the run with --config"):
        train(None, [], [], tmp_path / "empty", resume=True, **QUIET)
    assert not (tmp_path / "empty" / "config.yaml").exists()


def test_resume_with_another_config_and_no_checkpoint_is_refused(an4_prepared, tmp_path):
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:4]
    train(load_config(None, TINY + ["train.epochs=1"]), utts, utts[:2], tmp_path, **QUIET)
    import shutil

    shutil.rmtree(tmp_path / "checkpoints")
    saved = (tmp_path / "config.yaml").read_text()
    with pytest.raises(AsrError, match=r"config.yaml: was trained with a different config \(model.hidden_size"):
        train(load_config(None, TINY + ["train.epochs=1", "model.hidden_size=24"]), utts, utts[:2], tmp_path,
              resume=True, **QUIET)
    assert (tmp_path / "config.yaml").read_text() == saved


@pytest.mark.parametrize("damage", ["empty", "flipped"])
def test_resume_falls_back_over_a_damaged_latest_checkpoint(an4_prepared, tmp_path, damage):
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:4]
    cfg = load_config(None, TINY + ["train.epochs=3", "train.keep_checkpoints=3"])
    train(load_config(None, TINY + ["train.epochs=2", "train.keep_checkpoints=3"]), utts, utts[:2], tmp_path,
          **QUIET)
    latest = tmp_path / "checkpoints" / "epoch-2.pt"
    if damage == "empty":
        latest.write_bytes(b"")
    else:
        raw = bytearray(latest.read_bytes())
        for i in range(len(raw) // 2, len(raw) // 2 + 3000, 5):
            raw[i] ^= 0x55
        latest.write_bytes(bytes(raw))
    stale = tmp_path / "checkpoints" / ".epoch-3.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    log = []
    train(cfg, utts, utts[:2], tmp_path, resume=True, progress=False, log=log.append)
    assert any(line.startswith("warning:") and "epoch-2.pt" in line and "falling back" in line for line in log)
    assert (tmp_path / "checkpoints" / "epoch-2.pt.damaged").is_file()  # kept aside, never pruned over good ones
    assert any("resuming from" in line and line.endswith("epoch-1.pt") for line in log)
    assert "removed 1 temporary file(s)" in "\n".join(log) and not stale.exists()
    assert torch.load(tmp_path / "checkpoints" / "epoch-3.pt", weights_only=True)["epoch"] == 3


def test_a_second_run_into_a_locked_experiment_stops(an4_prepared, tmp_path):
    from tests.conftest import lock_held_elsewhere

    exp = tmp_path / "exp"
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:4]
    with lock_held_elsewhere("experiment", exp) as pid:
        with pytest.raises(AsrError, match=rf"another asr process \(pid {pid}\) is writing this experiment"):
            train(load_config(None, TINY + ["train.epochs=1"]), utts, utts[:2], exp, **QUIET)
        assert not (exp / "config.yaml").exists()
    train(load_config(None, TINY + ["train.epochs=1"]), utts, utts[:2], exp, **QUIET)  # the lock died with it
    assert (exp / "model.pt").is_file()


def test_an_experiment_folder_that_is_a_file_is_a_one_line_error(an4_prepared, tmp_path):
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:4]
    (tmp_path / "exp").write_text("a file")
    with pytest.raises(AsrError, match=r"exp: cannot make the experiment folder \(File exists\)"):
        train(load_config(None, TINY + ["train.epochs=1"]), utts, utts[:2], tmp_path / "exp", **QUIET)


def test_training_with_joined_utterances(an4_prepared, tmp_path):
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:8]
    log = []
    train(load_config(None, TINY + ["train.epochs=1", "augment.concat_fraction=0.5"]), utts, utts[:2], tmp_path,
          progress=False, log=log.append)
    line = next(line for line in log if "joined utterances" in line)
    assert line.startswith("4 joined utterances") and (tmp_path / "concatenated" / "concatenated.jsonl").is_file()


def test_intermediate_ctc_trains_its_output_layer(an4_prepared, tmp_path):
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:8]
    weights = {}
    for w in (0.0, 0.5):
        cfg = load_config(None, TINY + ["model.n_layers=2", "model.inter_ctc_layer=1", "train.epochs=1",
                                        f"train.inter_ctc_weight={w}"])
        train(cfg, utts, utts[:2], tmp_path / f"w{w}", progress=False, log=lambda _: None)
        bundle = load_bundle(tmp_path / f"w{w}" / "model.pt")
        weights[w] = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    # the same seed and data: only the intermediate loss's weight differs, and it moved the
    # intermediate output layer (with weight 0 only weight decay does)
    assert (weights[0.5]["inter_output.weight"] - weights[0.0]["inter_output.weight"]).abs().max() > 1e-3


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_average_last_is_the_mean_of_the_last_epochs_and_survives_a_resume(an4_prepared, tmp_path):
    """train.average_last=2 of 3 epochs: model_avg.pt holds the mean of epochs 2 and 3 (what
    `asr average --last 2` makes from their checkpoints), scored on dev; a run stopped after
    epoch 2 and resumed writes the same mean."""
    from asr.average import average_last_epochs, average_state_dicts

    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:4]
    cfg = load_config(None, TINY + ["train.epochs=3", "train.keep_checkpoints=3", "train.average_last=2"])
    log = []
    train(cfg, utts, utts[:2], tmp_path / "straight", progress=False, log=log.append)
    ckpt = tmp_path / "straight" / "checkpoints"
    avg = load_bundle(tmp_path / "straight" / "model_avg.pt")
    assert avg.info["averaged_epochs"] == [2, 3] and 0 <= avg.info["dev_wer"] <= 100
    assert any(line.startswith("model_avg.pt: the mean of epochs 2-3 |") for line in log)
    want = average_state_dicts([_weights(ckpt / "epoch-2.pt"), _weights(ckpt / "epoch-3.pt")])
    after_training, _ = average_last_epochs(tmp_path / "straight", 2)
    for name, value in avg.model.state_dict().items():
        torch.testing.assert_close(value, want[name], msg=name)
        torch.testing.assert_close(value, after_training.model.state_dict()[name], msg=name)
    assert any(not torch.equal(want[n], _weights(ckpt / "epoch-3.pt")[n]) for n in want)  # not just the last
    assert torch.load(ckpt / "epoch-1.pt", weights_only=True)["average"] is None  # before the window

    train(cfg, utts, utts[:2], tmp_path / "resumed", progress=False, log=lambda s: None)
    (tmp_path / "resumed" / "checkpoints" / "epoch-3.pt").unlink()
    train(cfg, utts, utts[:2], tmp_path / "resumed", resume=True, progress=False, log=lambda s: None)
    resumed = load_bundle(tmp_path / "resumed" / "model_avg.pt")
    assert resumed.info["averaged_epochs"] == [2, 3]
    for name, value in avg.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, msg=name)


def test_average_restarts_when_a_resumed_run_gets_more_epochs(an4_prepared, tmp_path):
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:4]
    train(load_config(None, TINY + ["train.epochs=2", "train.average_last=1"]), utts, utts[:2], tmp_path, **QUIET)
    assert load_bundle(tmp_path / "model_avg.pt").info["averaged_epochs"] == [2]
    log = []
    train(load_config(None, TINY + ["train.epochs=4", "train.average_last=1"]), utts, utts[:2], tmp_path,
          resume=True, progress=False, log=log.append)
    assert any("average: epochs 2-2 do not lead up to epoch 3 within the last 1; it starts again" in line
               for line in log)
    bundle = load_bundle(tmp_path / "model_avg.pt")
    assert bundle.info["averaged_epochs"] == [4]
    for name, value in bundle.model.state_dict().items():  # the mean of epoch 4 alone is epoch 4
        torch.testing.assert_close(value, _weights(tmp_path / "checkpoints" / "epoch-4.pt")[name], msg=name)


def test_average_last_beyond_the_epochs_is_refused():
    with pytest.raises(AsrError, match=r"train.average_last must be in \[0, train.epochs\], got 5"):
        load_config(None, ["train.epochs=4", "train.average_last=5"])


def test_an_average_with_a_gap_starts_again_and_a_late_one_says_so(an4_prepared, tmp_path):
    """Epoch 2 trained without averaging between two runs with it: the mean of epochs 1 and 3
    would skip it, so the average starts again at 3; the final line says it holds 1 of 3."""
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")[:4]
    run = lambda epochs, n, log=lambda s: None, resume=True: train(  # noqa: E731
        load_config(None, TINY + [f"train.epochs={epochs}", f"train.average_last={n}"]), utts, utts[:2], tmp_path,
        resume=resume, progress=False, log=log)
    run(3, 3, resume=False)
    assert load_bundle(tmp_path / "model_avg.pt").info["averaged_epochs"] == [1, 2, 3]
    for p in ("epoch-2.pt", "epoch-3.pt"):
        (tmp_path / "checkpoints" / p).unlink()  # back to the state after epoch 1, average [1]
    run(2, 0)  # epoch 2 again, without averaging: the checkpoint carries no average on
    assert torch.load(tmp_path / "checkpoints" / "epoch-2.pt", weights_only=True)["average"] is None
    log = []
    run(3, 3, log.append)
    assert any("it starts at epoch 3, not 1" in line for line in log)
    assert any(line.startswith("model_avg.pt: the mean of epochs 3-3 (1 of the 3 asked for) |") for line in log)
    assert load_bundle(tmp_path / "model_avg.pt").info["averaged_epochs"] == [3]
