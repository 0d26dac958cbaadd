"""Character tokenizer: tokens.txt holds one token per line, the blank at index 0.

The word separator is written `|` in tokens.txt (a space is easy to lose in a text file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from asr.atomic import write_text_atomic
from asr.errors import AsrError

BLANK = "<blank>"
SPACE = "|"


class CharTokenizer:
    def __init__(self, tokens: Sequence[str]):
        if not tokens or tokens[0] != BLANK:
            raise ValueError(f"the first token must be {BLANK}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("tokens must be unique")
        self.tokens = list(tokens)
        self._index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[str]) -> "CharTokenizer":
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

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, "".join(t + "\n" for t in self.tokens))

    @classmethod
    def load(cls, path: str | Path) -> "CharTokenizer":
        try:
            tokens = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise AsrError(f"{path}: cannot read token list ({e.strerror})") from None
        try:
            return cls(tokens)
        except ValueError as e:
            raise AsrError(f"{path}: {e}") from None
