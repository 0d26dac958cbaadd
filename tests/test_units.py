"""A tiny run with sentencepiece units through the command line: train, resume, LM, tune,
evaluate, transcribe with word timestamps. Audio is synthetic: the run must work, not learn."""

import json

import pytest

from asr.checkpoint import load_bundle
from asr.cli import main
from asr.manifest import Utterance, write_manifest
from asr.tokenizer import SentencePieceTokenizer
from tests.conftest import write_tone

TEXTS = ["HELLO WORLD", "THE BIG WORLD", "HELLO THERE", "IT'S A BIG WORLD", "THE WORLD", "HELLO"]
TINY = ["model.rnn_type=gru", "model.n_layers=1", "model.hidden_size=16", "model.conv_channels=4",
        "train.max_batch_frames=100000", "train.warmup_steps=1", "augment.n_time_masks=0"]


@pytest.mark.parametrize("unit", ["bpe"])
def test_tiny_run_with_sentencepiece_units(tmp_path, capsys, unit):
    utts = [Utterance(f"u{i}", str(write_tone(tmp_path / f"u{i}.wav", seconds=2.0, freq=200 + 50 * i)), 2.0, text, "s")
            for i, text in enumerate(TEXTS)]
    m = tmp_path / "m.jsonl"
    write_manifest(utts, m)
    exp = tmp_path / "exp"
    args = ["train", "--train", str(m), "--dev", str(m), "--exp", str(exp), "--no-progress",
            "--set", f"tokenizer.unit={unit}", "--set", "tokenizer.vocab_size=30"]
    for s in TINY:
        args += ["--set", s]
    assert main([*args, "--set", "train.epochs=1"]) == 0
    bundle = load_bundle(exp / "model.pt")
    tok = bundle.tokenizer
    assert isinstance(tok, SentencePieceTokenizer) and tok.unit == unit and bundle.config.tokenizer.unit == unit
    assert (exp / "tokens.txt").read_text().splitlines() == tok.tokens
    assert (exp / "tokenizer.model").read_bytes() == tok.model
    assert "skipping" not in (exp / "train.log").read_text()  # every utterance is trainable
    # Resuming takes the tokenizer from the checkpoint, not from a new training of it.
    (exp / "tokenizer.model").unlink()
    assert main([*args, "--resume", "--set", "train.epochs=1"]) == 0
    assert load_bundle(exp / "model.pt").tokenizer.tokens == tok.tokens
    assert (exp / "tokenizer.model").read_bytes() == tok.model
    lm = tmp_path / "lm.arpa"
    assert main(["lm", "build", "--order", "2", "--manifest", str(m), "-o", str(lm)]) == 0
    tuned = tmp_path / "model_lm.pt"
    assert main(["tune", "--model", str(exp / "model.pt"), "--manifest", str(m), "--lm", str(lm),
                 "--lm-weights", "0.5", "--word-scores=0", "--out", str(tuned)]) == 0
    lexicon = {line.split()[0]: line.split()[1:] for line in load_bundle(tuned).lexicon.splitlines()}
    assert lexicon["BIG"] == tok.spell("BIG") and lexicon["BIG"][0].startswith("\u2581")  # pieces, no separator
    for model, out in ((exp / "model.pt", "greedy"), (tuned, "beam")):
        assert main(["evaluate", "--model", str(model), "--manifest", str(m), "--out", str(tmp_path / out)]) == 0
        summary = json.loads((tmp_path / out / "summary.json").read_text())
        assert summary["n_sentences"] == len(TEXTS) and summary["decode"]["method"] == out
    capsys.readouterr()
    assert main(["transcribe", "--model", str(tuned), "--json", "--timestamps", utts[0].audio]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [w["word"] for w in record.get("words", [])] == record["text"].split()
