"""Run NIST's sclite and sc_stats (Debian package sctk, installed by .ci/run) and read
their numbers, to check that ours equal them."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from asr.scoring import Counts

SCTK_BIN = Path("/usr/lib/sctk/bin")  # where Debian's sctk puts them (not on PATH)


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    path = SCTK_BIN / name
    return str(path) if os.access(path, os.X_OK) else None


def require_tool(name: str) -> str:
    """The tool's path; skips the test without it (fails under CI, which installs it)."""
    path = find_tool(name)
    if path is None:
        message = f"{name} (NIST SCTK) is not installed: apt-get install sctk (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(cmd: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, check=False)
    assert result.returncode == 0, f"{cmd[0]} failed: {result.stderr[-2000:]}"
    return result.stdout


def sclite_alignments(ref_trn: Path, hyp_trn: Path, chars: bool = False) -> dict[str, Counts]:
    """Per-utterance (#C #S #D #I) from `sclite -o pralign`, keyed by the id after 'speaker-'."""
    cmd = [require_tool("sclite"), "-r", str(ref_trn), "trn", "-h", str(hyp_trn), "trn", "-i", "spu_id",
           "-e", "utf-8", "-o", "pralign", "stdout"]
    if chars:
        cmd.insert(-3, "-c")
    out = run(cmd)
    found = re.findall(r"^id: \((\S+?)-(\S+)\)\nScores: \(#C #S #D #I\) (\d+) (\d+) (\d+) (\d+)$", out, re.MULTILINE)
    return {uid: Counts(*map(int, nums)) for _, uid, *nums in found}


def sclite_speaker_totals(ref_trn: Path, hyp_trn: Path) -> dict[str, tuple[int, ...]]:
    """Rows of `sclite -o rsum`: speaker (and 'Sum') -> (#Snt, #Wrd, Corr, Sub, Del, Ins, Err, S.Err)."""
    out = run([require_tool("sclite"), "-r", str(ref_trn), "trn", "-h", str(hyp_trn), "trn", "-i", "spu_id",
               "-e", "utf-8", "-o", "rsum", "stdout"])
    rows = re.findall(r"^\s*\|\s*(\S+)\s*\|\s*(\d+)\s+(\d+)\s*\|\s*" + r"(\d+)\s+" * 5 + r"(\d+)\s*\|", out, re.MULTILINE)
    return {name: tuple(map(int, nums)) for name, *nums in rows}


def sc_stats_mapsswe(ref_trn: Path, hyp_a: Path, hyp_b: Path, work: Path) -> dict:
    """sc_stats' matched-pairs test of hyp_a against hyp_b (both aligned by sclite)."""
    work.mkdir(parents=True, exist_ok=True)
    for f in work.glob("*"):
        f.unlink()
    a, b = work / "sys_a.trn", work / "sys_b.trn"
    shutil.copy(hyp_a, a)
    shutil.copy(hyp_b, b)
    run([require_tool("sclite"), "-r", str(ref_trn), "trn", "-h", str(a), "trn", "A", "-h", str(b), "trn", "B",
         "-i", "spu_id", "-e", "utf-8", "-o", "sgml", "-O", str(work), "-f", "0"])
    sgml = "".join((work / f"{p.name}.sgml").read_text(encoding="utf-8") for p in (a, b))
    result = subprocess.run([require_tool("sc_stats"), "-p", "-t", "mapsswe", "-v", "-n", "mp", "-O", str(work)],
                            input=sgml, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    report = (work / "mp.stats.mapsswe").read_text(encoding="latin-1")  # holds stray bytes
    totals = re.search(r"^Totals\s+(\d+)\s+(\d+)\s+(\d+)", report, re.MULTILINE)
    m = re.search(r"\(# segs: (\d+)\).*\(mean: (\S+)\) \(std dev: (\S+)\) \(Z Stat: (\S+)\)", report)
    return {"n_ref": int(totals[1]), "errors_a": int(totals[2]), "errors_b": int(totals[3]),
            "n_segments": int(m[1]), "mean": float(m[2]), "std": float(m[3]), "z": float(m[4])}


def assert_report_agrees_with_sclite(folder: Path) -> int:
    """sclite on the report's ref.trn and hyp.trn gives the counts of its utts.jsonl, per
    utterance, per speaker and in total; returns the number of utterances compared."""
    utts = [json.loads(line) for line in (folder / "utts.jsonl").read_text(encoding="utf-8").splitlines()]
    theirs = sclite_alignments(folder / "ref.trn", folder / "hyp.trn")
    assert len(theirs) == len(utts)
    for u in utts:
        assert Counts(u["correct"], u["substitutions"], u["deletions"], u["insertions"]) == theirs[u["id"]], u
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    rows = sclite_speaker_totals(folder / "ref.trn", folder / "hyp.trn")
    for name, s in [*summary["speakers"].items(), ("Sum", summary)]:
        assert rows[name] == (s["n_sentences"], s["n_words"], s["correct"], s["substitutions"], s["deletions"],
                              s["insertions"], s["errors"], s["sentence_errors"]), name
    return len(utts)
