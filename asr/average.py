"""Checkpoint averaging: one model whose weights are the mean of the last N epochs'.

Averaging the parameters of the final epochs (ESPnet's average_checkpoints, icefall's
--avg) smooths out the noise of the last optimizer steps. The averaged model is written
as an ordinary bundle, with the tokens, feature statistics and config of the best model.

Two ways to the same mean: `asr average` after training, from the epoch checkpoints kept on
disk (train.keep_checkpoints >= N, about 40 MB each for the AN4 model), or `RunningAverage`
during training (train.average_last = N, as icefall keeps its model_avg and stochastic weight
averaging its running mean): the sum of the weights at the end of each of the last N epochs,
carried in the epoch checkpoint, so that nothing else has to be kept.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import torch

from asr.checkpoint import Bundle, checkpoint_epoch, epoch_checkpoints, load_bundle, load_checkpoint_file, verify_checksum
from asr.errors import AsrError, first_line
from asr.model import AcousticModel


def average_state_dicts(states: Sequence[dict]) -> dict:
    """Element-wise mean of floating-point tensors; integer buffers (counters) from the last."""
    if not states:
        raise ValueError("nothing to average")
    mean = RunningAverage()
    for epoch, state in enumerate(states):
        mean.add(state, epoch)
    return mean.mean(states[-1])


def average_last_epochs(exp_dir: str | Path, n_last: int) -> tuple[Bundle, list[int]]:
    """The best model's bundle with its weights replaced by the mean of the last `n_last` epochs."""
    exp_dir = Path(exp_dir)
    ckpts = epoch_checkpoints(exp_dir)
    if n_last < 1:
        raise AsrError(f"--last must be at least 1 (got {n_last})")
    if len(ckpts) < n_last:
        raise AsrError(
            f"{exp_dir / 'checkpoints'}: {len(ckpts)} epoch checkpoints, {n_last} asked for "
            "(train with --set train.keep_checkpoints=N to keep more, or with --set train.average_last=N "
            "to keep the mean itself, as EXP/model_avg.pt)"
        )
    best = load_bundle(exp_dir / "model.pt")
    if not isinstance(best.model, AcousticModel):
        raise AsrError(f"{exp_dir / 'model.pt'}: is an ensemble; average the runs of its members instead")
    chosen = ckpts[-n_last:]
    epochs = [checkpoint_epoch(p) for p in chosen]
    mean = RunningAverage()  # one checkpoint in memory at a time
    try:
        for path, epoch in zip(chosen, epochs):
            state = load_checkpoint_file(path)
            verify_checksum(state, str(path))
            if state.get("tokens") != best.tokenizer.tokens:
                raise AsrError(f"{path}: tokens differ from {exp_dir / 'model.pt'}")
            mean.add(state["model"], epoch)
        model = copy.deepcopy(best.model)
        model.load_state_dict(mean.mean(model.state_dict()))
    except (ValueError, RuntimeError, KeyError) as e:
        raise AsrError(f"{exp_dir}: cannot average checkpoints ({first_line(e)})") from None
    # The best epoch's dev scores do not describe the average.
    info = {k: v for k, v in best.info.items() if k not in ("epoch", "dev_wer", "dev_cer")}
    info["averaged_epochs"] = epochs
    return Bundle(best.config, best.tokenizer, best.stats, model.eval(), info), epochs


class RunningAverage:
    """The mean of a model's weights at the end of several epochs, accumulated one epoch at a
    time: floating-point tensors summed in float64 on the CPU, integer buffers from the last."""

    def __init__(self, sums: dict | None = None, epochs: Sequence[int] = ()):
        self.sums = sums
        self.epochs = list(epochs)

    def add(self, state: dict, epoch: int) -> None:
        if self.sums is not None and state.keys() != self.sums.keys():
            raise ValueError("the model holds different parameters than the average")
        if self.sums is None:
            self.sums = {k: v.detach().to("cpu", torch.float64 if v.is_floating_point() else v.dtype, copy=True)
                         for k, v in state.items()}
        else:
            for k, v in state.items():
                if v.is_floating_point():
                    self.sums[k] += v.detach().to("cpu", torch.float64)
                else:
                    self.sums[k] = v.detach().to("cpu", copy=True)
        self.epochs.append(epoch)

    def mean(self, like: dict) -> dict:
        """The mean, in the dtypes of the state dict `like` (the model's own)."""
        if self.sums is None:
            raise ValueError("nothing to average")
        n = len(self.epochs)
        return {k: (s / n).to(like[k].dtype) if s.is_floating_point() else s.clone() for k, s in self.sums.items()}

    def to_dict(self) -> dict:
        return {"sums": self.sums, "epochs": list(self.epochs)}

    @classmethod
    def from_dict(cls, data: dict | None) -> "RunningAverage":
        if not data:
            return cls()
        return cls(data["sums"], [int(e) for e in data["epochs"]])
