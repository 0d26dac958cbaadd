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
