"""Loading an exported package (asr export) as a Bundle whose model runs on TorchScript or ONNX
Runtime: asr.load_model(PACKAGE_FOLDER) and every command that takes --model take it."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from asr.checkpoint import Bundle
from asr.config import RunConfig, from_dict
from asr.errors import AsrError, first_line
from asr.features import FeatureStats
from asr.serving.export import PACKAGE_FORMAT
from asr.tokenizer import tokenizer_from_dict


def is_package(path: str | Path) -> bool:
    return (Path(path) / "package.json").is_file()


class ExportedNet:
    """The exported acoustic model behind the model contract: (feats (B, T, F), lens (B,)) ->
    (log_probs (B, T', V), out_lens (B,)), on the CPU."""

    def __init__(self, folder: Path, engine: str, network: str, min_frames: int):
        self.engine, self._min_frames = engine, min_frames
        path = folder / network
        if engine == "torchscript":
            with warnings.catch_warnings():  # torch 2.11 marks TorchScript deprecated; it still loads and runs
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.load(str(path), map_location="cpu").eval()
            self.session = None
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.module = None

    @torch.no_grad()
    def __call__(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, lens = feats.float().cpu(), lens.long().cpu()
        if self.module is not None:
            return self.module(feats, lens)
        log_probs, out_lens = self.session.run(None, {"feats": feats.numpy(), "feat_lens": lens.numpy()})
        return torch.from_numpy(np.asarray(log_probs)), torch.from_numpy(np.asarray(out_lens))

    def to(self, device) -> "ExportedNet":
        return self  # it runs on the CPU whatever the device (inputs are moved, outputs are CPU tensors)

    def eval(self) -> "ExportedNet":
        return self

    def min_frames(self) -> int:
        return self._min_frames

    def parameters(self):
        return iter(())


def load_package(folder: str | Path) -> Bundle:
    """The package in `folder` as a Bundle; AsrError naming the file for anything missing,
    corrupt (sha256) or from another version."""
    folder = Path(folder)
    where = folder / "package.json"
    try:
        meta = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AsrError(f"{where}: not a readable package description ({first_line(e)})") from None
    if not isinstance(meta, dict) or meta.get("format") != PACKAGE_FORMAT:
        raise AsrError(f"{where}: not an asr export package (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    try:
        for name, digest in meta["sha256"].items():
            path = folder / name
            if not path.is_file():
                raise AsrError(f"{path}: missing from the package")
            if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                raise AsrError(f"{path}: checksum mismatch: the package is corrupt")
        cfg = from_dict(RunConfig, meta["config"], where=f"{where}: config")
        tok = dict(meta["tokenizer"])
        if (folder / "tokenizer.model").is_file():
            tok["model"] = (folder / "tokenizer.model").read_bytes()
        tokenizer = tokenizer_from_dict(tok)
        stats = FeatureStats.from_dict({k: torch.tensor(v) for k, v in meta["stats"].items()}, cfg.features.n_mels)
        net = ExportedNet(folder, meta["engine"], meta["network"], int(meta["min_frames"]))
    except AsrError:
        raise
    except Exception as e:  # KeyError, ValueError, onnxruntime's and torch.jit's own errors
        raise AsrError(f"{folder}: cannot load the package ({first_line(e)})") from None
    lm = (folder / "lm.arpa").read_text(encoding="utf-8") if (folder / "lm.arpa").is_file() else None
    lexicon = (folder / "lexicon.txt").read_text(encoding="utf-8") if (folder / "lexicon.txt").is_file() else None
    info = {**meta.get("info", {}), "engine": meta["engine"], "quantize": meta.get("quantize")}
    return Bundle(cfg, tokenizer, stats, net, info, lm, lexicon)
