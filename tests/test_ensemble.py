"""Model ensembles: the combination rules, the bundle format, and the checks on members."""

import dataclasses
import json
import math

import pytest
import torch

from asr.checkpoint import build_model, load_bundle, save_bundle, save_bundle_object
from asr.cli import main
from asr.config import load_config
from asr.checkpoint import Bundle
from asr.ensemble import Ensemble, ensemble_bundle, is_sequence_ensemble
from asr.errors import AsrError
from asr.features import FeatureStats
from asr.model import MemberLogProbs, ctc_loss_sum, frame_log_probs
from asr.tokenizer import CharTokenizer
from tests.conftest import write_tone

TOKENS = CharTokenizer.build(["AB C"])


def tiny(overrides=(), seed=0):
    cfg = load_config(None, ["model.hidden_size=16", "model.n_layers=1", "model.conv_channels=4", *overrides])
    torch.manual_seed(seed)
    return cfg, build_model(cfg, len(TOKENS)).eval()


def random_stats(seed):
    g = torch.Generator().manual_seed(seed)
    return FeatureStats(torch.randn(80, generator=g), torch.rand(80, generator=g) + 0.5)


def member(model_and_cfg, stats):
    cfg, model = model_and_cfg
    return Bundle(cfg, TOKENS, stats, model, {})


def save_tiny(path, overrides=(), seed=0, tokenizer=TOKENS):
    cfg, model = tiny(overrides, seed)
    save_bundle(path, cfg=cfg, tokenizer=tokenizer, stats=random_stats(seed), model=model, info={"seed": seed})
    return path


@pytest.mark.parametrize("combine", ["logprob", "prob"])
def test_one_member_gives_that_models_output_on_its_normalized_features(combine):
    cfg, model = tiny()
    stats = random_stats(1)
    ens = Ensemble([member((cfg, model), stats)], combine).eval()
    x, lens = torch.randn(2, 60, 80) * 3 + 1, torch.tensor([60, 41])
    with torch.no_grad():
        got, got_lens = ens(x, lens)
        want, want_lens = model(stats.normalize(x), lens)
    assert torch.equal(got_lens, want_lens)
    torch.testing.assert_close(got, want)


def test_two_members_are_combined_frame_by_frame():
    a, b = tiny(seed=0), tiny(["model.rnn_type=gru", "model.hidden_size=24"], seed=1)
    sa, sb = random_stats(2), random_stats(3)
    members = [member(a, sa), member(b, sb)]
    x, lens = torch.randn(2, 50, 80), torch.tensor([50, 33])
    with torch.no_grad():
        la, _ = a[1](sa.normalize(x), lens)
        lb, _ = b[1](sb.normalize(x), lens)
        mix, _ = Ensemble(members, "prob").eval()(x, lens)
        poe, _ = Ensemble(members, "logprob").eval()(x, lens)
    torch.testing.assert_close(mix.exp(), (la.exp() + lb.exp()) / 2)
    unnormalized = (la + lb) / 2
    torch.testing.assert_close(poe, unnormalized - torch.logsumexp(unnormalized, -1, keepdim=True))
    for out in (mix, poe):  # every frame is a distribution over the tokens
        torch.testing.assert_close(out.exp().sum(-1), torch.ones(2, out.shape[1]))
    assert not torch.allclose(mix, poe)  # the two rules are different rules


def test_sequence_rule_gives_the_members_outputs_apart():
    a, b = tiny(seed=0), tiny(["model.rnn_type=gru"], seed=1)
    sa, sb = random_stats(2), random_stats(3)
    members = [member(a, sa), member(b, sb)]
    seq, poe = Ensemble(members, "sequence").eval(), Ensemble(members, "logprob").eval()
    assert is_sequence_ensemble(seq) and not is_sequence_ensemble(poe) and not is_sequence_ensemble(a[1])
    x, lens = torch.randn(2, 50, 80), torch.tensor([50, 33])
    with torch.no_grad():
        out, out_lens = seq(x, lens)
        la, _ = a[1](sa.normalize(x), lens)
        lb, _ = b[1](sb.normalize(x), lens)
        assert isinstance(out, MemberLogProbs) and out.shape == la.shape
        torch.testing.assert_close(out.members[0], la)
        torch.testing.assert_close(out.members[1], lb)
        torch.testing.assert_close(frame_log_probs(out), poe(x, lens)[0])
        torch.testing.assert_close(out[1, :20].members[1], lb[1, :20])  # an utterance's slice, per member
        targets, target_lens = torch.tensor([[2, 3], [4, 0]]), torch.tensor([2, 1])
        loss = ctc_loss_sum(out, out_lens, targets, target_lens)
        want = (ctc_loss_sum(la, out_lens, targets, target_lens) + ctc_loss_sum(lb, out_lens, targets, target_lens)) / 2
    torch.testing.assert_close(loss, want)


