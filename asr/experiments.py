"""Dev figures of multi-seed experiments, side by side (recipes/an4/seeds.sh writes the runs).

An experiment is a folder of runs, one per seed (`s<SEED>/`), each holding the reports that
seeds.sh writes: `decode_dev_greedy/summary.json` and `conditions_dev/conditions.json` (beam + LM,
clean and under each recording condition), and `.done` once they are all there. The table gives,
per figure and experiment, the median and mean over the seeds and each seed's value; for each
experiment after the first, its difference from the first on the seeds both have (paired), so
that a choice rests on every seed, not on one:

    asr experiments data/an4/seeds/base data/an4/seeds/tm4 [--out table.md]

A run without `.done` (training, or failed) is left out and named under the table. Dev is read
unless `split="test"` (`--split test`): the final system's report, from the `decode_test_greedy`
and `conditions_test` reports that `seeds.sh --test` writes once per seed (`.done_test`). Test is
decoded once per final system, not while choosing.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from asr.errors import AsrError

RUN_NAME = re.compile(r"^s(\d+)$")


@dataclass
class Experiment:
    name: str
    figures: dict[int, dict[str, float]] = field(default_factory=dict)  # seed -> figure -> WER %
    incomplete: list[str] = field(default_factory=list)  # runs not finished on the split (no DONE mark)


SPLITS = ("dev", "test")
DONE = {"dev": ".done", "test": ".done_test"}  # a run's mark that all of its reports on the split are there


def run_figures(run: Path, split: str = "dev") -> dict[str, float]:
    """One finished run's WERs on `split`: greedy, beam + LM clean and per condition, and the mean
    over the conditions. AsrError when a report is missing or does not parse."""
    figures: dict[str, float] = {}
    try:
        greedy = json.loads((run / f"decode_{split}_greedy" / "summary.json").read_text())
        figures["greedy, clean"] = float(greedy["wer"])
        rows = json.loads((run / f"conditions_{split}" / "conditions.json").read_text())["conditions"]
        for row in rows:
            figures[f"beam + LM, {row['condition']}"] = float(row["wer"])
        degraded = {row["condition"]: float(row["wer"]) for row in rows if row["condition"] != "clean"}
    except FileNotFoundError as e:
        raise AsrError(f"{run}: finished, but {e.filename} is missing") from None
    except (OSError, KeyError, TypeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise AsrError(f"{run}: unreadable report ({type(e).__name__}: {e})") from None
    if degraded:  # named by its conditions: runs decoded under other sets get another row
        figures[f"beam + LM, mean of {' '.join(degraded)}"] = statistics.fmean(degraded.values())
    return figures


def read_experiment(folder: str | Path, split: str = "dev") -> Experiment:
    """The runs of one experiment folder on `split`; a run not finished there is named, not read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AsrError(f"{folder}: no such experiment folder")
    exp = Experiment(folder.name)
    for run in sorted(folder.iterdir()):
        m = RUN_NAME.match(run.name)
        if not (m and run.is_dir()):
            continue
        if (run / DONE[split]).is_file():
            exp.figures[int(m.group(1))] = run_figures(run, split)
        else:
            exp.incomplete.append(run.name)
    return exp


def _cell(values: dict[int, float]) -> str:
    if not values:
        return "-"
    each = " / ".join(f"{seed}: {values[seed]:.2f}" for seed in sorted(values))
    return f"{statistics.median(values.values()):.2f}, {statistics.fmean(values.values()):.2f} ({each})"


def _paired(base: dict[int, float], other: dict[int, float]) -> str:
    seeds = sorted(set(base) & set(other))
    if not seeds:
        return "-"
    diffs = [other[s] - base[s] for s in seeds]
    lower = sum(d < 0 for d in diffs)
    medians = [statistics.median(values[s] for s in seeds) for values in (base, other)]
    return (f"{statistics.median(diffs):+.2f} ({lower} of {len(seeds)} lower; "
            f"medians on these seeds {medians[0]:.2f} -> {medians[1]:.2f})")


def table(experiments: list[Experiment], split: str = "dev") -> str:
    """Markdown: a row per figure; per experiment a column "median, mean (seed: value / ...)", and
    for each one after the first, the median of its per-seed differences from the first on the
    seeds both have, with how many of them it is lower on and both medians over those seeds (the
    first's own column may hold more seeds)."""
    names: list[str] = []
    for exp in experiments:
        for figures in exp.figures.values():
            names += [n for n in figures if n not in names]
    first = experiments[0]
    header = [f"{e.name}: median, mean (seed: value)" for e in experiments]
    header += [f"{e.name} - {first.name}, paired: median" for e in experiments[1:]]
    lines = [f"| {split} WER % | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    for name in names:
        values = [{s: f[name] for s, f in e.figures.items() if name in f} for e in experiments]
        cells = [_cell(v) for v in values] + [_paired(values[0], v) for v in values[1:]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for exp in experiments:
        if exp.incomplete:
            what = "not finished" if split == "dev" else "not decoded on test"
            lines.append(f"\n{exp.name}: {what}, left out: {', '.join(exp.incomplete)}")
    return "\n".join(lines) + "\n"
