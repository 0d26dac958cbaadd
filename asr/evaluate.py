"""Running a model over utterances: batched decoding, dev metrics, evaluation reports."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from asr.checkpoint import Bundle
from asr.data import BucketBatchSampler, SpeechDataset, collate
from asr.decoding import Hypothesis, make_decoder
from asr.manifest import Utterance
from asr.model import AcousticModel
from asr.scoring import Summary, write_report, score


def make_loader(
    dataset: SpeechDataset, max_frames: int, shuffle: bool, seed: int = 0, num_workers: int = 0, sorted_epochs: int = 0
):
    sampler = BucketBatchSampler(dataset.frame_counts(), max_frames, shuffle, seed, sorted_epochs)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers
    )
    return loader, sampler


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


def ctc_loss_sum(log_probs, out_lens, targets, target_lens) -> torch.Tensor:
    """Summed CTC loss of a batch (impossible alignments count as zero, not infinity)."""
    return torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1),  # (B, T, V) -> (T, B, V)
        targets,
        out_lens,
        target_lens,
        blank=0,
        reduction="sum",
        zero_infinity=True,
    )


def score_hypotheses(utts: Sequence[Utterance], hyps: dict[str, Hypothesis]) -> Summary:
    summary, _ = score([u.text for u in utts], [hyps[u.id].text for u in utts])
    return summary


def evaluate_manifest(
    bundle: Bundle, utts: Sequence[Utterance], out_dir: str | Path, device: torch.device, title: str = ""
) -> Summary:
    """Decode `utts` with the bundle's model and decoder, write the scoring report to out_dir."""
    model = bundle.model.to(device)
    dataset = SpeechDataset(utts, bundle.tokenizer, bundle.config.features, bundle.stats)
    decoder = make_decoder(bundle.config.decode, bundle.tokenizer)
    hyps, loss = decode_dataset(model, dataset, decoder, device)
    return write_report(
        out_dir,
        ids=[u.id for u in utts],
        speakers=[u.speaker for u in utts],
        refs=[u.text for u in utts],
        hyps=[hyps[u.id].text for u in utts],
        title=title,
        extra={"ctc_loss_per_utt": loss, "decode": bundle.config.decode.method},
    )
