"""Decoding real-time factor (decode time / audio duration) of a model bundle on a manifest.

    python bench/decode_rtf.py --model data/an4/exp/model_lm.pt --manifest data/an4/manifests/test.jsonl

Measures greedy and the bundle's beam search (if it has an LM), each two ways: the whole
manifest as batches (features, model and search), and one file at a time as
`asr transcribe` does (reading audio included; a model with per-speaker mean normalization
then uses each file's own mean). Prints WER alongside, as a sanity check.
"""

import argparse
import dataclasses
import time

import torch

from asr.checkpoint import load_bundle
from asr.decoding import RescoringDecoder
from asr.data import SpeechDataset
from asr.evaluate import bundle_decoder, bundle_delays, compute_emissions, decode_emissions, score_hypotheses
from asr.manifest import read_manifest
from asr.recognizer import Recognizer


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--beam-size", type=int, help="override the bundle's beam size")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    bundle = load_bundle(a.model)
    utts = read_manifest(a.manifest)
    audio = sum(u.duration for u in utts)
    device = torch.device("cpu")
    beam_cfg = bundle.config.decode
    if a.beam_size:
        beam_cfg = dataclasses.replace(beam_cfg, beam_size=a.beam_size)
    methods = [("greedy", dataclasses.replace(beam_cfg, method="greedy"))]
    if bundle.lm_arpa:
        methods.append((f"beam {beam_cfg.beam_size} + LM", dataclasses.replace(beam_cfg, method="beam")))
    print(f"{len(utts)} utterances, {audio:.1f}s of audio, {a.threads} threads")
    for name, cfg in methods:
        decoder = bundle_decoder(bundle, cfg=cfg)
        if isinstance(decoder, RescoringDecoder):
            name += " + rescoring"
        t0 = time.perf_counter()
        # Built inside the timing: with features.mean_norm "speaker" it first reads every
        # utterance once for the speaker means.
        dataset = SpeechDataset(utts, bundle.tokenizer, bundle.config.features, bundle.stats)
        emissions, _ = compute_emissions(bundle.model, dataset, device, delays=bundle_delays(bundle))
        hyps = decode_emissions(decoder, emissions)
        batch_s = time.perf_counter() - t0
        wer = score_hypotheses(utts, hyps).wer
        recognizer = Recognizer(bundle, device)
        recognizer.decoder = decoder
        t0 = time.perf_counter()
        for u in utts:
            recognizer.transcribe(u.audio)
        single_s = time.perf_counter() - t0
        print(f"{name:>28}: WER {wer:5.2f}%  RTF batched {batch_s / audio:.4f} ({batch_s:.2f}s)  "
              f"RTF one file at a time {single_s / audio:.4f} ({single_s:.2f}s)")


if __name__ == "__main__":
    main()
