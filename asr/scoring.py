"""Scoring: text normalization, sclite-compatible alignment, error counts and summaries.

References and hypotheses are normalized (`Normalizer`: the rules are recorded in every
report), split into words, and aligned with the dynamic programme of NIST's sclite, so
that Corr/Sub/Del/Ins equal what `sclite -r ref.trn trn -h hyp.trn trn -i spu_id` reports
for the same `ref.trn` and `hyp.trn`. sclite does not use unit costs: a correct word costs
0, a substitution 4, an insertion or a deletion 3, and of equally cheap moves it takes the
diagonal (correct or substitution) first, then the deletion, then the insertion
(src/sclite/net_dp.c). With these weights the split into substitutions, deletions and
insertions often differs from a unit-cost Levenshtein alignment (jiwer, Kaldi's
compute-wer): REF "A B" / HYP "B C" is one deletion, one correct word and one insertion
here and two substitutions there. Rarely the total differs too: sclite minimizes
3 x errors + substitutions, so it may take one more error for three fewer substitutions.
Characters are aligned the same way; the spaces
between words count as characters.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np

SUB_COST, INS_COST, DEL_COST = 4, 3, 3
ALIGNMENT = (
    "sclite dynamic programming: correct 0, substitution 4, insertion 3, deletion 3; "
    "ties go to correct/substitution, then deletion, then insertion"
)


def normalize_text(text: str) -> str:
    """Upper-case and collapse whitespace: the form manifests and LM text are stored in."""
    return " ".join(text.upper().split())


_APOSTROPHES = {"\u2019": "'", "\u2018": "'", "\u02bc": "'"}
_HYPHENS = {"\u2010": "-", "\u2011": "-"}


@dataclass(frozen=True)
class Normalizer:
    """The text normalization applied to references and hypotheses before scoring.

    Spelled letters and number words are words like any other: nothing joins letters
    ("G M E F" stays four words, as AN4 transcribes spelled letters) or turns number
    words into digits.
    """

    nfkc: bool = True  # Unicode compatibility composition (full-width forms, ligatures)
    upper_case: bool = True
    strip_punctuation: bool = True  # punctuation and symbols become word breaks ...
    keep_in_words: str = "'-"  # ... except these between two letters or digits

    def __call__(self, text: str) -> str:
        if self.nfkc:
            text = unicodedata.normalize("NFKC", text)
        if self.upper_case:
            text = text.upper()
        if self.strip_punctuation:
            text = "".join(_APOSTROPHES.get(c, _HYPHENS.get(c, c)) for c in text)
            text = "".join(
                " " if _is_punctuation(c) and not self._inside_word(text, i) else c
                for i, c in enumerate(text)
            )
        return " ".join(text.split())

    def _inside_word(self, text: str, i: int) -> bool:
        return (text[i] in self.keep_in_words and 0 < i < len(text) - 1
                and _is_word_char(text[i - 1]) and _is_word_char(text[i + 1]))

    def rules(self) -> list[str]:
        """The rules in words, for reports."""
        rules = []
        if self.nfkc:
            rules.append("Unicode NFKC normalization")
        rules.append("upper-case" if self.upper_case else "case kept (case-sensitive)")
        if self.strip_punctuation:
            kept = " and ".join(repr(c) for c in self.keep_in_words)
            rules.append("punctuation and symbols (Unicode categories P and S) replaced by spaces, "
                         f"except {kept} between two letters or digits (curly apostrophes count as ')")
        else:
            rules.append("punctuation kept")
        rules.append("whitespace collapsed; words are split at whitespace")
        rules.append("no corpus-specific rewriting: spelled letters (AN4's 'G M E F') and number "
                     "words stay separate words; no number-to-digit conversion, no spelling variants")
        return rules

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"rules": self.rules()}


def _is_punctuation(c: str) -> bool:
    return unicodedata.category(c)[0] in "PS"


def _is_word_char(c: str) -> bool:
    return c.isalnum() or unicodedata.category(c)[0] == "M"


DEFAULT_NORMALIZER = Normalizer()


def align(ref: Sequence[str], hyp: Sequence[str]) -> str:
    """Align two token sequences as sclite does; returns one letter per step:
    C (correct), S (substitution), D (deletion: a reference token), I (insertion)."""
    n, m = len(ref), len(hyp)
    ids: dict[str, int] = {}
    r = np.array([ids.setdefault(t, len(ids)) for t in ref], dtype=np.int64)
    h = np.array([ids.setdefault(t, len(ids)) for t in hyp], dtype=np.int64)
    cost = np.empty((n + 1, m + 1), dtype=np.int64)
    ins_run = INS_COST * np.arange(m + 1)
    cost[0] = ins_run
    for i in range(1, n + 1):
        # Best of diagonal and deletion for every column, then insertions along the row:
        # cost[i, j] = min over k <= j of best[k] + INS_COST * (j - k), a running minimum.
        best = np.empty(m + 1, dtype=np.int64)
        best[0] = cost[i - 1, 0] + DEL_COST
        best[1:] = np.minimum(cost[i - 1, :-1] + np.where(h == r[i - 1], 0, SUB_COST),
                              cost[i - 1, 1:] + DEL_COST)
        cost[i] = np.minimum.accumulate(best - ins_run) + ins_run
    # Back-trace from the end with sclite's preferences: diagonal, then deletion, then insertion.
    rl, hl = r.tolist(), h.tolist()
    ops, i, j = [], n, m
    while i > 0 or j > 0:
        if i == 0:
            ops.append("I")
            j -= 1
            continue
        if j == 0:
            ops.append("D")
            i -= 1
            continue
        same = rl[i - 1] == hl[j - 1]
        diag = cost.item(i - 1, j - 1) + (0 if same else SUB_COST)
        dele = cost.item(i - 1, j) + DEL_COST
        ins = cost.item(i, j - 1) + INS_COST
        if diag <= dele and diag <= ins:
            ops.append("C" if same else "S")
            i, j = i - 1, j - 1
        elif dele < ins:
            ops.append("D")
            i -= 1
        else:
            ops.append("I")
            j -= 1
    return "".join(reversed(ops))


def aligned_pairs(ref: Sequence[str], hyp: Sequence[str], ops: str) -> list[tuple[str, str | None, str | None]]:
    """(op, reference token or None, hypothesis token or None) for every step of `ops`."""
    out, i, j = [], 0, 0
    for op in ops:
        r = ref[i] if op != "I" else None
        h = hyp[j] if op != "D" else None
        i += op != "I"
        j += op != "D"
        out.append((op, r, h))
    return out


@dataclass(frozen=True)
class Counts:
    correct: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @classmethod
    def from_ops(cls, ops: str) -> Counts:
        return cls(ops.count("C"), ops.count("S"), ops.count("D"), ops.count("I"))

    @property
    def n_ref(self) -> int:
        return self.correct + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def error_rate(errors: int, n_ref: int) -> float:
    """Percent; NaN (undefined) without reference tokens."""
    return 100.0 * errors / n_ref if n_ref else math.nan


@dataclass(frozen=True)
class UttScore:
    """One utterance scored: normalized texts, the word alignment, word and character counts."""

    id: str
    speaker: str
    ref: str
    hyp: str
    ops: str  # word alignment, see align()
    chars: Counts
    missing: bool = False  # no hypothesis was given: scored as an empty one

    @property
    def words(self) -> Counts:
        return Counts.from_ops(self.ops)

    @property
    def wer(self) -> float:
        return error_rate(self.words.errors, self.words.n_ref)

    def pairs(self) -> list[tuple[str, str | None, str | None]]:
        return aligned_pairs(self.ref.split(), self.hyp.split(), self.ops)


def score_utterance(uid: str, speaker: str, ref: str, hyp: str | None,
                    normalizer: Normalizer = DEFAULT_NORMALIZER) -> UttScore:
    """Normalize and align one reference and hypothesis (None: the hypothesis is missing)."""
    ref_n, hyp_n = normalizer(ref), normalizer(hyp or "")
    return UttScore(uid, speaker, ref_n, hyp_n, align(ref_n.split(), hyp_n.split()),
                    Counts.from_ops(align(ref_n, hyp_n)), missing=hyp is None)


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
    wer: float  # percent; NaN when there are no reference words
    n_chars: int
    char_errors: int
    cer: float  # percent, spaces counted as characters; NaN without reference characters
    char_correct: int = 0
    char_substitutions: int = 0
    char_deletions: int = 0
    char_insertions: int = 0

    def word_counts(self) -> Counts:
        return Counts(self.correct, self.substitutions, self.deletions, self.insertions)

    def char_counts(self) -> Counts:
        return Counts(self.char_correct, self.char_substitutions, self.char_deletions, self.char_insertions)

    def table(self, title: str = "") -> str:
        """An sclite-style summary block; the last two lines are %WER and %CER."""
        lines = [title] if title else []
        lines += sclite_table([("Sum/Avg", self)])
        lines.append(f"%WER {_pct_text(self.wer)} [ {self.errors} / {self.n_words}, {self.insertions} ins, "
                     f"{self.deletions} del, {self.substitutions} sub ]")
        lines.append(f"%CER {_pct_text(self.cer)} [ {self.char_errors} / {self.n_chars} ]")
        return "\n".join(lines) + "\n"


def _pct_text(value: float) -> str:
    return "undefined" if math.isnan(value) else f"{value:.2f}"


def summarize(utts: Iterable[UttScore]) -> Summary:
    """Totals over utterances, as sclite's Sum/Avg row."""
    utts = list(utts)
    words = sum((u.words for u in utts), Counts())
    chars = sum((u.chars for u in utts), Counts())
    return Summary(
        n_sentences=len(utts), n_words=words.n_ref, correct=words.correct,
        substitutions=words.substitutions, deletions=words.deletions, insertions=words.insertions,
        errors=words.errors, sentence_errors=sum(u.words.errors > 0 for u in utts),
        wer=error_rate(words.errors, words.n_ref), n_chars=chars.n_ref, char_errors=chars.errors,
        cer=error_rate(chars.errors, chars.n_ref), char_correct=chars.correct,
        char_substitutions=chars.substitutions, char_deletions=chars.deletions,
        char_insertions=chars.insertions,
    )


