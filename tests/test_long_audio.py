"""Long-audio accuracy: AN4 test utterances joined into one recording of at least five minutes
give a WER within 1 point of the same model's per-utterance WER.

It needs a trained model (`slow`: python -m pytest -m slow tests/test_long_audio.py), taken
from $ASR_TEST_MODEL or the AN4 recipe's data/an4/exp/model_lm.pt; skipped without one.
"""

import os
from pathlib import Path

import pytest

from asr.scoring import score
from tests.conftest import REPO
from tests.long_audio import join_utterances

pytestmark = pytest.mark.slow


def trained_model() -> Path:
    path = Path(os.environ.get("ASR_TEST_MODEL", REPO / "data" / "an4" / "exp" / "model_lm.pt"))
    if not path.is_file():
        pytest.skip(f"no trained model at {path} (set ASR_TEST_MODEL)")
    return path


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_joined_an4_test_set_within_one_point_of_per_utterance(an4_prepared, tmp_path, method):
    import asr

    model = trained_model()
    manifest = an4_prepared / "manifests" / "test.jsonl"
    rec = asr.load_model(model, device="cpu", method=method)
    ref, seconds, utts = join_utterances(manifest, tmp_path / "joined.wav", minutes=5.0)
    assert seconds >= 300
    per_utt, _ = score([u.text for u in utts], [rec.transcribe(u.audio).text for u in utts])
    long = rec.transcribe(tmp_path / "joined.wav")
    joined, _ = score([ref], [long.text])
    print(f"{method}: per utterance {per_utt.wer:.2f}%, joined {joined.wer:.2f}% ({len(long.segments)} segments)")
    assert abs(joined.wer - per_utt.wer) <= 1.0
