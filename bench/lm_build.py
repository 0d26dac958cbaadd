"""Time and memory of `asr lm build` (estimate + write_arpa) on a text sample.

    python bench/lm_build.py --lines 50000 [--order 3] [--text FILE[.gz]] [--every K]

Without --text, sentences are drawn from a Zipf distribution over a 200k-word vocabulary
(20 words per sentence, about what librispeech-lm-norm.txt holds); real text has fewer
distinct n-grams per line, so this errs on the large side. Each run is one process:
peak memory is the process's maximum resident size.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

from asr.lm import estimate, read_text_corpus, write_arpa


def zipf_sentences(n_lines: int, vocab: int = 200_000, length: int = 20, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    words = [f"W{i}" for i in range(vocab)]
    weights = [1 / (i + 1) for i in range(vocab)]
    flat = rng.choices(words, weights, k=n_lines * length)
    return [flat[i * length:(i + 1) * length] for i in range(n_lines)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=50_000)
    p.add_argument("--order", type=int, default=3)
    p.add_argument("--text", help="a real text file (one sentence per line; .gz is read too)")
    p.add_argument("--every", type=int, default=1)
    args = p.parse_args()
    t0 = time.time()
    if args.text:
        sentences = read_text_corpus([args.text], args.lines, args.every)
    else:
        sentences = zipf_sentences(args.lines)
    t1 = time.time()
    model = estimate(sentences, args.order)
    t2 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        arpa = Path(tmp) / "lm.arpa"
        write_arpa(model, arpa)
        size = arpa.stat().st_size
    t3 = time.time()
    n_words = sum(len(s) for s in sentences)
    counts = [sum(1 for g in model.prob if len(g) == n) for n in range(1, args.order + 1)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(sentences)} lines, {n_words} words, order {args.order}: n-grams {counts}; "
          f"read {t1 - t0:.1f}s, estimate {t2 - t1:.1f}s, write {t3 - t2:.1f}s; "
          f"ARPA {size / 1e6:.0f} MB; peak memory {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
