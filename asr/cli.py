"""The `asr` command: prepare, train, evaluate, degrade, score, compare, tune, transcribe, lm build/mix/spell/census-names.

Errors caused by input (missing or corrupt files, bad manifest lines, bad options) are
printed as one line naming the file, with a non-zero exit status and no traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from asr import __version__
from asr.conditions import CONDITIONS
from asr.config import apply_overrides
from asr.corpora import CORPORA, corpus_module
from asr.errors import AsrError
from asr.experiments import SPLITS


def cmd_prepare(args: argparse.Namespace) -> int:
    from asr.corpora import corpus_module

    out = Path(args.out)
    t0 = time.time()
    root, report = corpus_module(args.corpus).run_prepare(args)
    for line in report.lines():
        print(line)
    if report.kept:
        print(f"{args.corpus} from {root} prepared in {out / 'manifests'} ({time.time() - t0:.1f}s)")
    else:  # nothing written to manifests (e.g. `asr prepare librispeech --lm-text`)
        print(f"{args.corpus}: {root} ({time.time() - t0:.1f}s)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from asr.config import load_config
    from asr.manifest import read_manifest
    from asr.train import train

    # --resume without --config continues with the run's own config (its config.yaml), with
    # any --set overrides on top (e.g. more epochs); train() checks what may change.
    saved = Path(args.exp) / "config.yaml"
    if args.resume and not args.config:
        cfg = load_config(saved, args.set) if args.set and saved.is_file() else None
        if args.set and cfg is None:
            cfg = load_config(None, args.set)
    else:
        cfg = load_config(args.config, args.set)
    train_utts = read_manifest(args.train)
    dev_utts = read_manifest(args.dev)
    path = train(cfg, train_utts, dev_utts, args.exp, resume=args.resume, device=args.device,
                 progress=not args.no_progress)
    print(f"best model: {path}")
    if saved.is_file() and load_config(saved).train.average_last > 0:  # rank 0's file; other nodes may lack it
        print(f"averaged model: {path.parent / 'model_avg.pt'}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun, leave without the interpreter's teardown: gloo's threads can abort it
        # (SIGABRT, "terminate called without an active exception", seen in about 1 run in 40
        # of tests/test_distributed.py), which torchrun reports as a failed job although every
        # file is written. Everything is flushed to disk by now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def cmd_device(args: argparse.Namespace) -> int:
    from asr.config import load_config
    from asr.device import autocast_dtype, pick_device

    cfg = load_config(args.config, args.set)
    device = pick_device(args.device)
    print(f"{device.type} {'bf16' if autocast_dtype(cfg.train.precision, device) else 'float32'}")
    return 0


def cmd_average(args: argparse.Namespace) -> int:
    from asr.average import average_last_epochs
    from asr.checkpoint import save_bundle_object

    bundle, epochs = average_last_epochs(args.exp, args.last)
    save_bundle_object(bundle, args.out)
    print(f"{args.out}: mean of the weights of epochs {epochs[0]}-{epochs[-1]} of {args.exp}")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from asr.checkpoint import save_bundle_object
    from asr.ensemble import ensemble_bundle

    bundle = ensemble_bundle(args.models, args.combine)
    save_bundle_object(bundle, args.out)
    print(f"{args.out}: ensemble of {len(args.models)} models ({args.combine} combination, "
          f"{bundle.info['parameters']:,} parameters); tune it with asr tune --model {args.out} ...")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from asr.checkpoint import load_bundle
    from asr.serving.export import export_bundle

    bundle = load_bundle(args.model)
    t0 = time.time()
    out = export_bundle(bundle, args.out, args.format, args.quantize)
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"{out}: {args.format}{' int8' if args.quantize else ''} package of {args.model} ({size:.1f} MB, "
          f"{time.time() - t0:.1f}s); use it as any model: asr transcribe --model {out} FILE.wav")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from asr.serving.server import serve
    from asr.transcribe import default_model_path

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise AsrError("asr serve needs FastAPI and uvicorn: pip install 'asr[serve]'") from None
    model = args.model or str(default_model_path())
    from asr.checkpoint import load_bundle

    load_bundle(model)  # a one-line error now rather than a traceback in the server
    print(f"serving {model} on http://{args.host}:{args.port}/ ({args.workers} worker(s)); Ctrl-C stops",
          file=sys.stderr)
    serve(model, args.host, args.port, args.workers, args.max_upload_mb, args.max_seconds, args.batch)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from asr.evaluate import write_conditions

    sets = [("clean", args.manifest)] + [parse_condition(c) for c in args.condition]
    if len({name for name, _ in sets}) < len(sets):
        raise AsrError("--condition: each condition needs a name of its own (and none called 'clean')")
    recognizer = recognizer_from_args(args)
    if not args.condition:
        evaluate_one(args, recognizer, args.manifest, Path(args.out))
        return 0
    rows = []
    for name, manifest in sets:
        print(f"== {name}: {manifest}")
        summary, n_utts = evaluate_one(args, recognizer, manifest, Path(args.out) / name)
        rows.append({"condition": name, "manifest": str(manifest), "utterances": n_utts, "wer": summary.wer,
                     "cer": summary.cer, "errors": summary.errors, "words": summary.n_words})
    print(write_conditions(args.out, rows, title=f"{args.model} under recording conditions"), end="")
    return 0


def evaluate_one(args: argparse.Namespace, recognizer, manifest: str, out: Path):
    """Decode one manifest into the report folder `out`; prints its table. Returns the
    summary and the number of utterances."""
    from asr.evaluate import oov_line, write_evaluation
    from asr.manifest import read_manifest
    from asr.report import check_report_folder, report_lock

    utts = read_manifest(manifest)
    with report_lock(out):  # a second run into --out stops now, not after its decode
        check_report_folder(out)
        t0 = time.time()
        hyps, info = recognizer.decode_utterances(utts)
        t1 = time.time()
        summary = write_evaluation(out, utts, hyps, info, title=f"{manifest} decoded with {args.model}")
        t2 = time.time()
    audio = sum(u.duration for u in utts)
    print(summary.table(f"{manifest} ({len(utts)} utterances, {audio:.0f}s of audio)"), end="")
    if "oov" in info:
        print(oov_line(info["oov"]))
    print(f"decoding took {t1 - t0:.1f}s (real-time factor {(t1 - t0) / audio:.4f}), the report {t2 - t1:.1f}s; "
          f"report in {out} (report.html, summary.md)")
    return summary, len(utts)


def parse_condition(text: str) -> tuple[str, str]:
    name, sep, manifest = text.partition("=")
    if not sep or not name or not manifest or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise AsrError(f"--condition {text}: expected NAME=MANIFEST, e.g. white10=data/an4/conditions/test.white10.jsonl")
    return name, manifest


def usable_cores() -> int:
    """The cores this process may run on (its affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cmd_degrade(args: argparse.Namespace) -> int:
    from asr.conditions import write_condition_set
    from asr.manifest import read_manifest

    if args.jobs is not None and args.jobs < 1:
        raise AsrError(f"--jobs must be at least 1 (got {args.jobs})")
    utts = read_manifest(args.manifest)
    t0 = time.time()
    n, skipped = write_condition_set(utts, args.condition, args.out, args.audio_dir, seed=args.seed,
                                     jobs=args.jobs or usable_cores())
    for reason in skipped[:10]:
        print(f"skipped: {reason}")
    print(f"{args.out}: {n} utterances of {args.manifest} under {args.condition}"
          f"{f', {len(skipped)} skipped' if skipped else ''} ({time.time() - t0:.1f}s)")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from asr.manifest import read_manifest
    from asr.report import problem_lines, write_report
    from asr.trn import read_trn

    t0 = time.time()
    if args.ref.endswith((".jsonl", ".json")):
        refs = [(u.id, u.speaker, u.text) for u in read_manifest(args.ref)]
    else:
        refs = [(e.id, e.speaker, e.text) for e in read_trn(args.ref)]
    hyps = {e.id: e.text for e in read_trn(args.hyp)}
    ref_ids = {uid for uid, _, _ in refs}
    report = write_report(
        args.out, ids=[uid for uid, _, _ in refs], speakers=[spk for _, spk, _ in refs],
        refs=[text for _, _, text in refs], hyps=[hyps.get(uid) for uid, _, _ in refs],
        title=args.title or f"{args.hyp} scored against {args.ref}",
        extra={"ref_file": args.ref, "hyp_file": args.hyp}, unknown=[i for i in hyps if i not in ref_ids])
    print(report.summary.table(f"{args.hyp} against {args.ref} ({len(refs)} utterances)"), end="")
    for line in problem_lines(report, max_ids=10):
        print(f"note: {line}")
    print(f"report in {args.out} (report.html, summary.md), written in {time.time() - t0:.2f}s")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from asr.atomic import write_text_atomic
    from asr.compare import compare_reports, format_comparison

    if args.resamples < 1:
        raise AsrError(f"--resamples {args.resamples}: must be at least 1")
    comparison = compare_reports(args.report_a, args.report_b, n_resamples=args.resamples, seed=args.seed)
    text = format_comparison(comparison)
    sys.stdout.write(text)
    if args.out:
        write_text_atomic(args.out, text)
    return 0


def cmd_experiments(args: argparse.Namespace) -> int:
    from asr.atomic import write_text_atomic
    from asr.experiments import read_experiment, table

    text = table([read_experiment(folder, args.split) for folder in args.experiments], args.split)
    if args.out:
        write_text_atomic(args.out, text)
    sys.stdout.write(text)
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from asr import batch
    from asr.atomic import write_text_atomic
    from asr.transcribe import format_transcript

    if args.stream:
        return stream_to_stdout(args)
    if not args.files:
        raise AsrError("give audio files, folders, patterns or manifests to transcribe (or --stream -)")
    summary = batch.BatchSummary()
    items = batch.collect(args.files, summary)
    if not items:
        raise AsrError(f"no audio files in {' '.join(args.files)}")
    if args.resume and not args.jsonl:
        raise AsrError("--resume continues a --jsonl job: give its --jsonl file")
    if args.format in ("srt", "vtt") and len(items) > 1 and not args.output_dir:
        raise AsrError(f"--format {args.format} with several files needs --output-dir")
    stems = [Path(it.key).stem for it in items]
    if args.output_dir and len(set(stems)) < len(stems):
        raise AsrError("--output-dir: several input files have the same name; transcribe them separately")
    recognizer = recognizer_from_args(args)
    timestamps = args.timestamps or args.format in ("srt", "vtt")
    if args.jsonl:
        summary = batch.run(recognizer, items, Path(args.jsonl), args.resume, timestamps,
                            progress=not args.no_progress, summary=summary)
        for line in summary.lines():
            print(line, file=sys.stderr)
        return 1 if summary.failed else 0
    failed = 0
    for it in items:
        try:
            transcript = recognizer.transcribe(batch.audio_of(it, recognizer), timestamps=timestamps)
        except AsrError as e:
            print(f"asr: error: {e}", file=sys.stderr)
            failed += 1
            continue
        transcript.source = it.key
        text = format_transcript(transcript, args.format, with_name=len(items) > 1)
        if args.output_dir:
            write_text_atomic(Path(args.output_dir) / f"{Path(it.key).stem}.{args.format}", text)
        else:
            sys.stdout.write(text)
    if summary.not_audio:
        print(summary.lines()[-1], file=sys.stderr)
    return 1 if failed else 0


def stream_to_stdout(args: argparse.Namespace) -> int:
    """--stream -: 16-bit little-endian mono PCM from stdin (`arecord -f S16_LE -r 16000 -c 1 |`);
    --stream mic: the default microphone (the sounddevice package). Partial text goes to
    stderr as it changes, each chunk's processing time with --latency; the final text to stdout."""
    import numpy as np

    if args.files:
        raise AsrError("--stream reads audio from stdin or the microphone: give no files")
    recognizer = recognizer_from_args(args)
    rate = recognizer.sample_rate
    chunk = int(rate * args.chunk_ms / 1000)
    try:
        stream = recognizer.stream(timestamps=args.timestamps)
    except ValueError as e:
        raise AsrError(str(e)) from None
    latencies, last = [], ""
    for samples in _pcm_chunks(args.stream, rate, chunk):
        t0 = time.perf_counter()
        partial = stream.feed(samples)
        latencies.append(time.perf_counter() - t0)
        if partial != last:
            print(f"\r{partial}", end="", file=sys.stderr, flush=True)
            last = partial
    transcript = stream.finish()
    if last:
        print(file=sys.stderr)
    print(transcript.text)
    if args.latency and latencies:
        ms = np.array(latencies) * 1000
        print(f"{len(ms)} chunks of {args.chunk_ms} ms: processing per chunk mean {ms.mean():.1f} ms, "
              f"p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms", file=sys.stderr)
    return 0


def _pcm_chunks(source: str, rate: int, chunk: int):
    import numpy as np

    if source == "mic":
        try:
            import sounddevice
        except ImportError:
            raise AsrError("--stream mic needs the sounddevice package (pip install sounddevice)") from None
        with sounddevice.InputStream(samplerate=rate, channels=1, dtype="float32", blocksize=chunk) as mic:
            try:
                while True:
                    data, _ = mic.read(chunk)
                    yield data[:, 0]
            except KeyboardInterrupt:
                return
    if source != "-":
        raise AsrError(f"--stream {source}: expected - (stdin) or mic")
    stdin, carry = sys.stdin.buffer, b""
    while block := stdin.read(2 * chunk):
        block = carry + block
        usable = len(block) - len(block) % 2  # a stream that stops mid-sample: the odd byte waits (or is dropped)
        carry = block[usable:]
        if usable:
            yield np.frombuffer(block[:usable], dtype="<i2").astype(np.float32) / 32768.0
    if carry:
        print("asr: warning: the stream ended in the middle of a sample; its last byte was dropped",
              file=sys.stderr)


def recognizer_from_args(args: argparse.Namespace, model: str | None = None):
    """The Recognizer that --model (default: $ASR_MODEL or the AN4 recipe's), --set, --lm,
    --lexicon, --lexicon-free and --device describe."""
    from asr.checkpoint import load_bundle
    from asr.recognizer import Recognizer
    from asr.transcribe import default_model_path

    bundle = load_bundle(model or args.model or default_model_path())
    bundle.config = apply_overrides(bundle.config, args.set, allowed=("decode",))
    return Recognizer(bundle, args.device, getattr(args, "lm", None), getattr(args, "lexicon", None),
                      getattr(args, "lexicon_free", False))


def cmd_lm_build(args: argparse.Namespace) -> int:
    import itertools

    from asr.kenlm import find_kenlm, lmplz
    from asr.lm import estimate, iter_text_corpus, write_arpa
    from asr.manifest import read_manifest
    from asr.scoring import normalize_text

    if not 1 <= args.order <= 6:
        raise AsrError(f"--order {args.order}: order must be at least 1 (and at most 6, KenLM's limit as built here)")
    backend = args.backend
    if backend == "auto":
        backend = "kenlm" if find_kenlm() is not None else "python"
    if backend == "python" and (args.prune or args.binary):
        raise AsrError("--prune and --binary need the kenlm backend (asr lm install-kenlm)")
    try:
        prune = [int(x) for x in args.prune.split(",")] if args.prune else None
    except ValueError:
        raise AsrError(f"--prune {args.prune}: expected whole numbers separated by commas, e.g. 0,1,1") from None
    if prune and (prune[0] != 0 or len(prune) > args.order or any(x < 0 for x in prune)):
        raise AsrError(f"--prune {args.prune}: whole thresholds >= 0, the first 0 (unigrams are kept), at most "
                       f"one per order")
    manifest_texts = [normalize_text(u.text) for m in args.manifest for u in read_manifest(m)]
    manifest_texts = [t for t in manifest_texts if t]

    def sentences():
        text = iter_text_corpus(args.text, args.max_lines, args.every) if args.text else iter(())
        return itertools.chain(text, manifest_texts)

    if not args.text and not manifest_texts:
        raise AsrError("no text given: pass TEXT files and/or --manifest")
    output = Path(args.output)
    t0 = time.time()
    if backend == "kenlm":
        counter = _Counting(sentences())
        lmplz(counter, args.order, output, prune, args.memory, Path(args.binary) if args.binary else None)
        n_sentences, sizes = counter.n, arpa_sizes(output)
    else:
        sentences_list = [s.split() for s in sentences()]
        if not sentences_list:
            raise AsrError("no text to build a language model from")
        try:
            model = estimate(sentences_list, args.order)
        except ValueError as e:
            raise AsrError(f"lm build: {e}") from None
        write_arpa(model, output)
        n_sentences, sizes = len(sentences_list), arpa_sizes(output)
    print(f"{output}: order {args.order}, {n_sentences} sentences, {backend} backend, {time.time() - t0:.1f}s; "
          + ", ".join(f"{n}-grams {c}" for n, c in enumerate(sizes, 1))
          + (f"; binary {args.binary}" if args.binary else ""))
    return 0


class _Counting:
    """Iterates a sentence stream, counting it."""

    def __init__(self, items):
        self.items, self.n = items, 0

    def __iter__(self):
        for item in self.items:
            self.n += 1
            yield item


def arpa_sizes(path: Path) -> list[int]:
    """The n-gram counts of an ARPA file's header."""
    sizes = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("ngram "):
                sizes.append(int(line.split("=")[1]))
            elif line.startswith("\\1-grams"):
                break
    return sizes


def cmd_lm_mix(args: argparse.Namespace) -> int:
    from asr.lm import best_mixture_weights, interpolate, perplexity, read_arpa, write_arpa
    from asr.manifest import read_manifest
    from asr.scoring import normalize_text

    if len(args.models) < 2:
        raise AsrError("lm mix: give at least two ARPA files")
    if (args.weights is None) == (args.fit is None):
        raise AsrError("lm mix: give either --weights or --fit MANIFEST")
    models = [read_arpa(m) for m in args.models]
    held_out = []
    if args.fit:
        held_out = [t.split() for t in (normalize_text(u.text) for u in read_manifest(args.fit)) if t]
        if not held_out:
            raise AsrError(f"{args.fit}: no transcripts to fit the weights on")
    try:
        weights = best_mixture_weights(models, held_out) if args.fit else parse_floats(args.weights, "--weights")
        mixed = interpolate(models, weights, bayes=args.bayes)
    except ValueError as e:
        raise AsrError(f"lm mix: {e}") from None
    write_arpa(mixed, args.output)
    line = (f"{args.output}: order {mixed.order}, {'prior ' if args.bayes else ''}weights "
            + ", ".join(f"{w:.4f}" for w in weights))
    if held_out:
        ppl = [perplexity(m, held_out) for m in [*models, mixed]]
        line += f"; perplexity on {args.fit}: " + ", ".join(f"{p:.2f}" for p in ppl[:-1]) + f" -> mixed {ppl[-1]:.2f}"
    print(line + ", " + ", ".join(f"{n}-grams {c}" for n, c in enumerate(arpa_sizes(Path(args.output)), 1)))
    return 0


def cmd_lm_spell(args: argparse.Namespace) -> int:
    from asr.atomic import write_text_atomic
    from asr.lm import spelled_words

    lines = spelled_words(args.wordlists, by_frequency=args.by_frequency)
    write_text_atomic(args.output, "".join(line + "\n" for line in lines))
    print(f"{args.output}: {len(set(lines))} words spelled in {len(lines)} lines, from {len(args.wordlists)} "
          "word list(s)")
    return 0


def cmd_lm_census_names(args: argparse.Namespace) -> int:
    from asr.corpora.census_names import census_name_lists

    for path in census_name_lists(args.source, args.out):
        print(path)
    return 0


def cmd_lm_install_kenlm(args: argparse.Namespace) -> int:
    from asr.kenlm import install_kenlm

    install_kenlm(args.jobs)
    return 0


def add_decode_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--set", action="append", default=[], metavar="decode.FIELD=VALUE",
                   help="override a decode setting, e.g. --set decode.method=beam --set decode.lm_weight=0.8")
    s.add_argument("--lm", help="ARPA n-gram LM for beam search")
    s.add_argument("--lexicon", help="lexicon for beam search, a word and its tokens per line: WORD W O R D | for "
                        "characters (default: the LM's words, spelled by the model's tokenizer)")
    s.add_argument("--lexicon-free", action="store_true", help="beam search over the model's tokens (characters or word pieces), open vocabulary")


