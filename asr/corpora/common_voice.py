"""Mozilla Common Voice: one language of a release that the user has downloaded.

Common Voice is not downloaded here: its releases are handed out only after accepting
the terms on the website. `--source` takes the extracted language folder
(`cv-corpus-<version>/<lang>/` with train.tsv, dev.tsv, test.tsv and clips/*.mp3), a folder
above it, or the release's .tar.gz. The official train/dev/test splits are used as they
are (their speakers and sentences do not overlap); validated.tsv, other.tsv and
invalidated.tsv are not used.

TSV columns are found by their header names, so every release's layout works (newer
ones add sentence_id, sentence_domain, variant). Sentences hold quote characters, so
the files are read with quoting turned off. speaker = client_id; id = the clip's file name
without .mp3. Durations come from the MP3 headers through soundfile (libsndfile >= 1.1
reads MP3).

Text normalization (`normalize_sentence`), the same for every split:
  1. Unicode NFC; the apostrophe look-alikes ’ ʼ ‘ ` ´ become '.
  2. Upper-case with Python's full case mapping (so German ß becomes SS). Turkish,
     Azerbaijani, Crimean Tatar and Gagauz map i -> İ and ı -> I first: plain upper-casing
     would merge the dotted and dotless i. Upper case is what scoring compares in
     (asr.scoring.normalize_text), so a normalized text is left unchanged by it.
  3. Punctuation, symbols and other separators become spaces; format characters
     (zero-width joiners, soft hyphens) are dropped; an apostrophe stays only between
     two letters (l'homme, don't), elsewhere it is a quote mark and goes.
The character set is the letters of the language's scripts (Unicode script property),
combining marks, the word-internal apostrophe and the space. Unless `scripts` is given,
the scripts are those that hold at least 1% of the letters of the release's sentences.
An utterance with any other character (a digit, since numbers are not written out as
words; a letter of another script) is skipped and counted: its audio says something
the text cannot spell. The report and `characters.txt` beside the manifests show the
decision and the resulting character inventory.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path

from fontTools import unicodedata as ucd

from asr.atomic import write_text_atomic
from asr.corpora.common import PrepareReport, audio_duration, extract_once
from asr.errors import AsrError
from asr.manifest import Utterance, write_manifest

ENV_VAR = "ASR_COMMON_VOICE_SOURCE"  # the extracted language folder or the release .tar.gz
LANGUAGE_ENV_VAR = "ASR_COMMON_VOICE_LANGUAGE"
DESCRIPTION = "Mozilla Common Voice, one language of a release you downloaded (no download: the terms must be accepted)"
NO_SOURCE = (
    "Common Voice cannot be downloaded by this tool: accept the terms and download a release at "
    "https://commonvoice.mozilla.org/datasets, then pass its language folder (cv-corpus-<version>/<lang>) "
    f"or the .tar.gz with --source or ${ENV_VAR}"
)
SPLITS = ("train", "dev", "test")
REQUIRED_COLUMNS = ("client_id", "path", "sentence")
MIN_SCRIPT_SHARE = 0.01  # scripts with fewer of the letters are not part of the character set
DOTTED_I_LANGUAGES = ("tr", "az", "crh", "gag")
APOSTROPHES = str.maketrans({c: "'" for c in "’ʼ‘`´"})
NEUTRAL_SCRIPTS = ("Zyyy", "Zinh")  # Common, Inherited: letters shared by several scripts


def upper_case(text: str, language: str) -> str:
    """Upper-case `text`; languages with a dotted and a dotless i keep them apart."""
    if language.split("-")[0].lower() in DOTTED_I_LANGUAGES:
        text = text.replace("i", "İ").replace("ı", "I")
    return text.upper()


def normalize_sentence(sentence: str, language: str) -> str:
    """A Common Voice sentence as a training transcript (see the module docstring)."""
    text = unicodedata.normalize("NFC", sentence).translate(APOSTROPHES)
    text = unicodedata.normalize("NFC", upper_case(text, language))
    chars = []
    for c in text:
        category = unicodedata.category(c)
        if c == "'" or category[0] in "LMN":  # digits stay here; they fall outside the character set
            chars.append(c)
        elif category != "Cf":
            chars.append(" ")
    for i, c in enumerate(chars):
        if c == "'" and not (0 < i < len(chars) - 1 and _is_letter(chars[i - 1]) and _is_letter(chars[i + 1])):
            chars[i] = ""
    return " ".join("".join(chars).split())


def _is_letter(c: str) -> bool:
    return unicodedata.category(c)[0] in "LM"


def letter_scripts(texts: list[str]) -> Counter:
    """Letters per script (ISO 15924 code) in `texts`, leaving out letters shared by scripts."""
    chars = Counter()
    for text in texts:
        chars.update(text)
    scripts = Counter()
    for c, n in chars.items():
        if unicodedata.category(c)[0] == "L" and ucd.script(c) not in NEUTRAL_SCRIPTS:
            scripts[ucd.script(c)] += n
    return scripts


def choose_scripts(texts: list[str]) -> tuple[str, ...]:
    """The scripts that hold at least MIN_SCRIPT_SHARE of the letters in `texts`."""
    counts = letter_scripts(texts)
    total = sum(counts.values())
    return tuple(sorted(s for s, n in counts.items() if n >= MIN_SCRIPT_SHARE * total))


def parse_scripts(text: str) -> tuple[str, ...]:
    """'Latin,Cyrillic' or 'Latn,Cyrl' -> ISO 15924 codes."""
    codes = []
    for name in (s.strip() for s in text.split(",") if s.strip()):
        code = ucd.script_code(name, default=None)
        if code is None and ucd.script_name(name.title(), default=None):
            code = name.title()
        if code is None:
            raise AsrError(f"--scripts: unknown Unicode script '{name}' (e.g. Latin, Cyrillic, Greek, Han)")
        codes.append(code)
    if not codes:
        raise AsrError("--scripts: no script given")
    return tuple(sorted(set(codes)))


@lru_cache(maxsize=100_000)
def in_character_set(c: str, scripts: tuple[str, ...]) -> bool:
    """Whether `c` may stand in a normalized transcript of a language written in `scripts`."""
    if c in " '":
        return True
    category = unicodedata.category(c)
    if category[0] == "M":
        return True
    if category[0] != "L":
        return False
    script = ucd.script(c)
    if script in NEUTRAL_SCRIPTS:
        return bool(set(ucd.script_extension(c)) & set(scripts))
    return script in scripts


def outside_characters(text: str, scripts: tuple[str, ...]) -> str:
    return "".join(sorted({c for c in text if not in_character_set(c, scripts)}))


def is_language_folder(path: Path) -> bool:
    return (path / "train.tsv").is_file() and (path / "clips").is_dir()


def find_language_folders(path: Path) -> list[Path]:
    """Folders at `path` or up to two levels below it that hold a Common Voice language."""
    if is_language_folder(path):
        return [path]  # without listing its (many) clips
    children = sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
    found = []
    for child in children:
        if is_language_folder(child):
            found.append(child)
        else:
            found += sorted(g for g in child.iterdir() if g.is_dir() and is_language_folder(g))
    return found


def pick_language(folders: list[Path], where: Path, language: str | None) -> Path:
    if not folders:
        raise AsrError(f"{where}: holds no Common Voice language folder (train.tsv, dev.tsv, test.tsv, clips/)")
    if len(folders) == 1:
        return folders[0]
    named = [f for f in folders if f.name == language]
    if language and named:
        return named[0]
    names = ", ".join(f.name for f in folders)
    raise AsrError(f"{where}: holds several languages ({names}); choose one with --language or ${LANGUAGE_ENV_VAR}")


def locate_common_voice(source: str | Path | None, work_dir: str | Path, language: str | None = None) -> Path:
    """The language folder of the user's Common Voice copy, extracting a .tar.gz into work_dir.

    There is no download: without `source` (or $ASR_COMMON_VOICE_SOURCE) this raises an
    AsrError that says where to get a release.
    """
    source = source or os.environ.get(ENV_VAR) or None
    if source is None:
        raise AsrError(NO_SOURCE)
    path, work_dir = Path(source), Path(work_dir)
    if path.is_dir():
        return pick_language(find_language_folders(path), path, language)
    if not path.is_file():
        raise AsrError(f"{path}: no such Common Voice archive or folder")
    extracted = extract_once(path, work_dir, lambda p: p if find_language_folders(p) else None,
                             "a Common Voice language folder (train.tsv and clips/)")
    return pick_language(find_language_folders(extracted), path, language)


def read_tsv(path: Path, report: PrepareReport, split: str) -> list[tuple[int, dict]]:
    """(line number, row) for each well-formed row of a Common Voice TSV file."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise AsrError(f"{path}: not a Common Voice TSV file (no '{missing[0]}' column in its header)")
            rows = []
            for row in reader:
                if None in row or None in row.values():
                    report.skip(split, f"{path}:{reader.line_num}: expected {len(header)} tab-separated columns")
                    continue
                rows.append((reader.line_num, row))
            return rows
    except FileNotFoundError:
        raise AsrError(f"{path.parent}: incomplete Common Voice copy (no {path.name})") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise AsrError(f"{path}: cannot read ({e})") from None


