"""Running a model over utterances: batched decoding, dev metrics, evaluation reports."""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path

import torch

from asr.atomic import write_text_atomic
from asr.checkpoint import Bundle
from asr.config import DecodeConfig, to_dict
from asr.data import SpeechDataset, make_loader
from asr.decoding import Hypothesis, make_decoder, write_lexicon
from asr.errors import AsrError, first_line
from asr.lm import read_arpa_words
from asr.manifest import Utterance
from asr.model import AcousticModel, ctc_loss_sum
from asr.report import write_report
from asr.scoring import Summary, score
from asr.shifts import fold_copy, shift_samples

Emissions = dict[str, torch.Tensor]  # utterance id -> log-probabilities (T', V) on the CPU (or MemberLogProbs)


def compute_emissions(
    model: AcousticModel, dataset: SpeechDataset, device: torch.device, max_frames: int = 20000,
    delays: Sequence[int] = (0,),
) -> tuple[Emissions, float]:
    """Run the model over every utterance: log-probs by id, and the mean CTC loss per utterance.
    With several `delays` (samples, asr.shifts), the model runs over each delayed copy and the
    log-probs are their per-frame mean probability; the loss is the copies' mean."""
    if not delays:
        raise ValueError("compute_emissions needs at least one delay (0: the audio as it is)")
    emissions: Emissions = {}
    loss = 0.0
    for k, delay in enumerate(delays, start=1):
        shifted = copy.copy(dataset)
        shifted.delay = delay
        run, run_loss = _emissions(model, shifted, device, max_frames)
        emissions = run if k == 1 else {uid: fold_copy(emissions[uid], lp, k) for uid, lp in run.items()}
        loss += run_loss / len(delays)
    return emissions, loss


@torch.no_grad()
def _emissions(model: AcousticModel, dataset: SpeechDataset, device: torch.device,
               max_frames: int) -> tuple[Emissions, float]:
    model.eval()
    loader, _ = make_loader(dataset, max_frames, shuffle=False)
    emissions: Emissions = {}
    loss_sum = 0.0
    for batch in loader:
        log_probs, out_lens = model(batch.feats.to(device), batch.feat_lens.to(device))
        loss_sum += float(ctc_loss_sum(log_probs, out_lens, batch.targets.to(device), batch.target_lens.to(device)))
        log_probs = log_probs.cpu()
        for b, (uid, n) in enumerate(zip(batch.ids, out_lens.tolist())):
            emissions[uid] = log_probs[b, :n]  # (T', V), or MemberLogProbs of them
    return emissions, loss_sum / max(len(dataset), 1)


def decode_emissions(decoder, emissions: Emissions) -> dict[str, Hypothesis]:
    """Decode each utterance's log-probs on its own (no padding reaches the decoder)."""
    return {
        uid: decoder(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0]  # (T', V) -> (1, T', V)
        for uid, lp in emissions.items()
    }


def decode_dataset(
    model: AcousticModel, dataset: SpeechDataset, decoder, device: torch.device, delays: Sequence[int] = (0,)
) -> tuple[dict[str, Hypothesis], float]:
    """Decode every utterance; returns hypotheses by id and the mean CTC loss per utterance."""
    emissions, loss = compute_emissions(model, dataset, device, delays=delays)
    return decode_emissions(decoder, emissions), loss


def bundle_delays(bundle: Bundle) -> tuple[int, ...]:
    """The delays in samples of the bundle's test-time shift averaging (decode.shifts_ms)."""
    return shift_samples(bundle.config.decode.shifts_ms, bundle.config.features.sample_rate)


def is_sequence_ensemble(model) -> bool:
    from asr.ensemble import is_sequence_ensemble as check

    return check(model)


def bundle_decoder(
    bundle: Bundle,
    lm: str | Path | None = None,
    lexicon: str | Path | None = None,
    lexicon_free: bool = False,
    cfg: DecodeConfig | None = None,
):
    """The decoder a bundle asks for: its decode settings and, for beam search, its own LM
    and lexicon unless `lm` or `lexicon` files are given. Giving either selects beam search.
    Without a lexicon, one is spelled from the LM's words. `lexicon_free` searches over
    tokens (characters or word pieces: open vocabulary) without a word LM."""
    cfg = cfg or bundle.config.decode
    if (lm or lexicon or lexicon_free) and cfg.method != "beam":
        cfg = dataclasses.replace(cfg, method="beam")
    if cfg.method != "beam":
        return make_decoder(cfg, bundle.tokenizer)
    if lexicon_free and (lm or lexicon):
        raise AsrError("--lexicon-free searches characters or word pieces: it takes neither --lm nor --lexicon")
    for path, what in ((lm, "language model"), (lexicon, "lexicon")):
        if path is not None and not Path(path).is_file():
            raise AsrError(f"{path}: no such {what} file")
    with tempfile.TemporaryDirectory() as tmp:
        if lexicon_free:
            return make_decoder(cfg, bundle.tokenizer, sequence_ensemble=is_sequence_ensemble(bundle.model))
        if lm is None and bundle.lm_arpa:
            lm = Path(tmp) / "lm.arpa"
            lm.write_text(bundle.lm_arpa, encoding="utf-8")
            if lexicon is None and bundle.lexicon:
                lexicon = Path(tmp) / "lexicon.txt"
                lexicon.write_text(bundle.lexicon, encoding="utf-8")
        if lexicon is None and lm is not None:
            lexicon = Path(tmp) / "lexicon.txt"
            if write_lexicon(read_arpa_words(lm), lexicon, bundle.tokenizer) == 0:
                raise AsrError(f"{lm}: none of its words can be spelled with the model's tokens")
        try:
            return make_decoder(cfg, bundle.tokenizer, lexicon, lm, is_sequence_ensemble(bundle.model))  # reads the files now
        except (RuntimeError, ValueError) as e:
            raise AsrError(f"cannot set up beam search with lexicon {lexicon} and LM {lm} ({first_line(e)})") from None


