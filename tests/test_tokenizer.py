import pytest

from asr.errors import AsrError
from asr.tokenizer import BLANK, SPACE, CharTokenizer


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
