"""Report figures as PNG bytes (matplotlib's Agg canvas: no display, no pyplot state)."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence

from asr.scoring import Summary, UttScore


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def wer_vs_length(utts: Sequence[UttScore]) -> bytes:
    """Per-utterance WER against reference length in words, with the pooled WER per length
    (errors / reference words of all utterances of that length). Utterances with an empty
    reference have no WER and are left out."""
    fig = _figure(7.0, 3.6)
    ax = fig.subplots()
    scored = [u for u in utts if u.words.n_ref > 0]
    errors, words = defaultdict(int), defaultdict(int)
    for u in scored:
        errors[u.words.n_ref] += u.words.errors
        words[u.words.n_ref] += u.words.n_ref
    lengths = sorted(words)
    if scored:
        ax.scatter([u.words.n_ref for u in scored], [u.wer for u in scored], s=14, alpha=0.35,
                   color="tab:blue", label="utterance", linewidths=0)
        pooled = [100.0 * errors[n] / words[n] for n in lengths]
        ax.plot(lengths, pooled, "o-", color="tab:red", markersize=4, label="all utterances of that length")
        for n, wer in zip(lengths, pooled):  # how many utterances each pooled point stands for
            ax.annotate(str(words[n] // n), (n, wer), textcoords="offset points", xytext=(0, 5),
                        ha="center", fontsize=7, color="tab:red")
        ax.legend(loc="upper right", fontsize=8, title="red numbers: utterances", title_fontsize=7)
    else:
        ax.text(0.5, 0.5, "no utterance has reference words", ha="center", transform=ax.transAxes)
    ax.set_xlabel("reference length (words)")
    ax.set_ylabel("WER (%)")
    ax.set_title("WER against utterance length", fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)


MAX_SPEAKER_BARS = 30


def error_types(overall: Summary, speakers: dict[str, Summary]) -> bytes:
    """Substitutions, deletions and insertions as a share of reference words, stacked,
    for all utterances and for each speaker (with many speakers: those with the most
    errors per reference word)."""
    shown = sorted(speakers.items())
    title = "Error types, all utterances and by speaker"
    if len(shown) > MAX_SPEAKER_BARS:
        def rate(item: tuple[str, Summary]) -> float:
            s = item[1]
            return s.errors / s.n_words if s.n_words else float(s.errors)
        shown = sorted(sorted(shown, key=rate, reverse=True)[:MAX_SPEAKER_BARS])
        title = f"Error types, all utterances and the {MAX_SPEAKER_BARS} of {len(speakers)} speakers with most errors"
    rows = [("all", overall), *shown]
    fig = _figure(7.0, 1.2 + 0.28 * len(rows))
    ax = fig.subplots()
    labels = [name for name, _ in rows][::-1]
    left = [0.0] * len(rows)
    for kind, color in (("substitutions", "tab:orange"), ("deletions", "tab:red"), ("insertions", "tab:blue")):
        values = [100.0 * getattr(s, kind) / s.n_words if s.n_words else 0.0 for _, s in rows][::-1]
        ax.barh(labels, values, left=left, color=color, label=kind, height=0.7)
        left = [a + b for a, b in zip(left, values)]
    ax.set_xlabel("errors per 100 reference words (stacked: WER)")
    ax.set_title(title, fontsize=10)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)
