"""Tokenizers: text <-> token ids for CTC, the blank at index 0 (config `tokenizer.unit`).

  char     characters; the word separator is the token `|` (a space is easy to lose in a file)
  word     whitespace-separated symbols, one token each (e.g. phones for phone recognition)
  bpe      sentencepiece BPE pieces, trained on the training transcripts; a piece that
  unigram  starts with `▁` starts a word (sentencepiece unigram pieces: the same)

All have one interface: `tokens`, `blank_id`, `len()`, `encode(text, skip_unknown)`,
`decode(ids)`, `can_encode(text)`, `spell(word)` (a word as the tokens of a beam-search
lexicon), `word_groups(ids)` (which tokens make each word, for word timestamps),
`separator` (the word-separator token, or None), `save(path)` / `load(path)`, and
`to_dict()` for model bundles (a sentencepiece model travels in it as bytes).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from asr.atomic import atomic_path, write_text_atomic
from asr.errors import AsrError, first_line

BLANK = "<blank>"
SPACE = "|"
WORD_START = "\u2581"  # sentencepiece's word-start mark
UNITS = ("char", "word", "bpe", "unigram")


def _check_tokens(tokens: Sequence[str]) -> None:
    if not tokens or tokens[0] != BLANK:
        raise ValueError(f"the first token must be {BLANK}")
    if len(set(tokens)) != len(tokens):
        raise ValueError("tokens must be unique")


class CharTokenizer:
    unit = "char"
    separator = SPACE

    def __init__(self, tokens: Sequence[str]):
        _check_tokens(tokens)
        self.tokens = list(tokens)
        self._index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[str]) -> CharTokenizer:
        chars = sorted({c for text in texts for c in text.replace(" ", SPACE)})
        if SPACE not in chars:
            chars.append(SPACE)
        return cls([BLANK] + sorted(chars))

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def blank_id(self) -> int:
        return 0

    def encode(self, text: str, skip_unknown: bool = False) -> list[int]:
        """Text -> token ids. An unknown character raises KeyError, or is dropped if asked."""
        ids = []
        for c in " ".join(text.split()).replace(" ", SPACE):
            if c in self._index:
                ids.append(self._index[c])
            elif not skip_unknown:
                raise KeyError(f"character {c!r} is not in the token list")
        return ids

    def can_encode(self, text: str) -> bool:
        return all(c in self._index for c in text.replace(" ", SPACE))

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids (already collapsed, blanks removed or not) -> text."""
        text = "".join(self.tokens[i] for i in ids if i != self.blank_id)
        return " ".join(text.replace(SPACE, " ").split())

    def spell(self, word: str) -> list[str] | None:
        """The word's characters and the separator, or None if a character is unknown."""
        if not word or " " in word or not self.can_encode(word):
            return None
        return [*word, SPACE]

    def word_groups(self, ids: Sequence[int]) -> list[list[int]]:
        """Positions in `ids` of each word's tokens: runs between separators."""
        groups, current = [], []
        for k, i in enumerate(ids):
            if self.tokens[i] == SPACE:
                if current:
                    groups.append(current)
                current = []
            else:
                current.append(k)
        return groups + ([current] if current else [])

    def to_dict(self) -> dict:
        return {"unit": self.unit, "tokens": list(self.tokens)}

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, "".join(t + "\n" for t in self.tokens))

    @classmethod
    def load(cls, path: str | Path):
        try:
            tokens = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise AsrError(f"{path}: cannot read token list ({e.strerror})") from None
        try:
            return cls(tokens)
        except ValueError as e:
            raise AsrError(f"{path}: {e}") from None


class WordTokenizer(CharTokenizer):
    """Each whitespace-separated symbol is one token; words need no separator."""

    unit = "word"
    separator = None

    def __init__(self, tokens: Sequence[str]):
        super().__init__(tokens)
        if any(not t or t != "".join(t.split()) for t in self.tokens):
            raise ValueError("word tokens cannot be empty or hold whitespace")
        upper: dict[str, list[str]] = {}
        for t in self.tokens[1:]:
            upper.setdefault(t.upper(), []).append(t)
        # LM words are upper-cased (scoring.normalize_text): find their token regardless of case.
        self._by_upper = {u: ts[0] for u, ts in upper.items() if len(ts) == 1}

    @classmethod
    def build(cls, texts: Iterable[str]) -> WordTokenizer:
        return cls([BLANK] + sorted({w for text in texts for w in text.split()}))

    def encode(self, text: str, skip_unknown: bool = False) -> list[int]:
        ids = []
        for w in text.split():
            if w in self._index:
                ids.append(self._index[w])
            elif not skip_unknown:
                raise KeyError(f"word {w!r} is not in the token list")
        return ids

    def can_encode(self, text: str) -> bool:
        return all(w in self._index for w in text.split())

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.tokens[i] for i in ids if i != self.blank_id)

    def spell(self, word: str) -> list[str] | None:
        token = word if word in self._index and word != BLANK else self._by_upper.get(word.upper())
        return [token] if token else None

    def word_groups(self, ids: Sequence[int]) -> list[list[int]]:
        return [[k] for k in range(len(ids))]


