"""Model ensembles: several acoustic models decoded as one.

Models trained with different seeds (or sizes) make partly different errors. An Ensemble is
data: its member bundles (each with its own config, feature statistics and weights) and a
combination rule. Called like a model, on features before normalization (each member
normalizes them with its own statistics), it gives:
- "sequence" (the default): the members' outputs kept apart (asr.model.MemberLogProbs);
  each member's beam search proposes transcripts, and the one with the best mean CTC
  log-likelihood over the members, plus LM and word scores, wins
  (asr.decoding.RescoringDecoder). Greedy decoding combines frames as "logprob".
- "logprob" / "prob": one (B, T', V) tensor, the per-frame combination of the token
  distributions (mean log-probability renormalized; mean probability), then one search.
  CTC models trained from different seeds put their spikes on different frames, which the
  per-frame average blurs: on AN4 it gained nothing over single models, where the sequence
  combination did (recipes/an4/RESULTS.md).
Members share the tokens, the features and the frame rate, which `ensemble_bundle` checks.
The result is a bundle like any other (asr/checkpoint.py): tune it with `asr tune`, then
`asr evaluate` and `asr transcribe` use it, at the cost of running every member.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import math

import torch

from asr.checkpoint import Bundle, identity_stats, load_bundle
from asr.config import DecodeConfig, config_differences
from asr.errors import AsrError
from asr.model import MemberLogProbs, count_parameters

COMBINE_RULES = ("logprob", "prob", "sequence")
SEARCH_SIZE = ("beam_size", "beam_threshold", "candidates")  # decode settings an ensemble keeps


class Ensemble:
    """Member bundles decoded as one model: `ensemble(feats, lens) -> (log_probs, out_lens)`
    with the model contract, on features before normalization."""

    def __init__(self, members: list[Bundle], combine: str = "sequence"):
        if not members:
            raise ValueError("an ensemble needs at least one model")
        if combine not in COMBINE_RULES:
            raise ValueError(f"combine must be one of {', '.join(COMBINE_RULES)}, got {combine!r}")
        if any(isinstance(m.model, Ensemble) for m in members):
            raise ValueError("an ensemble's members are single models")
        self.members = list(members)
        self.combine = combine

    def __call__(self, feats: torch.Tensor, feat_lens: torch.Tensor):
        outs, lens = [], None
        for member in self.members:
            stats = member.stats
            normalized = (feats - stats.mean.to(feats.device)) / stats.std.to(feats.device)  # (B, T, F)
            log_probs, out_lens = member.model(normalized, feat_lens)  # -> (B, T', V)
            if lens is not None and (log_probs.shape != outs[0].shape or not torch.equal(out_lens, lens)):
                raise ValueError("ensemble members give different numbers of output frames")
            outs.append(log_probs)
            lens = out_lens
        if self.combine == "sequence":
            return MemberLogProbs(tuple(outs)), lens
        stacked = torch.stack(outs)  # K x (B, T', V) -> (K, B, T', V)
        if self.combine == "logprob":
            return stacked.mean(0).log_softmax(dim=-1), lens
        return torch.logsumexp(stacked, dim=0) - math.log(len(outs)), lens

    def to(self, device) -> "Ensemble":
        for m in self.members:
            m.model.to(device)
        return self

    def eval(self) -> "Ensemble":
        for m in self.members:
            m.model.eval()
        return self

    def parameters(self):
        return (p for m in self.members for p in m.model.parameters())

    def min_frames(self) -> int:
        return max(m.model.min_frames() for m in self.members)


def is_sequence_ensemble(model) -> bool:
    """Whether the model gives its members' outputs apart (MemberLogProbs)."""
    return isinstance(model, Ensemble) and model.combine == "sequence"


def ensemble_bundle(paths: Sequence[str | Path], combine: str = "sequence") -> Bundle:
    """One bundle of the models in `paths` (plain bundles; their LM, lexicon and decode
    settings are dropped, since the ensemble is tuned on its own, except the size of the
    search, SEARCH_SIZE, which it takes from the first model: a recipe that narrows its beam
    narrows its ensemble's too)."""
    if len(paths) < 2:
        raise AsrError(f"an ensemble needs at least two models (got {len(paths)})")
    if combine not in COMBINE_RULES:
        raise AsrError(f"--combine must be one of {', '.join(COMBINE_RULES)} (got {combine!r})")
    bundles = [load_bundle(p) for p in paths]
    first, first_path = bundles[0], paths[0]
    for path, b in zip(paths, bundles):
        if isinstance(b.model, Ensemble):
            raise AsrError(f"{path}: is an ensemble already; list its members instead")
        if b.tokenizer.to_dict() != first.tokenizer.to_dict():
            raise AsrError(f"{path}: its tokens differ from those of {first_path}")
        features = config_differences(first.config.features, b.config.features, "features.")
        if features:
            raise AsrError(f"{path}: features differ from {first_path}'s ({'; '.join(features)})")
        frames = config_differences(first.config.model, b.config.model, "model.")
        frames = [d for d in frames if d.split(":")[0] in ("model.subsampling", "model.subsampling_factor")]
        if frames:  # conv and stack subsampling of the same factor give different frame counts
            raise AsrError(f"{path}: output frames differ from {first_path}'s ({'; '.join(frames)})")
    members = [dataclasses.replace(b, config=dataclasses.replace(b.config, decode=DecodeConfig()), lm_arpa=None,
                                   lexicon=None) for b in bundles]
    model = Ensemble(members, combine)
    search = {name: getattr(first.config.decode, name) for name in SEARCH_SIZE}
    config = dataclasses.replace(first.config, decode=DecodeConfig(**search))
    info = {"ensemble_of": [str(p) for p in paths], "combine": combine, "parameters": count_parameters(model)}
    return Bundle(config, first.tokenizer, identity_stats(config.features.n_mels), model.eval(), info)
