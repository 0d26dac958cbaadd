"""Self-describing model bundles and resumable training checkpoints.

A bundle is one file holding everything needed to transcribe: the run config, the
tokenizer (token list, and the sentencepiece model for bpe/unigram units), the feature
normalization statistics and the weights. It loads with `torch.load(..., weights_only=True)`
and nothing else. Bundles of format 1 (before tokenizer units) hold only the character
token list, and still load.

An ensemble bundle (format asr-ensemble/1, written by `asr ensemble`) holds several member
bundles (each with its own config and feature statistics; their tokenizers are equal) and the
ensemble's own decode settings, LM and lexicon. It loads as a Bundle whose model is an
EnsembleModel and whose statistics are the identity (members normalize for themselves), so
everything that decodes with a bundle decodes with an ensemble unchanged.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from asr.atomic import save_torch_atomic
from asr.config import RunConfig, from_dict, to_dict
from asr.errors import AsrError, first_line
from asr.features import FeatureStats
from asr.model import AcousticModel, EnsembleModel
from asr.tokenizer import CharTokenizer, Tokenizer, tokenizer_from_dict

BUNDLE_FORMAT = "asr-bundle/2"
READABLE_FORMATS = ("asr-bundle/1", BUNDLE_FORMAT)
ENSEMBLE_FORMAT = "asr-ensemble/1"


@dataclass
class Bundle:
    config: RunConfig
    tokenizer: Tokenizer
    stats: FeatureStats
    model: AcousticModel
    info: dict  # free-form provenance: epoch, dev WER, parameter count, ...
    lm_arpa: str | None = None  # n-gram LM (ARPA text) for beam search, stored by `asr tune`
    lexicon: str | None = None  # lexicon text (WORD c h a r s |) for beam search


def build_model(cfg: RunConfig, n_tokens: int) -> AcousticModel:
    return AcousticModel(cfg.model, cfg.features.n_mels, n_tokens)


def bundle_dict(
    cfg: RunConfig,
    tokenizer: Tokenizer,
    stats: FeatureStats,
    model: torch.nn.Module,
    info: dict,
    lm_arpa: str | None = None,
    lexicon: str | None = None,
) -> dict:
    return {
        "format": BUNDLE_FORMAT,
        "config": to_dict(cfg),
        "tokens": list(tokenizer.tokens),
        "tokenizer": tokenizer.to_dict(),
        "stats": stats.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "info": dict(info),
        "lm_arpa": lm_arpa,
        "lexicon": lexicon,
    }


def save_bundle(path: str | Path, **parts) -> None:
    save_torch_atomic(bundle_dict(**parts), path)


def load_checkpoint_file(path: str | Path) -> dict:
    """torch.load with weights_only=True, turning every failure into a one-line AsrError."""
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: no such model file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise AsrError(f"{path}: not a readable model file ({first_line(e)})") from None
    if not isinstance(data, dict):
        raise AsrError(f"{path}: not an asr model file")
    return data


def bundle_from_dict(data: dict, where: str) -> Bundle:
    if data.get("format") == ENSEMBLE_FORMAT:
        return ensemble_from_dict(data, where)
    if data.get("format") not in READABLE_FORMATS:
        raise AsrError(f"{where}: not an asr model bundle (format {data.get('format')!r})")
    try:
        cfg = from_dict(RunConfig, data["config"], where=f"{where}: config")
        tokenizer = tokenizer_from_dict(data["tokenizer"]) if "tokenizer" in data else CharTokenizer(data["tokens"])
        model = build_model(cfg, len(tokenizer))
        model.load_state_dict(data["model"])
        stats = FeatureStats.from_dict(data["stats"])
    except (KeyError, ValueError, RuntimeError) as e:
        raise AsrError(f"{where}: model bundle does not match this version of asr ({first_line(e)})") from None
    return Bundle(cfg, tokenizer, stats, model.eval(), data.get("info", {}), data.get("lm_arpa"), data.get("lexicon"))


def identity_stats(n_mels: int) -> FeatureStats:
    return FeatureStats(torch.zeros(n_mels), torch.ones(n_mels))


def ensemble_dict(bundle: Bundle) -> dict:
    """The asr-ensemble/1 form of a bundle whose model is an EnsembleModel: each member is
    stored as an ordinary bundle dict (with its own config, tokenizer and statistics)."""
    ens = bundle.model
    if ens.member_configs is None:
        raise ValueError("this ensemble was built without its members' configs and cannot be saved")
    members = [
        bundle_dict(cfg, bundle.tokenizer, FeatureStats(mean.detach().cpu(), std.detach().cpu()), member, info)
        for member, cfg, info, mean, std in zip(ens.members, ens.member_configs, ens.member_infos, ens.means, ens.stds)
    ]
    return {"format": ENSEMBLE_FORMAT, "config": to_dict(bundle.config), "combine": ens.combine,
            "members": members, "info": dict(bundle.info), "lm_arpa": bundle.lm_arpa, "lexicon": bundle.lexicon}


def ensemble_from_dict(data: dict, where: str) -> Bundle:
    try:
        cfg = from_dict(RunConfig, data["config"], where="config")
        members = [bundle_from_dict(m, f"member {i + 1}") for i, m in enumerate(data["members"])]
        ensemble = ensemble_model(members, data["combine"])
    except (AsrError, KeyError, ValueError, RuntimeError, TypeError) as e:
        raise AsrError(f"{where}: ensemble bundle does not match this version of asr ({first_line(e)})") from None
    return Bundle(cfg, members[0].tokenizer, identity_stats(cfg.features.n_mels), ensemble.eval(),
                  data.get("info", {}), data.get("lm_arpa"), data.get("lexicon"))


def ensemble_model(members: list[Bundle], combine: str) -> EnsembleModel:
    """An EnsembleModel of the bundles' models, each normalizing with its own statistics."""
    return EnsembleModel([b.model for b in members], torch.stack([b.stats.mean for b in members]),
                         torch.stack([b.stats.std for b in members]), combine,
                         [b.config for b in members], [b.info for b in members])


def save_bundle_object(bundle: Bundle, path: str | Path) -> None:
    if isinstance(bundle.model, EnsembleModel):
        save_torch_atomic(ensemble_dict(bundle), path)
        return
    save_bundle(path, cfg=bundle.config, tokenizer=bundle.tokenizer, stats=bundle.stats, model=bundle.model,
                info=bundle.info, lm_arpa=bundle.lm_arpa, lexicon=bundle.lexicon)


def load_bundle(path: str | Path) -> Bundle:
    return bundle_from_dict(load_checkpoint_file(path), str(path))
