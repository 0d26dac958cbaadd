import pytest
import torch

from asr.config import ModelConfig
from asr.model import AcousticModel

N_MELS, N_TOKENS = 80, 29


def make(rnn_type="lstm", bidirectional=True, subsampling="conv", factor=4, **kw):
    torch.manual_seed(0)
    cfg = ModelConfig(rnn_type=rnn_type, bidirectional=bidirectional, subsampling=subsampling,
                      subsampling_factor=factor, n_layers=2, hidden_size=32, conv_channels=8, **kw)
    return AcousticModel(cfg, N_MELS, N_TOKENS).eval()


def expected_len(t, subsampling, factor):
    if subsampling == "stack":
        return t // factor
    for _ in range(2 if factor == 4 else 1):
        t = (t - 3) // 2 + 1
    return t


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("subsampling, factor", [("conv", 4), ("conv", 2), ("stack", 3)])
def test_output_shapes(rnn_type, bidirectional, subsampling, factor):
    model = make(rnn_type, bidirectional, subsampling, factor)
    lens = torch.tensor([100, 73, 40])
    log_probs, out_lens = model(torch.randn(3, 100, N_MELS), lens)
    want = torch.tensor([expected_len(int(t), subsampling, factor) for t in lens])
    assert torch.equal(out_lens, want)
    assert log_probs.shape == (3, int(want.max()), N_TOKENS)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(log_probs.shape[:2]), atol=1e-5)
    assert all(len(dirs) == (2 if bidirectional else 1) for dirs in model.rnn.layers)
    assert isinstance(model.rnn.layers[0][0], torch.nn.LSTM if rnn_type == "lstm" else torch.nn.GRU)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("subsampling, factor", [("conv", 4), ("stack", 4)])
def test_padding_invariance(rnn_type, bidirectional, subsampling, factor):
    """An utterance gives the same output alone and inside a padded batch."""
    model = make(rnn_type, bidirectional, subsampling, factor)
    g = torch.Generator().manual_seed(1)
    short = torch.randn(37, N_MELS, generator=g)
    long = torch.randn(90, N_MELS, generator=g)
    batch = torch.zeros(2, 90, N_MELS)
    batch[0, :37] = short
    batch[1] = long
    batch[0, 37:] = 100.0  # garbage in the padding must not leak into the output
    with torch.no_grad():
        alone, alone_len = model(short.unsqueeze(0), torch.tensor([37]))
        together, lens = model(batch, torch.tensor([37, 90]))
    n = int(alone_len[0])
    assert int(lens[0]) == n
    torch.testing.assert_close(together[0, :n], alone[0, :n], atol=1e-5, rtol=1e-5)


def test_matches_a_packed_bidirectional_rnn():
    """The dense two-direction stack computes what torch's packed bidirectional RNN does."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from asr.model import RecurrentStack

    torch.manual_seed(0)
    stack = RecurrentStack("lstm", 8, 6, n_layers=2, bidirectional=True, dropout=0.0)
    ref = torch.nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for layer, dirs in enumerate(stack.layers):
            for d, suffix in enumerate(["", "_reverse"]):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(ref, f"{name}_l{layer}{suffix}").copy_(getattr(dirs[d], f"{name}_l0"))
    x, lens = torch.randn(3, 10, 8), torch.tensor([10, 4, 7])
    want, _ = pad_packed_sequence(ref(pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False))[0],
                                  batch_first=True)
    got = stack(x, lens)
    for b, n in enumerate(lens.tolist()):
        torch.testing.assert_close(got[b, :n], want[b, :n])


def test_rejects_unknown_options():
    with pytest.raises(ValueError, match="rnn_type"):
        make(rnn_type="transformer")
    with pytest.raises(ValueError, match="subsampling"):
        make(subsampling="pool")


def test_overfits_one_batch():
    """A few dozen steps on one batch drive the CTC loss down: gradients flow end to end."""
    model = make("gru", True, "conv", 4).train()
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(2, 120, N_MELS, generator=g)
    feat_lens = torch.tensor([120, 100])
    targets = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 0, 0]])
    target_lens = torch.tensor([5, 3])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        log_probs, out_lens = model(feats, feat_lens)
        loss = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, out_lens, target_lens)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


def test_intermediate_ctc_output_rides_along_without_changing_the_model_output():
    model = make("gru", True, "conv", 4, inter_ctc_layer=1)
    feats, lens = torch.randn(2, 90, N_MELS, generator=torch.Generator().manual_seed(4)), torch.tensor([90, 70])
    log_probs, out_lens = model(feats, lens)
    full, full_lens, inter = model.forward_intermediate(feats, lens)
    assert torch.equal(full, log_probs) and torch.equal(full_lens, out_lens)
    assert inter.shape == log_probs.shape and torch.allclose(inter.exp().sum(-1), torch.ones(inter.shape[:2]))
    assert not torch.allclose(inter, log_probs)
    # its own output layer, fed by recurrent layer 1, not the last one
    before = inter.clone()
    with torch.no_grad():
        model.rnn.layers[1][0].weight_hh_l0.add_(1.0)
    assert torch.equal(model.forward_intermediate(feats, lens)[2], before)
    assert make("gru", True, "conv", 4).forward_intermediate(feats, lens)[2] is None


def test_intermediate_ctc_loss_reaches_only_the_layers_below_it():
    model = make("gru", True, "conv", 4, inter_ctc_layer=1).train()
    feats, lens = torch.randn(2, 90, N_MELS, generator=torch.Generator().manual_seed(5)), torch.tensor([90, 70])
    _, out_lens, inter = model.forward_intermediate(feats, lens)
    loss = torch.nn.functional.ctc_loss(inter.transpose(0, 1), torch.tensor([[3, 4], [5, 6]]), out_lens,
                                        torch.tensor([2, 2]))
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert grads["inter_output.weight"].abs().sum() > 0 and grads["rnn.layers.0.0.weight_hh_l0"].abs().sum() > 0
    assert grads["subsample.proj.weight"].abs().sum() > 0
    assert all(grads[n] is None for n in grads if n.startswith(("rnn.layers.1.", "output.")))


def test_intermediate_ctc_settings_are_checked():
    from asr.config import load_config
    from asr.errors import AsrError

    with pytest.raises(AsrError, match="inter_ctc_layer"):
        load_config(None, ["model.n_layers=2", "model.inter_ctc_layer=2"])
    with pytest.raises(AsrError, match="inter_ctc_weight"):
        load_config(None, ["model.n_layers=2", "model.inter_ctc_layer=1", "train.inter_ctc_weight=1.5"])


def test_dropout_keeps_each_element_with_probability_one_minus_p_and_rescales():
    from asr.model import Dropout

    drop = Dropout(0.2).train()
    x = torch.ones(1000, 1000, requires_grad=True)
    torch.manual_seed(3)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.8) < 0.003  # 1e6 draws: sd 0.0004
    assert torch.equal(torch.unique(y.detach()), torch.tensor([0.0, 1.25]))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient passes where the element was kept, scaled
    torch.manual_seed(3)
    assert torch.equal(drop(x), y)  # the same seed, the same mask
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert drop(x.detach().bfloat16()).dtype == torch.bfloat16
    drop.eval()
    assert drop(x) is x
    assert Dropout(0.0).train()(x) is x