def cmd_tune(args: argparse.Namespace) -> int:
    from asr.checkpoint import save_bundle_object
    from asr.manifest import read_manifest
    from asr.tune import tune, write_tune_report

    for path, what in ((args.lm, "language model"), (args.lexicon, "lexicon")):
        if path and not Path(path).is_file():
            raise AsrError(f"{path}: no such {what} file")
    recognizer = recognizer_from_args(argparse.Namespace(model=args.model, set=args.set, device=args.device))
    utts = read_manifest(args.manifest)
    tuned, rows = tune(recognizer, utts, Path(args.lm), parse_floats(args.lm_weights, "--lm-weights"),
                       parse_floats(args.word_scores, "--word-scores"),
                       lexicon=Path(args.lexicon) if args.lexicon else None, source=args.manifest)
    out = Path(args.out or args.model)
    save_bundle_object(tuned, out)
    write_tune_report(rows, out.with_suffix(".tune.json"))
    d = tuned.config.decode
    print(f"best on {args.manifest}: lm_weight {d.lm_weight} word_score {d.word_score} "
          f"(WER {tuned.info['tuned_wer']:.2f}, CER {tuned.info['tuned_cer']:.2f}); saved in {out}")
    return 0


def parse_floats(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AsrError(f"{option}: expected numbers separated by commas, got {text!r}") from None
    if not values:
        raise AsrError(f"{option}: no values given")
    return values


CONDITIONS_HELP = {name: c.description for name, c in CONDITIONS.items()}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr", description="Recurrent CTC speech recognition.")
    p.add_argument("--version", action="version", version=f"asr {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="extract or download a corpus and write its manifests")
    corpus_sub = s.add_subparsers(dest="corpus", required=True, metavar="CORPUS")
    for name in CORPORA:
        module = corpus_module(name)
        c = corpus_sub.add_parser(name, help=module.DESCRIPTION, description=module.DESCRIPTION)
        fallback = "else download" if hasattr(module, f"download_{name}") else "required: no download"
        c.add_argument("--source", help=f"local archive or extracted folder (default: ${module.ENV_VAR}; {fallback})")
        c.add_argument("--out", required=True, help=f"working folder, e.g. data/{name}")
        module.add_arguments(c)
        c.set_defaults(func=cmd_prepare)

    s = sub.add_parser("train", help="train an acoustic model with CTC")
    s.add_argument("--train", required=True, help="training manifest (JSONL)")
    s.add_argument("--dev", required=True, help="dev manifest for model selection (JSONL)")
    s.add_argument("--exp", required=True, help="experiment folder for checkpoints and logs")
    s.add_argument("--config", help="YAML file of overrides (sections: features, augment, model, train, decode, tokenizer)")
    s.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override one config field, e.g. --set train.epochs=10 (repeatable)")
    s.add_argument("--resume", action="store_true", help="continue from the latest epoch checkpoint")
    s.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--stream", metavar="SOURCE", help="stream: '-' reads 16-bit mono PCM at the model's rate "
                   "from stdin, 'mic' the microphone (sounddevice); partial text on stderr, final on stdout")
    s.add_argument("--chunk-ms", type=int, default=100, help="with --stream: audio per chunk (default 100 ms)")
    s.add_argument("--latency", action="store_true", help="with --stream: print processing time per chunk")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("device", help="the device and precision asr train would use here (e.g. 'cpu bf16')",
                       description="Print the torch device type and the arithmetic (bf16 autocast or float32) "
                                   "that asr train would use on this machine with this config: train.precision "
                                   "auto means bf16 on a GPU and on a CPU with native bf16 (AVX512-BF16, AMX), "
                                   "float32 elsewhere. Runs compared with each other should share it.")
    s.add_argument("--config", help="YAML file of overrides, as for asr train")
    s.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override one config field, as for asr train (repeatable)")
    s.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    s.set_defaults(func=cmd_device)

    s = sub.add_parser("average", help="average the weights of the last N epoch checkpoints into a bundle")
    s.add_argument("--exp", required=True, help="experiment folder written by asr train")
    s.add_argument("--last", type=int, default=5, help="how many final epochs to average (default 5)")
    s.add_argument("--out", required=True, help="bundle to write, e.g. EXP/model_avg.pt")
    s.set_defaults(func=cmd_average)

    s = sub.add_parser("ensemble", help="combine models with the same tokens and features into one bundle")
    s.add_argument("models", nargs="+", metavar="MODEL", help="model bundles (at least two)")
    s.add_argument("--out", required=True, help="ensemble bundle to write")
    s.add_argument("--combine", choices=("sequence", "logprob", "prob"), default="sequence",
                   help="sequence (default): each member's beam search proposes transcripts, ranked by the "
                        "members' mean CTC log-likelihood plus LM and word scores; per frame: mean of "
                        "log-probabilities, renormalized (logprob), or mean of probabilities (prob)")
    s.set_defaults(func=cmd_ensemble)

    s = sub.add_parser("evaluate", help="decode a manifest and write a WER/CER report")
    s.add_argument("--model", required=True, help="model bundle (model.pt)")
    s.add_argument("--manifest", required=True, help="manifest to decode (JSONL)")
    s.add_argument("--out", required=True, help="report folder")
    s.add_argument("--condition", action="append", default=[], metavar="NAME=MANIFEST",
                   help="also decode MANIFEST (a copy of --manifest under a recording condition, from asr "
                        "degrade) into OUT/NAME; the clean one goes to OUT/clean and a table of all to "
                        "OUT/conditions.md (repeatable)")
    s.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    add_decode_options(s)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("export", help="a model as a TorchScript or ONNX package (optionally int8)")
    s.add_argument("model", metavar="MODEL", help="model bundle (model.pt or model_lm.pt)")
    s.add_argument("--format", choices=("torchscript", "onnx"), required=True)
    s.add_argument("--quantize", choices=("int8",), help="int8 weights of the recurrent and linear layers")
    s.add_argument("--out", required=True, help="package folder to write")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("serve", help="an HTTP API and a web page for a model")
    s.add_argument("--model", help="model bundle or exported package (default: $ASR_MODEL, else the AN4 recipe's)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--workers", type=int, default=1, help="server processes, each with the model (default 1)")
    s.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload (default 20 MB)")
    s.add_argument("--max-seconds", type=float, default=600.0, help="longest audio (default 600 s)")
    s.add_argument("--batch", type=int, default=16, help="requests decoded together at most (default 16)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("degrade", help="copy a manifest's audio under a recording condition (noise, room, phone)")
    s.add_argument("--manifest", required=True, help="manifest whose audio to degrade")
    s.add_argument("--condition", required=True, choices=sorted(CONDITIONS_HELP),
                   help="; ".join(f"{k}: {v}" for k, v in CONDITIONS_HELP.items()))
    s.add_argument("--out", required=True, help="manifest of the degraded copies to write")
    s.add_argument("--audio-dir", help="folder for the degraded audio (default: OUT-STEM_audio beside --out)")
    s.add_argument("--seed", type=int, default=0, help="seed of the degradation (default 0)")
    s.add_argument("--jobs", type=int,
                   help="processes degrading utterances at once (default: one per core); the copies are the same")
    s.set_defaults(func=cmd_degrade)

    s = sub.add_parser("score", help="score a hypothesis trn file against references; write a report")
    s.add_argument("--ref", required=True, help="references: a trn file (TEXT (speaker-uttid)) or a manifest (.jsonl)")
    s.add_argument("--hyp", required=True, help="hypotheses: a trn file")
    s.add_argument("--out", required=True, help="report folder")
    s.add_argument("--title", help="report title")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("compare", help="paired significance tests of two reports on the same utterances")
    s.add_argument("report_a", metavar="REPORT_A", help="report folder of system A (from evaluate or score)")
    s.add_argument("report_b", metavar="REPORT_B", help="report folder of system B")
    s.add_argument("--out", help="also write the comparison to this file")
    s.add_argument("--resamples", type=int, default=1000, help="paired bootstrap resamples (default 1000)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("experiments", help="dev figures of multi-seed experiments side by side (recipes/an4/seeds.sh)")
    s.add_argument("experiments", nargs="+", metavar="FOLDER", help="experiment folders, each holding s<SEED>/ runs")
    s.add_argument("--split", choices=SPLITS, default="dev",
                   help="dev (default), or test: the final system's report (seeds.sh --test decodes it, once)")
    s.add_argument("--out", help="also write the table to this file")
    s.set_defaults(func=cmd_experiments)

    s = sub.add_parser("tune", help="pick LM weight and word score on a dev set; store them in the bundle")
    s.add_argument("--model", required=True, help="model bundle to tune")
    s.add_argument("--manifest", required=True, help="dev manifest (never the test set)")
    s.add_argument("--lm", required=True, help="ARPA n-gram LM")
    s.add_argument("--lexicon", help="lexicon (default: spelled from the LM's words)")
    s.add_argument("--lm-weights", default="0,0.25,0.5,0.75,1,1.5,2", help="comma-separated grid")
    s.add_argument("--word-scores", default="-1,0,1,2,3", help="comma-separated grid")
    s.add_argument("--set", action="append", default=[], metavar="decode.FIELD=VALUE",
                   help="other decode settings, e.g. --set decode.beam_size=100")
    s.add_argument("--out", help="where to write the tuned bundle (default: over --model)")
    s.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    s.set_defaults(func=cmd_tune)

    s = sub.add_parser("transcribe", help="print the transcript of audio files")
    s.add_argument("files", nargs="*", metavar="INPUT",
                   help="audio files (any format soundfile reads), folders (their audio files, recursively), "
                        "quoted glob patterns, or manifests (.jsonl)")
    s.add_argument("--jsonl", metavar="OUT", help="batch job: append one JSON line per file to OUT as each "
                   "finishes (files batched by length, a progress bar, a summary; exit 1 if any file failed)")
    s.add_argument("--resume", action="store_true", help="with --jsonl: skip the files OUT already has")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--stream", metavar="SOURCE", help="stream: '-' reads 16-bit mono PCM at the model's rate "
                   "from stdin, 'mic' the microphone (sounddevice); partial text on stderr, final on stdout")
    s.add_argument("--chunk-ms", type=int, default=100, help="with --stream: audio per chunk (default 100 ms)")
    s.add_argument("--latency", action="store_true", help="with --stream: print processing time per chunk")
    s.add_argument("--model", help="model bundle (default: $ASR_MODEL, else the AN4 recipe's model)")
    s.add_argument("--format", choices=["text", "json", "srt", "vtt"], default="text",
                   help="output format (srt and vtt imply --timestamps)")
    s.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    s.add_argument("--timestamps", action="store_true", help="word start and end times (CTC forced alignment)")
    s.add_argument("--output-dir", help="write FILE-STEM.FORMAT files here instead of printing")
    s.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    add_decode_options(s)
    s.set_defaults(func=cmd_transcribe)
    s = sub.add_parser("lm", help="language models")
    lm_sub = s.add_subparsers(dest="lm_command", required=True)
    s = lm_sub.add_parser("build", help="estimate a modified Kneser-Ney n-gram LM and write ARPA")
    s.add_argument("text", nargs="*", metavar="TEXT", help="text files, one sentence per line (.gz is read too)")
    s.add_argument("--max-lines", type=int, metavar="N",
                   help="take at most N sentences from the TEXT files (default: all)")
    s.add_argument("--every", type=int, default=1, metavar="K",
                   help="take every K-th line of the TEXT files, to sample a large text evenly (default 1)")
    s.add_argument("--manifest", action="append", default=[], help="also take the texts of a manifest (repeatable)")
    s.add_argument("--order", type=int, default=3, help="n-gram order (default 3)")
    s.add_argument("-o", "--output", required=True, help="ARPA file to write")
    s.add_argument("--backend", choices=("auto", "kenlm", "python"), default="auto",
                   help="kenlm: KenLM's lmplz (asr lm install-kenlm), streaming, for large texts; python: the "
                        "in-memory reference estimator; auto (default): kenlm where installed")
    s.add_argument("--prune", metavar="N,N,...",
                   help="kenlm: drop n-grams of each order seen at most N times, e.g. 0,1,1 (unigrams are kept)")
    s.add_argument("--binary", metavar="PATH", help="kenlm: also write KenLM's binary form here")
    s.add_argument("--memory", default="20%", help="kenlm: lmplz's sort memory (default 20%% of RAM)")
    s.set_defaults(func=cmd_lm_build)
    s = lm_sub.add_parser("mix", help="interpolate ARPA n-gram LMs into one (weights given or fitted on a dev set)")
    s.add_argument("models", nargs="+", metavar="ARPA", help="the language models (two or more)")
    s.add_argument("--weights", metavar="W,W,...", help="one mixture weight per model, summing to 1")
    s.add_argument("--fit", metavar="MANIFEST", help="instead: the static weights that give this manifest's "
                        "transcripts the lowest perplexity (EM, as SRILM's compute-best-mix; with --bayes they are the "
                        "priors); use a dev set, never test")
    s.add_argument("--bayes", action="store_true", help="weights that follow the history: each model's posterior "
                   "given the history's words, the weights being priors (SRILM's -bayes); for models of different "
                   "kinds of sentence")
    s.add_argument("-o", "--output", required=True, help="ARPA file to write")
    s.set_defaults(func=cmd_lm_mix)
    s = lm_sub.add_parser("spell", help="a text of words spelled as letters (one word per line), for the LM of "
                          "a spelled-letter task such as AN4's names")
    s.add_argument("wordlists", nargs="+", metavar="WORDLIST", help="word lists: the first column of each line is "
                   "taken (one word per line, or the US Census name lists' NAME FREQ CUM RANK); .gz is read too")
    s.add_argument("--by-frequency", action="store_true", help="repeat each word in proportion to the number in its "
                   "second column (the census lists' frequency; the rarest once), so that an LM counts tokens")
    s.add_argument("-o", "--output", required=True, help="text file to write")
    s.set_defaults(func=cmd_lm_spell)
    s = lm_sub.add_parser("census-names", help="the US Census 1990 name lists (first names, surnames), for "
                          "asr lm spell: downloaded from census.gov or copied from a local folder")
    s.add_argument("--out", required=True, help="folder to put dist.all.last, dist.female.first, dist.male.first in")
    s.add_argument("--source", help="a folder holding the three files (default: $ASR_CENSUS_NAMES; else download). "
                   "The source archive of the PyPI package `names` holds copies in its names/ folder")
    s.set_defaults(func=cmd_lm_census_names)
    s = lm_sub.add_parser("install-kenlm", help="build KenLM's lmplz and build_binary from PyPI's kenlm source")
    s.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    s.set_defaults(func=cmd_lm_install_kenlm)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AsrError as e:
        print(f"asr: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("asr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