def test_an_utterance_gets_the_same_output_alone_and_in_a_padded_batch():
    a, b = tiny(seed=0), tiny(["model.rnn_type=gru"], seed=1)
    ens = Ensemble([member(a, random_stats(2)), member(b, random_stats(3))], "logprob").eval()
    x = torch.randn(2, 64, 80)
    x[1, 40:] = 0  # padding: zeros before each member's normalization, not after
    with torch.no_grad():
        batch, lens = ens(x, torch.tensor([64, 40]))
        alone, alone_lens = ens(x[1:, :40], torch.tensor([40]))
    assert lens[1] == alone_lens[0]
    torch.testing.assert_close(batch[1, : lens[1]], alone[0])


def test_ensemble_bundle_round_trip_keeps_members_stats_and_decode_settings(tmp_path):
    a = save_tiny(tmp_path / "a.pt", seed=0)
    b = save_tiny(tmp_path / "b.pt", ["model.rnn_type=gru", "model.n_layers=2"], seed=1)
    bundle = ensemble_bundle([a, b], "prob")
    assert bundle.info["ensemble_of"] == [str(a), str(b)]
    save_bundle_object(bundle, tmp_path / "e.pt")
    loaded = load_bundle(tmp_path / "e.pt")
    assert isinstance(loaded.model, Ensemble) and loaded.model.combine == "prob"
    assert loaded.tokenizer.tokens == TOKENS.tokens
    assert [m.config.model.rnn_type for m in loaded.model.members] == ["lstm", "gru"]
    assert [m.info["seed"] for m in loaded.model.members] == [0, 1]
    x, lens = torch.randn(1, 70, 80), torch.tensor([70])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, lens)[0], bundle.model(x, lens)[0])
        # the members' own bundles, on features normalized with their own statistics
        ma, mb = load_bundle(a), load_bundle(b)
        la, lb = ma.model(ma.stats.normalize(x), lens)[0], mb.model(mb.stats.normalize(x), lens)[0]
    torch.testing.assert_close(loaded.model(x, lens)[0], torch.logsumexp(torch.stack([la, lb]), 0) - math.log(2))
    # what asr tune stores survives a second save
    tuned = dataclasses.replace(
        loaded, config=dataclasses.replace(loaded.config, decode=dataclasses.replace(
            loaded.config.decode, method="beam", lm_weight=0.7)), lm_arpa="ARPA", lexicon="LEX")
    save_bundle_object(tuned, tmp_path / "e2.pt")
    again = load_bundle(tmp_path / "e2.pt")
    assert again.config.decode.lm_weight == 0.7 and again.lm_arpa == "ARPA" and again.lexicon == "LEX"
    assert isinstance(again.model, Ensemble) and len(again.model.members) == 2


def test_an_ensemble_keeps_the_first_models_search_size_and_drops_its_tuned_settings(tmp_path):
    a = save_tiny(tmp_path / "a.pt", ["decode.beam_size=8", "decode.candidates=5", "decode.beam_threshold=12",
                                      "decode.lm_weight=0.3", "decode.method=beam", "decode.shifts_ms=[0,5]"])
    b = save_tiny(tmp_path / "b.pt", seed=1)
    decode = ensemble_bundle([a, b]).config.decode
    assert (decode.beam_size, decode.candidates, decode.beam_threshold) == (8, 5, 12)
    defaults = load_config().decode
    assert (decode.lm_weight, decode.method, decode.shifts_ms) == (defaults.lm_weight, defaults.method, defaults.shifts_ms)


