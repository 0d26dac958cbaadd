"""CTC decoders behind one interface: decoder(log_probs, lens) -> list[Hypothesis]."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from asr.atomic import write_text_atomic
from asr.config import DecodeConfig
from asr.errors import AsrError
from asr.model import MemberLogProbs, frame_log_probs
from asr.tokenizer import BLANK, Tokenizer

UNK_WORD = "<unk>"


@dataclass
class Hypothesis:
    text: str
    tokens: list[int]  # emitted token ids, blanks and repeats removed
    score: float  # log-probability of the path (greedy) or decoder score (beam)
    timesteps: list[int] = field(default_factory=list)  # output frame of each token


class GreedyDecoder:
    """Best path: argmax per frame, merge repeats, drop blanks."""

    vocabulary = None  # open vocabulary: any word the tokens spell

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, log_probs: torch.Tensor, lens: torch.Tensor) -> list[Hypothesis]:
        best, best_ids = frame_log_probs(log_probs).max(dim=-1)  # (B, T, V) -> (B, T)
        hyps = []
        for b in range(log_probs.shape[0]):
            n = int(lens[b])
            ids = best_ids[b, :n]
            keep = torch.ones(n, dtype=torch.bool)
            keep[1:] = ids[1:] != ids[:-1]  # first frame of each run
            keep &= ids != self.tokenizer.blank_id
            frames = keep.nonzero().squeeze(1)
            tokens = ids[frames].tolist()
            hyps.append(
                Hypothesis(
                    text=self.tokenizer.decode(tokens),
                    tokens=tokens,
                    score=float(best[b, :n].sum()),
                    timesteps=frames.tolist(),
                )
            )
        return hyps


class BeamSearchDecoder:
    """CTC beam search (torchaudio's flashlight-text decoder), optionally with a word
    lexicon and an n-gram LM in ARPA format.

    With a lexicon, hypotheses are sequences of lexicon words, scored by the LM if given.
    Without one the search is over tokens (open vocabulary) and takes no word LM.

    Character models have a word-separator token (`|`), which the decoder takes as its
    silence. Word, BPE and unigram models have none (words are single tokens, or start with
    a `▁` piece): the blank stands in as silence, and lexicon spellings end with the word.

    The LM is loaded once per file and lexicon (`word_lm`, a SentenceLM) and shared: by the
    decoders `asr tune` builds for its grid, and with RescoringDecoder's sentence scores.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        cfg: DecodeConfig,
        lexicon: str | Path | None = None,
        lm: str | Path | None = None,
    ):
        from torchaudio.models.decoder import ctc_decoder

        if lm is not None and lexicon is None:
            raise ValueError("a word LM needs a lexicon")
        self.tokenizer = tokenizer
        self.lexicon_based = lexicon is not None
        # The only words a lexicon search can output (None: open vocabulary).
        self.vocabulary = lexicon_words(lexicon) if lexicon is not None else None
        self.word_lm = word_lm(lm, lexicon) if lm is not None else None

        def search(model):
            with _quiet_stderr():  # KenLM reports its loading progress on the C stderr
                return ctc_decoder(
                    lexicon=str(lexicon) if lexicon else None,
                    tokens=tokenizer.tokens,
                    lm=model,
                    nbest=cfg.n_best,
                    beam_size=cfg.beam_size,
                    beam_threshold=cfg.beam_threshold,
                    lm_weight=cfg.lm_weight if lm else 0.0,
                    word_score=cfg.word_score,
                    blank_token=BLANK,
                    sil_token=tokenizer.separator or BLANK,
                    unk_word=UNK_WORD,
                )

        self._decoder = search(self.word_lm.kenlm if self.word_lm is not None else None)
        if self.word_lm is not None and not self.word_lm.same_words(self._decoder.word_dict):
            # The shared model maps word indices of its own dictionary: torchaudio made the same
            # one from the lexicon so far; should it ever differ, the search loads its own copy.
            self._decoder = search(str(lm))

    def __call__(self, log_probs: torch.Tensor, lens: torch.Tensor) -> list[Hypothesis]:
        return [group[0] for group in self.n_best(log_probs, lens)]

    def n_best(self, log_probs: torch.Tensor, lens: torch.Tensor) -> list[list[Hypothesis]]:
        """The n best hypotheses of each utterance, best first."""
        log_probs, lens = frame_log_probs(log_probs).float().cpu(), lens.cpu()
        if self.lexicon_based and self.tokenizer.separator is not None:
            log_probs, lens = self._close_last_word(log_probs, lens)
        results = self._decoder(log_probs.contiguous(), lens.to(torch.int32))
        return [[self._hypothesis(h) for h in group] for group in results]

    def _close_last_word(self, log_probs: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append one frame that is surely a word separator to each utterance.

        Lexicon spellings end in the separator, but models trained on transcripts without
        a trailing space rarely emit one after the last word: without this frame the
        decoder could not finish that word, and dropped it.
        """
        b, t, v = log_probs.shape
        out = torch.full((b, t + 1, v), -1e4)  # (B, T, V) -> (B, T + 1, V)
        out[:, :t] = log_probs
        sep = self.tokenizer.tokens.index(self.tokenizer.separator)
        for i, n in enumerate(lens.tolist()):
            out[i, n] = -1e4
            out[i, n, sep] = 0.0
        return out, lens + 1

    def _hypothesis(self, h) -> Hypothesis:
        # flashlight counts frames from 1 (frame 0 is its virtual start): shift back.
        blank = self.tokenizer.blank_id  # (lists: iterating the tensors element by element was slow)
        keep = [(t, s - 1) for t, s in zip(h.tokens.tolist(), h.timesteps.tolist()) if t != blank]
        # The decoder brackets the output with word separators; drop them at the edges.
        if self.tokenizer.separator is not None:
            space = self.tokenizer.tokens.index(self.tokenizer.separator)
            while keep and keep[0][0] == space:
                keep.pop(0)
            while keep and keep[-1][0] == space:
                keep.pop()
        tokens = [t for t, _ in keep]
        text = " ".join(h.words) if self.lexicon_based else self.tokenizer.decode(tokens)
        return Hypothesis(text=text, tokens=tokens, score=float(h.score), timesteps=[s for _, s in keep])


class RescoringDecoder:
    """Beam search, then the candidates re-ranked by their exact CTC likelihood.

    The beam search (`beam`: lexicon, LM and settings as usual) proposes its
    `cfg.candidates` best transcripts; each is then scored by its CTC log-likelihood summed
    over all alignments, plus lm_weight times its log10 LM probability and word_score per
    word: the units of the beam search itself, where flashlight adds lm_weight times KenLM's
    log10 scores to an acoustic score that follows single alignments.

    For a sequence ensemble (asr.ensemble, combine "sequence": MemberLogProbs outputs)
    every member's beam search proposes candidates and the acoustic score of each is the
    mean of the members' log-likelihoods. Models trained from different seeds agree on what
    was said far more than on the frame each CTC spike falls on; per-frame averaging
    ("logprob", "prob") blurs the spikes, sequence likelihoods do not depend on where they
    fall. A single model's (B, T', V) outputs are one member (decode.rescore).

    The winners keep the tokens and timesteps of the member that proposed them first.
    """

    def __init__(self, beam: BeamSearchDecoder, cfg: DecodeConfig, lm: SentenceLM | None = None):
        self.beam = beam
        self.cfg = cfg
        self.lm = lm
        self.tokenizer = beam.tokenizer
        self.vocabulary = beam.vocabulary

    def __call__(self, log_probs: torch.Tensor, lens: torch.Tensor) -> list[Hypothesis]:
        return [group[0] for group in self.n_best(log_probs, lens)]

    def n_best(self, log_probs: torch.Tensor | MemberLogProbs, lens: torch.Tensor) -> list[list[Hypothesis]]:
        """The cfg.n_best best transcripts of each utterance, best first."""
        if not isinstance(log_probs, MemberLogProbs):
            log_probs = MemberLogProbs((log_probs,))  # a single model: one member
        out = []
        for b, n in enumerate(lens.tolist()):
            members = log_probs[b, :n].float().cpu().members  # K x (T', V)
            proposed: dict[str, Hypothesis] = {}
            for lp in members:
                for h in self.beam.n_best(lp.unsqueeze(0), torch.tensor([n]))[0]:
                    proposed.setdefault(h.text, h)
            texts = list(proposed)
            acoustic = torch.stack([self.ctc_log_likelihoods(lp, texts) for lp in members]).mean(0)
            scored = [
                dataclasses.replace(proposed[text], score=float(ac) + self.text_score(text))
                for text, ac in zip(texts, acoustic)
            ]
            scored.sort(key=lambda h: h.score, reverse=True)
            out.append(scored[: self.cfg.n_best])
        return out

    def text_score(self, text: str) -> float:
        """lm_weight * log10 p_LM(text) + word_score * words."""
        words = text.split()
        lm = self.cfg.lm_weight * self.lm.sentence_log10(words) if self.lm is not None else 0.0
        return lm + self.cfg.word_score * len(words)

    def ctc_log_likelihoods(self, log_probs: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """log p(text | x) of each text under one member's (T', V) outputs, summed over all
        CTC alignments (-inf where the text cannot fit the frames)."""
        targets = [self.tokenizer.encode(t, skip_unknown=True) for t in texts]
        c, t = len(texts), log_probs.shape[0]
        loss = torch.nn.functional.ctc_loss(
            log_probs.unsqueeze(1).expand(t, c, log_probs.shape[1]),  # (T', V) -> (T', C, V)
            torch.tensor([i for ids in targets for i in ids], dtype=torch.long),
            torch.full((c,), t, dtype=torch.long),
            torch.tensor([len(ids) for ids in targets], dtype=torch.long),
            blank=self.tokenizer.blank_id,
            reduction="none",
        )
        return -loss


class SentenceLM:
    """Whole-sentence scores of a KenLM model (ARPA or KenLM binary), log10 p(words </s> | <s>),
    computed by KenLM through flashlight-text's binding: the model and the arithmetic the beam
    search itself uses, without holding the n-grams in Python (a 0.4 M-n-gram mixture loads in
    about 0.3 s instead of 2.4 s). `words` are those the sentences may hold (the lexicon's); any
    other word scores as <unk>. Sentences are remembered: `asr tune` rescores the same candidates
    at every grid point.

    `kenlm` is the loaded model over the word indices of `words` (a flashlight Dictionary):
    BeamSearchDecoder hands it to the search, so that one copy of a large LM serves both."""

    def __init__(self, path: str | Path, words: Iterable[str] | None = None, lexicon: str | Path | None = None):
        """The model at `path` over `words`, or over the words of the `lexicon` file, indexed
        as torchaudio's ctc_decoder indexes them (flashlight's create_word_dict)."""
        try:
            from flashlight.lib.text.decoder.kenlm import KenLM
        except ImportError:
            from flashlight.lib.text.decoder import KenLM
        from flashlight.lib.text.dictionary import Dictionary, create_word_dict, load_words

        if lexicon is not None:
            self.words = create_word_dict(load_words(str(lexicon)))  # <unk> included, the default
        else:
            self.words = Dictionary()
            for w in (UNK_WORD, *sorted(set(words or ()) - {UNK_WORD})):
                self.words.add_entry(w)
            self.words.set_default_index(self.words.get_index(UNK_WORD))
        with _quiet_stderr():  # KenLM reports its loading progress on the C stderr
            self.kenlm = KenLM(str(path), self.words)
        self._sentences: dict[tuple[str, ...], float] = {}

    def same_words(self, other) -> bool:
        """Whether the flashlight Dictionary `other` gives every word the index ours does."""
        n = self.words.index_size()
        return other.index_size() == n and all(other.get_entry(i) == self.words.get_entry(i) for i in range(n))

    def sentence_log10(self, words: list[str]) -> float:
        key = tuple(words)
        if key in self._sentences:
            return self._sentences[key]
        state, total = self.kenlm.start(False), 0.0
        for w in words:
            state, score = self.kenlm.score(state, self.words.get_index(w))
            total += score
        total += self.kenlm.finish(state)[1]
        if len(self._sentences) >= 200_000:
            self._sentences.clear()
        self._sentences[key] = total
        return total


def word_lm(path: str | Path, lexicon: str | Path) -> SentenceLM:
    """The LM file's SentenceLM over the lexicon's words, loaded once per version of the LM file
    and content of the lexicon (asr tune builds a decoder for every grid point)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise AsrError(f"{path}: cannot read the language model ({e.strerror or e})") from None
    try:
        with open(lexicon, "rb") as f:
            words = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        raise AsrError(f"{lexicon}: cannot read the lexicon ({e.strerror or e})") from None
    key = (str(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size, words)
    model = _WORD_LMS.get(key)
    if model is None:
        model = _WORD_LMS[key] = SentenceLM(path, lexicon=lexicon)
    return model


# word_lm's models while a decoder holds them: (LM file, version, lexicon's sha256) -> SentenceLM
_WORD_LMS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


@contextmanager
def _quiet_stderr():
    """Send file descriptor 2 to /dev/null for the block (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def write_lexicon(words: list[str], path: str | Path, tokenizer: Tokenizer) -> int:
    """Write `WORD t o k e n s` per word the tokenizer can spell (tokenizer.spell: characters
    and the separator, the word's sentencepiece pieces, or the word itself as a token).

    Returns the number of words written (words it cannot spell are left out).
    """
    lines = []
    for w in words:
        if w in (UNK_WORD, "<s>", "</s>") or " " in w:
            continue
        spelling = tokenizer.spell(w)
        if spelling:
            lines.append(f"{w} {' '.join(spelling)}\n")
    write_text_atomic(path, "".join(lines))
    return len(lines)


def lexicon_words(path: str | Path) -> frozenset[str]:
    """The words of a lexicon file (`WORD t o k e n s` per line; a word may have several)."""
    with open(path, encoding="utf-8") as f:
        return frozenset(line.split(maxsplit=1)[0] for line in f if line.strip())


def make_decoder(
    cfg: DecodeConfig,
    tokenizer: Tokenizer,
    lexicon: str | Path | None = None,
    lm: str | Path | None = None,
    sequence_ensemble: bool = False,
) -> GreedyDecoder | BeamSearchDecoder | RescoringDecoder:
    """The decoder cfg.method names. Beam search re-ranks its candidates (RescoringDecoder)
    when cfg.rescore is set, and always for `sequence_ensemble` models, whose MemberLogProbs
    outputs only the rescoring combines per transcript (greedy combines them per frame)."""
    if cfg.method == "greedy":
        return GreedyDecoder(tokenizer)
    if cfg.method == "beam" and (cfg.rescore or sequence_ensemble):
        beam = BeamSearchDecoder(tokenizer, dataclasses.replace(cfg, n_best=max(cfg.candidates, cfg.n_best)), lexicon, lm)
        return RescoringDecoder(beam, cfg, beam.word_lm)
    if cfg.method == "beam":
        return BeamSearchDecoder(tokenizer, cfg, lexicon, lm)
    raise ValueError(f"unknown decoding method {cfg.method!r} (available: greedy, beam)")
