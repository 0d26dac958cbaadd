"""Evaluation reports: everything a speech researcher checks a WER with, in one folder.

write_report writes
  ref.trn, hyp.trn   sclite trn files of the normalized texts (`TEXT (speaker-uttid)`)
  errs.txt           every utterance aligned, sclite style
  summary.txt        sclite-style totals per speaker; the last two lines are %WER and %CER
  summary.json       totals, confidence intervals, normalization, per-speaker results,
                     frequent errors, worst and problem utterances
  utts.jsonl         per utterance: texts, alignment and counts (what `asr compare` reads)
  summary.md         the report in Markdown, linking the plots
  report.html        the report in one self-contained page (plots embedded)
  wer_vs_length.png, error_types.png
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from asr import plots
from asr.atomic import atomic_folder
from asr.errors import AsrError
from asr.lock import folder_lock
from asr.scoring import (
    ALIGNMENT,
    DEFAULT_NORMALIZER,
    Counts,
    Normalizer,
    Summary,
    UttScore,
    aligned_block,
    sclite_percent,
    sclite_table,
    score_utterance,
    summarize,
)
from asr.significance import N_RESAMPLES, SEED, bootstrap_ci
from asr.trn import TrnEntry, format_trn

N_TOP = 20  # rows in the frequent-error tables
N_WORST = 10


@dataclass
class Report:
    title: str
    utts: list[UttScore]  # in reference order
    normalizer: Normalizer
    unknown: list[str] = field(default_factory=list)  # hypothesis ids without a reference
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.summary = summarize(self.utts)
        by_speaker: dict[str, list[UttScore]] = {}
        for u in self.utts:
            by_speaker.setdefault(u.speaker, []).append(u)
        self.speakers = {spk: summarize(us) for spk, us in sorted(by_speaker.items())}
        self.wer_ci = bootstrap_ci([u.words.errors for u in self.utts], [u.words.n_ref for u in self.utts])
        self.cer_ci = bootstrap_ci([u.chars.errors for u in self.utts], [u.chars.n_ref for u in self.utts])
        self.substitutions, self.deletions, self.insertions = error_tallies(self.utts)

    @property
    def missing(self) -> list[str]:
        return [u.id for u in self.utts if u.missing]

    @property
    def empty_refs(self) -> list[str]:
        return [u.id for u in self.utts if u.words.n_ref == 0]

    def worst(self, n: int = N_WORST) -> list[UttScore]:
        """The utterances with the most word errors (ties: higher WER first)."""
        wrong = [u for u in self.utts if u.words.errors > 0]
        wrong.sort(key=lambda u: (-u.words.errors, -(u.wer if u.words.n_ref else math.inf), u.id))
        return wrong[:n]


def error_tallies(utts: Sequence[UttScore]) -> tuple[Counter, Counter, Counter]:
    """Counts of substitution pairs (ref, hyp), deleted words and inserted words."""
    subs, dels, ins = Counter(), Counter(), Counter()
    for u in utts:
        for op, r, h in u.pairs():
            if op == "S":
                subs[(r, h)] += 1
            elif op == "D":
                dels[r] += 1
            elif op == "I":
                ins[h] += 1
    return subs, dels, ins


def build_report(ids: Sequence[str], speakers: Sequence[str], refs: Sequence[str],
                 hyps: Sequence[str | None], title: str = "", extra: dict | None = None,
                 normalizer: Normalizer = DEFAULT_NORMALIZER, unknown: Sequence[str] = ()) -> Report:
    """Score every reference; a hypothesis of None is missing and scored as empty."""
    if not (len(ids) == len(speakers) == len(refs) == len(hyps)):
        raise ValueError("ids, speakers, references and hypotheses differ in number")
    if not ids:
        raise AsrError("nothing to score: no reference utterances")
    utts = [score_utterance(i, s, r, h, normalizer) for i, s, r, h in zip(ids, speakers, refs, hyps)]
    return Report(title, utts, normalizer, sorted(unknown), dict(extra or {}))


def write_report(out_dir: str | Path, ids: Sequence[str], speakers: Sequence[str], refs: Sequence[str],
                 hyps: Sequence[str | None], title: str = "", extra: dict | None = None,
                 normalizer: Normalizer = DEFAULT_NORMALIZER, unknown: Sequence[str] = ()) -> Report:
    """Score and write the report folder (see the module docstring)."""
    report = build_report(ids, speakers, refs, hyps, title, extra, normalizer, unknown)
    write_report_files(report, out_dir)
    return report


REPORT_FILES = ("ref.trn", "hyp.trn", "errs.txt", "summary.txt", "utts.jsonl", "wer_vs_length.png",
                "error_types.png", "summary.md", "report.html", "summary.json")


def replaceable(name: str) -> bool:
    """A file a new report may replace: one of a report's, a temporary file an older writer
    left (.NAME.XXXX.tmp), or sclite's output from the trn files (hyp.trn.sys, ...)."""
    return (name in REPORT_FILES or (name.startswith(".") and name.endswith(".tmp"))
            or name.startswith(("hyp.trn.", "ref.trn.")))