class SentencePieceTokenizer:
    """Sentencepiece pieces (BPE or unigram) as tokens: token id = piece id + 1."""

    separator = None

    def __init__(self, model: bytes, unit: str):
        import sentencepiece as spm

        if unit not in ("bpe", "unigram"):
            raise ValueError(f"not a sentencepiece unit: {unit!r}")
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=bytes(model))
        except (RuntimeError, TypeError, OSError) as e:
            raise ValueError(f"not a sentencepiece model ({first_line(e)})") from None
        self.unit = unit
        self.model = bytes(model)
        self.tokens = [BLANK] + [self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size())]
        _check_tokens(self.tokens)
        self._unk = self._sp.unk_id() + 1

    @classmethod
    def build(cls, texts: Iterable[str], unit: str, vocab_size: int,
              character_coverage: float = 1.0) -> SentencePieceTokenizer:
        """Train on `texts` (kept as written: identity normalization); the vocabulary may come
        out smaller than `vocab_size` on little text."""
        import sentencepiece as spm

        texts = [" ".join(t.split()) for t in texts if t.strip()]
        if not texts:
            raise AsrError("no training text to build a sentencepiece model from")
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(texts), model_writer=model, model_type=unit, vocab_size=vocab_size,
                character_coverage=character_coverage, normalization_rule_name="identity",
                unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, hard_vocab_limit=False, minloglevel=2,
            )
        except RuntimeError as e:
            raise AsrError(f"cannot train a sentencepiece {unit} model ({first_line(e)})") from None
        return cls(model.getvalue(), unit)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def blank_id(self) -> int:
        return 0

    def encode(self, text: str, skip_unknown: bool = False) -> list[int]:
        ids = [i + 1 for i in self._sp.encode(" ".join(text.split()))]
        if self._unk in ids:
            if not skip_unknown:
                raise KeyError(f"{text!r} holds characters the sentencepiece model does not know")
            ids = [i for i in ids if i != self._unk]
        return ids

    def can_encode(self, text: str) -> bool:
        return self._unk not in (i + 1 for i in self._sp.encode(" ".join(text.split())))

    def decode(self, ids: Iterable[int]) -> str:
        pieces = [i - 1 for i in ids if i not in (self.blank_id, self._unk)]
        return " ".join(self._sp.decode(pieces).split())

    def spell(self, word: str) -> list[str] | None:
        if not word or " " in word or not self.can_encode(word):
            return None
        return [self.tokens[i] for i in self.encode(word)]

    def word_groups(self, ids: Sequence[int]) -> list[list[int]]:
        """A piece starting with ▁ starts a word; the pieces after it belong to it."""
        groups: list[list[int]] = []
        for k, i in enumerate(ids):
            if self.tokens[i].startswith(WORD_START) or not groups:
                groups.append([])
            groups[-1].append(k)
        return groups

    def to_dict(self) -> dict:
        return {"unit": self.unit, "tokens": list(self.tokens), "model": self.model}

    def save(self, path: str | Path) -> None:
        """Write the sentencepiece model file (readable by sentencepiece itself)."""
        with atomic_path(path) as tmp:
            tmp.write_bytes(self.model)

    @classmethod
    def load(cls, path: str | Path, unit: str = "bpe") -> SentencePieceTokenizer:
        try:
            return cls(Path(path).read_bytes(), unit)
        except OSError as e:
            raise AsrError(f"{path}: cannot read sentencepiece model ({e.strerror})") from None
        except ValueError as e:
            raise AsrError(f"{path}: {e}") from None


Tokenizer = CharTokenizer | WordTokenizer | SentencePieceTokenizer


def build_tokenizer(cfg, texts: Iterable[str]) -> Tokenizer:
    """The tokenizer `cfg` (a TokenizerConfig) asks for, built from training transcripts."""
    if cfg.unit == "char":
        return CharTokenizer.build(texts)
    if cfg.unit == "word":
        return WordTokenizer.build(texts)
    if cfg.unit in ("bpe", "unigram"):
        return SentencePieceTokenizer.build(texts, cfg.unit, cfg.vocab_size, cfg.character_coverage)
    raise ValueError(f"unknown tokenizer unit {cfg.unit!r} (available: {', '.join(UNITS)})")


def tokenizer_from_dict(data: dict) -> Tokenizer:
    """Inverse of `to_dict()`. Raises ValueError or KeyError on a record that does not fit."""
    unit = data.get("unit", "char")
    if unit == "char":
        return CharTokenizer(data["tokens"])
    if unit == "word":
        return WordTokenizer(data["tokens"])
    tokenizer = SentencePieceTokenizer(data["model"], unit)
    if "tokens" in data and list(data["tokens"]) != tokenizer.tokens:
        raise ValueError("the token list does not match the sentencepiece model")
    return tokenizer
