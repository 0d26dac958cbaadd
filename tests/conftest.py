import contextlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_AN4 = REPO.parent / "shared" / "corpora" / "an4_sphere.tar.gz"


def an4_source() -> Path | None:
    src = os.environ.get("ASR_AN4_SOURCE")
    path = Path(src) if src else SHARED_AN4
    return path if path.exists() else None


@pytest.fixture(scope="session")
def an4_prepared(tmp_path_factory):
    """AN4 extracted and prepared once per test session: returns the work folder."""
    source = an4_source()
    if source is None:
        if os.environ.get("CI"):
            pytest.fail(f"AN4 archive not found at {SHARED_AN4} (or $ASR_AN4_SOURCE)")
        pytest.skip("AN4 archive not available (set ASR_AN4_SOURCE)")
    from asr.corpora.an4 import download_an4, prepare_an4

    work = tmp_path_factory.mktemp("an4")
    root = download_an4(source, work)
    report = prepare_an4(root, work / "manifests")
    assert report.kept == {"train": 856, "dev": 92, "test": 130}
    return work


def write_tone(path, seconds=1.0, rate=16000, channels=1, freq=440.0, subtype=None):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def log_probs_from_path(path, n_tokens=5, p=0.9):
    """Frames (T, V) whose best token follows `path`, probability p on it, the rest spread evenly."""
    lp = torch.full((len(path), n_tokens), math.log((1 - p) / (n_tokens - 1)))
    for t, tok in enumerate(path):
        lp[t, tok] = math.log(p)
    return lp


def save_tiny_model(path, overrides=(), seed=0, text="ABC"):
    """A small random-weight model bundle (1 x 16 LSTM) for tests of everything but accuracy."""
    from asr.checkpoint import build_model, save_bundle
    from asr.config import load_config
    from asr.features import FeatureStats
    from asr.tokenizer import CharTokenizer

    cfg = load_config(None, ["model.hidden_size=16", "model.n_layers=1", "model.conv_channels=4", *overrides])
    tok = CharTokenizer.build([text])
    torch.manual_seed(seed)
    save_bundle(path, cfg=cfg, tokenizer=tok, stats=FeatureStats(torch.zeros(80), torch.ones(80)),
                model=build_model(cfg, len(tok)), info={})
    return path


@contextlib.contextmanager
def lock_held_elsewhere(kind: str, folder):
    """Another process holding the lock of a report folder (kind "report") or of an
    experiment folder ("experiment") for the block; yields its pid."""
    import subprocess
    import sys

    folder = str(folder)
    lock = (f"from asr.report import report_lock as lock\nheld = lock({folder!r})" if kind == "report" else
            f"from asr.lock import folder_lock\nheld = folder_lock({folder!r}, {folder + '/.lock'!r}, 'x')")
    code = f"import time\n{lock}\nwith held:\n    print('held', flush=True); time.sleep(120)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()
