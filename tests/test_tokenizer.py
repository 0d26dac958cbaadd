import pytest

from asr.config import TokenizerConfig
from asr.errors import AsrError
from asr.tokenizer import (
    BLANK,
    SPACE,
    WORD_START,
    CharTokenizer,
    SentencePieceTokenizer,
    WordTokenizer,
    build_tokenizer,
    tokenizer_from_dict,
)


def test_round_trip_and_blank_first(tmp_path):
    tok = CharTokenizer.build(["ENTER SIX TWO", "GO", "B A O Z"])
    assert tok.tokens[0] == BLANK and tok.blank_id == 0 and SPACE in tok.tokens
    text = "ZERO SIX"
    ids = tok.encode(text)
    assert 0 not in ids and len(ids) == len(text)
    assert tok.decode(ids) == text
    assert tok.decode(tok.encode("  GO   SIX ")) == "GO SIX"
    tok.save(tmp_path / "tokens.txt")
    assert CharTokenizer.load(tmp_path / "tokens.txt").tokens == tok.tokens


def test_unknown_characters():
    tok = CharTokenizer.build(["AB"])
    with pytest.raises(KeyError):
        tok.encode("ABC")
    assert tok.decode(tok.encode("ABC", skip_unknown=True)) == "AB"
    assert not tok.can_encode("ABC") and tok.can_encode("BA")


def test_bad_token_files(tmp_path):
    (tmp_path / "t.txt").write_text("A\n<blank>\n")
    with pytest.raises(AsrError, match="first token"):
        CharTokenizer.load(tmp_path / "t.txt")
    with pytest.raises(AsrError, match="cannot read"):
        CharTokenizer.load(tmp_path / "missing.txt")


TEXTS = ["HELLO WORLD", "THE WORLD IS BIG", "HELLO THERE", "IT'S A BIG WORLD OUT THERE"] * 5


@pytest.mark.parametrize("unit", ["char", "word", "bpe", "unigram"])
def test_every_unit_round_trips_text(unit):
    tok = build_tokenizer(TokenizerConfig(unit=unit, vocab_size=30), TEXTS)
    assert tok.unit == unit and tok.tokens[0] == BLANK and tok.blank_id == 0
    for text in ["HELLO WORLD", "IT'S THE BIG WORLD", "  THERE   IS  "]:
        ids = tok.encode(text)
        assert ids and 0 not in ids and all(0 < i < len(tok) for i in ids)
        assert tok.decode(ids) == " ".join(text.split())
        assert tok.can_encode(text)
    # The same text gives the same model: training is deterministic.
    assert build_tokenizer(TokenizerConfig(unit=unit, vocab_size=30), TEXTS).tokens == tok.tokens
    again = tokenizer_from_dict(tok.to_dict())
    assert type(again) is type(tok) and again.tokens == tok.tokens and again.encode("HELLO THERE") == tok.encode(
        "HELLO THERE")


def test_word_units():
    tok = WordTokenizer.build(["sil aa b", "b sil"])
    assert tok.tokens == [BLANK, "aa", "b", "sil"] and tok.separator is None
    assert tok.encode("sil b aa") == [3, 2, 1] and tok.decode([3, 0, 2, 1]) == "sil b aa"
    with pytest.raises(KeyError):
        tok.encode("sil zz")
    assert tok.encode("sil zz", skip_unknown=True) == [3] and not tok.can_encode("zz")
    # LM words come upper-cased: spelled with the token of any case.
    assert tok.spell("AA") == ["aa"] and tok.spell("sil") == ["sil"] and tok.spell("ZZ") is None
    assert tok.word_groups([3, 2, 2]) == [[0], [1], [2]]
    with pytest.raises(ValueError, match="whitespace"):
        WordTokenizer([BLANK, "a b"])


def test_sentencepiece_units(tmp_path):
    tok = SentencePieceTokenizer.build(TEXTS, "bpe", vocab_size=40)
    assert tok.separator is None and all(" " not in t for t in tok.tokens)
    pieces = [tok.tokens[i] for i in tok.encode("HELLO THERE")]
    assert pieces[0].startswith(WORD_START) and "".join(pieces).replace(WORD_START, " ").split() == ["HELLO", "THERE"]
    assert tok.spell("HELLO") == [tok.tokens[i] for i in tok.encode("HELLO")] and tok.spell("HELLO THERE") is None
    # Characters it never saw: <unk> pieces, refused or dropped.
    assert not tok.can_encode("HELLO ZEBRA") and tok.spell("ZEBRA") is None
    with pytest.raises(KeyError):
        tok.encode("ZEBRA")
    assert tok.decode(tok.encode("HELLO ZEBRA", skip_unknown=True)) == "HELLO EBRA"
    ids = tok.encode("HELLO BIG WORLD")
    groups = tok.word_groups(ids)
    assert [tok.decode([ids[k] for k in g]) for g in groups] == ["HELLO", "BIG", "WORLD"]
    tok.save(tmp_path / "tokenizer.model")
    import sentencepiece as spm

    assert spm.SentencePieceProcessor(model_file=str(tmp_path / "tokenizer.model")).get_piece_size() == len(tok) - 1
    assert SentencePieceTokenizer.load(tmp_path / "tokenizer.model", "bpe").tokens == tok.tokens
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(AsrError, match="not a sentencepiece model"):
        SentencePieceTokenizer.load(tmp_path / "bad.model")
    record = tok.to_dict()
    with pytest.raises(ValueError, match="does not match"):
        tokenizer_from_dict({**record, "tokens": record["tokens"][:-1]})
    with pytest.raises(AsrError, match="no training text"):
        SentencePieceTokenizer.build(["", " "], "unigram", 10)
