"""Model ensembles: several acoustic models decoded as one.

Models trained with different seeds (or sizes) make partly different errors. Two ways of
combining them (asr.model.EnsembleModel):
- "sequence" (the default): each member's beam search proposes transcripts, and the one
  with the best mean CTC log-likelihood over the members, plus LM and word scores, wins
  (asr.decoding.RescoringDecoder). Greedy decoding combines frames as "logprob".
- "logprob" / "prob": per-frame combination of the token distributions, then one search.
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

from asr.checkpoint import Bundle, ensemble_model, identity_stats, load_bundle
from asr.config import DecodeConfig, config_differences
from asr.errors import AsrError
from asr.model import COMBINE_RULES, EnsembleModel, count_parameters


def ensemble_bundle(paths: Sequence[str | Path], combine: str = "sequence") -> Bundle:
    """One bundle of the models in `paths` (plain bundles; their decode settings, LM and
    lexicon are dropped: the ensemble is tuned on its own)."""
    if len(paths) < 2:
        raise AsrError(f"an ensemble needs at least two models (got {len(paths)})")
    if combine not in COMBINE_RULES:
        raise AsrError(f"--combine must be one of {', '.join(COMBINE_RULES)} (got {combine!r})")
    bundles = [load_bundle(p) for p in paths]
    first, first_path = bundles[0], paths[0]
    for path, b in zip(paths, bundles):
        if isinstance(b.model, EnsembleModel):
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
    model = ensemble_model(bundles, combine)
    config = dataclasses.replace(first.config, decode=DecodeConfig())
    info = {"ensemble_of": [str(p) for p in paths], "combine": combine, "parameters": count_parameters(model)}
    return Bundle(config, first.tokenizer, identity_stats(config.features.n_mels), model.eval(), info)
