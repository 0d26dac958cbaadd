"""Common Voice: fake English and Russian releases in the real layout, manifests checked exactly."""

import tarfile

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from asr.corpora.common_voice import (
    choose_scripts,
    in_character_set,
    locate_common_voice,
    normalize_sentence,
    parse_scripts,
    prepare_common_voice,
)
from asr.errors import AsrError
from asr.manifest import Utterance, read_manifest
from asr.scoring import normalize_text

# The header of recent releases (sentence_id, sentence_domain, variant added) ...
NEW_HEADER = ("client_id path sentence_id sentence sentence_domain up_votes down_votes age gender accents variant "
              "locale segment")
# ... and of older ones (accent, not accents; no sentence_id).
OLD_HEADER = "client_id path sentence up_votes down_votes age gender accent locale segment"


def write_mp3(path, seconds, rate=48000):
    n = int(seconds * rate)
    sf.write(str(path), 0.2 * np.sin(np.arange(n) / 7), rate, format="MP3")


def write_tsv(path, header, rows):
    columns = header.split()
    lines = ["\t".join(columns)]
    for row in rows:
        if isinstance(row, str):  # a malformed line, written as it is
            lines.append(row)
        else:
            lines.append("\t".join(row.get(c, "") for c in columns))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def row(client, path, sentence, locale):
    return {"client_id": client, "path": path, "sentence": sentence, "up_votes": "2", "down_votes": "0",
            "locale": locale, "sentence_id": "abc", "sentence_domain": "", "variant": "", "accents": ""}


def fake_english(base):
    lang = base / "cv-corpus-99.0-2099-01-01" / "en"
    (lang / "clips").mkdir(parents=True)
    for name, seconds in (("common_voice_en_1", 1.0), ("common_voice_en_2", 0.5), ("common_voice_en_4", 0.75),
                          ("common_voice_en_5", 1.3), ("common_voice_en_6", 0.5), ("common_voice_en_7", 0.5),
                          ("common_voice_en_8", 1.0), ("common_voice_en_9", 0.5)):
        write_mp3(lang / "clips" / f"{name}.mp3", seconds)
    (lang / "clips" / "common_voice_en_10.mp3").write_bytes(b"ID3 not really an mp3")
    write_tsv(lang / "train.tsv", NEW_HEADER, [
        row("aaa", "common_voice_en_1.mp3", '"Don’t stop," she said — it\'s fine.', "en"),
        row("bbb", "common_voice_en_2.mp3", "It costs 5 dollars.", "en"),
        row("aaa", "common_voice_en_3.mp3", "This clip is missing from clips.", "en"),
        "ccc\tcommon_voice_en_4.mp3\ttoo few columns",
        row("ccc", "common_voice_en_4", "The café's naïve owner, Zoë.", "en"),  # earliest releases: no .mp3
        row("ddd", "common_voice_en_5.mp3", "Rock 'n' roll; the students' books!", "en"),
        row("ddd", "common_voice_en_6.mp3", "The value of π is three.", "en"),
        row("ddd", "common_voice_en_7.mp3", "...", "en"),
        row("ddd", "common_voice_en_5.mp3", "Listed twice.", "en"),
    ])
    write_tsv(lang / "dev.tsv", NEW_HEADER, [row("eee", "common_voice_en_8.mp3", "Well-known U.S. places.", "en")])
    write_tsv(lang / "test.tsv", NEW_HEADER, [
        row("fff", "common_voice_en_9.mp3", "Yes, “quoted” words.", "en"),
        row("fff", "common_voice_en_10.mp3", "A corrupt clip.", "en"),
    ])
    return lang


def fake_russian(base):
    lang = base / "ru"
    (lang / "clips").mkdir(parents=True)
    for i, seconds in enumerate((1.0, 0.5, 0.75, 0.5), start=1):
        write_mp3(lang / "clips" / f"common_voice_ru_{i}.mp3", seconds, rate=32000)
    write_tsv(lang / "train.tsv", OLD_HEADER, [
        row("r1", "common_voice_ru_1.mp3", "«Ёлки-палки», — сказал он; „Всё хорошо“.", "ru"),
        row("r2", "common_voice_ru_2.mp3", "В 2020 году было тепло.", "ru"),
        # A Latin "p" typed for the Cyrillic "р": outside the (Cyrillic) character set.
        row("r2", "common_voice_ru_3.mp3", "Пpивет из Москвы, дорогие друзья, коллеги, соседи и все наши слушатели!",
            "ru"),
    ])
    write_tsv(lang / "dev.tsv", OLD_HEADER, [row("r3", "common_voice_ru_4.mp3", "Подъезд, объявление и съёмка.", "ru")])
    write_tsv(lang / "test.tsv", OLD_HEADER, [])
    return lang


