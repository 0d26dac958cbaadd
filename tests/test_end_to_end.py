"""A tiny real run: prepare AN4, train a small model briefly, evaluate, transcribe.

The model must learn: its CER on the utterances it trained on must fall far below an
untrained model's. A pipeline that does not learn fails here.
"""

import json

import pytest
import torch

from asr.checkpoint import build_model, load_bundle, load_checkpoint_file
from asr.cli import main
from asr.data import SpeechDataset
from asr.decoding import GreedyDecoder
from asr.evaluate import decode_dataset, score_hypotheses
from asr.manifest import read_manifest, write_manifest
from tests.sclite_tools import assert_report_agrees_with_sclite, require_tool

N_UTTS = 24
TRAIN_SETTINGS = [
    "model.rnn_type=gru", "model.n_layers=2", "model.hidden_size=128", "model.dropout=0.0",
    "model.conv_channels=16",
    "augment.n_freq_masks=0", "augment.n_time_masks=0",
    # All utterances in one batch, one step per epoch.
    "train.epochs=80", "train.lr=3e-3", "train.warmup_steps=10", "train.max_batch_frames=100000",
    "train.final_lr_ratio=0.3",
    "train.average_last=10",  # model_avg.pt beside model.pt; training itself is the same
]


@pytest.fixture(scope="module")
def tiny_run(an4_prepared, tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    utts = read_manifest(an4_prepared / "manifests" / "train.jsonl")
    # The shortest utterances of distinct texts from several speakers: fast, and not one word.
    seen, subset = set(), []
    for u in sorted(utts, key=lambda u: u.duration):
        if u.text not in seen and len(u.text) > 4:
            seen.add(u.text)
            subset.append(u)
        if len(subset) == N_UTTS:
            break
    manifest = work / "tiny.jsonl"
    write_manifest(subset, manifest)
    exp = work / "exp"
    args = ["train", "--train", str(manifest), "--dev", str(manifest), "--exp", str(exp), "--no-progress"]
    for s in TRAIN_SETTINGS:
        args += ["--set", s]
    assert main(args) == 0
    return work, manifest, exp, subset


def test_training_learns(tiny_run):
    work, manifest, exp, subset = tiny_run
    bundle = load_bundle(exp / "model.pt")
    dataset = SpeechDataset(subset, bundle.tokenizer, bundle.config.features, bundle.stats)
    decoder = GreedyDecoder(bundle.tokenizer)
    torch.manual_seed(0)
    untrained = build_model(bundle.config, len(bundle.tokenizer))
    before = score_hypotheses(subset, decode_dataset(untrained, dataset, decoder, torch.device("cpu"))[0])
    after = score_hypotheses(subset, decode_dataset(bundle.model, dataset, decoder, torch.device("cpu"))[0])
    print(f"CER untrained {before.cer:.1f}%, trained {after.cer:.1f}%")
    assert before.cer > 80
    assert after.cer < 35
    averaged = load_bundle(exp / "model_avg.pt")  # the mean of the last 10 epochs: a model that works too
    assert averaged.info["averaged_epochs"] == list(range(71, 81))
    mean_cer = score_hypotheses(subset, decode_dataset(averaged.model, dataset, decoder, torch.device("cpu"))[0]).cer
    assert mean_cer < 35 and averaged.info["dev_cer"] < 35
    if not torch.cuda.is_available():  # scored on dev (this set) on the device it trained on
        assert averaged.info["dev_cer"] == pytest.approx(mean_cer, abs=1e-6)
    log = (exp / "train.log").read_text()
    assert "dev WER" in log and "audio-s/s" in log


def test_evaluate_writes_reports(tiny_run, capsys):
    work, manifest, exp, subset = tiny_run
    out = work / "eval"
    assert main(["evaluate", "--model", str(exp / "model.pt"), "--manifest", str(manifest), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_sentences"] == N_UTTS
    assert summary["n_words"] == sum(len(u.text.split()) for u in subset)
    assert summary["cer"] < 35
    errs = (out / "errs.txt").read_text()
    assert errs.count("REF:") == N_UTTS and errs.count("HYP:") == N_UTTS
    printed = capsys.readouterr().out
    assert "%WER" in printed and "report.html" in printed
    assert summary["decode"]["method"] == "greedy" and summary["wer_ci95"][0] <= summary["wer"]
    assert summary["speakers"] and len((out / "utts.jsonl").read_text().splitlines()) == N_UTTS
    assert (out / "report.html").read_text().count("<th>REF</th>") >= N_UTTS


def test_evaluate_report_agrees_with_sclite(tiny_run, tmp_path, capsys):
    """On a real AN4 decode, sclite counts what the report counts."""
    require_tool("sclite")
    _, manifest, exp, _ = tiny_run
    assert main(["evaluate", "--model", str(exp / "model.pt"), "--manifest", str(manifest),
                 "--out", str(tmp_path / "eval")]) == 0
    assert assert_report_agrees_with_sclite(tmp_path / "eval") == N_UTTS


def test_transcribe_any_rate_and_channels(tiny_run, tmp_path, capsys):
    import soundfile as sf
    import torchaudio.functional as AF

    from asr.audio import load_audio

    work, manifest, exp, subset = tiny_run
    utt = subset[0]
    wave = load_audio(utt.audio)
    # The same audio as 44.1 kHz stereo FLAC must give the same kind of result.
    resampled = AF.resample(wave, 16000, 44100)
    sf.write(str(tmp_path / "x.flac"), torch.stack([resampled, resampled], 1).numpy(), 44100)
    model = str(exp / "model.pt")
    assert main(["transcribe", "--model", model, utt.audio]) == 0
    native = capsys.readouterr().out.strip()
    assert main(["transcribe", "--model", model, "--json", str(tmp_path / "x.flac")]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["file"] == str(tmp_path / "x.flac") and isinstance(record["text"], str)
    from jiwer import cer

    assert cer(utt.text, native) < 0.5
    assert cer(native, record["text"]) < 0.5


def test_resume_continues_from_last_epoch(tiny_run, tmp_path):
    work, manifest, exp, subset = tiny_run
    ckpts = sorted(p.name for p in (exp / "checkpoints").glob("epoch-*.pt"))
    assert ckpts == ["epoch-79.pt", "epoch-80.pt"]  # only the last two are kept
    args = ["train", "--train", str(manifest), "--dev", str(manifest), "--exp", str(exp), "--no-progress", "--resume"]
    assert main(args) == 0  # nothing left to do: all 80 epochs are done
    assert (exp / "train.log").read_text().count("epoch  80") == 1


def test_lm_tune_and_beam_decoding(tiny_run, capsys):
    """Build an LM from the training text, tune on 'dev', and decode with the tuned bundle."""
    work, manifest, exp, subset = tiny_run
    lm = work / "lm.arpa"
    assert main(["lm", "build", "--order", "2", "--manifest", str(manifest), "-o", str(lm)]) == 0
    tuned = work / "model_lm.pt"
    assert main(["tune", "--model", str(exp / "model.pt"), "--manifest", str(manifest), "--lm", str(lm),
                 "--lm-weights", "0,1", "--word-scores", "0,1", "--out", str(tuned)]) == 0
    report = json.loads((work / "model_lm.tune.json").read_text())
    assert len(report["grid"]) == 4 and report["best"]["wer"] == min(r["wer"] for r in report["grid"])
    bundle = load_bundle(tuned)
    assert bundle.config.decode.method == "beam" and bundle.lm_arpa.lstrip().startswith("\\data\\")
    assert bundle.config.decode.lm_weight == report["best"]["lm_weight"]
    capsys.readouterr()
    out = work / "eval_beam"
    assert main(["evaluate", "--model", str(tuned), "--manifest", str(manifest), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["decode"]["method"] == "beam" and summary["lm"] == "bundle"
    # The LM (so the lexicon) saw these very transcripts: no reference word is out of vocabulary.
    n_words = sum(len(u.text.split()) for u in subset)
    assert summary["oov"] == {"ref_words": n_words, "oov_words": 0, "oov_rate": 0.0, "oov_types": []}
    assert f"outside the decoder's lexicon: 0 of {n_words} (0.00%)" in capsys.readouterr().out
    assert summary["wer"] == pytest.approx(report["best"]["wer"])  # the bundle decodes as tuned
    # Every hypothesis word comes from the lexicon (the LM's vocabulary).
    vocab = {w for u in subset for w in u.text.split()}
    hyp_words = {w for line in (out / "hyp.trn").read_text().splitlines() for w in line.rsplit("(", 1)[0].split()}
    assert hyp_words <= vocab
    # Greedy can still be asked for.
    assert main(["evaluate", "--model", str(tuned), "--manifest", str(manifest), "--out", str(work / "eval_greedy"),
                 "--set", "decode.method=greedy"]) == 0
    greedy = json.loads((work / "eval_greedy" / "summary.json").read_text())
    assert greedy["decode"]["method"] == "greedy" and "oov" not in greedy  # open vocabulary


def test_word_timestamps_are_plausible(an4_prepared, tiny_run, capsys):
    """On real AN4 audio: every word inside the utterance, in order, not overlapping."""
    work, manifest, exp, subset = tiny_run
    for utt in subset[:8]:
        assert main(["transcribe", "--model", str(exp / "model.pt"), "--json", "--timestamps", utt.audio]) == 0
        record = json.loads(capsys.readouterr().out)
        words = record["words"]
        assert [w["word"] for w in words] == record["text"].split()
        for w in words:
            assert 0 <= w["start"] < w["end"] <= record["duration"] + 1e-6
        for a, b in zip(words, words[1:]):
            assert a["end"] <= b["start"]
    assert main(["transcribe", "--model", str(exp / "model.pt"), "--format", "srt", subset[0].audio]) == 0
    assert " --> " in capsys.readouterr().out


def test_average_cli_writes_a_bundle_of_the_mean_weights(tiny_run, tmp_path, capsys):
    work, manifest, exp, subset = tiny_run
    out = tmp_path / "avg.pt"
    assert main(["average", "--exp", str(exp), "--last", "2", "--out", str(out)]) == 0
    bundle = load_bundle(out)
    assert bundle.info["averaged_epochs"] == [79, 80]
    w79 = load_checkpoint_file(exp / "checkpoints" / "epoch-79.pt")["model"]
    w80 = load_checkpoint_file(exp / "checkpoints" / "epoch-80.pt")["model"]
    for name, value in bundle.model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (w79[name] + w80[name]) / 2)
    assert main(["evaluate", "--model", str(out), "--manifest", str(manifest), "--out", str(tmp_path / "r")]) == 0
    assert main(["average", "--exp", str(exp), "--last", "3", "--out", str(tmp_path / "x.pt")]) == 1
    err = capsys.readouterr().err
    assert "2 epoch checkpoints, 3 asked for" in err and "train.average_last=N" in err
    assert not (tmp_path / "x.pt").exists()
