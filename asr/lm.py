"""Word n-gram language models: modified Kneser-Ney estimation and ARPA files.

Estimation follows Chen & Goodman (1998) as KenLM's lmplz does it (Heafield et al., 2013):
- adjusted counts: raw counts for the highest order and for n-grams starting with <s>,
  otherwise the number of distinct words seen to the left (continuation counts);
- three discounts per order from the counts of adjusted counts 1..4;
- interpolation down to a uniform distribution over the vocabulary (with <unk>).
The interpolated model is written in ARPA backoff form: each seen n-gram carries its full
interpolated probability, and each seen context the weight given to its lower order.

This is the reference implementation and the fallback: it keeps every n-gram in memory
(about 450 bytes and 15 us each), fine up to a few million n-grams. For full corpus texts,
`asr lm build --backend kenlm` runs KenLM's lmplz (asr/kenlm.py), which agrees with it
within 1e-4 in log10 on the same text (tests/test_lm.py).
"""

from __future__ import annotations

import gzip
import math
import sys
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from asr.atomic import write_text_atomic
from asr.errors import AsrError, first_line
from asr.scoring import normalize_text

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
Ngram = tuple[str, ...]


@dataclass
class NgramModel:
    order: int
    vocab: list[str]  # predictable words: the corpus words, </s> and <unk> (not <s>)
    prob: dict[Ngram, float]  # interpolated p(w | h) of every seen n-gram (h + (w,))
    backoff: dict[Ngram, float]  # weight of the lower order for every seen context h
    discounts: list[tuple[float, float, float]]  # (D1, D2, D3+) per order 1..N
    _known: set[str] = field(init=False, repr=False)

    def __post_init__(self):
        self._known = set(self.vocab)

    def probability(self, word: str, history: Sequence[str]) -> float:
        """p(word | history) under the backoff model (history truncated to order - 1)."""
        word = word if word in self._known else UNK
        h = tuple(history)[-(self.order - 1):] if self.order > 1 else ()
        return _backoff_probability(self.prob, self.backoff, h, word)

    def sentence_log10(self, words: Sequence[str]) -> float:
        """log10 p(words </s> | <s>), unknown words predicted as <unk> (the reference the rescoring
        decoder's KenLM scores are tested against)."""
        history, total = [BOS], 0.0
        for w in [*words, EOS]:
            total += math.log10(self.probability(w, history))
            history.append(w)
        return total


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Raw counts of every n-gram (n = 1..order) in the sentences padded with <s> and </s>.

    <s> is only ever a context: n-grams ending in <s> are not counted.
    """
    counts = [Counter() for _ in range(order + 1)]  # counts[n] for n-grams of order n
    for words in sentences:
        padded = [BOS] + list(words) + [EOS]
        for end in range(1, len(padded)):
            for n in range(1, order + 1):
                start = end + 1 - n
                if start < 0:
                    break
                counts[n][tuple(padded[start : end + 1])] += 1
    return counts


def adjusted_counts(raw: list[Counter], order: int) -> list[dict[Ngram, int]]:
    adjusted: list[dict[Ngram, int]] = [{} for _ in range(order + 1)]
    adjusted[order] = dict(raw[order])
    for n in range(order - 1, 0, -1):
        left = Counter(g[1:] for g in raw[n + 1])  # distinct left extensions of each n-gram
        adjusted[n] = {g: (c if g[0] == BOS else left[g]) for g, c in raw[n].items()}
    return adjusted


def discounts_for(counts: Iterable[int]) -> tuple[float, float, float]:
    """Modified KN discounts (D1, D2, D3+) from the counts of counts 1..4."""
    t = Counter(c for c in counts if c <= 4)
    n1, n2, n3, n4 = (t[k] for k in (1, 2, 3, 4))
    if n1 and n2:
        y = n1 / (n1 + 2 * n2)
        d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2 if n2 else 0.0, 3 - 4 * y * n4 / n3 if n3 else 0.0)
        if all(0 < d[k] < k + 1 for k in range(3)):
            return d
    # Too little text for the three estimates (tiny corpora): one absolute discount, kept
    # inside (0, 1) so that every seen n-gram keeps some probability and every context
    # leaves some for its lower order.
    d = n1 / (n1 + 2 * n2) if n1 + n2 else 0.0
    d = d if 0 < d < 1 else 0.5
    return (d, d, d)


def estimate(sentences: Iterable[Sequence[str]], order: int) -> NgramModel:
    """Estimate an interpolated modified Kneser-Ney model of the given order."""
    if order < 1:
        raise ValueError("order must be at least 1")
    sentences = [list(s) for s in sentences]
    if not any(sentences):
        raise ValueError("no words to estimate a language model from")
    raw = count_ngrams(sentences, order)
    adjusted = adjusted_counts(raw, order)
    vocab = sorted({g[0] for g in raw[1]} - {BOS}) + [UNK]
    if EOS in vocab:
        vocab.remove(EOS)
        vocab.insert(0, EOS)

    prob: dict[Ngram, float] = {}
    backoff: dict[Ngram, float] = {}
    discounts = []
    uniform = 1.0 / len(vocab)  # order 0: every vocabulary word alike
    for n in range(1, order + 1):
        counts = adjusted[n]
        d = discounts_for(counts.values())
        discounts.append(d)
        by_context: dict[Ngram, list[tuple[str, int]]] = defaultdict(list)
        for g, c in counts.items():
            by_context[g[:-1]].append((g[-1], c))
        for h, continuations in by_context.items():
            total = sum(c for _, c in continuations)
            gamma = sum(d[min(c, 3) - 1] for _, c in continuations) / total
            backoff[h] = gamma
            for w, c in continuations:
                lower_p = uniform if n == 1 else _backoff_probability(prob, backoff, h[1:], w)
                prob[h + (w,)] = (c - d[min(c, 3) - 1]) / total + gamma * lower_p
        if n == 1:  # vocabulary words never seen as unigrams (<unk>) get the uniform share
            for w in vocab:
                prob.setdefault((w,), backoff[()] * uniform)
    # A context's weight is only needed where longer n-grams exist; the order-0 weight is
    # folded into the unigrams above.
    del backoff[()]
    return NgramModel(order, vocab, prob, backoff, discounts)


def component_probability(model: NgramModel, word: str, history: Sequence[str]) -> float:
    """p(word | history) under one model of a mixture: 0 for a word outside its vocabulary
    (rather than its <unk> probability), so that a mixture over the union of the vocabularies
    still sums to one in every history."""
    return model.probability(word, history) if word in model._known else 0.0


def interpolate(models: Sequence[NgramModel], weights: Sequence[float], bayes: bool = False) -> NgramModel:
    """The linear interpolation p(w | h) = sum_i weight_i p_i(w | h) of backoff models, as one
    backoff model (static interpolation, as SRILM's `ngram -mix-lm` writes it).

    bayes=True makes the weights depend on the history, as SRILM's `-bayes` mixing does: model i's
    weight in history h is its posterior weight_i p_i(h) / sum_j weight_j p_j(h), with p_i(h) the
    probability model i gives the history's words (from <s> where the history starts with it).
    The weights given are then the priors. Where the models cover different kinds of sentence (a
    corpus's commands and spelled names, say), the history picks the model that explains it; a
    history word outside a model's vocabulary rules that model out for the n-gram (ERASE M A R Y:
    a model of spelled names alone gives ERASE nothing).

    Every n-gram listed by any model (and every prefix of one) is listed with its exact mixed
    probability; the context weights are set so that each history's distribution sums to one
    over the union of the vocabularies. An n-gram no model lists backs off, which approximates
    the mixture there. A word outside model i's vocabulary gets 0 from it (component_probability);
    <unk> keeps the mixed <unk> probabilities. The weights must be positive and sum to one.
    """
    if not models or len(models) != len(weights):
        raise ValueError(f"one weight per model: {len(models)} models, {len(weights)} weights")
    if any(w <= 0 for w in weights) or abs(sum(weights) - 1) > 1e-6:
        raise ValueError(f"mixture weights must be positive and sum to 1, got {list(weights)}")
    order = max(m.order for m in models)
    listed: list[set[Ngram]] = [set() for _ in range(order + 1)]
    for m in models:
        for g in m.prob:
            listed[len(g)].add(g)
        listed[1].update((w,) for w in m.vocab)
    for n in range(order, 1, -1):  # prefixes of listed n-grams are listed too (<s> only as a context)
        listed[n - 1].update(g[:-1] for g in listed[n] if g[:-1] != (BOS,))

    def history_weights(h: Ngram) -> Sequence[float]:
        if not bayes or not h:
            return weights
        start = 1 if h[0] == BOS else 0
        posterior = []
        for m, lam in zip(models, weights):
            for i in range(start, len(h)):
                lam *= component_probability(m, h[i], h[:i])
            posterior.append(lam)
        total = sum(posterior)
        return [p / total for p in posterior] if total > 0 else weights

    prob: dict[Ngram, float] = {}
    backoff: dict[Ngram, float] = {}
    for n in range(1, order + 1):
        by_context: dict[Ngram, list[str]] = defaultdict(list)
        for g in listed[n]:
            by_context[g[:-1]].append(g[-1])
        for h, words in by_context.items():
            lams = history_weights(h)
            for w in words:
                p = sum(lam * component_probability(m, w, h) for m, lam in zip(models, lams))
                if not p > 0:  # an n-gram whose models all give it 0 (log10 -inf in an ARPA file)
                    raise ValueError(f"the mixture gives {' '.join(h + (w,))!r} probability 0")
                prob[h + (w,)] = p
        if n == 1:
            continue
        for h, words in by_context.items():  # h's weight for the lower order, from p(. | h[1:])
            left = 1.0 - sum(prob[h + (w,)] for w in words)
            lower = 1.0 - sum(_backoff_probability(prob, backoff, h[1:], w) for w in words)
            backoff[h] = max(left, 1e-30) / max(lower, 1e-30)
    vocab = sorted(g[0] for g in listed[1])
    return NgramModel(order, vocab, prob, backoff, discounts=[])


def best_mixture_weights(models: Sequence[NgramModel], sentences: Iterable[Sequence[str]],
                         iterations: int = 100, tolerance: float = 1e-6) -> list[float]:
    """The mixture weights that maximize the likelihood of held-out sentences (EM, as SRILM's
    compute-best-mix): each weight becomes the mean share of its model in the mixed probability
    of every word (and </s>). A word no model knows counts as <unk>; one that gets probability 0
    from every model is skipped. These are the static mixture's best weights (interpolate's
    bayes=False), also used as the priors of a bayes mixture."""
    known = set().union(*(m._known for m in models))
    rows = []
    for words in sentences:
        history = [BOS]
        for w in [*words, EOS]:
            row = [component_probability(m, w if w in known else UNK, history) for m in models]
            if any(row):
                rows.append(row)
            history.append(w)
    if not rows:
        raise ValueError("no held-out words to choose mixture weights on")
    weights = [1.0 / len(models)] * len(models)
    for _ in range(iterations):
        shares = [0.0] * len(models)
        for row in rows:
            total = sum(lam * p for lam, p in zip(weights, row))
            for i, (lam, p) in enumerate(zip(weights, row)):
                shares[i] += lam * p / total
        new = [s / len(rows) for s in shares]
        done = max(abs(a - b) for a, b in zip(new, weights)) < tolerance
        weights = new
        if done:
            break
    return weights


def perplexity(model: NgramModel, sentences: Iterable[Sequence[str]]) -> float:
    """Per-word perplexity (</s> counted as a word), as KenLM's query and SRILM's ngram -ppl report it."""
    total, n = 0.0, 0
    for words in sentences:
        total += model.sentence_log10(words)
        n += len(words) + 1
    if not n:
        raise ValueError("no sentences")
    return 10 ** (-total / n)


def _backoff_probability(prob: dict[Ngram, float], backoff: dict[Ngram, float], h: Ngram, w: str) -> float:
    """p(w | h) from seen n-grams, backing off to shorter histories as needed.

    Every vocabulary word has a unigram, so the search always ends.
    """
    weight = 1.0
    while h + (w,) not in prob:
        weight *= backoff.get(h, 1.0)
        h = h[1:]
    return weight * prob[h + (w,)]


def write_arpa(model: NgramModel, path: str | Path) -> None:
    """Write the model as an ARPA file (log10 probabilities and backoff weights)."""
    by_order: list[list[Ngram]] = [[] for _ in range(model.order + 1)]
    for g in model.prob:
        by_order[len(g)].append(g)
    has_bos_context = (BOS,) in model.backoff
    lines = ["", "\\data\\"]
    for n in range(1, model.order + 1):
        extra = 1 if n == 1 else 0  # <s> appears as a unigram with no probability of its own
        lines.append(f"ngram {n}={len(by_order[n]) + extra}")
    for n in range(1, model.order + 1):
        lines += ["", f"\\{n}-grams:"]
        if n == 1:
            bos = f"-99\t{BOS}"
            if has_bos_context:
                bos += f"\t{math.log10(model.backoff[(BOS,)]):.6f}"
            lines.append(bos)
        for g in sorted(by_order[n]):
            line = f"{math.log10(model.prob[g]):.6f}\t{' '.join(g)}"
            if n < model.order and g in model.backoff:
                line += f"\t{math.log10(model.backoff[g]):.6f}"
            lines.append(line)
    lines += ["", "\\end\\", ""]
    write_text_atomic(path, "\n".join(lines))


def read_arpa(path: str | Path) -> NgramModel:
    """An ARPA backoff model as an NgramModel (whole in memory: meant for small LMs).

    A model without <unk> gives unknown words probability 1e-100 (log10 -100, as KenLM's
    tools write for a missing <unk>).
    """
    prob: dict[Ngram, float] = {}
    backoff: dict[Ngram, float] = {}
    order, n = 0, 0
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("ngram "):
                    continue
                if line.startswith("\\"):
                    n = int(line[1]) if line.endswith("-grams:") and line[1].isdigit() else 0
                    order = max(order, n)
                    continue
                if n == 0:
                    continue
                parts = line.split()
                try:
                    if len(parts) not in (n + 1, n + 2):
                        raise ValueError(f"expected {n} words")
                    g = tuple(parts[1:n + 1])
                    if g != (BOS,):  # <s> only ever starts a history
                        prob[g] = 10 ** float(parts[0])
                    if len(parts) == n + 2:
                        backoff[g] = 10 ** float(parts[n + 1])
                except ValueError as e:
                    raise AsrError(f"{path}:{number}: not an ARPA {n}-gram line ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AsrError(f"{path}: cannot read language model ({e})") from None
    if not any(len(g) == 1 for g in prob):
        raise AsrError(f"{path}: no unigrams found (not an ARPA file?)")
    prob.setdefault((UNK,), 1e-100)
    vocab = sorted(g[0] for g in prob if len(g) == 1)
    return NgramModel(order, vocab, prob, backoff, discounts=[])


def read_arpa_words(path: str | Path) -> list[str]:
    """The words of an ARPA file's unigram section (without <s>, </s> and <unk>)."""
    words, in_unigrams = [], False
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line.startswith("\\"):
                    if in_unigrams:
                        break
                    in_unigrams = line == "\\1-grams:"
                elif in_unigrams and line:
                    parts = line.split()
                    if len(parts) >= 2 and parts[1] not in (BOS, EOS, UNK):
                        words.append(parts[1])
    except (OSError, UnicodeDecodeError) as e:
        raise AsrError(f"{path}: cannot read language model ({e})") from None
    if not words:
        raise AsrError(f"{path}: no unigrams found (not an ARPA file?)")
    return words