def test_members_must_share_tokens_features_and_frame_rate(tmp_path):
    a = save_tiny(tmp_path / "a.pt")
    cases = [
        (save_tiny(tmp_path / "t.pt", tokenizer=CharTokenizer.build(["XY Z"])), "tokens differ"),
        (save_tiny(tmp_path / "f.pt", ["features.mean_norm=utterance"]), "features.mean_norm"),
        (save_tiny(tmp_path / "s.pt", ["model.subsampling_factor=2"]), "model.subsampling_factor: 4 -> 2"),
        # the same factor, but conv and stacking give different frame counts
        (save_tiny(tmp_path / "k.pt", ["model.subsampling=stack"]), "model.subsampling: 'conv' -> 'stack'"),
    ]
    for other, message in cases:
        with pytest.raises(AsrError, match=message) as err:
            ensemble_bundle([a, other])
        assert str(other) in str(err.value)
    with pytest.raises(AsrError, match="at least two"):
        ensemble_bundle([a])
    with pytest.raises(AsrError, match="--combine"):
        ensemble_bundle([a, a], "median")
    save_bundle_object(ensemble_bundle([a, a]), tmp_path / "e.pt")
    with pytest.raises(AsrError, match="ensemble already"):
        ensemble_bundle([tmp_path / "e.pt", a])
    broken = torch.load(tmp_path / "e.pt", weights_only=True)
    del broken["members"][1]["stats"]
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(AsrError, match="broken.pt: checksum mismatch"):
        load_bundle(tmp_path / "broken.pt")
    for data in (broken, broken["members"][1]):
        del data["checksum"]  # as written before checksums: the member's fields are checked
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(AsrError, match="broken.pt: member 2: feature statistics are not a mean and a std"):
        load_bundle(tmp_path / "broken.pt")


def test_cli_builds_an_ensemble_that_transcribes(tmp_path, capsys):
    a = save_tiny(tmp_path / "a.pt", seed=0)
    b = save_tiny(tmp_path / "b.pt", ["model.hidden_size=8"], seed=1)
    out = tmp_path / "e.pt"
    assert main(["ensemble", str(a), str(b), "--out", str(out)]) == 0
    assert "ensemble of 2 models" in capsys.readouterr().out
    wav = write_tone(tmp_path / "tone.wav", seconds=0.6)
    assert main(["transcribe", "--model", str(out), "--format", "json", "--timestamps", str(wav)]) == 0
    assert '"file"' in capsys.readouterr().out
    assert load_bundle(out).model.combine == "sequence"  # the default
    # tuned with an LM, then evaluated: the sequence combination runs end to end
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(
        json.dumps({"id": f"u{i}", "audio": str(write_tone(tmp_path / f"u{i}.wav", seconds=0.5 + i / 10, freq=300 + 200 * i)),
                    "duration": 0.5 + i / 10, "text": text, "speaker": "s"}) + "\n"
        for i, text in enumerate(["AB C", "C", "AB"])))
    (tmp_path / "text.txt").write_text("AB C\nC\nAB AB\n")
    assert main(["lm", "build", "--order", "2", str(tmp_path / "text.txt"), "-o", str(tmp_path / "lm.arpa")]) == 0
    assert main(["tune", "--model", str(out), "--manifest", str(manifest), "--lm", str(tmp_path / "lm.arpa"),
                 "--out", str(tmp_path / "e_lm.pt"), "--lm-weights", "0,1", "--word-scores", "0"]) == 0
    tuned = load_bundle(tmp_path / "e_lm.pt")
    assert tuned.model.combine == "sequence" and tuned.config.decode.method == "beam" and tuned.lm_arpa
    assert main(["evaluate", "--model", str(tmp_path / "e_lm.pt"), "--manifest", str(manifest),
                 "--out", str(tmp_path / "report")]) == 0
    hyps = (tmp_path / "report" / "hyp.trn").read_text().splitlines()
    assert len(hyps) == 3 and all(set(line.rsplit("(", 1)[0].split()) <= {"AB", "C"} for line in hyps)
    capsys.readouterr()
    assert main(["transcribe", "--model", str(tmp_path / "e_lm.pt"), "--format", "json", "--timestamps", str(wav)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert set(record["text"].split()) <= {"AB", "C"} and len(record.get("words", [])) == len(record["text"].split())
    assert main(["ensemble", str(a), str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")]) != 0
    assert "missing.pt: no such model file" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_checkpoint_averaging_refuses_an_ensemble(tmp_path):
    from asr.average import average_last_epochs

    a = save_tiny(tmp_path / "a.pt")
    exp = tmp_path / "exp"
    (exp / "checkpoints").mkdir(parents=True)
    (exp / "checkpoints" / "epoch-1.pt").write_bytes(b"")
    save_bundle_object(ensemble_bundle([a, a]), exp / "model.pt")
    with pytest.raises(AsrError, match="is an ensemble"):
        average_last_epochs(exp, 1)
