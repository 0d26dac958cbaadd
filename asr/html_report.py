"""report.html: the evaluation report as one self-contained page (inline CSS, plots embedded
as PNG data URIs, no scripts, nothing fetched from the network)."""

from __future__ import annotations

import base64
import json
import math
from html import escape

from asr.report import (
    N_RESAMPLES,
    N_TOP,
    SEED,
    Report,
    format_rate,
    problem_lines,
    speaker_rows,
    totals_rows,
)
from asr.scoring import ALIGNMENT, UttScore

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 75em; color: #222; padding: 0 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #ccc; padding: .2em .5em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
.headline { font-size: 1.15em; } .problems { background: #fff3cd; border: 1px solid #e0c36a; padding: .5em 1em; }
.flex { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
table.ali td, table.ali th { border: none; padding: 0 .35em 0 0; text-align: left; font-family: monospace; }
table.ali { margin: .1em 0 .8em 0; }
.utt-head { font-family: monospace; font-size: .9em; color: #555; }
.S { background: #ffd8a8; } .D { background: #ffc9c9; } .I { background: #c5dcff; }
.gap { color: #999; } .muted { color: #666; font-size: .9em; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


def render_html(report: Report, figures: dict[str, bytes]) -> str:
    s = report.summary
    title = report.title or "Evaluation report"
    parts = [(f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
             f"<style>{CSS}</style></head><body>"), f"<h1>{escape(title)}</h1>"]
    parts.append(f"<p class='headline'><b>WER {escape(format_rate(s.wer, report.wer_ci))}</b> &nbsp; "
                 f"CER {escape(format_rate(s.cer, report.cer_ci))}</p>")
    parts.append(f"<p class='muted'>{s.n_sentences} utterances, {len(report.speakers)} speakers, "
                 f"{s.n_words} reference words. 95% confidence intervals: bootstrap over utterances "
                 f"({N_RESAMPLES} resamples, seed {SEED}).</p>")
    problems = problem_lines(report)
    if problems:
        parts.append("<div class='problems'><b>Input problems</b><ul>"
                     + "".join(f"<li>{escape(p)}</li>" for p in problems) + "</ul></div>")
    parts += ["<h2>Totals (sclite layout)</h2>", _table(totals_rows(s))]
    parts.append("<h2>Plots</h2><div class='flex'>" + "".join(
        f"<img alt='{escape(name)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        for name, png in figures.items()) + "</div>")
    parts += ["<h2>Speakers</h2>", _table(speaker_rows(report))]
    parts.append(f"<h2>Most frequent errors (top {N_TOP})</h2><div class='flex'>")
    parts.append(_table([["substitution (REF → HYP)", "count"]]
                        + [[f"{r} → {h}", str(n)] for (r, h), n in report.substitutions.most_common(N_TOP)]))
    parts.append(_table([["deleted", "count"]] + [[w, str(n)] for w, n in report.deletions.most_common(N_TOP)]))
    parts.append(_table([["inserted", "count"]] + [[w, str(n)] for w, n in report.insertions.most_common(N_TOP)]))
    parts.append("</div>")
    worst = report.worst()
    parts.append(f"<h2>Worst {len(worst)} utterances</h2>")
    parts += [_aligned(u, link=True) for u in worst] or ["<p>No utterance has an error.</p>"]
    parts.append("<h2>Scoring</h2><ul>")
    parts.append(f"<li>alignment: {escape(ALIGNMENT)}; the counts equal NIST sclite's on the same files "
                 "(<code>sclite -r ref.trn trn -h hyp.trn trn -i spu_id -e utf-8</code>)</li>")
    parts += [f"<li>normalization: {escape(rule)}</li>" for rule in report.normalizer.rules()]
    parts += [f"<li>{escape(k)}: <code>{escape(json.dumps(v, ensure_ascii=False))}</code></li>"
              for k, v in report.extra.items()]
    parts.append("</ul>")
    parts.append("<h2>Every utterance</h2><p class='muted'>Errors marked: "
                 "<span class='S'>substitution</span> <span class='D'>deletion</span> "
                 "<span class='I'>insertion</span>; *** marks the missing side.</p>")
    parts += [_aligned(u) for u in report.utts]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def _aligned(u: UttScore, link: bool = False) -> str:
    """One utterance's REF/HYP table; `link`: its id links to its entry under 'Every utterance'
    (which carries the anchor)."""
    w = u.words
    wer = "WER undefined" if math.isnan(u.wer) else f"WER {u.wer:.1f}%"
    note = " — no hypothesis (scored as empty)" if u.missing else ""
    anchor = f"u-{escape(u.id, quote=True)}"
    name = f"<a href='#{anchor}'>{escape(u.id)}</a>" if link else escape(u.id)
    id_attr = "" if link else f" id='{anchor}'"
    head = (f"<div class='utt-head'{id_attr}>"
            f"{name} · {escape(u.speaker)} · C {w.correct} S {w.substitutions} D {w.deletions} "
            f"I {w.insertions} · {wer}{note}</div>")
    ref, hyp = ["<th>REF</th>"], ["<th>HYP</th>"]
    for op, r, h in u.pairs():
        cls = f" class='{op}'" if op != "C" else ""
        ref.append(f"<td{cls}>{escape(r)}</td>" if r is not None else f"<td{cls}><span class='gap'>***</span></td>")
        hyp.append(f"<td{cls}>{escape(h)}</td>" if h is not None else f"<td{cls}><span class='gap'>***</span></td>")
    return f"{head}<table class='ali'><tr>{''.join(ref)}</tr><tr>{''.join(hyp)}</tr></table>"
