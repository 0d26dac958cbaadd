"""Hostile and faulty input, tried as a user would: every case through the `asr` command line.

    python bench/hostile_inputs.py [--work DIR] [--fuzz N]

Each case runs `python -m asr.cli ...` in a fresh sandbox folder and checks what the issue
on hardening asks for: a non-zero exit status, one line on stderr without a traceback, no
file created or changed outside the sandbox's own output places, and whatever the case must
not lose (an earlier report, a victim file outside, a model that must keep training). Prints
a Markdown table, one row per class of input, and every failing case. `--fuzz N` also feeds
N random or mutated audio files to `asr transcribe` (as tests/test_properties.py does).
Exit status 1 if any case fails.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import lock_held_elsewhere, save_tiny_model  # noqa: E402
from tests.test_archive import add_dir, add_file, add_link, cve_2025_4517_archive  # noqa: E402


@dataclass
class Outcome:
    cls: str
    name: str
    problems: list[str] = field(default_factory=list)
    stderr: str = ""


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def run_asr(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "asr.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)


def check_error(r: subprocess.CompletedProcess, out: Outcome, must_fail: bool = True) -> None:
    out.stderr = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    if "Traceback" in r.stderr:
        out.problems.append("traceback")
    if must_fail:
        if r.returncode == 0:
            out.problems.append("exit status 0")
        lines = [line for line in r.stderr.strip().splitlines() if not line.startswith("warning:")]
        if len(lines) != 1:
            out.problems.append(f"{len(lines)} stderr lines")


class Probe:
    def __init__(self, work: Path):
        self.work = work
        self.outside = work / "outside"  # a folder no case may touch
        self.outside.mkdir(parents=True)
        (self.outside / "victim.txt").write_text("original")
        self.results: list[Outcome] = []
        self.model = save_tiny_model(work / "model.pt")
        self.tone = work / "tone.wav"
        sf.write(str(self.tone), 0.3 * np.sin(np.arange(16000) / 5.0), 16000)

    def case(self, cls: str, name: str, args: list[str], must_fail: bool = True, keep: dict | None = None,
             allowed: tuple[str, ...] = ()) -> Outcome:
        """Run one case in a new sandbox; `keep`: files whose bytes must not change;
        `allowed`: paths outside the sandbox it may write (none by default)."""
        sandbox = Path(tempfile.mkdtemp(dir=self.work, prefix="case-"))
        before = snapshot(self.outside)
        keep_bytes = {p: Path(p).read_bytes() for p in (keep or {})}
        out = Outcome(cls, name)
        try:
            r = run_asr([a.replace("{sandbox}", str(sandbox)) for a in args], cwd=sandbox)
            check_error(r, out, must_fail)
        except subprocess.TimeoutExpired:
            out.problems.append("hung (timeout)")
        if snapshot(self.outside) != before or (self.outside / "victim.txt").read_text() != "original":
            out.problems.append("wrote outside its folder")
        for p, data in keep_bytes.items():
            if not Path(p).exists() or Path(p).read_bytes() != data:
                out.problems.append(f"lost or changed {Path(p).name}")
        self.results.append(out)
        return out

    # -- classes of input ------------------------------------------------------------------

    def archives(self) -> None:
        victim = self.outside / "victim.txt"
        outside_rel = os.path.relpath(victim, self.work / "x")

        def archive(name: str, build) -> Path:
            path = self.work / "archives" / name
            path.parent.mkdir(exist_ok=True)
            with tarfile.open(path, "w:gz") as tar:
                add_dir(tar, "an4")
                build(tar)
            return path

        cases = {
            "CVE-2025-4517 symlink chain": cve_2025_4517_archive(self.work / "archives-cve.tar", victim),
            "'..' member": archive("dotdot.tgz", lambda t: add_file(t, "an4/../../outside/victim.txt", b"x")),
            "absolute member": archive("abs.tgz", lambda t: add_file(t, str(victim), b"x")),
            "symlink out, then write through it": archive("sym.tgz", lambda t: (
                add_link(t, "an4/out", "../" * 6 + str(self.outside).lstrip("/")),
                add_file(t, "an4/out/victim.txt", b"x"))),
            "symlink to /etc/passwd": archive("passwd.tgz", lambda t: add_link(t, "an4/etc", "/etc/passwd")),
            "hard link out, then overwrite it": archive("hard.tgz", lambda t: (
                add_link(t, "an4/h", outside_rel, tarfile.LNKTYPE), add_file(t, "an4/h", b"x"))),
            "hard link to a file outside": archive("hard2.tgz", lambda t: add_link(t, "an4/h", outside_rel,
                                                                                 tarfile.LNKTYPE)),
            "link cycle": archive("cycle.tgz", lambda t: (add_link(t, "an4/a", "b"), add_link(t, "an4/b", "a"))),
            "device member": archive("dev.tgz", lambda t: t.addfile(_special("an4/dev", tarfile.CHRTYPE))),
            "FIFO member": archive("fifo.tgz", lambda t: t.addfile(_special("an4/fifo", tarfile.FIFOTYPE))),
        }
        truncated = self.work / "archives" / "truncated.tgz"
        truncated.write_bytes(cases["'..' member"].read_bytes()[:40])
        cases["truncated archive"] = truncated
        notar = self.work / "archives" / "text.tgz"
        notar.write_text("not an archive\n")
        cases["not an archive"] = notar
        for name, path in cases.items():
            self.case("hostile or broken corpus archives (`asr prepare an4 --source`)", name,
                      ["prepare", "an4", "--source", str(path), "--out", "{sandbox}/an4"])

    def model_files(self) -> None:
        data = torch.load(self.model, weights_only=True)
        files = self.work / "models"
        files.mkdir()
        marker = self.outside / "pwned"

        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        def save(name, obj=None, raw=None):
            path = files / name
            if raw is not None:
                path.write_bytes(raw)
            else:
                torch.save(obj, path)
            return path

        def edited(**changes):
            d = {k: v for k, v in data.items() if k != "checksum"}
            d.update(changes)
            return d

        raw = self.model.read_bytes()
        w = data["model"]["subsample.proj.weight"].numpy().tobytes()
        at = raw.find(w[:64])
        cases = {
            "missing file": files / "none.pt",
            "empty file": save("empty.pt", raw=b""),
            "random bytes": save("random.pt", raw=os.urandom(5000)),
            "pickle payload (os.system)": save("pickle.pt", raw=pickle.dumps(Payload())),
            "torch file with a pickle payload": save("torchpickle.pt", {"format": "asr-bundle/2", "x": Payload()}),
            "truncated bundle": save("cut.pt", raw=raw[: len(raw) // 2]),
            "not a bundle": save("other.pt", {"weights": torch.zeros(3)}),
            "wrong tokenizer type": save("tok.pt", edited(tokenizer="char")),
            "statistics of another shape": save("stats.pt", edited(stats={"mean": torch.zeros(40), "std": torch.ones(40)})),
            "vocabulary mismatch": save("vocab.pt", edited(tokenizer={"unit": "char", "tokens": ["<blank>", "|", "A", "B", "C", "D"]})),
        }
        for k, offset in enumerate((0, 1000, 4000, 16000)):
            flipped = bytearray(raw)
            for i in range(at + offset, min(at + offset + 2000, len(flipped)), 3):
                flipped[i] ^= 0xFF
            cases[f"flipped bytes in the weights (+{offset})"] = save(f"flip{k}.pt", raw=bytes(flipped))
        for name, path in cases.items():
            out = self.case("corrupt or hostile model files (`asr transcribe --model`)", name,
                            ["transcribe", "--model", str(path), str(self.tone)])
            if marker.exists():
                out.problems.append("pickle payload ran")
                marker.unlink()

    def audio_files(self, n_fuzz: int) -> None:
        files = self.work / "audio"
        files.mkdir()
        rng = np.random.default_rng(0)

        def wav(name, data, rate=16000, subtype="PCM_16"):
            sf.write(str(files / name), data, rate, subtype=subtype)
            return files / name

        good = wav("good.wav", 0.1 * rng.standard_normal(8000))
        header = bytearray(good.read_bytes())
        header[40:44] = (2**31 - 1).to_bytes(4, "little")  # data chunk claims 2 GB
        (files / "huge_header.wav").write_bytes(bytes(header[:2000]))
        (files / "text.wav").write_text("hello\n")
        (files / "empty.wav").write_bytes(b"")
        (files / "truncated.wav").write_bytes(good.read_bytes()[:30])
        nan = 0.1 * rng.standard_normal(8000)
        nan[100] = np.nan
        wav("nan.wav", nan, subtype="FLOAT")
        wav("one_sample.wav", np.zeros(1))
        rate = bytearray(good.read_bytes())
        rate[24:28] = (7).to_bytes(4, "little")  # 7 Hz
        (files / "rate7.wav").write_bytes(bytes(rate))
        (self.work / "empty_folder").mkdir()
        fifo = files / "fifo.wav"
        os.mkfifo(fifo)
        cases = {"missing file": files / "none.wav", "empty file": files / "empty.wav", "text file": files / "text.wav",
                 "truncated header": files / "truncated.wav", "header claims 2 GB": files / "huge_header.wav",
                 "NaN samples": files / "nan.wav", "one sample": files / "one_sample.wav",
                 "7 Hz sample rate": files / "rate7.wav", "/dev/zero": Path("/dev/zero"),
                 "a folder without audio": self.work / "empty_folder",
                 "a FIFO": fifo}
        for name, path in cases.items():
            # a header that claims more samples than the file holds: the samples there are read
            must_fail = name != "header claims 2 GB"
            self.case("faulty audio files (`asr transcribe`)", name, ["transcribe", "--model", str(self.model), str(path)],
                      must_fail=must_fail)
        if n_fuzz:
            self.fuzz_audio(n_fuzz, good)

    def fuzz_audio(self, n: int, seed_file: Path) -> None:
        """n random or mutated files, transcribed in one call: each must print a transcript or
        its own one-line error, and the call must end (exit 1 if any failed)."""
        rng = random.Random(0)
        folder = self.work / "fuzz"
        folder.mkdir()
        base = seed_file.read_bytes()
        paths = []
        for i in range(n):
            if i % 2:
                data = bytearray(base)
                for _ in range(rng.randint(1, 12)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                data = bytes(data[: rng.randint(0, len(data))]) if rng.random() < 0.3 else bytes(data)
            else:
                data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 3000)))
            (folder / f"f{i}.wav").write_bytes(data)
            paths.append(str(folder / f"f{i}.wav"))
        out = Outcome("faulty audio files (`asr transcribe`)", f"{n} random or mutated files in one call")
        before = snapshot(self.outside)
        r = run_asr(["transcribe", "--model", str(self.model), "--json", *paths], cwd=self.work, timeout=1800)
        errors = [line for line in r.stderr.splitlines() if line.startswith("asr: error:")]
        done = [line for line in r.stdout.splitlines() if line.startswith("{")]
        if "Traceback" in r.stderr:
            out.problems.append("traceback")
        if len(errors) + len(done) != n:
            out.problems.append(f"{len(errors)} errors + {len(done)} transcripts != {n} files")
        if snapshot(self.outside) != before:
            out.problems.append("wrote outside its folder")
        out.stderr = f"{len(done)} transcribed, {len(errors)} one-line errors"
        self.results.append(out)
        self.fuzz_counts = (len(done), len(errors))

    def manifests(self) -> None:
        files = self.work / "manifests"
        files.mkdir()
        good = {"id": "u1", "audio": str(self.tone), "duration": 1.0, "text": "A", "speaker": "s"}

        def manifest(name, *lines, raw=None):
            path = files / name
            if raw is not None:
                path.write_bytes(raw)
            else:
                path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
            return path

        cases = {
            "missing manifest": files / "none.jsonl",
            "empty manifest": manifest("empty.jsonl", raw=b""),
            "not JSON": manifest("notjson.jsonl", good, "{not json"),
            "missing field": manifest("nofield.jsonl", {k: v for k, v in good.items() if k != "text"}),
            "wrong type": manifest("type.jsonl", {**good, "duration": "long"}),
            "negative duration": manifest("neg.jsonl", {**good, "duration": -1}),
            "duration 1e12": manifest("huge.jsonl", {**good, "duration": 1e12}),
            "id with a space": manifest("space.jsonl", {**good, "id": "u 1"}),
            "id with parentheses": manifest("paren.jsonl", {**good, "id": "u(1)"}),
            "duplicate id": manifest("dup.jsonl", good, good),
            "invalid UTF-8": manifest("utf8.jsonl", raw=b'{"id": "\xff"}\n'),
            "audio pointing nowhere": manifest("nowhere.jsonl", good, {**good, "id": "u2", "audio": "/nonexistent.wav"}),
            "corrupt audio on line 2": manifest("corrupt.jsonl", good, {**good, "id": "u2", "audio": str(files / "empty.jsonl")}),
        }
        for name, path in cases.items():
            self.case("faulty manifests (`asr evaluate`)", name,
                      ["evaluate", "--model", str(self.model), "--manifest", str(path), "--out", "{sandbox}/report"])

    def training(self) -> None:
        """Interrupted and damaged experiments: each case must resume, fall back or refuse."""
        data = self.work / "train"
        data.mkdir()
        rng = np.random.default_rng(1)
        recs = []
        for i in range(4):
            path = data / f"u{i}.wav"
            sf.write(str(path), 0.1 * rng.standard_normal(16000), 16000)
            recs.append({"id": f"u{i}", "audio": str(path), "duration": 1.0, "text": "A B", "speaker": f"s{i % 2}"})
        (data / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        tiny = ["--set", "model.hidden_size=16", "--set", "model.n_layers=1", "--set", "model.conv_channels=4",
                "--set", "train.epochs=2", "--set", "train.keep_checkpoints=3", "--no-progress"]
        base = ["train", "--train", str(data / "m.jsonl"), "--dev", str(data / "m.jsonl")]
        cls = "interrupted or damaged training runs (`asr train --resume`)"

        def fresh(name: str) -> Path:
            exp = data / name
            r = run_asr(base + ["--exp", str(exp)] + tiny, cwd=data)
            assert r.returncode == 0, r.stderr
            return exp

        exp = data / "nothing"
        self.case(cls, "--resume alone, empty folder", base + ["--exp", str(exp), "--resume"])
        for name, damage, expect in [
            ("killed before the first checkpoint", "no_ckpt", "again from epoch 1 with its config.yaml"),
            ("stale stats.pt of another n_mels", "stats", "computing the statistics again"),
            ("empty newest checkpoint", "empty", "falling back"),
            ("flipped bytes in the newest checkpoint", "flip", "falling back"),
            ("temporary file left by a crash", "tmp", "removed 1 temporary file"),
        ]:
            exp = fresh(name.replace(" ", "_"))
            ckpt = exp / "checkpoints" / "epoch-2.pt"
            if damage == "no_ckpt":
                for p in (exp / "checkpoints").iterdir():
                    p.unlink()
            elif damage == "stats":
                for p in (exp / "checkpoints").iterdir():
                    p.unlink()
                torch.save({"mean": torch.zeros(40), "std": torch.ones(40)}, exp / "stats.pt")
            elif damage == "empty":
                ckpt.write_bytes(b"")
            elif damage == "flip":
                raw = bytearray(ckpt.read_bytes())
                for i in range(len(raw) // 3, len(raw) // 3 + 3000, 3):
                    raw[i] ^= 0xFF
                ckpt.write_bytes(bytes(raw))
            else:
                (exp / "checkpoints" / ".epoch-3.pt.x1y2.tmp").write_bytes(b"half")
            out = self.case(cls, name, base + ["--exp", str(exp), "--resume", "--set", "train.epochs=3"],
                            must_fail=False)
            log = (exp / "train.log").read_text()
            if expect not in log:
                out.problems.append(f"train.log lacks {expect!r}")
            if not (exp / "checkpoints" / "epoch-3.pt").is_file():
                out.problems.append("did not finish")
            out.stderr = next((line for line in log.splitlines() if expect in line), "")
        exp = fresh("concurrent")
        with lock_held_elsewhere("experiment", exp):
            self.case(cls, "a second run into a folder being trained", base + ["--exp", str(exp), "--resume"],
                      keep={str(exp / "model.pt"): None, str(exp / "checkpoints" / "epoch-2.pt"): None})

    def reports(self) -> None:
        cls = "report folders written twice (`asr evaluate --out`)"
        man = self.work / "report.jsonl"
        man.write_text(json.dumps({"id": "u1", "audio": str(self.tone), "duration": 1.0, "text": "A", "speaker": "s"}) + "\n")
        out = self.work / "reports" / "r"
        r = run_asr(["evaluate", "--model", str(self.model), "--manifest", str(man), "--out", str(out)], cwd=self.work)
        assert r.returncode == 0, r.stderr
        keep = {str(p): None for p in out.iterdir()}
        with lock_held_elsewhere("report", out):
            self.case(cls, "a second evaluate while the first writes",
                      ["evaluate", "--model", str(self.model), "--manifest", str(man), "--out", str(out)], keep=keep)
        mine = self.work / "reports" / "mine"
        mine.mkdir()
        (mine / "notes.txt").write_text("my notes")
        self.case(cls, "--out is a folder of other files",
                  ["evaluate", "--model", str(self.model), "--manifest", str(man), "--out", str(mine)],
                  keep={str(mine / "notes.txt"): None})

    def table(self) -> str:
        rows = {}
        for o in self.results:
            rows.setdefault(o.cls, []).append(o)
        lines = ["| input | cases | handled as asked | tracebacks | written outside / lost |", "|---|---|---|---|---|"]
        for cls, outs in rows.items():
            n_ok = sum(not o.problems for o in outs)
            tb = sum("traceback" in o.problems for o in outs)
            bad = sum(any(p.startswith(("wrote outside", "lost", "pickle")) for p in o.problems) for o in outs)
            lines.append(f"| {cls} | {len(outs)} | {n_ok} | {tb} | {bad} |")
        return "\n".join(lines)


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", help="folder for the cases (default: a new temporary folder)")
    p.add_argument("--fuzz", type=int, default=200, help="random or mutated audio files (default 200)")
    p.add_argument("--verbose", action="store_true", help="print every case's last stderr line")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="asr-hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    probe = Probe(work)
    probe.archives()
    probe.model_files()
    probe.audio_files(args.fuzz)
    probe.manifests()
    probe.training()
    probe.reports()
    print(probe.table())
    for o in probe.results:
        if o.problems or args.verbose:
            print(f"{'FAIL' if o.problems else 'ok  '} {o.cls} / {o.name}: {'; '.join(o.problems) or '-'} | {o.stderr}")
    print(f"{len(probe.results)} cases in {time.time() - t0:.0f}s; work folder {work}")
    return 1 if any(o.problems for o in probe.results) else 0


if __name__ == "__main__":
    sys.exit(main())
