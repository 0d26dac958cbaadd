"""Audio files -> Hypotheses with a trained model bundle."""

from __future__ import annotations

import os
from pathlib import Path
import torch

from asr.audio import load_audio
from asr.checkpoint import Bundle
from asr.decoding import Hypothesis, make_decoder
from asr.errors import AsrError
from asr.features import log_mel

MODEL_ENV_VAR = "ASR_MODEL"
# Where recipes/an4/run.sh leaves its model, relative to the repository root.
AN4_MODEL = Path("data") / "an4" / "exp" / "model.pt"


def default_model_path() -> Path:
    """$ASR_MODEL, else the AN4 recipe's model (in the current folder or the source checkout)."""
    if os.environ.get(MODEL_ENV_VAR):
        return Path(os.environ[MODEL_ENV_VAR])
    checkout = Path(__file__).resolve().parent.parent
    for base in (Path.cwd(), checkout):
        if (base / AN4_MODEL).is_file():
            return base / AN4_MODEL
    raise AsrError(
        "no model given and none found: train one with `bash recipes/an4/run.sh` "
        f"(it writes {AN4_MODEL}), or pass --model PATH or set {MODEL_ENV_VAR}"
    )


@torch.no_grad()
def transcribe_file(bundle: Bundle, path: str | Path, device: torch.device) -> Hypothesis:
    """Transcribe one file (any sample rate, channel count and format soundfile reads)."""
    feat_cfg = bundle.config.features
    wave = load_audio(path, feat_cfg.sample_rate)
    feats = bundle.stats.normalize(log_mel(wave, feat_cfg))  # (T, F)
    model = bundle.model.to(device).eval()
    if feats.shape[0] < model.min_frames():
        raise AsrError(f"{path}: audio too short to transcribe ({len(wave) / feat_cfg.sample_rate:.3f}s)")
    lens = torch.tensor([feats.shape[0]], device=device)
    log_probs, out_lens = model(feats.unsqueeze(0).to(device), lens)  # (1, T, F) -> (1, T', V)
    decoder = make_decoder(bundle.config.decode, bundle.tokenizer)
    return decoder(log_probs.cpu(), out_lens.cpu())[0]


def frame_seconds(bundle: Bundle) -> float:
    """Duration of one model output frame in seconds."""
    return bundle.config.features.hop_ms / 1000 * bundle.config.model.subsampling_factor
