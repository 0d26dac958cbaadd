"""Acoustic model: subsampling front end -> (bi)LSTM/GRU stack -> linear -> log-softmax.

Contract: forward(feats (B, T, F), feat_lens (B,)) -> (log_probs (B, T', V), out_lens (B,)).
Every layer sees only the valid frames of each utterance, so an utterance's output is the
same alone and inside a padded batch: convolutions use no padding, nothing uses batch
statistics, and the recurrent layers run each direction on dense (unpacked) tensors, the
backward one over each utterance reversed within its own length. Dense RNNs ran 1.2x (GRU)
to 1.8x (LSTM) faster than packed sequences on a 2-core CPU (bench/rnn_layout.py, before the
next change). On a CPU the two directions of a layer now run at the same time, in two threads
(asr.parallel_rnn; bench/rnn_layout.py times that unless ASR_PARALLEL_DIRECTIONS=0).

MemberLogProbs is the output type of an ensemble that keeps its members' outputs apart
(asr.ensemble, combine "sequence"): decoders and the loss take it wherever they take a
(B, T', V) tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from asr.config import ModelConfig
from asr.parallel_rnn import run_directions, use_parallel_directions


class ConvSubsampling(nn.Module):
    """One or two 3x3 conv2d layers with stride 2 in time and frequency (2x or 4x)."""

    def __init__(self, n_in: int, n_out: int, channels: int, factor: int):
        super().__init__()
        if factor not in (2, 4):
            raise ValueError(f"conv subsampling factor must be 2 or 4, got {factor}")
        n_convs = 2 if factor == 4 else 1
        layers, c_in, f = [], 1, n_in
        for _ in range(n_convs):
            layers += [nn.Conv2d(c_in, channels, kernel_size=3, stride=2), nn.GELU()]
            c_in, f = channels, (f - 3) // 2 + 1
        self.convs = nn.Sequential(*layers)
        self.n_convs = n_convs
        self.proj = nn.Linear(channels * f, n_out)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.convs(x.unsqueeze(1))  # (B, T, F) -> (B, C, T', F')
        b, c, t, f = x.shape
        x = self.proj(x.transpose(1, 2).reshape(b, t, c * f))  # (B, C, T', F') -> (B, T', H)
        for _ in range(self.n_convs):
            lens = (lens - 3) // 2 + 1
        return x, lens

    @staticmethod
    def min_frames(factor: int) -> int:
        return 7 if factor == 4 else 3


class FrameStacking(nn.Module):
    """Concatenate each group of `factor` frames (dropping a partial last group), project."""

    def __init__(self, n_in: int, n_out: int, factor: int):
        super().__init__()
        self.factor = factor
        self.proj = nn.Linear(n_in * factor, n_out)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, f = x.shape
        t_out = t // self.factor
        x = x[:, : t_out * self.factor].reshape(b, t_out, f * self.factor)  # (B, T, F) -> (B, T/k, kF)
        return self.proj(x), lens // self.factor  # -> (B, T/k, H)


class Dropout(nn.Module):
    """nn.Dropout with its mask drawn from uniform numbers on a CPU. torch's CPU dropout draws
    each element with bernoulli_, which took 29 ms forward + backward over a 2000 x 512 batch
    with 2 threads against 10 ms this way (6-7% of an AN4 training step); elsewhere (CUDA's
    fused kernel) it is torch's. The same distribution: each element kept with probability
    1 - p and scaled by 1 / (1 - p); a different random stream than torch's."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, True)
        keep = torch.rand_like(x, dtype=torch.float32).ge_(self.p)  # drawn in float32 under bf16 too
        return x * keep.mul_(1.0 / (1.0 - self.p)).to(x.dtype)  # 0 or 1 / (1 - p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def reverse_padded(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of (B, T, H) within its length; padding stays at the end.

    Applying it twice gives back the input.
    """
    t = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, T)
    n = lens.to(x.device).unsqueeze(1)  # (B, 1)
    idx = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


class RecurrentStack(nn.Module):
    """N layers of LSTM or GRU, each direction a separate unidirectional RNN.

    Equivalent to nn.LSTM/nn.GRU(bidirectional=...) on packed sequences, but runs on dense
    tensors: the forward direction never sees padding before valid frames, and the backward
    direction runs over each sequence reversed within its length.
    """

    def __init__(self, rnn_type: str, n_in: int, hidden: int, n_layers: int, bidirectional: bool, dropout: float):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[rnn_type]
        n_dirs = 2 if bidirectional else 1
        self.bidirectional = bidirectional
        self.layers = nn.ModuleList()
        for i in range(n_layers):
            size_in = n_in if i == 0 else hidden * n_dirs
            dirs = nn.ModuleList(rnn(size_in, hidden, batch_first=True) for _ in range(n_dirs))
            if rnn_type == "lstm":
                for d in dirs:
                    init_forget_bias(d, 1.0)
            self.layers.append(dirs)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, lens: torch.Tensor, first: int = 0, stop: Optional[int] = None) -> torch.Tensor:
        """Layers first .. stop - 1 over x (all of them by default)."""
        last = len(self.layers) if stop is None else stop
        for i, dirs in enumerate(self.layers):
            if first <= i < last:
                if i > 0:
                    x = self.dropout(x)
                if self.bidirectional:
                    x_back = reverse_padded(x, lens)
                    parallel = False
                    if not torch.jit.is_scripting():  # TorchScript compiles no thread
                        parallel = use_parallel_directions(x)
                    if parallel:
                        y, y_back = self._both_directions(i, x, x_back)
                    else:
                        y, _ = dirs[0](x)  # (B, T, H_in) -> (B, T, H)
                        y_back, _ = dirs[1](x_back)
                    y = torch.cat([y, reverse_padded(y_back, lens)], dim=-1)  # -> (B, T, 2H)
                else:
                    y, _ = dirs[0](x)
                x = y
        return x

    @torch.jit.unused
    def _both_directions(self, i, x, x_back):
        # type: (int, Tensor, Tensor) -> Tuple[Tensor, Tensor]
        """Layer i's two directions at the same time, each in a thread of its own (asr.parallel_rnn)."""
        return run_directions(self.layers[i], x, x_back)