def report_lock(out_dir: str | Path):
    """The lock a process holds while it writes the report folder `out_dir` (a file beside
    it, since the folder itself is replaced): take it before a long decode, so that a
    second writer stops at once instead of after its decode."""
    out = Path(out_dir)
    return folder_lock(out, out.parent / f".{out.name}.lock", "report folder")


def check_report_folder(out_dir: str | Path) -> None:
    """AsrError unless `out_dir` is absent, or a folder of report files only (which a new
    report may replace)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AsrError(f"{out}: exists and is not a folder; choose another report folder")
    strangers = sorted(p.name for p in out.iterdir() if not replaceable(p.name)) if out.is_dir() else []
    if strangers:
        raise AsrError(f"{out}: holds files that are not a report's ({', '.join(strangers[:3])}); "
                       "choose another report folder")


def remove_stale_folders(out: Path) -> None:
    """Clean up after a writer of `out` that was killed (only while holding its lock: no live
    writer owns these): delete its .NAME.XXXXXXXX.tmp folders, and put back the earlier report
    that a writer killed between its two renames left in .NAME.XXXXXXXX.old/NAME."""
    own = re.compile(rf"\.{re.escape(out.name)}\.[a-z0-9_]{{8}}\.(tmp|old)")
    for stale in sorted(out.parent.iterdir() if out.parent.is_dir() else []):
        if not (stale.is_dir() and own.fullmatch(stale.name)):
            continue
        if stale.suffix == ".old" and not out.exists() and (stale / out.name).is_dir():
            os.replace(stale / out.name, out)
        shutil.rmtree(stale, ignore_errors=True)


def write_report_files(report: Report, out_dir: str | Path) -> None:
    """Write the report into a new folder beside `out_dir`, then put it in the place of
    `out_dir`: a reader never sees files of two runs, and a crash leaves the old report.
    An existing `out_dir` that holds anything but report files is refused."""
    from asr.html_report import render_html

    out = Path(out_dir)
    with report_lock(out):
        check_report_folder(out)
        remove_stale_folders(out)
        with atomic_folder(out, replaceable) as tmp:
            _write_files(report, tmp, render_html)


def _write_files(report: Report, out: Path, render_html) -> None:
    utts = report.utts
    (out / "ref.trn").write_text(format_trn(TrnEntry(u.id, u.speaker, u.ref) for u in utts), encoding="utf-8")
    (out / "hyp.trn").write_text(format_trn(TrnEntry(u.id, u.speaker, u.hyp) for u in utts), encoding="utf-8")
    (out / "errs.txt").write_text("".join(f"id: {u.id}\n{aligned_block(u)}\n" for u in utts), encoding="utf-8")
    (out / "summary.txt").write_text(summary_text(report), encoding="utf-8")
    (out / "utts.jsonl").write_text("".join(json.dumps(utterance_record(u), ensure_ascii=False) + "\n"
                                            for u in utts), encoding="utf-8")
    figures = {"wer_vs_length.png": plots.wer_vs_length(utts),
               "error_types.png": plots.error_types(report.summary, report.speakers)}
    for name, png in figures.items():
        (out / name).write_bytes(png)
    (out / "summary.md").write_text(summary_markdown(report), encoding="utf-8")
    (out / "report.html").write_text(render_html(report, figures), encoding="utf-8")
    # summary.json marks a finished report (readers that do not know of the folder swap).
    (out / "summary.json").write_text(json.dumps(summary_json(report), indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")


def _finite(value):
    """NaN (an undefined rate) as JSON null."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _summary_dict(s: Summary) -> dict:
    return {k: _finite(v) for k, v in asdict(s).items()}


