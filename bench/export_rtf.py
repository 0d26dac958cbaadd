"""Decoding speed of a model and of its exported packages, in one run: PyTorch, TorchScript,
ONNX Runtime, and both int8 packages; one file at a time and batched; WER beside each.

    python bench/export_rtf.py --model data/an4/exp/model_lm.pt --manifest data/an4/manifests/test.jsonl \
        [--method greedy|beam] [--threads 2] [--repeats 3]

Each package is exported (asr export) into a temporary folder first. "One file at a time" is
Recognizer.transcribe on each file (reading, features, network, decoding); "batched" is
Recognizer.decode_utterances over the manifest. Each figure is the best of --repeats runs;
the order of the systems rotates between repeats.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--method", default="greedy", choices=("greedy", "beam"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    import asr
    from asr.checkpoint import load_bundle
    from asr.evaluate import score_hypotheses
    from asr.manifest import read_manifest
    from asr.serving.export import temporary_package

    utts = read_manifest(a.manifest)
    audio = sum(u.duration for u in utts)
    bundle = load_bundle(a.model)
    systems = {"PyTorch float32": a.model}
    keep = []
    for engine in ("torchscript", "onnx"):
        for quantize in (None, "int8"):
            path, handle = temporary_package(bundle, engine, quantize)
            keep.append(handle)
            systems[f"{'TorchScript' if engine == 'torchscript' else 'ONNX Runtime'} {quantize or 'float32'}"] = path
    recognizers = {name: asr.load_model(path, device="cpu", method=a.method) for name, path in systems.items()}
    best: dict[str, dict] = {name: {} for name in systems}
    names = list(systems)
    for repeat in range(a.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            rec = recognizers[name]
            t0 = time.perf_counter()
            singles = {u.id: rec.transcribe(u.audio).text for u in utts}
            t1 = time.perf_counter()
            hyps, _ = rec.decode_utterances(utts)
            t2 = time.perf_counter()
            b = best[name]
            b["rtf_one_file"] = min(b.get("rtf_one_file", 1e9), (t1 - t0) / audio)
            b["rtf_batched"] = min(b.get("rtf_batched", 1e9), (t2 - t1) / audio)
            b["wer"] = score_hypotheses(utts, hyps).wer
            b["wer_one_file"] = score_hypotheses(utts, {k: type(hyps[k])(v, [], 0.0) for k, v in singles.items()}).wer
    base = best["PyTorch float32"]
    print(f"# {len(utts)} utterances, {audio:.0f} s of audio, {a.method} decoding, {a.threads} threads, "
          f"best of {a.repeats}")
    for name, b in best.items():
        print(json.dumps({"system": name, **{k: round(v, 5) for k, v in b.items()},
                          "speedup_one_file": round(base["rtf_one_file"] / b["rtf_one_file"], 2),
                          "speedup_batched": round(base["rtf_batched"] / b["rtf_batched"], 2)}))


if __name__ == "__main__":
    main()
