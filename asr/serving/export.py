"""`asr export`: a model bundle as a self-contained package that runs without asr's training
code, on PyTorch (TorchScript) or on ONNX Runtime.

A package is a folder:
  package.json     format, engine, the run config, the tokenizer, the feature statistics,
                   the decode settings, provenance, and a sha256 of every other file
  model.ts         TorchScript (torch.jit.script) of the acoustic model   | one of the two
  model.onnx       ONNX (opset 17) with dynamic batch and time axes       |
  tokenizer.model  the sentencepiece model (bpe / unigram units only)
  lm.arpa, lexicon.txt   the bundle's LM and lexicon (tuned bundles only)

The exported network maps normalized log-mel features (B, T, n_mels) and their lengths to
log-probabilities (B, T', V) and output lengths, as AcousticModel does; features, CMVN and
decoding run in asr (asr.load_model(PACKAGE) gives a Recognizer, as for a bundle).
`--quantize int8` quantizes the recurrent and linear layers' weights to int8 with dynamic
activation quantization: PyTorch's quantize_dynamic (GRU/LSTM and Linear) for TorchScript,
ONNX Runtime's quantize_dynamic (its MatMul and recurrent operators) for ONNX.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from pathlib import Path

import torch

from asr.atomic import atomic_folder
from asr.checkpoint import Bundle
from asr.config import to_dict
from asr.errors import AsrError, first_line
from asr.model import AcousticModel

PACKAGE_FORMAT = "asr-export/1"
ENGINES = {"torchscript": "model.ts", "onnx": "model.onnx"}
PACKAGE_FILES = ("package.json", "model.ts", "model.onnx", "tokenizer.model", "lm.arpa", "lexicon.txt")


def export_bundle(bundle: Bundle, out: str | Path, engine: str, quantize: str | None = None) -> Path:
    """Write the package of `bundle` into the folder `out` (replacing an earlier package there)."""
    if engine not in ENGINES:
        raise AsrError(f"--format {engine}: expected one of {', '.join(ENGINES)}")
    if quantize not in (None, "int8"):
        raise AsrError(f"--quantize {quantize}: only int8")
    if not isinstance(bundle.model, AcousticModel):
        raise AsrError("an ensemble cannot be exported: export one of its members")
    model = bundle.model.cpu().eval()
    out = Path(out)
    try:
        with atomic_folder(out, lambda name: name in PACKAGE_FILES) as tmp:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's notes on RNN export and quantization's deprecation
                if engine == "torchscript":
                    _export_torchscript(model, tmp / ENGINES[engine], quantize)
                else:
                    _export_onnx(model, bundle.config.features.n_mels, tmp / ENGINES[engine], quantize)
            _write_package(bundle, tmp, engine, quantize)
    except FileExistsError as e:
        raise AsrError(f"{e}; choose another --out") from None
    except (RuntimeError, ValueError, ImportError) as e:
        raise AsrError(f"cannot export to {engine} ({first_line(e)})") from None
    return out


def _export_torchscript(model: AcousticModel, path: Path, quantize: str | None) -> None:
    if quantize == "int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.GRU, torch.nn.LSTM, torch.nn.Linear},
                                                       dtype=torch.qint8)
    torch.jit.save(torch.jit.script(model), str(path))


def _export_onnx(model: AcousticModel, n_mels: int, path: Path, quantize: str | None) -> None:
    feats, lens = torch.randn(2, 200, n_mels), torch.tensor([200, 120])
    target = path if quantize is None else path.with_suffix(".fp32.onnx")
    torch.onnx.export(
        model, (feats, lens), str(target), opset_version=17, dynamo=False,
        input_names=["feats", "feat_lens"], output_names=["log_probs", "out_lens"],
        dynamic_axes={"feats": {0: "batch", 1: "time"}, "feat_lens": {0: "batch"},
                      "log_probs": {0: "batch", 1: "frames"}, "out_lens": {0: "batch"}},
    )
    if quantize == "int8":
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # its advice to pre-process first, on every call
        try:
            quantize_dynamic(str(target), str(path), weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        target.unlink()


def _write_package(bundle: Bundle, folder: Path, engine: str, quantize: str | None) -> None:
    tokenizer = bundle.tokenizer.to_dict()
    if "model" in tokenizer:  # sentencepiece: its model as a file of its own
        (folder / "tokenizer.model").write_bytes(tokenizer.pop("model"))
    if bundle.lm_arpa:
        (folder / "lm.arpa").write_text(bundle.lm_arpa, encoding="utf-8")
    if bundle.lexicon:
        (folder / "lexicon.txt").write_text(bundle.lexicon, encoding="utf-8")
    files = sorted(p.name for p in folder.iterdir())
    meta = {
        "format": PACKAGE_FORMAT, "engine": engine, "quantize": quantize, "network": ENGINES[engine],
        "config": to_dict(bundle.config), "tokenizer": tokenizer,
        "stats": {"mean": bundle.stats.mean.tolist(), "std": bundle.stats.std.tolist()},
        "min_frames": bundle.model.min_frames(), "info": bundle.info,
        "sha256": {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in files},
    }
    (folder / "package.json").write_text(json.dumps(meta, indent=1, default=str) + "\n", encoding="utf-8")


def temporary_package(bundle: Bundle, engine: str, quantize: str | None = None) -> tuple[Path, tempfile.TemporaryDirectory]:
    """Export into a temporary folder (benchmarks): the folder and the handle keeping it alive."""
    handle = tempfile.TemporaryDirectory(prefix="asr-export-")
    return export_bundle(bundle, Path(handle.name) / "package", engine, quantize), handle