def sclite_table(rows: Sequence[tuple[str, Summary]], unit: str = "Wrd") -> list[str]:
    """sclite's summary layout (percentages of the reference count) for labelled rows;
    `unit` 'Chr' tabulates the character counts."""
    label_width = max(10, *(len(label) + 1 for label, _ in rows))
    head = (f"| {'SPKR':<{label_width}}| {'# Snt':>6} {'# ' + unit:>6} | {'Corr':>6} {'Sub':>6} "
            f"{'Del':>6} {'Ins':>6} {'Err':>6} {'S.Err':>6} |")
    rule = "-" * len(head)
    lines = [rule, head, rule]
    for label, s in rows:
        c = s.word_counts() if unit == "Wrd" else s.char_counts()
        cells = [c.correct, c.substitutions, c.deletions, c.insertions, c.errors]
        pct = [f"{sclite_percent(x, c.n_ref):>6}" for x in cells]
        serr = f"{sclite_percent(s.sentence_errors, s.n_sentences):>6}"
        lines.append(f"| {label:<{label_width}}| {s.n_sentences:>6} {c.n_ref:>6} | {' '.join(pct)} {serr} |")
    lines.append(rule)
    return lines


def sclite_percent(count: int, total: int) -> str:
    """A percentage with one decimal, rounded half up as sclite prints it; 'n/a' for 0 / 0."""
    if not total:
        return "n/a"
    return f"{int(count / total * 100.0 * 10 + 0.5) / 10:.1f}"


def aligned_block(utt: UttScore) -> str:
    """sclite-style REF/HYP lines: correct words lower-case, errors upper-case, *** for gaps."""
    ref_col, hyp_col = [], []
    for op, r, h in utt.pairs():
        if op == "C":
            r, h = r.lower(), h.lower()
        r = r if r is not None else "*" * len(h)
        h = h if h is not None else "*" * len(r)
        width = max(len(r), len(h))
        ref_col.append(r.ljust(width))
        hyp_col.append(h.ljust(width))
    w = utt.words
    return (f"Scores: (#C #S #D #I) {w.correct} {w.substitutions} {w.deletions} {w.insertions}\n"
            f"REF:  {' '.join(ref_col)}\nHYP:  {' '.join(hyp_col)}\n")


def score(refs: Sequence[str], hyps: Sequence[str],
          normalizer: Normalizer = DEFAULT_NORMALIZER) -> tuple[Summary, list[str]]:
    """Score parallel lists of texts; returns the summary and one aligned block per pair."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("nothing to score")
    utts = [score_utterance(str(i), "", r, h, normalizer) for i, (r, h) in enumerate(zip(refs, hyps))]
    return summarize(utts), [aligned_block(u) for u in utts]
