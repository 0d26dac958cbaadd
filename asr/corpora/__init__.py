"""Corpus preparation: download_<corpus>() and prepare_<corpus>() per corpus module.

`asr prepare NAME` finds the corpus module here. Each module defines:
  ENV_VAR                         environment variable naming a local copy
  DESCRIPTION                     one line for `asr prepare --help`
  add_arguments(parser)           options beyond --source and --out (may add none)
  run_prepare(args) -> (root, PrepareReport)
                                  fetch or locate the corpus, write args.out/manifests
"""

from __future__ import annotations

import importlib
from types import ModuleType

# corpus name -> module; add a line here for a new corpus.
CORPORA = {
    "an4": "asr.corpora.an4",
    "common_voice": "asr.corpora.common_voice",
    "tedlium": "asr.corpora.tedlium",
    "timit": "asr.corpora.timit",
    "librispeech": "asr.corpora.librispeech",
    "ljspeech": "asr.corpora.ljspeech",
    "mini_librispeech": "asr.corpora.mini_librispeech",
    "tts": "asr.corpora.tts",
}


def corpus_module(name: str) -> ModuleType:
    return importlib.import_module(CORPORA[name])
