import re

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


def tiny_bundle(path, words=("AB",)):
    cfg = load_config(None, ["model.hidden_size=16", "model.n_layers=1"])
    tok = CharTokenizer.build(list(words))
    torch.manual_seed(0)
    save_bundle(path, cfg=cfg, tokenizer=tok, stats=FeatureStats(torch.zeros(80), torch.ones(80)),
                model=build_model(cfg, len(tok)), info={})
    return path


def edited(path, edit):
    """Rewrite a bundle with `edit` applied to its dict and its checksum left out (as a file
    written before checksums, so that what is tested is the field check, not the checksum)."""
    data = torch.load(path, weights_only=True)
    data.pop("checksum")
    edit(data)
    torch.save(data, path)
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(model={"rnn.weight_ih_l0": torch.zeros(3)}), "the weights do not fit its config: it lacks"),
    (lambda d: d["model"].update(extra=torch.zeros(1)), "has unexpected extra"),
    (lambda d: d["model"].update({"subsample.proj.bias": torch.zeros(3)}), "has other shapes of subsample.proj.bias"),
    (lambda d: d.update(tokenizer="char"), "the tokenizer record is not valid"),
    (lambda d: d.update(tokenizer={"unit": "bpe", "model": 5}), "the tokenizer record is not valid"),
    (lambda d: d.update(stats={"mean": torch.zeros(40), "std": torch.ones(40)}),
     "feature statistics are for 40 mel bins, the config has 80"),
    (lambda d: d.update(stats={"mean": torch.zeros(80), "std": torch.zeros(80)}), "non-positive"),
    (lambda d: d.update(stats=[1, 2]), "feature statistics are not a mean and a std tensor"),
    (lambda d: d.update(tokens=["<blank>", "|", "A", "B", "C"], tokenizer={"unit": "char", "tokens": ["<blank>", "|", "A", "B", "C"]}),
     "the weights are for 4 output tokens, its tokenizer has 5"),
    (lambda d: d.update(config=[]), "the bundle's 'config' is missing or not a dict"),
    (lambda d: d.update(model=None), "the bundle's 'model' is missing or not a dict"),
])
def test_bundles_that_do_not_fit_say_what(tmp_path, edit, message):
    path = edited(tiny_bundle(tmp_path / "m.pt"), edit)
    with pytest.raises(AsrError, match=re.escape(message)) as e:
        load_bundle(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_a_bundle_with_flipped_bytes_is_refused(tmp_path):
    path = tiny_bundle(tmp_path / "m.pt")
    raw = bytearray(path.read_bytes())
    # The weights are stored uncompressed in the zip: flip bytes inside the largest tensor's data.
    data = torch.load(path, weights_only=True)
    w = data["model"]["subsample.proj.weight"].numpy().tobytes()
    at = bytes(raw).find(w[:64])
    assert at > 0
    for i in range(at, at + 2000, 7):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(AsrError, match="checksum mismatch: the file is corrupt"):
        load_bundle(path)


def test_bundles_without_a_checksum_still_load(tmp_path):
    path = edited(tiny_bundle(tmp_path / "m.pt"), lambda d: None)
    assert load_bundle(path).tokenizer.tokens[0] == "<blank>"


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
    del data["checksum"]  # as a file from before checksums: the tokenizer itself is checked
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(AsrError, match="the tokenizer record is not valid.*sentencepiece"):
        load_bundle(tmp_path / "bad.pt")


def test_bundles_from_before_tokenizer_units_still_load(tmp_path):
    """Format 1: a character token list and no tokenizer section, in the config or the bundle."""
    cfg = load_config(None, ["model.hidden_size=16", "model.n_layers=1"])
    tok = CharTokenizer.build(["AB C"])
    save_bundle(tmp_path / "m.pt", cfg=cfg, tokenizer=tok, stats=FeatureStats(torch.zeros(80), torch.ones(80)),
                model=build_model(cfg, len(tok)), info={})
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    del data["tokenizer"], data["config"]["tokenizer"], data["checksum"]
    data["format"] = "asr-bundle/1"
    torch.save(data, tmp_path / "old.pt")
    bundle = load_bundle(tmp_path / "old.pt")
    assert isinstance(bundle.tokenizer, CharTokenizer) and bundle.tokenizer.tokens == tok.tokens
    assert bundle.config == cfg and bundle.config.tokenizer.unit == "char"
