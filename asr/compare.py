"""`asr compare`: two systems scored on the same utterances, compared pair by pair.

Reads the `utts.jsonl` of two report folders (written by `asr evaluate` or `asr score`),
checks that they hold the same utterances with the same normalized references, and
reports the WER difference with a paired bootstrap interval and p-value, sc_stats'
matched-pairs sentence-segment word error test, and the utterances that got better or
worse (see asr.significance for what each test computes).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from asr.errors import AsrError
from asr.significance import (
    MIN_GOOD,
    N_RESAMPLES,
    SEED,
    Mapsswe,
    PairedBootstrap,
    mapsswe,
    paired_bootstrap,
    sentence_segments,
)

UTT_FIELDS = ("id", "ref", "hyp", "ops", "n_ref", "errors")


@dataclass
class SystemReport:
    folder: Path
    title: str
    utts: dict[str, dict]  # id -> utts.jsonl record, in file order


def load_report(folder: str | Path) -> SystemReport:
    folder = Path(folder)
    path = folder / "utts.jsonl"
    if not folder.is_dir():
        raise AsrError(f"{folder}: no such report folder")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise AsrError(f"{folder}: not a report folder (no utts.jsonl; write one with asr evaluate or asr score)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AsrError(f"{path}: cannot read ({e})") from None
    utts: dict[str, dict] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise AsrError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        missing = [f for f in UTT_FIELDS if not isinstance(rec, dict) or f not in rec]
        if missing:
            raise AsrError(f"{path}:{n}: missing field '{missing[0]}'")
        if rec["id"] in utts:
            raise AsrError(f"{path}:{n}: duplicate id '{rec['id']}'")
        utts[rec["id"]] = rec
    if not utts:
        raise AsrError(f"{path}: holds no utterances")
    title = ""
    try:
        title = json.loads((folder / "summary.json").read_text(encoding="utf-8")).get("title", "")
    except (OSError, ValueError, AttributeError):
        pass  # the title is only a label
    return SystemReport(folder, title, utts)


@dataclass
class Comparison:
    a: SystemReport
    b: SystemReport
    ids: list[str]
    n_ref: int
    errors_a: int
    errors_b: int
    bootstrap: PairedBootstrap | None
    mapsswe: Mapsswe
    better: list[tuple[str, int, int]]  # (id, errors in A, errors in B), B has fewer errors
    worse: list[tuple[str, int, int]]


def compare_reports(folder_a: str | Path, folder_b: str | Path, n_resamples: int = N_RESAMPLES,
                    seed: int = SEED, min_good: int = MIN_GOOD) -> Comparison:
    a, b = load_report(folder_a), load_report(folder_b)
    only_a = [i for i in a.utts if i not in b.utts]
    only_b = [i for i in b.utts if i not in a.utts]
    if only_a or only_b:
        def some(ids):
            return ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise AsrError(f"{a.folder} and {b.folder} are not on the same utterances: "
                       f"{len(only_a)} only in the first ({some(only_a)}), "
                       f"{len(only_b)} only in the second ({some(only_b)})")
    ids = list(a.utts)
    for i in ids:
        if a.utts[i]["ref"] != b.utts[i]["ref"]:
            raise AsrError(f"utterance {i}: the references differ between {a.folder} and {b.folder} "
                           f"({a.utts[i]['ref']!r} vs {b.utts[i]['ref']!r}); were they normalized alike?")
    err_a = [a.utts[i]["errors"] for i in ids]
    err_b = [b.utts[i]["errors"] for i in ids]
    n_ref = [a.utts[i]["n_ref"] for i in ids]
    segments = [seg for i in ids for seg in sentence_segments(a.utts[i]["ops"], b.utts[i]["ops"], min_good)]
    changed = [(i, ea, eb) for i, ea, eb in zip(ids, err_a, err_b) if ea != eb]
    by_change = lambda t: (-abs(t[1] - t[2]), t[0])
    return Comparison(
        a, b, ids, sum(n_ref), sum(err_a), sum(err_b),
        paired_bootstrap(err_a, err_b, n_ref, n_resamples, seed), mapsswe(segments),
        better=sorted((t for t in changed if t[2] < t[1]), key=by_change),
        worse=sorted((t for t in changed if t[2] > t[1]), key=by_change),
    )


def _p_text(p: float | None, n_resamples: int | None = None) -> str:
    if p is None:
        return "p undefined"
    if n_resamples and p == 0:  # the smallest p-value above zero would be 2 / n_resamples
        return f"p < {2 / n_resamples:g} (no resample crossed zero)"
    return f"p = {p:.4f}" if p >= 1e-4 else f"p = {p:.1e}"


def format_comparison(c: Comparison, min_good: int = MIN_GOOD) -> str:
    wer = lambda e: f"{100.0 * e / c.n_ref:.2f}%" if c.n_ref else "undefined"
    lines = [f"A: {c.a.folder}" + (f"  ({c.a.title})" if c.a.title else ""),
             f"B: {c.b.folder}" + (f"  ({c.b.title})" if c.b.title else ""),
             f"{len(c.ids)} utterances, {c.n_ref} reference words, the same references in both.",
             f"WER A {wer(c.errors_a)} [ {c.errors_a} / {c.n_ref} ]   WER B {wer(c.errors_b)} [ {c.errors_b} / {c.n_ref} ]",
             ""]
    bs = c.bootstrap
    if bs is None:
        lines.append("Paired bootstrap: undefined (no reference words).")
    else:
        lines.append(f"WER difference B - A: {bs.delta:+.2f} points, 95% CI [{bs.ci[0]:+.2f}, {bs.ci[1]:+.2f}] "
                     f"(paired bootstrap over utterances, {bs.n_resamples} resamples, seed {bs.seed}); "
                     f"B better in {100 * bs.p_b_better:.1f}% of resamples; two-sided "
                     f"{_p_text(bs.p_value, bs.n_resamples)}.")
    m = c.mapsswe
    verdict = ""
    if m.p_value is not None:
        better = "A" if m.mean < 0 else "B"
        verdict = (f" -> {better} is better (significant at 0.05)" if m.p_value < 0.05
                   else " -> no significant difference at 0.05")
    z = "undefined (fewer than two segments)" if m.z is None else (f"{m.z:+.3f}" if math.isfinite(m.z) else f"{m.z:+}")
    lines.append(f"Matched-pairs sentence-segment word error test (MAPSSWE, NIST sc_stats; segments bounded by "
                 f"{min_good} words both systems got right): {m.n_segments} segments, {m.n_ref} reference words, "
                 f"errors A {m.errors_a} B {m.errors_b}, mean A - B {m.mean:+.3f} per segment (std {m.std:.3f}), "
                 f"Z = {z}, two-sided {_p_text(m.p_value)}{verdict}.")
    lines.append("")
    for name, rows in (("better", c.better), ("worse", c.worse)):
        lines.append(f"Utterances {name} in B ({len(rows)}): errors A -> B")
        lines += [f"  {i}: {ea} -> {eb}" for i, ea, eb in rows]
    same = len(c.ids) - len(c.better) - len(c.worse)
    lines.append(f"Utterances with the same number of errors: {same}")
    return "\n".join(lines) + "\n"
