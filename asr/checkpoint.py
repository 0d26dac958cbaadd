"""Self-describing model bundles and resumable training checkpoints.

A bundle is one file holding everything needed to transcribe: the run config, the
tokenizer (token list, and the sentencepiece model for bpe/unigram units), the feature
normalization statistics and the weights. It loads with `torch.load(..., weights_only=True)`
and nothing else. Bundles of format 1 (before tokenizer units) hold only the character
token list, and still load.

An ensemble bundle (format asr-ensemble/1, written by `asr ensemble`) holds several member
bundles (each with its own config and feature statistics; their tokenizers are equal) and the
ensemble's own decode settings, LM and lexicon. It loads as a Bundle whose model is an
asr.ensemble.Ensemble of the member Bundles and whose statistics are the identity (members
normalize for themselves), so everything that decodes with a bundle decodes with an
ensemble unchanged.

Bundles and epoch checkpoints carry a sha256 checksum of their whole content ("checksum"),
checked on load: a file with flipped bytes is refused instead of giving other transcripts.
Files written before checksums load unchecked. A training run resumes from the newest epoch
checkpoint that reads and checks, warning about any newer one it has to pass over.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from asr.atomic import save_torch_atomic
from asr.config import RunConfig, from_dict, to_dict
from asr.errors import AsrError, first_line
from asr.features import FeatureStats
from asr.model import AcousticModel
from asr.tokenizer import CharTokenizer, Tokenizer, tokenizer_from_dict

BUNDLE_FORMAT = "asr-bundle/2"
READABLE_FORMATS = ("asr-bundle/1", BUNDLE_FORMAT)
ENSEMBLE_FORMAT = "asr-ensemble/1"


@dataclass
class Bundle:
    config: RunConfig
    tokenizer: Tokenizer
    stats: FeatureStats
    model: AcousticModel  # or an asr.ensemble.Ensemble of member bundles
    info: dict  # free-form provenance: epoch, dev WER, parameter count, ...
    lm_arpa: str | None = None  # n-gram LM (ARPA text) for beam search, stored by `asr tune`
    lexicon: str | None = None  # lexicon text (WORD c h a r s |) for beam search


def build_model(cfg: RunConfig, n_tokens: int) -> AcousticModel:
    return AcousticModel(cfg.model, cfg.features.n_mels, n_tokens)


def content_checksum(data) -> str:
    """sha256 of a nested structure of dicts, lists, tensors and plain values (the key
    "checksum" of the top-level dict left out): the same for a file's content before
    torch.save and after torch.load."""
    h = hashlib.sha256()

    def feed(obj) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(obj, dict):
            h.update(f"D{len(obj)}".encode())
            for key in sorted(obj, key=repr):
                h.update(repr(key).encode())
                feed(obj[key])
        elif isinstance(obj, (list, tuple)):
            h.update(f"L{len(obj)}".encode())
            for item in obj:
                feed(item)
        elif isinstance(obj, (str, bytes, int, float, bool)) or obj is None:
            h.update(f"{type(obj).__name__}:{obj!r};".encode())
        else:
            raise TypeError(f"cannot checksum a {type(obj).__name__}")

    feed({k: v for k, v in data.items() if k != "checksum"})
    return h.hexdigest()


def with_checksum(data: dict) -> dict:
    return {**data, "checksum": content_checksum(data)}


def verify_checksum(data: dict, where: str) -> None:
    """AsrError if `data` has a checksum that its content no longer matches."""
    expected = data.get("checksum")
    if expected is None:
        return  # written before checksums
    try:
        actual = content_checksum(data)
    except (TypeError, RuntimeError) as e:
        raise AsrError(f"{where}: cannot check the file's content ({first_line(e)})") from None
    if actual != expected:
        raise AsrError(f"{where}: checksum mismatch: the file is corrupt (its content changed after it was "
                       "written); use another copy")


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
    save_torch_atomic(with_checksum(bundle_dict(**parts)), path)


def load_checkpoint_file(path: str | Path) -> dict:
    """torch.load with weights_only=True, turning every failure into a one-line AsrError."""
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: no such model file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise AsrError(f"{path}: not a readable model file (not tensors and plain data: refused "
                       "without running it; load only model files you trust)") from None
    except Exception as e:  # a damaged file makes torch.load raise almost anything (struct.error, KeyError, ...)
        raise AsrError(f"{path}: not a readable model file ({first_line(e)})") from None
    if not isinstance(data, dict):
        raise AsrError(f"{path}: not an asr model file")
    return data


def bundle_from_dict(data: dict, where: str) -> Bundle:
    if not isinstance(data, dict):
        raise AsrError(f"{where}: not an asr model bundle")
    if data.get("format") == ENSEMBLE_FORMAT:
        return ensemble_from_dict(data, where)
    if data.get("format") not in READABLE_FORMATS:
        raise AsrError(f"{where}: not an asr model bundle (format {data.get('format')!r})")
    verify_checksum(data, where)
    cfg = from_dict(RunConfig, _field(data, "config", dict, where), where=f"{where}: config")
    try:
        tokenizer = tokenizer_from_dict(data["tokenizer"]) if "tokenizer" in data else CharTokenizer(data["tokens"])
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError, OSError) as e:
        raise AsrError(f"{where}: the tokenizer record is not valid ({first_line(e)})") from None
    try:
        stats = FeatureStats.from_dict(data.get("stats"), cfg.features.n_mels)
    except ValueError as e:
        raise AsrError(f"{where}: {e}") from None
    try:
        model = build_model(cfg, len(tokenizer))
    except ValueError as e:
        raise AsrError(f"{where}: config: {e}") from None
    load_weights(model, _field(data, "model", dict, where), len(tokenizer), where)
    return Bundle(cfg, tokenizer, stats, model.eval(), data.get("info", {}), data.get("lm_arpa"), data.get("lexicon"))


def _field(data: dict, name: str, kind: type, where: str):
    if not isinstance(data.get(name), kind):
        raise AsrError(f"{where}: the bundle's '{name}' is missing or not a {kind.__name__}")
    return data[name]


def load_weights(model: AcousticModel, weights: dict, n_tokens: int, where: str) -> None:
    """Load a state dict, naming what does not fit: the vocabulary size first (the usual
    cause: a token list from another run), then missing, unexpected or reshaped tensors."""
    out = weights.get("output.weight")
    if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] != n_tokens:
        raise AsrError(f"{where}: the weights are for {out.shape[0]} output tokens, its tokenizer has {n_tokens} "
                       "(weights and token list from different runs?)")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(weights) if not isinstance(weights[k], torch.Tensor)
                      or weights[k].shape != expected[k].shape)
    for names, what in ((missing, "lacks"), (unexpected, "has unexpected"), (reshaped, "has other shapes of")):
        if names:
            raise AsrError(f"{where}: the weights do not fit its config: it {what} {', '.join(names[:3])}"
                           f"{' ...' if len(names) > 3 else ''}")
    model.load_state_dict(weights)


def identity_stats(n_mels: int) -> FeatureStats:
    return FeatureStats(torch.zeros(n_mels), torch.ones(n_mels))


def ensemble_dict(bundle: Bundle) -> dict:
    """The asr-ensemble/1 form of a bundle whose model is an Ensemble: each member is stored
    as an ordinary bundle dict (with its own config, tokenizer and statistics)."""
    members = [with_checksum(bundle_dict(m.config, m.tokenizer, m.stats, m.model, m.info))
               for m in bundle.model.members]
    return with_checksum({"format": ENSEMBLE_FORMAT, "config": to_dict(bundle.config), "combine": bundle.model.combine,
                          "members": members, "info": dict(bundle.info),
                          "lm_arpa": bundle.lm_arpa, "lexicon": bundle.lexicon})


def ensemble_from_dict(data: dict, where: str) -> Bundle:
    from asr.ensemble import Ensemble

    verify_checksum(data, where)
    cfg = from_dict(RunConfig, _field(data, "config", dict, where), where=f"{where}: config")
    members = [bundle_from_dict(m, f"{where}: member {i + 1}") for i, m in enumerate(_field(data, "members", list, where))]
    if not members:
        raise AsrError(f"{where}: an ensemble without members")
    try:
        ensemble = Ensemble(members, data.get("combine"))
    except ValueError as e:
        raise AsrError(f"{where}: the members do not make an ensemble ({first_line(e)})") from None
    return Bundle(cfg, members[0].tokenizer, identity_stats(cfg.features.n_mels), ensemble.eval(),
                  data.get("info", {}), data.get("lm_arpa"), data.get("lexicon"))


def save_bundle_object(bundle: Bundle, path: str | Path) -> None:
    if not isinstance(bundle.model, AcousticModel):  # an asr.ensemble.Ensemble
        save_torch_atomic(ensemble_dict(bundle), path)
        return
    save_bundle(path, cfg=bundle.config, tokenizer=bundle.tokenizer, stats=bundle.stats, model=bundle.model,
                info=bundle.info, lm_arpa=bundle.lm_arpa, lexicon=bundle.lexicon)


def load_bundle(path: str | Path) -> Bundle:
    """A model bundle file, or a package folder written by `asr export` (asr.serving.package)."""
    if Path(path).is_dir():
        from asr.serving.package import is_package, load_package

        if not is_package(path):
            raise AsrError(f"{path}: a folder, but not an exported model package (no package.json)")
        return load_package(path)
    return bundle_from_dict(load_checkpoint_file(path), str(path))


# Epoch checkpoints: EXP/checkpoints/epoch-N.pt, the resumable state after epoch N.

def epoch_checkpoints(exp_dir: str | Path) -> list[Path]:
    """The epoch checkpoints of an experiment, oldest first."""
    paths = [p for p in (Path(exp_dir) / "checkpoints").glob("epoch-*.pt") if p.stem[6:].isdigit()]
    return sorted(paths, key=checkpoint_epoch)


def checkpoint_epoch(path: Path) -> int:
    return int(path.stem.split("-")[1])


def save_epoch_checkpoint(exp_dir: str | Path, epoch: int, keep: int, state: dict) -> Path:
    """Write checkpoints/epoch-N.pt (with a checksum), then delete all but the `keep` newest."""
    path = Path(exp_dir) / "checkpoints" / f"epoch-{epoch}.pt"
    save_torch_atomic(with_checksum(state), path)
    old = epoch_checkpoints(exp_dir)
    for p in old[: max(0, len(old) - max(keep, 1))]:
        p.unlink()
    return path


RESUME_KEYS = ("config", "model", "optimizer", "scheduler", "epoch", "best_wer", "rng")


def load_latest_checkpoint(exp_dir: str | Path, warn: Callable[[str], None]) -> tuple[Path, dict] | None:
    """The newest epoch checkpoint that reads, checks and holds a whole training state, and
    that state; `warn` is told of each newer one passed over (an empty file after a power
    loss, flipped bytes). None if there is no checkpoint; AsrError if none of them is usable."""
    paths = epoch_checkpoints(exp_dir)
    for path in reversed(paths):
        try:
            state = load_checkpoint_file(path)
            verify_checksum(state, str(path))
            missing = [k for k in RESUME_KEYS if k not in state]
            if missing:
                raise AsrError(f"{path}: not a training checkpoint (no {', '.join(missing)})")
        except AsrError as e:
            damaged = path.with_name(path.name + ".damaged")  # out of the listing, so never kept over good ones
            os.replace(path, damaged)
            warn(f"warning: {e}; renamed it {damaged.name} and falling back to the checkpoint before it")
            continue
        return path, state
    if paths:
        raise AsrError(f"{Path(exp_dir) / 'checkpoints'}: none of the {len(paths)} epoch checkpoints is usable; "
                       "train into a new --exp folder")
    return None


TRAINING_FILES = ("model.pt", "stats.pt", "config.yaml", "tokens.txt", "tokenizer.model")


def remove_stale_temporaries(exp_dir: str | Path) -> int:
    """Delete the temporary files (.NAME.XXXX.tmp) that training's own writes, interrupted by a
    crash, left in an experiment folder (of TRAINING_FILES) and its checkpoints/. Only for a
    folder this process has locked; other commands' temporaries are left alone."""
    exp_dir = Path(exp_dir)
    stale = [p for p in (exp_dir / "checkpoints").glob(".epoch-*.pt.*.tmp") if p.is_file()]
    stale += [p for name in TRAINING_FILES for p in exp_dir.glob(f".{name}.*.tmp") if p.is_file()]
    for p in stale:
        p.unlink()
    return len(stale)
