"""Decoder tuning: grid search of LM weight and word score on a dev set (never on test).

The acoustic model runs once; each grid point only re-runs the beam search. The chosen
settings, the LM and the lexicon are stored in the model bundle, so that `asr evaluate`
and `asr transcribe` use them unless told otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from asr.atomic import write_text_atomic
from asr.checkpoint import Bundle
from asr.decoding import write_lexicon
from asr.errors import AsrError
from asr.evaluate import bundle_decoder, decode_emissions, score_hypotheses
from asr.lm import read_arpa_words
from asr.manifest import Utterance
from asr.recognizer import Recognizer


def tune(
    recognizer: Recognizer,
    utts: Sequence[Utterance],
    lm: Path,
    lm_weights: Sequence[float],
    word_scores: Sequence[float],
    lexicon: Path | None = None,
    log: Callable[[str], None] = print,
    source: str | None = None,
) -> tuple[Bundle, list[dict]]:
    """Pick the (lm_weight, word_score) with the lowest WER (then CER) on `utts`.

    Returns the bundle with those beam settings, the LM and the lexicon stored, and one
    row per grid point. `source` (the manifest's path) is recorded as info["tuned_on"], so
    that anyone can check a model was tuned on dev.
    """
    bundle = recognizer.bundle
    base = dataclasses.replace(bundle.config.decode, method="beam")
    with tempfile.TemporaryDirectory() as tmp:
        if lexicon is None:
            lexicon = Path(tmp) / "lexicon.txt"
            write_lexicon(read_arpa_words(lm), lexicon, bundle.tokenizer)
        try:
            lexicon_text = Path(lexicon).read_text(encoding="utf-8")
            lm_text = Path(lm).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise AsrError(f"cannot read the lexicon or the LM ({e})") from None
        bundle_decoder(bundle, lm=lm, lexicon=lexicon, cfg=base)  # check the files before the long part
        emissions, _ = recognizer.emissions(utts)
        rows = []
        for weight in lm_weights:
            for score in word_scores:
                cfg = dataclasses.replace(base, lm_weight=weight, word_score=score)
                decoder = bundle_decoder(bundle, lm=lm, lexicon=lexicon, cfg=cfg)
                summary = score_hypotheses(utts, decode_emissions(decoder, emissions))
                rows.append({"lm_weight": weight, "word_score": score, "wer": summary.wer, "cer": summary.cer})
                log(f"lm_weight {weight:5.2f}  word_score {score:5.2f}  WER {summary.wer:6.2f}  CER {summary.cer:6.2f}")
    best = min(rows, key=lambda r: (r["wer"], r["cer"]))
    decode = dataclasses.replace(base, lm_weight=best["lm_weight"], word_score=best["word_score"])
    tuned = dataclasses.replace(
        bundle,
        config=dataclasses.replace(bundle.config, decode=decode),
        info={**bundle.info, "tuned_on": source or f"{len(utts)} utterances", "tuned_utterances": len(utts),
              "tuned_wer": best["wer"], "tuned_cer": best["cer"]},
        lm_arpa=lm_text,
        lexicon=lexicon_text,
    )
    return tuned, rows


def write_tune_report(rows: list[dict], path: Path) -> None:
    best = min(rows, key=lambda r: (r["wer"], r["cer"]))
    write_text_atomic(path, json.dumps({"best": best, "grid": rows}, indent=2) + "\n")
