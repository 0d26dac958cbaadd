"""Dev figures of multi-seed experiments, side by side (recipes/an4/seeds.sh writes the runs).

An experiment is a folder of runs, one per seed (`s<SEED>/`), each holding the reports that
seeds.sh writes: `decode_dev_greedy/summary.json` and `conditions_dev/conditions.json` (beam + LM,
clean and under each recording condition). The table gives, per figure and experiment, the
median and mean over the seeds and each seed's value, so that a choice between experiments
rests on every seed, not on one:

    python -m asr.experiments data/an4/seeds/base data/an4/seeds/tm4 [--out table.md]

A run whose reports are missing (still training, or failed) is left out and named under the
table. Only dev is read: test is decoded once per final system, not while choosing.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from asr.atomic import write_text_atomic
from asr.errors import AsrError

RUN_NAME = re.compile(r"^s(\d+)$")


@dataclass
class Experiment:
    name: str
    figures: dict[int, dict[str, float]] = field(default_factory=dict)  # seed -> figure -> WER %
    incomplete: list[str] = field(default_factory=list)  # runs without their reports


def run_figures(run: Path) -> dict[str, float]:
    """One run's dev WERs: greedy, beam + LM clean and per condition, and the conditions' mean.
    Raises FileNotFoundError when a report is missing, AsrError when one does not parse."""
    figures: dict[str, float] = {}
    try:
        greedy = json.loads((run / "decode_dev_greedy" / "summary.json").read_text())
        figures["greedy, clean"] = float(greedy["wer"])
        rows = json.loads((run / "conditions_dev" / "conditions.json").read_text())["conditions"]
        degraded = []
        for row in rows:
            figures[f"beam + LM, {row['condition']}"] = float(row["wer"])
            if row["condition"] != "clean":
                degraded.append(float(row["wer"]))
    except (KeyError, TypeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise AsrError(f"{run}: unreadable report ({type(e).__name__}: {e})") from None
    if degraded:
        figures["beam + LM, mean of the conditions"] = sum(degraded) / len(degraded)
    return figures


def read_experiment(folder: str | Path) -> Experiment:
    folder = Path(folder)
    if not folder.is_dir():
        raise AsrError(f"{folder}: no such experiment folder")
    exp = Experiment(folder.name)
    for run in sorted(folder.iterdir()):
        m = RUN_NAME.match(run.name)
        if not (m and run.is_dir()):
            continue
        try:
            exp.figures[int(m.group(1))] = run_figures(run)
        except FileNotFoundError:
            exp.incomplete.append(run.name)
    return exp


def _cell(values: dict[int, float]) -> str:
    if not values:
        return "-"
    seeds = sorted(values)
    each = " / ".join(f"{values[s]:.2f}" for s in seeds)
    return f"{statistics.median(values.values()):.2f}, {statistics.fmean(values.values()):.2f} ({each})"


def table(experiments: list[Experiment]) -> str:
    """Markdown: a row per figure, a column per experiment: "median, mean (seed / seed / ...)"."""
    names: list[str] = []
    for exp in experiments:
        for figures in exp.figures.values():
            names += [n for n in figures if n not in names]
    lines = ["| dev WER % | " + " | ".join(
        f"{e.name}: median, mean (seeds {' / '.join(map(str, sorted(e.figures))) or 'none'})" for e in experiments)
        + " |", "|---|" + "---|" * len(experiments)]
    for name in names:
        cells = [_cell({s: f[name] for s, f in e.figures.items() if name in f}) for e in experiments]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for exp in experiments:
        if exp.incomplete:
            lines.append(f"\n{exp.name}: no reports yet for {', '.join(exp.incomplete)} (left out)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m asr.experiments", description=__doc__.splitlines()[0])
    p.add_argument("experiments", nargs="+", help="experiment folders (each holding s<SEED>/ runs)")
    p.add_argument("--out", help="also write the table to this file")
    a = p.parse_args(argv)
    try:
        text = table([read_experiment(f) for f in a.experiments])
        if a.out:
            write_text_atomic(Path(a.out), text)
    except AsrError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
