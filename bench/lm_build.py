"""Time and peak memory of `asr lm build`, KenLM's lmplz against the Python estimator.

    python bench/lm_build.py --lines 400000 [--order 3] [--backend both|kenlm|python] [--text FILE[.gz]]

Without --text, sentences are drawn from a Zipf distribution over a 200k-word vocabulary
(20 words per sentence, about what librispeech-lm-norm.txt holds; real text has fewer
distinct n-grams per line). The text is written to a file first; each backend then runs
`asr lm build --backend B` in a process of its own, and its peak memory is the largest
resident size of that process and its children (lmplz for kenlm). lmplz runs with its
default sort memory here (`--memory 20%`).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_zipf_text(path: Path, n_lines: int, vocab: int = 200_000, length: int = 20, seed: int = 0) -> None:
    import itertools

    rng = random.Random(seed)
    words = [f"W{i}" for i in range(vocab)]
    cumulative = list(itertools.accumulate(1 / (i + 1) for i in range(vocab)))  # once, not per line
    with open(path, "w") as f:
        for _ in range(n_lines):
            f.write(" ".join(rng.choices(words, cum_weights=cumulative, k=length)) + "\n")


WRAPPER = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(r.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(r.returncode)
"""


def run_backend(backend: str, text: Path, order: int, out: Path, lines: int) -> dict:
    """One `asr lm build` under a wrapper process of its own, which reports the peak resident
    size of its children (asr, and lmplz under it)."""
    cmd = [sys.executable, "-m", "asr", "lm", "build", str(text), "--order", str(order), "--backend", backend,
           "--max-lines", str(lines), "-o", str(out)]
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True)
    seconds = time.time() - t0
    if r.returncode:
        raise SystemExit(f"{backend}: {r.stderr.strip()}")
    sizes = [int(line.split("=")[1]) for line in out.read_text().splitlines()[:order + 3] if line.startswith("ngram ")]
    return {"backend": backend, "seconds": round(seconds, 1), "ngrams": sizes, "total_ngrams": sum(sizes),
            "arpa_mb": round(out.stat().st_size / 1e6), "peak_mb": round(int(r.stdout.split()[-1]) / 1024)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=400_000)
    p.add_argument("--order", type=int, default=3)
    p.add_argument("--text", help="a real text file (one sentence per line; .gz is read too)")
    p.add_argument("--backend", choices=("both", "kenlm", "python"), default="both")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(a.text) if a.text else Path(tmp) / "zipf.txt"
        if not a.text:
            write_zipf_text(text, a.lines)
        for backend in (["kenlm", "python"] if a.backend == "both" else [a.backend]):
            result = run_backend(backend, text, a.order, Path(tmp) / f"{backend}.arpa", a.lines)
            print({**result, "lines": a.lines, "text": a.text or "zipf"}, flush=True)


if __name__ == "__main__":
    main()