@pytest.mark.parametrize("sentence, language, expected", [
    ('"Don’t stop," she said — it\'s fine.', "en", "DON'T STOP SHE SAID IT'S FINE"),
    ("Rock 'n' roll; the students' books!", "en", "ROCK N ROLL THE STUDENTS BOOKS"),
    ("l’homme… qu'il", "fr", "L'HOMME QU'IL"),
    ("Straße", "de", "STRASSE"),
    ("İstanbul'da ılık bir gün; Iğdır.", "tr", "İSTANBUL'DA ILIK BİR GÜN IĞDIR"),
    ("istanbul", "en", "ISTANBUL"),  # only the dotted-i languages map i -> İ
    ("Καλημέρα, τι κάνεις;", "el", "ΚΑΛΗΜΈΡΑ ΤΙ ΚΆΝΕΙΣ"),
    ("«Ёлки-палки», — сказал он.", "ru", "ЁЛКИ ПАЛКИ СКАЗАЛ ОН"),
    ("cafe\u0301", "fr", "CAFÉ"),  # decomposed é composed (NFC)
    ("zero\u200bwidth soft\u00adhyphen", "en", "ZEROWIDTH SOFTHYPHEN"),
    ("It costs 5 dollars.", "en", "IT COSTS 5 DOLLARS"),  # digits stay, to be found outside the set
])
def test_normalize_sentence(sentence, language, expected):
    text = normalize_sentence(sentence, language)
    assert text == expected
    assert normalize_text(text) == text  # scoring's normalization leaves it as it is


def test_character_set_by_script():
    assert choose_scripts(["ABC" * 40 + "Π"]) == ("Latn",)  # under 1% of the letters
    assert choose_scripts(["ЁЖ", "ABC"]) == ("Cyrl", "Latn")
    assert choose_scripts(["コーヒーを飲みます", "カタカナ"]) == ("Hani", "Hira", "Kana")
    assert in_character_set("ー", ("Hani", "Hira", "Kana"))  # Common script, used by kana
    assert not in_character_set("ー", ("Latn",))
    assert in_character_set("\u0301", ("Cyrl",)) and in_character_set("'", ("Grek",))
    assert not in_character_set("5", ("Latn",)) and not in_character_set("Ж", ("Latn",))
    assert parse_scripts("Latin, cyrl") == ("Cyrl", "Latn")
    with pytest.raises(AsrError, match="unknown Unicode script 'Klingon'"):
        parse_scripts("Klingon")


def test_english_release_manifests(tmp_path):
    lang = fake_english(tmp_path / "src")
    report = prepare_common_voice(lang, tmp_path / "m")
    clips = lang.resolve() / "clips"

    def utt(n, duration, text, speaker):
        return Utterance(f"common_voice_en_{n}", str(clips / f"common_voice_en_{n}.mp3"), duration, text, speaker)

    assert read_manifest(tmp_path / "m" / "train.jsonl") == [
        utt(1, 1.0, "DON'T STOP SHE SAID IT'S FINE", "aaa"),
        utt(4, 0.75, "THE CAFÉ'S NAÏVE OWNER ZOË", "ccc"),
        utt(5, 1.3, "ROCK N ROLL THE STUDENTS BOOKS", "ddd"),
    ]
    assert read_manifest(tmp_path / "m" / "dev.jsonl") == [utt(8, 1.0, "WELL KNOWN U S PLACES", "eee")]
    assert read_manifest(tmp_path / "m" / "test.jsonl") == [utt(9, 0.5, "YES QUOTED WORDS", "fff")]
    assert report.kept == {"train": 3, "dev": 1, "test": 1}
    train_tsv = lang / "train.tsv"
    assert report.skipped["train"] == [
        f"{train_tsv}:5: expected 13 tab-separated columns",
        f"{train_tsv}:3: characters outside the character set: 5",
        f"{train_tsv}:4: common_voice_en_3.mp3: audio file missing",
        f"{train_tsv}:8: characters outside the character set: Π",
        f"{train_tsv}:9: empty transcript after normalization",
        f"{train_tsv}:10: clip 'common_voice_en_5.mp3' listed twice",
    ]
    assert report.skipped["test"][0].startswith(f"{lang / 'test.tsv'}:3: common_voice_en_10.mp3: unreadable audio")
    notes = "\n".join(report.notes)
    assert "language: en (locale column)" in notes
    assert "character set: Latin letters" in notes
    assert "utterances skipped for characters outside the set: train 2, dev 0, test 0" in notes
    chars = dict(line.split("\t") for line in (tmp_path / "m" / "characters.txt").read_text().splitlines())
    assert chars["<space>"] == "20" and chars["'"] == "3" and chars["É"] == "1" and "Π" not in chars


