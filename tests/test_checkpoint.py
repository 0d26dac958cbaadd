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


def test_bundle_with_a_sentencepiece_model_needs_nothing_else(tmp_path):
    from asr.decoding import GreedyDecoder
    from asr.tokenizer import SentencePieceTokenizer

    cfg = load_config(None, ["model.hidden_size=16", "model.n_layers=1", "tokenizer.unit=unigram",
                             "tokenizer.vocab_size=30"])
    tok = SentencePieceTokenizer.build(["HELLO WORLD", "THE BIG WORLD", "HELLO THERE"] * 5, "unigram", 30)
    torch.manual_seed(0)
    model = build_model(cfg, len(tok)).eval()
    save_bundle(tmp_path / "m.pt", cfg=cfg, tokenizer=tok, stats=FeatureStats(torch.zeros(80), torch.ones(80)),
                model=model, info={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # the model travels inside the bundle
    bundle = load_bundle(tmp_path / "m.pt")
    assert isinstance(bundle.tokenizer, SentencePieceTokenizer) and bundle.tokenizer.model == tok.model
    assert bundle.tokenizer.tokens == tok.tokens and bundle.config.tokenizer.unit == "unigram"
    x, lens = torch.randn(1, 200, 80), torch.tensor([200])
    with torch.no_grad():
        before, out_lens = model(x, lens)
        after, _ = bundle.model(x, lens)
    torch.testing.assert_close(after, before)
    hyps = [GreedyDecoder(t)(lp, out_lens)[0] for t, lp in ((tok, before), (bundle.tokenizer, after))]
    assert hyps[0].text == hyps[1].text and hyps[0].tokens == hyps[1].tokens and hyps[0].tokens
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    data["tokenizer"]["model"] = b"garbage"
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(AsrError, match="does not match this version.*sentencepiece"):
        load_bundle(tmp_path / "bad.pt")


def test_bundles_from_before_tokenizer_units_still_load(tmp_path):
    """Format 1: a character token list and no tokenizer section, in the config or the bundle."""
    cfg = load_config(None, ["model.hidden_size=16", "model.n_layers=1"])
    tok = CharTokenizer.build(["AB C"])
    save_bundle(tmp_path / "m.pt", cfg=cfg, tokenizer=tok, stats=FeatureStats(torch.zeros(80), torch.ones(80)),
                model=build_model(cfg, len(tok)), info={})
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    del data["tokenizer"], data["config"]["tokenizer"]
    data["format"] = "asr-bundle/1"
    torch.save(data, tmp_path / "old.pt")
    bundle = load_bundle(tmp_path / "old.pt")
    assert isinstance(bundle.tokenizer, CharTokenizer) and bundle.tokenizer.tokens == tok.tokens
    assert bundle.config == cfg and bundle.config.tokenizer.unit == "char"