def clip_path(clips: Path, name: str) -> Path:
    """The clip a TSV row names; the earliest releases leave out the .mp3 extension."""
    path = clips / name
    if not path.suffix and not path.exists():
        path = path.with_name(name + ".mp3")
    return path


def detect_language(root: Path, rows: dict[str, list[tuple[int, dict]]]) -> tuple[str, str]:
    """(language, where it came from): the locale column, else the folder name."""
    for split_rows in rows.values():
        for _, row in split_rows:
            if row.get("locale"):
                return row["locale"], "locale column"
    return root.name, "folder name"


def prepare_common_voice(
    root: str | Path, out_dir: str | Path, language: str | None = None, scripts: tuple[str, ...] | None = None
) -> PrepareReport:
    """Write train.jsonl, dev.jsonl, test.jsonl and characters.txt for one language under out_dir."""
    root, out_dir = Path(root), Path(out_dir)
    report = PrepareReport()
    rows = {split: read_tsv(root / f"{split}.tsv", report, split) for split in SPLITS}
    how = "given"
    if not language:
        language, how = detect_language(root, rows)
    texts = {
        split: [normalize_sentence(row["sentence"], language) for _, row in split_rows]
        for split, split_rows in rows.items()
    }
    all_texts = [t for split_texts in texts.values() for t in split_texts]
    letters = letter_scripts(all_texts)
    scripts_how = "given" if scripts else f"scripts with at least {MIN_SCRIPT_SHARE:.0%} of the letters"
    scripts = scripts or choose_scripts(all_texts)
    if not scripts:
        raise AsrError(f"{root}: no letters in any sentence; cannot choose a character set")
    utts_by_split, outside = {}, Counter()
    for split in SPLITS:
        utts_by_split[split], outside[split] = make_utterances(root, split, rows[split], texts[split], scripts, report)
    inventory = Counter(c for utts in utts_by_split.values() for u in utts for c in u.text)
    for split, utts in utts_by_split.items():
        report.kept[split] = write_manifest(utts, out_dir / f"{split}.jsonl")
    write_text_atomic(out_dir / "characters.txt", "".join(
        f"{'<space>' if c == ' ' else c}\t{n}\n" for c, n in sorted(inventory.items())))
    report.notes += describe_character_set(language, how, scripts, scripts_how, letters, inventory, outside)
    return report