def read_text_corpus(
    paths: Sequence[str | Path], max_lines: int | None = None, every: int = 1
) -> list[list[str]]:
    """One sentence per line, words split on whitespace, upper-cased as transcripts are, all in
    memory (see iter_text_corpus)."""
    sentences = [[sys.intern(w) for w in line.split()] for line in iter_text_corpus(paths, max_lines, every)]
    if not sentences:
        raise AsrError(f"{', '.join(map(str, paths))}: no text to build a language model from")
    return sentences


def iter_text_corpus(paths: Sequence[str | Path], max_lines: int | None = None, every: int = 1) -> Iterator[str]:
    """The normalized sentences of text files, streamed: one per line, upper-cased as
    transcripts are. Files ending in .gz are read through gzip. Blank lines (and lines that
    normalize to nothing) are skipped; of the others, every `every`-th is kept (1: all), up
    to `max_lines` in all (None: no limit). A line that is not UTF-8 is an AsrError naming
    the file and the line."""
    if every < 1 or (max_lines is not None and max_lines < 1):
        raise AsrError("--every and --max-lines must be at least 1")
    kept = seen = 0
    for path in paths:
        for _, line in numbered_lines(path, "text file"):
            if max_lines is not None and kept >= max_lines:
                return
            words = normalize_text(line) if line.strip() else ""
            if not words:
                continue
            seen += 1
            if (seen - 1) % every == 0:
                kept += 1
                yield words


