import pytest

from asr.config import RunConfig, from_dict, load_config, save_config, to_dict
from asr.errors import AsrError


def test_yaml_then_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("model:\n  rnn_type: gru\n  n_layers: 2\ntrain:\n  lr: 0.001\n")
    cfg = load_config(tmp_path / "c.yaml", ["train.lr=3e-4", "augment.speed_factors=[0.9, 1.1]", "model.bidirectional=false"])
    assert cfg.model.rnn_type == "gru" and cfg.model.n_layers == 2
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)
    assert cfg.augment.speed_factors == (0.9, 1.1)
    assert cfg.model.bidirectional is False
    assert cfg.features == RunConfig().features


def test_round_trip_through_yaml_and_dict(tmp_path):
    cfg = load_config(None, ["model.hidden_size=64", "augment.speed_factors=[1.0, 1.1]"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert from_dict(RunConfig, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=ten", "train.epochs: expected int"),
        ("train.epochs=1.5", "train.epochs: expected int"),
        ("model.bidirectional=1", "expected bool"),
        ("model.colour=red", "unknown key .model.colour."),
        ("nosuch.x=1", "unknown key 'nosuch'"),
        ("train.lr", "expected section.field=value"),
        ("model.rnn_type=rnn", "model.rnn_type must be one of lstm, gru"),
        ("train.precision=fp16", "train.precision must be one of auto, bf16, fp32"),
        ("decode.method=beem", "decode.method must be one of greedy, beam"),
        ("model.subsampling_factor=3", "must be 2 or 4 with conv"),
        ("train.epochs=0", "train.epochs must be > 0"),
        ("model.dropout=1.5", "model.dropout must be in"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(AsrError, match=message):
        load_config(None, [override])


def test_bad_yaml_names_file(tmp_path):
    (tmp_path / "c.yaml").write_text("model: [unclosed\n")
    with pytest.raises(AsrError, match="c.yaml: invalid YAML"):
        load_config(tmp_path / "c.yaml")
