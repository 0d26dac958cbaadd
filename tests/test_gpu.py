"""CUDA checks: part of the default run where CUDA is available (`pytest -m gpu` runs only these), skipped elsewhere."""

import pytest
import torch

from asr.config import ModelConfig
from asr.model import AcousticModel, ctc_loss_sum

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_bf16_training_step_and_cpu_agreement(rnn_type):
    torch.manual_seed(0)
    model = AcousticModel(ModelConfig(rnn_type=rnn_type, hidden_size=64, n_layers=2, dropout=0.0), 80, 29)
    feats, lens = torch.randn(4, 200, 80), torch.tensor([200, 150, 120, 90])
    with torch.no_grad():
        cpu_out, _ = model.eval()(feats, lens)
    model = model.cuda().train()
    targets = torch.randint(1, 29, (4, 10)).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        log_probs, out_lens = model(feats.cuda(), lens.cuda())
    loss = ctc_loss_sum(log_probs.float(), out_lens, targets, torch.full((4,), 10).cuda())
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with torch.no_grad():
        gpu_out, _ = model.eval()(feats.cuda(), lens.cuda())
    torch.testing.assert_close(gpu_out.cpu(), cpu_out, atol=1e-3, rtol=1e-3)


def test_device_frontend_on_cuda_equals_the_cpu_path():
    from asr.config import load_config
    from asr.data import DeviceFrontend, WaveBatch
    from asr.features import FeatureStats, reflect_pad

    cfg = load_config().features
    waves = [reflect_pad(torch.randn(n) * 0.1, cfg) for n in (16000, 9100, 30000)]
    batch = WaveBatch(torch.nn.utils.rnn.pad_sequence(waves, batch_first=True), torch.tensor([len(w) for w in waves]),
                      torch.zeros(3, 1, dtype=torch.long), torch.ones(3, dtype=torch.long), ["a", "b", "c"], None)
    stats = FeatureStats(torch.randn(80), torch.rand(80) + 0.5)
    cpu, cpu_lens = DeviceFrontend(cfg, stats)(batch, torch.device("cpu"))
    gpu, gpu_lens = DeviceFrontend(cfg, stats)(batch, torch.device("cuda"))
    assert torch.equal(cpu_lens, gpu_lens.cpu())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


def test_a_cuda_epoch_with_features_on_device_and_bf16(tmp_path):
    """One training epoch on CUDA with the device front end and bf16 (a smoke test of the GPU path)."""
    from asr.checkpoint import load_bundle
    from asr.config import load_config
    from asr.manifest import Utterance
    from asr.train import train
    import soundfile as sf

    utts = []
    for i in range(6):
        path = tmp_path / f"u{i}.wav"
        sf.write(str(path), (torch.randn(16000 + 800 * i) * 0.1).numpy(), 16000)
        utts.append(Utterance(f"u{i}", str(path), 1.0 + 0.05 * i, "AB C", "s"))
    cfg = load_config(None, ["model.hidden_size=32", "model.n_layers=1", "train.epochs=1",
                             "train.features_on_device=true", "train.precision=bf16"])
    train(cfg, utts, utts[:2], tmp_path / "exp", device="cuda", progress=False, log=lambda s: None)
    assert load_bundle(tmp_path / "exp" / "model.pt").info["epoch"] == 1