def utterance_record(u: UttScore) -> dict:
    w, c = u.words, u.chars
    return {"id": u.id, "speaker": u.speaker, "ref": u.ref, "hyp": u.hyp, "ops": u.ops,
            "n_ref": w.n_ref, "correct": w.correct, "substitutions": w.substitutions,
            "deletions": w.deletions, "insertions": w.insertions, "errors": w.errors,
            "wer": _finite(u.wer), "n_chars": c.n_ref, "char_errors": c.errors, "missing": u.missing}


def summary_json(report: Report) -> dict:
    def ci(interval):
        return list(interval) if interval else None
    return {
        **_summary_dict(report.summary),
        **report.extra,
        "title": report.title,
        "wer_ci95": ci(report.wer_ci),
        "cer_ci95": ci(report.cer_ci),
        "bootstrap": {"resamples": N_RESAMPLES, "seed": SEED, "unit": "utterance",
                      "interval": "2.5th and 97.5th percentile of sum(errors) / sum(reference words)"},
        "alignment": ALIGNMENT,
        "normalization": report.normalizer.to_dict(),
        "speakers": {spk: _summary_dict(s) for spk, s in report.speakers.items()},
        "top_substitutions": [{"ref": r, "hyp": h, "count": n} for (r, h), n in report.substitutions.most_common(N_TOP)],
        "top_deletions": [{"word": w, "count": n} for w, n in report.deletions.most_common(N_TOP)],
        "top_insertions": [{"word": w, "count": n} for w, n in report.insertions.most_common(N_TOP)],
        "worst_utterances": [{"id": u.id, "speaker": u.speaker, "errors": u.words.errors, "wer": _finite(u.wer)}
                             for u in report.worst()],
        "missing_hypotheses": report.missing,
        "unknown_hypotheses": report.unknown,
        "empty_references": report.empty_refs,
        "utterances": "utts.jsonl",
    }


def format_rate(value: float | None, ci: tuple[float, float] | None = None) -> str:
    if value is None or math.isnan(value):
        return "undefined (no reference words)"
    text = f"{value:.2f}%"
    return text + (f" (95% CI {ci[0]:.2f}–{ci[1]:.2f})" if ci else "")


def problem_lines(report: Report, max_ids: int | None = None) -> list[str]:
    """Plain-language notes on input problems, naming the utterances (at most max_ids of
    each kind); empty when there are none."""
    def some(ids: list[str]) -> str:
        shown = ids if max_ids is None else ids[:max_ids]
        return ", ".join(shown) + (f", ... ({len(ids) - len(shown)} more)" if len(shown) < len(ids) else "")
    lines = []
    if report.missing:
        lines.append(f"{len(report.missing)} utterance(s) had no hypothesis and were scored as empty "
                     f"(all words deleted): {some(report.missing)}")
    if report.unknown:
        lines.append(f"{len(report.unknown)} hypothesis id(s) have no reference and were not scored: "
                     f"{some(report.unknown)}")
    if report.empty_refs:
        lines.append(f"{len(report.empty_refs)} utterance(s) have an empty reference (their WER is undefined; "
                     f"hypothesis words count as insertions): {some(report.empty_refs)}")
    return lines


def summary_text(report: Report) -> str:
    s = report.summary
    rows = [(spk, sp) for spk, sp in report.speakers.items()] + [("Sum/Avg", s)]
    lines = [report.title] if report.title else []
    lines += ["words:"] + sclite_table(rows)
    lines += ["characters:"] + sclite_table([("Sum/Avg", s)], unit="Chr")
    lines += [f"WER 95% CI (bootstrap over utterances): {format_rate(s.wer, report.wer_ci)}"]
    lines += [f"note: {line}" for line in problem_lines(report)]
    # Two last lines as before: recipes print them with `tail -n 2`.
    lines += s.table().splitlines()[-2:]
    return "\n".join(lines) + "\n"


