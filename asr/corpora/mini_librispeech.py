"""Mini LibriSpeech (OpenSLR 31): train-clean-5 (about 5 h) and dev-clean-2 (about 2 h), subsets
of LibriSpeech in its layout, made for quick tests of a whole recipe.

The parts are read as LibriSpeech's (asr.corpora.librispeech); the default adds LibriSpeech's
test-clean (OpenSLR 12) as the test set, since dev-clean-2 is used to pick the model and to
tune the LM.
"""

from __future__ import annotations

from pathlib import Path

from asr.corpora.common import PrepareReport
from asr.corpora.librispeech import add_parts_arguments, prepare_parts

ENV_VAR = "ASR_MINI_LIBRISPEECH_SOURCE"  # a folder holding LibriSpeech/<part>/ folders or <part>.tar.gz archives
DESCRIPTION = "Mini LibriSpeech, OpenSLR 31 (5 h train, 2 h dev; 458 MB, with LibriSpeech test-clean 804 MB)"
DEFAULT_PARTS = ("train-clean-5", "dev-clean-2", "test-clean")


def add_arguments(parser) -> None:
    add_parts_arguments(parser, DEFAULT_PARTS)


def run_prepare(args) -> tuple[Path, PrepareReport]:
    return prepare_parts(args, ENV_VAR)
