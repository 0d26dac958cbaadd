"""asr export: TorchScript and ONNX packages give the PyTorch log-probabilities (within 1e-4)
on AN4 audio, alone and in padded batches; int8 packages stay close; packages load wherever
a model is taken; broken packages are refused."""

import json

import pytest
import torch

from asr.checkpoint import build_model, load_bundle, save_bundle
from asr.cli import main
from asr.config import load_config
from asr.data import SpeechDataset, collate
from asr.errors import AsrError
from asr.features import FeatureStats
from asr.manifest import read_manifest
from asr.tokenizer import CharTokenizer

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    """The AN4 recipe's architecture (3 x 256 BiGRU), random weights."""
    cfg = load_config("recipes/an4/conf/train.yaml")
    tok = CharTokenizer.build(["ABCDEFGHIJKLMNOPQRSTUVWXYZ '"])
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("export") / "model.pt"
    save_bundle(path, cfg=cfg, tokenizer=tok, stats=FeatureStats(torch.full((80,), -5.0), torch.full((80,), 3.0)),
                model=build_model(cfg, len(tok)), info={"epoch": 1}, lm_arpa="\\data\\\n", lexicon="A A |\n")
    return path


@pytest.fixture(scope="module")
def an4_batches(an4_prepared, bundle_path):
    bundle = load_bundle(bundle_path)
    utts = read_manifest(an4_prepared / "manifests" / "test.jsonl")[:6]
    data = SpeechDataset(utts, bundle.tokenizer, bundle.config.features, bundle.stats)
    return [collate([data[0]]), collate([data[i] for i in range(1, 6)])]  # alone, and a padded batch of 5


@pytest.mark.parametrize("engine, quantize, tolerance", [
    ("torchscript", None, 1e-4), ("onnx", None, 1e-4), ("torchscript", "int8", 0.05), ("onnx", "int8", 0.05)])
def test_packages_give_the_pytorch_log_probabilities(bundle_path, an4_batches, tmp_path, engine, quantize, tolerance,
                                                     capsys):
    args = ["export", str(bundle_path), "--format", engine, "--out", str(tmp_path / "pkg")]
    assert main(args + (["--quantize", quantize] if quantize else [])) == 0
    assert "package of" in capsys.readouterr().out
    reference, package = load_bundle(bundle_path), load_bundle(tmp_path / "pkg")
    assert package.info["engine"] == engine and package.lm_arpa == reference.lm_arpa
    assert package.lexicon == reference.lexicon and package.tokenizer.tokens == reference.tokenizer.tokens
    for batch in an4_batches:
        with torch.no_grad():
            want, want_lens = reference.model(batch.feats, batch.feat_lens)
        got, got_lens = package.model(batch.feats, batch.feat_lens)
        assert torch.equal(got_lens, want_lens)
        for b, n in enumerate(want_lens.tolist()):
            torch.testing.assert_close(got[b, :n], want[b, :n], atol=tolerance, rtol=0)


def test_a_package_transcribes_like_its_bundle(bundle_path, an4_prepared, tmp_path):
    import asr

    assert main(["export", str(bundle_path), "--format", "onnx", "--out", str(tmp_path / "pkg")]) == 0
    utts = read_manifest(an4_prepared / "manifests" / "test.jsonl")[:4]
    a = asr.load_model(bundle_path, method="greedy")
    b = asr.load_model(tmp_path / "pkg", method="greedy")
    assert [a.transcribe(u.audio).text for u in utts] == [b.transcribe(u.audio).text for u in utts]


def test_broken_packages_and_ensembles_are_refused(bundle_path, tmp_path, capsys):
    assert main(["export", str(bundle_path), "--format", "torchscript", "--out", str(tmp_path / "pkg")]) == 0
    (tmp_path / "pkg" / "model.ts").write_bytes(b"flipped")
    with pytest.raises(AsrError, match="model.ts: checksum mismatch"):
        load_bundle(tmp_path / "pkg")
    meta = json.loads((tmp_path / "pkg" / "package.json").read_text())
    (tmp_path / "pkg" / "package.json").write_text(json.dumps({**meta, "format": "other/9"}))
    with pytest.raises(AsrError, match="not an asr export package"):
        load_bundle(tmp_path / "pkg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AsrError, match="not an exported model package"):
        load_bundle(tmp_path / "empty")
    assert main(["ensemble", str(bundle_path), str(bundle_path), "--out", str(tmp_path / "e.pt")]) == 0
    assert main(["export", str(tmp_path / "e.pt"), "--format", "onnx", "--out", str(tmp_path / "x")]) == 1
    assert "an ensemble cannot be exported" in capsys.readouterr().err