def test_russian_release_through_the_command_line(tmp_path, capsys):
    lang = fake_russian(tmp_path)
    assert main(["prepare", "common_voice", "--source", str(tmp_path), "--out", str(tmp_path / "work")]) == 0
    clips = lang.resolve() / "clips"
    m = tmp_path / "work" / "manifests"
    assert read_manifest(m / "train.jsonl") == [
        Utterance("common_voice_ru_1", str(clips / "common_voice_ru_1.mp3"), 1.0, "ЁЛКИ ПАЛКИ СКАЗАЛ ОН ВСЁ ХОРОШО",
                  "r1"),
    ]
    assert read_manifest(m / "dev.jsonl") == [
        Utterance("common_voice_ru_4", str(clips / "common_voice_ru_4.mp3"), 0.5, "ПОДЪЕЗД ОБЪЯВЛЕНИЕ И СЪЁМКА", "r3"),
    ]
    assert (m / "test.jsonl").read_text() == ""  # an empty split stays an empty manifest
    out = capsys.readouterr().out
    assert "train: 1 utterances kept, 2 skipped" in out
    assert "characters outside the character set: 0 2" in out and "characters outside the character set: P" in out
    assert "language: ru (locale column)" in out and "character set: Cyrillic letters" in out
    assert "character inventory (20 + space, counts in characters.txt): ЁАБВДЕЗИКЛМНОПРСХШЪЯ" in out


def test_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("ASR_COMMON_VOICE_SOURCE", raising=False)
    with pytest.raises(AsrError, match="accept the terms"):
        locate_common_voice(None, tmp_path / "work")
    with pytest.raises(AsrError, match="no such Common Voice archive or folder"):
        locate_common_voice(tmp_path / "nope.tar.gz", tmp_path / "work")
    en = fake_english(tmp_path / "release")
    ru = fake_russian(en.parent)
    release = en.parent
    with pytest.raises(AsrError, match=r"several languages \(en, ru\); choose one with --language"):
        locate_common_voice(release, tmp_path / "work")
    assert locate_common_voice(release, tmp_path / "work", "ru") == ru
    assert locate_common_voice(en, tmp_path / "work", "xx") == en  # a language folder is used as it is
    with tarfile.open(tmp_path / "en.tar.gz", "w:gz") as tar:
        tar.add(en, arcname="cv-corpus-99.0-2099-01-01/en")
    root = locate_common_voice(tmp_path / "en.tar.gz", tmp_path / "work")
    assert root == tmp_path / "work" / "corpus" / "cv-corpus-99.0-2099-01-01" / "en"
    assert (root / "clips" / "common_voice_en_1.mp3").is_file()
    (en / "dev.tsv").unlink()
    with pytest.raises(AsrError, match="incomplete Common Voice copy \\(no dev.tsv\\)"):
        prepare_common_voice(en, tmp_path / "m")
    (en / "dev.tsv").write_text("path\tsentence\nx.mp3\thello\n")
    with pytest.raises(AsrError, match="not a Common Voice TSV file \\(no 'client_id' column"):
        prepare_common_voice(en, tmp_path / "m")
