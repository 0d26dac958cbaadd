import pytest
import torch

from asr.checkpoint import build_model, load_bundle, save_bundle
from asr.config import load_config
from asr.errors import AsrError
from asr.features import FeatureStats
from asr.tokenizer import CharTokenizer


def test_bundle_round_trip_gives_the_same_model(tmp_path):
    cfg = load_config(None, ["model.hidden_size=16", "model.n_layers=1", "model.rnn_type=gru"])
    tok = CharTokenizer.build(["AB C"])
    stats = FeatureStats(torch.randn(80), torch.rand(80) + 0.5)
    torch.manual_seed(0)
    model = build_model(cfg, len(tok)).eval()
    save_bundle(tmp_path / "m.pt", cfg=cfg, tokenizer=tok, stats=stats, model=model, info={"epoch": 3})
    bundle = load_bundle(tmp_path / "m.pt")
    assert bundle.config == cfg and bundle.tokenizer.tokens == tok.tokens and bundle.info == {"epoch": 3}
    assert torch.equal(bundle.stats.mean, stats.mean)
    x, lens = torch.randn(1, 50, 80), torch.tensor([50])
    with torch.no_grad():
        torch.testing.assert_close(bundle.model(x, lens)[0], model(x, lens)[0])


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such model file"), (b"", "not a readable model file"), (b"garbage" * 10, "not a readable model file")],
)
def test_bad_model_files(tmp_path, content, message):
    path = tmp_path / "m.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AsrError, match=message):
        load_bundle(path)


def test_not_a_bundle(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(AsrError, match="not an asr model bundle"):
        load_bundle(tmp_path / "other.pt")


def test_mismatched_weights(tmp_path):
    cfg = load_config(None, ["model.hidden_size=16", "model.n_layers=1"])
    tok = CharTokenizer.build(["AB"])
    model = build_model(cfg, len(tok))
    save_bundle(tmp_path / "m.pt", cfg=cfg, tokenizer=tok, stats=FeatureStats(torch.zeros(80), torch.ones(80)),
                model=model, info={})
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    data["model"] = {"rnn.weight_ih_l0": torch.zeros(3)}  # e.g. a bundle from another model layout
    torch.save(data, tmp_path / "m.pt")
    with pytest.raises(AsrError, match="does not match this version"):
        load_bundle(tmp_path / "m.pt")
