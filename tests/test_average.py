"""Checkpoint averaging: element-wise means, and a bundle that loads and decodes."""

import pytest
import torch

from asr.average import average_state_dicts


def test_mean_of_float_tensors_and_last_integer_buffer():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)}
    c = {"w": torch.tensor([5.0, 1.0]), "n": torch.tensor(9)}
    out = average_state_dicts([a, b, c])
    assert torch.equal(out["w"], torch.tensor([3.0, 3.0]))
    assert out["n"].item() == 9 and out["n"].dtype == a["n"].dtype


def test_mismatched_checkpoints_are_refused():
    with pytest.raises(ValueError, match="different parameters"):
        average_state_dicts([{"w": torch.zeros(1)}, {"v": torch.zeros(1)}])
    with pytest.raises(ValueError):
        average_state_dicts([])


def test_running_average_equals_the_mean_of_its_epochs_and_round_trips():
    from asr.average import RunningAverage

    states = [{"w": torch.tensor([1.0, 2.0], dtype=torch.float32), "n": torch.tensor(k)} for k in (3, 7, 9)]
    states[1]["w"] = torch.tensor([3.0, 6.0])
    states[2]["w"] = torch.tensor([5.0, 1.0])
    run = RunningAverage()
    run.add(states[0], 1)
    carried = RunningAverage.from_dict(run.to_dict())  # as a checkpoint carries it to a resumed run
    for epoch, state in zip((2, 3), states[1:]):
        carried.add(state, epoch)
    out = carried.mean(states[0])
    assert torch.equal(out["w"], average_state_dicts(states)["w"]) and out["w"].dtype == torch.float32
    assert out["n"].item() == 9 and carried.epochs == [1, 2, 3]
    with pytest.raises(ValueError, match="different parameters"):
        carried.add({"v": torch.zeros(2)}, 4)
    with pytest.raises(ValueError, match="nothing to average"):
        RunningAverage().mean(states[0])
