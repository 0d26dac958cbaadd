"""Scoring: text normalization, WER/CER (jiwer), aligned error listings and summaries.

Counts come from a unit-cost Levenshtein alignment (as Kaldi's compute-wer and jiwer).
`ref.trn` and `hyp.trn` are written in sclite's trn format, so
`sclite -r ref.trn trn -h hyp.trn trn -i rm` can re-score the same output.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import jiwer

from asr.atomic import write_text_atomic


def normalize_text(text: str) -> str:
    """Upper-case and collapse whitespace: the form references and hypotheses are scored in."""
    return " ".join(text.upper().split())


@dataclass
class Summary:
    n_sentences: int
    n_words: int
    correct: int
    substitutions: int
    deletions: int
    insertions: int
    errors: int
    sentence_errors: int
    wer: float  # percent
    n_chars: int
    char_errors: int
    cer: float  # percent, spaces counted as characters

    def table(self, title: str = "") -> str:
        """An sclite-style summary block."""
        pct = lambda n, d: 100.0 * n / d if d else 0.0  # noqa: E731
        w = self.n_words
        head = f"| {'SPKR':<10}| {'# Snt':>6} {'# Wrd':>6} | {'Corr':>6} {'Sub':>6} {'Del':>6} {'Ins':>6} {'Err':>6} {'S.Err':>6} |"
        row = (
            f"| {'Sum/Avg':<10}| {self.n_sentences:>6} {w:>6} | {pct(self.correct, w):>6.1f} "
            f"{pct(self.substitutions, w):>6.1f} {pct(self.deletions, w):>6.1f} "
            f"{pct(self.insertions, w):>6.1f} {pct(self.errors, w):>6.1f} "
            f"{pct(self.sentence_errors, self.n_sentences):>6.1f} |"
        )
        rule = "-" * len(head)
        lines = [title] if title else []
        lines += [rule, head, rule, row, rule]
        lines.append(
            f"%WER {self.wer:.2f} [ {self.errors} / {w}, {self.insertions} ins, "
            f"{self.deletions} del, {self.substitutions} sub ]"
        )
        lines.append(f"%CER {self.cer:.2f} [ {self.char_errors} / {self.n_chars} ]")
        return "\n".join(lines) + "\n"


def score(refs: Sequence[str], hyps: Sequence[str]) -> tuple[Summary, list[str]]:
    """Score normalized texts; returns the summary and one aligned error block per pair."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("nothing to score")
    refs = [normalize_text(r) for r in refs]
    hyps = [normalize_text(h) for h in hyps]
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    n_words = sum(len(r) for r in words.references)
    errors = words.substitutions + words.deletions + words.insertions
    char_errors = chars.substitutions + chars.deletions + chars.insertions
    n_chars = sum(len(r) for r in chars.references)
    blocks, sentence_errors = [], 0
    for ref_words, hyp_words, chunks in zip(words.references, words.hypotheses, words.alignments):
        block, wrong = _aligned(ref_words, hyp_words, chunks)
        sentence_errors += wrong
        blocks.append(block)
    summary = Summary(
        n_sentences=len(refs),
        n_words=n_words,
        correct=words.hits,
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=words.insertions,
        errors=errors,
        sentence_errors=sentence_errors,
        wer=100.0 * errors / max(n_words, 1),
        n_chars=n_chars,
        char_errors=char_errors,
        cer=100.0 * char_errors / max(n_chars, 1),
    )
    return summary, blocks


def _aligned(ref: list[str], hyp: list[str], chunks) -> tuple[str, bool]:
    """sclite-style REF/HYP lines: correct words lower-case, errors upper-case, *** for gaps."""
    ref_col, hyp_col = [], []
    counts = {"equal": 0, "substitute": 0, "delete": 0, "insert": 0}
    for c in chunks:
        r = ref[c.ref_start_idx : c.ref_end_idx]
        h = hyp[c.hyp_start_idx : c.hyp_end_idx]
        counts[c.type] += max(len(r), len(h))
        if c.type == "equal":
            r, h = [w.lower() for w in r], [w.lower() for w in h]
        elif c.type == "delete":
            h = ["*" * len(w) for w in r]
        elif c.type == "insert":
            r = ["*" * len(w) for w in h]
        for a, b in zip(r, h):
            width = max(len(a), len(b))
            ref_col.append(a.ljust(width))
            hyp_col.append(b.ljust(width))
    wrong = counts["substitute"] + counts["delete"] + counts["insert"] > 0
    scores = (
        f"Scores: (#C #S #D #I) {counts['equal']} {counts['substitute']} "
        f"{counts['delete']} {counts['insert']}"
    )
    return f"{scores}\nREF:  {' '.join(ref_col)}\nHYP:  {' '.join(hyp_col)}\n", wrong


def write_report(
    out_dir: str | Path,
    ids: Sequence[str],
    speakers: Sequence[str],
    refs: Sequence[str],
    hyps: Sequence[str],
    title: str = "",
    extra: dict | None = None,
) -> Summary:
    """Write ref.trn, hyp.trn, errs.txt (aligned per utterance), summary.txt and summary.json."""
    out = Path(out_dir)
    summary, blocks = score(refs, hyps)
    trn = lambda texts: "".join(  # noqa: E731
        f"{normalize_text(t)} ({spk}-{uid})\n" for t, spk, uid in zip(texts, speakers, ids)
    )
    write_text_atomic(out / "ref.trn", trn(refs))
    write_text_atomic(out / "hyp.trn", trn(hyps))
    write_text_atomic(
        out / "errs.txt", "".join(f"id: {uid}\n{b}\n" for uid, b in zip(ids, blocks))
    )
    write_text_atomic(out / "summary.txt", summary.table(title))
    write_text_atomic(
        out / "summary.json", json.dumps({**asdict(summary), **(extra or {})}, indent=2) + "\n"
    )
    return summary