def numbered_lines(path: str | Path, what: str) -> Iterator[tuple[int, str]]:
    """The lines of a text file (.gz read through gzip), numbered from 1 and decoded as UTF-8.
    A missing or unreadable file, or a line that is not UTF-8, is an AsrError naming the file
    (and the line): `what` says what the file should be ("text file", "word list")."""
    try:
        with _open_bytes(path) as f:
            for number, raw in enumerate(f, 1):
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise AsrError(f"{path}:{number}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except FileNotFoundError:
        raise AsrError(f"{path}: no such {what}") from None
    except (OSError, EOFError, zlib.error) as e:
        raise AsrError(f"{path}: cannot read {what} ({first_line(e)})") from None


MAX_SPELLED_LINES = 20_000_000  # spelled_words(by_frequency=True): the census lists need 329,542


def spelled_words(paths: Sequence[str | Path], by_frequency: bool = False) -> list[str]:
    """The words of word lists, each spelled as its letters ("LINDA" -> "L I N D A"), in order of
    first appearance. The first column of each line is the word (so the US Census name lists,
    NAME FREQ CUM RANK, read as they are); it is normalized as transcripts are, and a word that
    leaves anything but letters A-Z (digits, apostrophes) is skipped. An unreadable file or line
    is an AsrError naming it.

    Each word once, or with by_frequency as many times as its lines say: a line whose second
    column is a frequency f counts round(f / u) times, u being the least positive frequency of all
    the lists' lines, and at least once (a line without one, or with 0, once), summed over the
    lines that name the word; so that an LM of the text counts name tokens, not types.
    """
    entries: list[tuple[str, float]] = []
    for path in paths:
        for number, line in numbered_lines(path, "word list"):
            fields = line.split()
            word = normalize_text(fields[0]) if fields else ""
            if not (word.isascii() and word.isalpha()):
                continue
            frequency = 0.0
            if by_frequency and len(fields) > 1:
                try:
                    frequency = float(fields[1])
                except ValueError:
                    pass
                if not math.isfinite(frequency) or frequency < 0:
                    raise AsrError(f"{path}:{number}: frequency {fields[1]!r} is not a number >= 0")
            entries.append((" ".join(word), frequency))
    if not entries:
        raise AsrError(f"{', '.join(map(str, paths))}: no words of letters A-Z to spell")
    counts: dict[str, int] = {}
    unit = min((f for _, f in entries if f > 0), default=1.0)
    for spelled, frequency in entries:
        counts[spelled] = counts.get(spelled, 0) + (max(1, round(frequency / unit)) if by_frequency else 1)
    if not by_frequency:
        return list(counts)
    total = sum(counts.values())
    if total > MAX_SPELLED_LINES:
        raise AsrError(f"{', '.join(map(str, paths))}: the frequencies ask for {total:,} lines (the largest over the "
                       f"least is too large); at most {MAX_SPELLED_LINES:,}")
    return [w for w, n in counts.items() for _ in range(n)]


def _open_bytes(path: str | Path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")