def totals_rows(s: Summary) -> list[list[str]]:
    """Header and word/character rows of the sclite layout: counts with percentages."""
    def row(name: str, c: Counts) -> list[str]:
        cells = [(x, c.n_ref) for x in (c.correct, c.substitutions, c.deletions, c.insertions, c.errors)]
        cells.append((s.sentence_errors, s.n_sentences))
        return [name, str(s.n_sentences), str(c.n_ref)] + [f"{x} ({sclite_percent(x, n)}%)" for x, n in cells]
    return [["", "Snt", "Wrd / Chr", "Corr", "Sub", "Del", "Ins", "Err", "S.Err"],
            row("words", s.word_counts()), row("characters", s.char_counts())]


def speaker_rows(report: Report) -> list[list[str]]:
    """sclite's per-speaker percentages, with the error count."""
    rows = [["SPKR", "Snt", "Wrd", "Corr %", "Sub %", "Del %", "Ins %", "Err %", "S.Err %", "errors"]]
    for spk, s in [*report.speakers.items(), ("Sum/Avg", report.summary)]:
        c = s.word_counts()
        rows.append([spk, str(s.n_sentences), str(c.n_ref)]
                    + [sclite_percent(x, c.n_ref) for x in (c.correct, c.substitutions, c.deletions,
                                                           c.insertions, c.errors)]
                    + [sclite_percent(s.sentence_errors, s.n_sentences), str(c.errors)])
    return rows


def _md_table(rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(rows[0]), "|" + "---|" * len(rows[0])] + [line(r) for r in rows[1:]])


def summary_markdown(report: Report) -> str:
    s = report.summary
    out = [f"# {report.title or 'Evaluation report'}", ""]
    out += [f"{s.n_sentences} utterances, {len(report.speakers)} speakers, {s.n_words} reference words.", ""]
    out += [(f"**WER {format_rate(s.wer, report.wer_ci)}**, CER {format_rate(s.cer, report.cer_ci)}. "
            f"Intervals: bootstrap over utterances ({N_RESAMPLES} resamples, seed {SEED})."), ""]
    out += ["## Totals (sclite layout)", "", _md_table(totals_rows(s)), ""]
    problems = problem_lines(report)
    if problems:
        out += ["## Input problems", ""] + [f"- {p}" for p in problems] + [""]
    out += ["## Scoring", "", (f"- alignment: {ALIGNMENT}; the counts equal NIST sclite's on the same files "
            "(`sclite -r ref.trn trn -h hyp.trn trn -i spu_id -e utf-8`)"), "- normalization:"]
    out += [f"  - {rule}" for rule in report.normalizer.rules()]
    out += [f"- {key}: `{json.dumps(value, ensure_ascii=False)}`" for key, value in report.extra.items()]
    out += ["", "## Speakers", "", _md_table(speaker_rows(report)), ""]
    out += ["## Most frequent errors", ""]
    out += [_md_table([["substitution (REF → HYP)", "count"]]
                      + [[f"{r} → {h}", str(n)] for (r, h), n in report.substitutions.most_common(N_TOP)]), ""]
    out += [_md_table([["deleted word", "count"]] + [[w, str(n)] for w, n in report.deletions.most_common(N_TOP)]), ""]
    out += [_md_table([["inserted word", "count"]] + [[w, str(n)] for w, n in report.insertions.most_common(N_TOP)]), ""]
    out += [f"## Worst {N_WORST} utterances", "", "```"]
    for u in report.worst():
        out += [f"id: {u.id} ({u.speaker})", aligned_block(u)]
    out += ["```", "", "Every utterance aligned: `errs.txt` and `report.html`.", ""]
    out += ["## Plots", "", "![WER against utterance length](wer_vs_length.png)", "",
            "![Error types by speaker](error_types.png)", ""]
    return "\n".join(out)
