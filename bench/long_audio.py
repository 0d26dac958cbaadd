"""Long recordings: peak memory, real-time factor and WER of one long file against the same
utterances one file at a time; PocketSphinx on the same files, for speed.

    python bench/long_audio.py --model data/an4/exp/model_lm.pt --manifest data/an4/manifests/test.jsonl \
        --minutes 60 [--pocketsphinx] [--threads 2] [--set vad=energy ...]

Builds a recording of the manifest's utterances joined with their own pauses (tests/long_audio.py;
--gap adds near-silence between them), repeated to --minutes, then for greedy and for the bundle's beam search (if it has an LM),
with and without word timestamps, runs `Recognizer.transcribe` on it in a fresh process and
reports the peak resident memory of that process, its RTF (model loading excluded) and the
WER against the joined references; and the RTF and WER of the very same utterances transcribed
one file at a time (also in a fresh process). With --pocketsphinx, PocketSphinx 5 (its bundled
en-us model, the pip package) decodes the same files one at a time, in the same run.
One JSON line per measurement, then a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads({threads})
import asr
from asr.manifest import read_manifest
from asr.scoring import score
rec = asr.load_model({model!r}, device="cpu", method={method!r}, **{overrides!r})
args = {args!r}
if args["mode"] == "long":
    t0 = time.perf_counter()
    t = rec.transcribe(args["wav"], timestamps=args["timestamps"])
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # before scoring: one hour-long
    summary, _ = score([args["ref"]], [t.text])  # sentence aligns in gigabytes
    audio = t.duration
    extra = {{"segments": len(t.segments), "words_timed": len(t.words)}}
else:
    utts = read_manifest(args["manifest"])
    t0 = time.perf_counter()
    hyps = [rec.transcribe(u.audio, timestamps=args["timestamps"]).text for u in utts]
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    summary, _ = score([u.text for u in utts], hyps)
    audio = sum(u.duration for u in utts)
    extra = {{"files": len(utts)}}
print(json.dumps({{"wer": round(summary.wer, 2), "rtf": round(seconds / audio, 5), "audio_s": round(audio, 1),
                  "peak_rss_mb": round(peak / 1024), **extra}}))
"""


def child(model: str, method: str, threads: int, overrides: dict | None = None, **args) -> dict:
    code = CHILD.format(model=model, method=method, threads=threads, args=args, overrides=overrides or {})
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    if r.returncode:
        raise SystemExit(f"measurement failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def pocketsphinx_files(manifest: str) -> dict:
    """PocketSphinx (bundled en-us acoustic model, language model and dictionary) one file at a time."""
    from pocketsphinx import Decoder

    from asr.audio import load_audio
    from asr.manifest import read_manifest
    from asr.scoring import score

    decoder = Decoder(samprate=16000)
    utts = read_manifest(manifest)
    hyps, seconds = [], 0.0
    for u in utts:
        pcm = (load_audio(u.audio).numpy() * 32767).astype("<i2").tobytes()
        t0 = time.perf_counter()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        seconds += time.perf_counter() - t0
        hyp = decoder.hyp()
        hyps.append(hyp.hypstr.upper() if hyp else "")
    summary, _ = score([u.text for u in utts], hyps)
    audio = sum(u.duration for u in utts)
    return {"wer": round(summary.wer, 2), "rtf": round(seconds / audio, 5), "audio_s": round(audio, 1),
            "files": len(utts)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--gap", type=float, default=0.0, help="seconds of near-silence added between utterances")
    p.add_argument("--pocketsphinx", action="store_true")
    p.add_argument("--work", help="folder for the long recording (default: a temporary one)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a decode setting for asr.load_model, e.g. vad=energy (repeatable)")
    a = p.parse_args()
    overrides = dict(kv.split("=", 1) for kv in a.set)
    from asr.checkpoint import load_bundle
    from tests.long_audio import join_utterances

    work = Path(a.work or tempfile.mkdtemp(prefix="asr-long-"))
    work.mkdir(parents=True, exist_ok=True)
    wav = work / f"joined_{a.minutes:g}min.wav"
    ref, seconds, used = join_utterances(a.manifest, wav, a.minutes, gap=a.gap)
    from asr.manifest import write_manifest

    per_file = work / "joined_utterances.jsonl"  # the same utterances, one file at a time
    seen: dict[str, int] = {}  # a recording longer than the manifest repeats it: repeats get their own ids
    for i, u in enumerate(used):
        seen[u.id] = seen.get(u.id, -1) + 1
        if seen[u.id]:
            used[i] = dataclasses.replace(u, id=f"{u.id}-r{seen[u.id]}")
    write_manifest(used, per_file)
    print(f"# {wav}: {seconds / 60:.1f} min, {len(used)} utterances of {a.manifest} joined "
          f"(their own pauses{f' and {a.gap} s more' if a.gap else ''}); {a.threads} threads")
    methods = ["greedy"] + (["beam"] if load_bundle(a.model).lm_arpa else [])
    rows = []
    for method in methods:
        for timestamps in (False, True):
            for mode in ("files", "long"):
                r = child(a.model, method, a.threads, overrides, mode=mode, wav=str(wav), ref=ref, manifest=str(per_file),
                          timestamps=timestamps)
                r.update(system=f"asr {method}", timestamps=timestamps, input="one file at a time" if mode == "files"
                         else f"one {seconds / 60:.0f}-minute file")
                print(json.dumps(r), flush=True)
                rows.append(r)
    if a.pocketsphinx:
        r = pocketsphinx_files(a.manifest)
        r.update(system="PocketSphinx 5 en-us", timestamps=False, input="one file at a time")
        print(json.dumps(r), flush=True)
        rows.append(r)
    print("\n| system | timestamps | input | WER | RTF | peak RSS (MB) |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['system']} | {'yes' if r['timestamps'] else 'no'} | {r['input']} | {r['wer']:.2f} | "
              f"{r['rtf']:.4f} | {r.get('peak_rss_mb', '-')} |")


if __name__ == "__main__":
    main()
