"""Running a model over utterances: batched decoding, dev metrics, evaluation reports."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from asr.checkpoint import Bundle
from asr.config import to_dict
from asr.data import SpeechDataset, make_loader
from asr.decoding import Hypothesis, make_decoder
from asr.manifest import Utterance
from asr.model import AcousticModel, ctc_loss_sum
from asr.scoring import Summary, score, write_report


@torch.no_grad()
def decode_dataset(
    model: AcousticModel,
    dataset: SpeechDataset,
    decoder,
    device: torch.device,
    max_frames: int = 20000,
) -> tuple[dict[str, Hypothesis], float]:
    """Decode every utterance; returns hypotheses by id and the mean CTC loss per utterance."""
    model.eval()
    loader, _ = make_loader(dataset, max_frames, shuffle=False)
    hyps: dict[str, Hypothesis] = {}
    loss_sum = 0.0
    for batch in loader:
        log_probs, out_lens = model(batch.feats.to(device), batch.feat_lens.to(device))
        loss_sum += float(ctc_loss_sum(log_probs, out_lens, batch.targets.to(device), batch.target_lens.to(device)))
        for uid, hyp in zip(batch.ids, decoder(log_probs.cpu(), out_lens.cpu())):
            hyps[uid] = hyp
    return hyps, loss_sum / max(len(dataset), 1)


def score_hypotheses(utts: Sequence[Utterance], hyps: dict[str, Hypothesis]) -> Summary:
    summary, _ = score([u.text for u in utts], [hyps[u.id].text for u in utts])
    return summary


def evaluate_manifest(
    bundle: Bundle,
    utts: Sequence[Utterance],
    out_dir: str | Path,
    device: torch.device,
    title: str = "",
    lexicon: str | Path | None = None,
    lm: str | Path | None = None,
) -> Summary:
    """Decode `utts` with the bundle's model and decode settings, write the report to out_dir."""
    model = bundle.model.to(device)
    dataset = SpeechDataset(utts, bundle.tokenizer, bundle.config.features, bundle.stats)
    decoder = make_decoder(bundle.config.decode, bundle.tokenizer, lexicon, lm)
    hyps, loss = decode_dataset(model, dataset, decoder, device)
    return write_report(
        out_dir,
        ids=[u.id for u in utts],
        speakers=[u.speaker for u in utts],
        refs=[u.text for u in utts],
        hyps=[hyps[u.id].text for u in utts],
        title=title,
        extra={"ctc_loss_per_utt": loss, "decode": to_dict(bundle.config.decode),
               "lm": str(lm) if lm else None, "lexicon": str(lexicon) if lexicon else None},
    )