class AcousticModel(nn.Module):
    def __init__(self, cfg: ModelConfig, n_mels: int, n_tokens: int):
        super().__init__()
        self.cfg = cfg
        if cfg.rnn_type not in ("lstm", "gru"):
            raise ValueError(f"rnn_type must be 'lstm' or 'gru', got {cfg.rnn_type!r}")
        if cfg.subsampling == "conv":
            self.subsample = ConvSubsampling(
                n_mels, cfg.hidden_size, cfg.conv_channels, cfg.subsampling_factor
            )
        elif cfg.subsampling == "stack":
            self.subsample = FrameStacking(n_mels, cfg.hidden_size, cfg.subsampling_factor)
        else:
            raise ValueError(f"subsampling must be 'conv' or 'stack', got {cfg.subsampling!r}")
        self.rnn = RecurrentStack(
            cfg.rnn_type, cfg.hidden_size, cfg.hidden_size, cfg.n_layers, cfg.bidirectional, cfg.dropout
        )
        self.dropout = Dropout(cfg.dropout)
        n_dirs = 2 if cfg.bidirectional else 1
        self.output = nn.Linear(cfg.hidden_size * n_dirs, n_tokens)
        # Intermediate CTC's output layer (model.inter_ctc_layer; training only, see WithIntermediate).
        self.inter_output = nn.Linear(cfg.hidden_size * n_dirs, n_tokens) if cfg.inter_ctc_layer else None

    def min_frames(self) -> int:
        """Shortest input (in feature frames) that yields at least one output frame."""
        if self.cfg.subsampling == "conv":
            return ConvSubsampling.min_frames(self.cfg.subsampling_factor)
        return self.cfg.subsampling_factor

    def forward(
        self, feats: torch.Tensor, feat_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, lens = self.subsample(feats, feat_lens)  # (B, T, F) -> (B, T', H)
        lens = lens.clamp(min=1, max=x.shape[1])
        y = self.rnn(self.dropout(x), lens)  # (B, T', H) -> (B, T', D*H)
        logits = self.output(self.dropout(y))  # (B, T', D*H) -> (B, T', V)
        return logits.float().log_softmax(dim=-1), lens

    def forward_intermediate(
        self, feats: torch.Tensor, feat_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """forward's (log_probs, out_lens), plus the log-probs (B, T', V) of the intermediate
        output layer after recurrent layer model.inter_ctc_layer (None without one). The same
        computation as forward: the stack runs in two parts."""
        k = self.cfg.inter_ctc_layer
        if self.inter_output is None:
            return (*self(feats, feat_lens), None)
        x, lens = self.subsample(feats, feat_lens)  # (B, T, F) -> (B, T', H)
        lens = lens.clamp(min=1, max=x.shape[1])
        mid = self.rnn(self.dropout(x), lens, 0, k)  # layers 0 .. k-1 -> (B, T', D*H)
        y = self.rnn(mid, lens, k)  # the rest
        inter = self.inter_output(self.dropout(mid)).float().log_softmax(dim=-1)
        return self.output(self.dropout(y)).float().log_softmax(dim=-1), lens, inter


class WithIntermediate(nn.Module):
    """The training view of an AcousticModel: forward gives (log_probs, out_lens, intermediate
    log_probs or None). A module of its own so that DistributedDataParallel wraps the call
    the loss needs, while AcousticModel.forward stays the one that decoding and export use."""

    def __init__(self, model: AcousticModel):
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor):
        return self.model.forward_intermediate(feats, feat_lens)


def init_forget_bias(lstm: nn.LSTM, value: float) -> None:
    """Start LSTM forget gates open (bias_ih + bias_hh = value): CTC training leaves its
    initial all-blank plateau markedly sooner (Jozefowicz et al., 2015)."""
    for name, p in lstm.named_parameters():
        if name.startswith("bias"):
            h = p.shape[0] // 4  # gates are stacked as [input, forget, cell, output]
            with torch.no_grad():
                p[h : 2 * h] = value / 2


@dataclass(frozen=True)
class MemberLogProbs:
    """The outputs of K models over the same frames, kept apart: K tensors (B, T', V).

    Indexing, .cpu(), .float() and .unsqueeze() apply to every member, so an utterance's
    slice (`out[b, :n]`) is a MemberLogProbs of (T', V) tensors; `per_frame()` is their
    per-frame combination (mean log-probability, renormalized) for what needs one
    distribution per frame (greedy search, forced alignment)."""

    members: tuple[torch.Tensor, ...]

    def __getitem__(self, index) -> "MemberLogProbs":
        return MemberLogProbs(tuple(m[index] for m in self.members))

    @property
    def shape(self) -> torch.Size:
        return self.members[0].shape

    def cpu(self) -> "MemberLogProbs":
        return MemberLogProbs(tuple(m.cpu() for m in self.members))

    def float(self) -> "MemberLogProbs":
        return MemberLogProbs(tuple(m.float() for m in self.members))

    def unsqueeze(self, dim: int) -> "MemberLogProbs":
        return MemberLogProbs(tuple(m.unsqueeze(dim) for m in self.members))

    def per_frame(self) -> torch.Tensor:
        return torch.stack(self.members).mean(0).log_softmax(dim=-1)


def frame_log_probs(log_probs: torch.Tensor | MemberLogProbs) -> torch.Tensor:
    """One token distribution per frame (B, T', V): MemberLogProbs combined per frame, a
    tensor as it is."""
    return log_probs.per_frame() if isinstance(log_probs, MemberLogProbs) else log_probs


def ctc_loss_sum(log_probs, out_lens, targets, target_lens, reduction: str = "sum") -> torch.Tensor:
    """Summed CTC loss of a batch (impossible alignments count as zero, not infinity);
    reduction "none": each utterance's, (B,).

    For MemberLogProbs: the mean of the members' losses, the negated log-likelihood the
    sequence combination ranks hypotheses by.
    """
    if isinstance(log_probs, MemberLogProbs):
        members = log_probs.members
        return sum(ctc_loss_sum(m, out_lens, targets, target_lens, reduction) for m in members) / len(members)
    return torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1),  # (B, T, V) -> (T, B, V)
        targets,
        out_lens,
        target_lens,
        blank=0,
        reduction=reduction,
        zero_infinity=True,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
