"""Consistency-regularized CTC (train.cr_ctc_weight; CR-CTC, Yao et al. 2024, as icefall's
zipformer recipes train it).

Each training utterance is seen twice in a step, under two independent SpecAugment draws;
speed, noise, room and phone line are drawn once, before, and are the same for both views.
The loss of an utterance is

    0.5 x (CTC(view a) + CTC(view b))
      + weight x 0.5 x sum over its frames of (KL(a, held fixed || b) + KL(b, held fixed || a))

so each view's token distributions are pulled toward the other's: the model learns to give the
same frame-by-frame output whatever the masks hid, and, by the paper's account, less peaky
distributions. A step costs about two forward and backward passes of its batch; halve
train.max_batch_frames to keep the compute per step. (icefall also masks more time with it,
about 2.5x; here the masks are augment's, unchanged.)

SpecAugment then runs in the training step on the doubled batch (`two_views`), not in the
loader's workers (SpeechDataset with mask=False) or the device frontend.
"""

from __future__ import annotations

import torch

from asr.config import AugmentConfig
from asr.features import spec_augment_batch


def two_views(feats: torch.Tensor, lens: torch.Tensor, augment: AugmentConfig | None,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch (B, T, F) twice, (2B, T, F): rows b and B + b hold utterance b under two
    independent SpecAugment draws (none without `augment`; the views then differ only by
    dropout). Lengths (2B,)."""
    doubled, lens2 = feats.repeat(2, 1, 1), lens.repeat(2)
    if augment is not None:
        doubled = spec_augment_batch(doubled, lens2, augment, generator)
    return doubled, lens2


def consistency_loss(log_probs: torch.Tensor, out_lens: torch.Tensor) -> torch.Tensor:
    """Sum over utterances and valid frames of KL(other view, held fixed || this view), for
    both directions, of a two-view batch (2B, T, V) of log-probabilities (`two_views`' order)."""
    n = log_probs.shape[0]
    if n % 2:
        raise ValueError(f"a two-view batch has an even number of rows, got {n}")
    log_probs = log_probs.float()
    other = torch.roll(log_probs.detach(), n // 2, dims=0)  # row b <-> row B + b
    kl = torch.nn.functional.kl_div(log_probs, other, reduction="none", log_target=True).sum(-1)  # (2B, T)
    valid = torch.arange(log_probs.shape[1], device=log_probs.device)[None, :] < out_lens[:, None]
    return kl.masked_fill(~valid, 0.0).sum()