def score_hypotheses(utts: Sequence[Utterance], hyps: dict[str, Hypothesis]) -> Summary:
    summary, _ = score([u.text for u in utts], [hyps[u.id].text for u in utts])
    return summary


def decode_manifest(
    bundle: Bundle,
    utts: Sequence[Utterance],
    device: torch.device,
    lexicon: str | Path | None = None,
    lm: str | Path | None = None,
    lexicon_free: bool = False,
    decoder=None,
) -> tuple[dict[str, Hypothesis], dict]:
    """Decode `utts` with the bundle's model and decode settings (or `decoder`, built from
    them beforehand); returns the hypotheses by id and what the report records about the
    decoding."""
    model = bundle.model.to(device)
    dataset = SpeechDataset(utts, bundle.tokenizer, bundle.config.features, bundle.stats)
    decoder = decoder or bundle_decoder(bundle, lm, lexicon, lexicon_free)
    hyps, loss = decode_dataset(model, dataset, decoder, device, bundle_delays(bundle))
    info = {"ctc_loss_per_utt": loss, "decode": to_dict(bundle.config.decode),
            "lm": str(lm) if lm else ("bundle" if bundle.lm_arpa else None)}
    if decoder.vocabulary is not None:
        info["oov"] = out_of_vocabulary([u.text for u in utts], decoder.vocabulary)
    return hyps, info


def out_of_vocabulary(texts: Sequence[str], vocabulary: Collection[str]) -> dict:
    """Reference words a closed-vocabulary (lexicon) search cannot output: each one is at
    least one error, whatever the acoustic model does."""
    words = [w for text in texts for w in text.split()]
    missing = Counter(w for w in words if w not in vocabulary)
    n = sum(missing.values())
    return {"ref_words": len(words), "oov_words": n, "oov_rate": round(100 * n / max(len(words), 1), 2),
            "oov_types": sorted(missing)}


def oov_line(oov: dict, max_types: int = 10) -> str:
    """One line for the terminal: how many reference words are outside the lexicon, and which."""
    types = oov["oov_types"]
    shown = " ".join(types[:max_types]) + (f" (+{len(types) - max_types} more)" if len(types) > max_types else "")
    return (f"reference words outside the decoder's lexicon: {oov['oov_words']} of {oov['ref_words']} "
            f"({oov['oov_rate']:.2f}%)" + (f": {shown}" if types else ""))


def write_evaluation(out_dir: str | Path, utts: Sequence[Utterance], hyps: dict[str, Hypothesis],
                     info: dict, title: str = "") -> Summary:
    """The report folder (asr.report) for decoded utterances."""
    report = write_report(
        out_dir,
        ids=[u.id for u in utts],
        speakers=[u.speaker for u in utts],
        refs=[u.text for u in utts],
        hyps=[hyps[u.id].text if u.id in hyps else None for u in utts],
        title=title,
        extra=info,
    )
    return report.summary


def evaluate_manifest(
    bundle: Bundle,
    utts: Sequence[Utterance],
    out_dir: str | Path,
    device: torch.device,
    title: str = "",
    lexicon: str | Path | None = None,
    lm: str | Path | None = None,
    lexicon_free: bool = False,
) -> Summary:
    """Decode `utts` with the bundle's model and decode settings, write the report to out_dir."""
    hyps, info = decode_manifest(bundle, utts, device, lexicon, lm, lexicon_free)
    return write_evaluation(out_dir, utts, hyps, info, title)


def write_conditions(out_dir: str | Path, rows: Sequence[dict], title: str = "") -> str:
    """conditions.json and conditions.md in `out_dir`: WER and CER per recording condition,
    with each WER as a multiple of the clean one (the first row). Returns the Markdown table."""
    clean = rows[0]["wer"]
    for row in rows:
        row["wer_vs_clean"] = round(row["wer"] / clean, 2) if clean else None
    lines = [f"# {title}" if title else "# Recording conditions", "",
             "| condition | utterances | WER | CER | WER / clean |", "|---|---|---|---|---|"]
    for row in rows:
        ratio = f"{row['wer_vs_clean']:.2f}x" if row["wer_vs_clean"] is not None else "-"
        lines.append(f"| {row['condition']} | {row['utterances']} | {row['wer']:.2f} | {row['cer']:.2f} | {ratio} |")
    text = "\n".join(lines) + "\n"
    write_text_atomic(Path(out_dir) / "conditions.json", json.dumps({"title": title, "conditions": list(rows)},
                                                                     indent=2) + "\n")
    write_text_atomic(Path(out_dir) / "conditions.md", text)
    return text