def make_utterances(
    root: Path, split: str, rows: list[tuple[int, dict]], texts: list[str], scripts: tuple[str, ...],
    report: PrepareReport,
) -> tuple[list[Utterance], int]:
    """One split's utterances with checked audio, and how many had characters outside the set."""
    clips = (root / "clips").resolve()
    utts, seen, n_outside = [], set(), 0
    for (line, row), text in zip(rows, texts):
        where = f"{root / f'{split}.tsv'}:{line}"
        odd = outside_characters(text, scripts)
        if odd:
            n_outside += 1
            report.skip(split, f"{where}: characters outside the character set: {' '.join(odd)}")
            continue
        if not text:
            report.skip(split, f"{where}: empty transcript after normalization")
            continue
        if not row["client_id"]:
            report.skip(split, f"{where}: no client_id")
            continue
        audio = clip_path(clips, row["path"])
        uid = audio.name.removesuffix(".mp3")
        if re.search(r"[\s()]", uid + row["client_id"]):
            report.skip(split, f"{where}: clip or client id with spaces or parentheses (sclite cannot score it)")
            continue
        if uid in seen:
            report.skip(split, f"{where}: clip '{row['path']}' listed twice")
            continue
        try:
            duration = audio_duration(audio)
        except ValueError as e:
            report.skip(split, f"{where}: {audio.name}: {e}")
            continue
        seen.add(uid)
        utts.append(Utterance(uid, str(audio), round(duration, 4), text, row["client_id"]))
    return utts, n_outside


def describe_character_set(
    language: str, how: str, scripts: tuple[str, ...], scripts_how: str,
    letters: Counter, inventory: Counter, outside: Counter,
) -> list[str]:
    """The report lines that record the text normalization and character set decisions."""
    total = sum(letters.values()) or 1
    shares = ", ".join(f"{ucd.script_name(s)} {100 * n / total:.2f}%" for s, n in letters.most_common(5))
    names = ", ".join(ucd.script_name(s) for s in scripts)
    chars = "".join(sorted(c for c in inventory if c != " "))
    shown = chars if len(chars) <= 120 else chars[:120] + " ..."
    casing = "upper-case"
    if language.split("-")[0].lower() in DOTTED_I_LANGUAGES:
        casing += ", dotted/dotless i kept apart"
    skipped = ", ".join(f"{split} {outside[split]}" for split in SPLITS)
    text_rule = f"NFC, {casing}, punctuation and symbols removed, apostrophes inside words kept"
    kept = f"{names} letters ({scripts_how}; letters by script: {shares}), combining marks, apostrophe, space"
    return [
        f"language: {language} ({how}); text: {text_rule}",
        f"character set: {kept}",
        f"character inventory ({len(chars)} + space, counts in characters.txt): {shown}",
        f"utterances skipped for characters outside the set: {skipped}",
    ]


def add_arguments(parser) -> None:
    parser.add_argument("--language", default=os.environ.get(LANGUAGE_ENV_VAR) or None,
                        help="language code, e.g. en, ru, tr (default: the release's locale column, else the folder "
                             f"name; ${LANGUAGE_ENV_VAR}); picks the folder when the source holds several")
    parser.add_argument("--scripts", help="Unicode scripts of the character set, e.g. Latin or Cyrillic,Latin "
                                          "(default: those with at least 1%% of the letters)")


def run_prepare(args) -> tuple[Path, PrepareReport]:
    scripts = parse_scripts(args.scripts) if args.scripts else None
    root = locate_common_voice(args.source, args.out, args.language)
    return root, prepare_common_voice(root, Path(args.out) / "manifests", args.language, scripts)
