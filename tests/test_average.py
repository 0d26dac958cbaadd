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
