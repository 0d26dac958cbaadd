"""The US Census Bureau's 1990 name lists: 88,799 surnames and 5,494 first names with their
frequencies (https://www2.census.gov/topics/genealogy/1990surnames/; US government work, public
domain). The AN4 recipe spells them into a letter LM for the names its speakers spell.

Each file has one name per line: NAME FREQUENCY CUMULATIVE-FREQUENCY RANK, e.g.
`SMITH          1.006  1.006      1`. The source archive of the PyPI package `names` (0.3.0) holds
copies of the three files, a way to get them where census.gov cannot be reached (`--source` its
`names/` folder).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from asr.corpora.common import download
from asr.errors import AsrError

URL = "https://www2.census.gov/topics/genealogy/1990surnames/"
FILES = ("dist.all.last", "dist.female.first", "dist.male.first")
ENV_VAR = "ASR_CENSUS_NAMES"
_LINE = re.compile(r"[A-Z]+(?:['-][A-Z]+)*\s+\d+\.\d+\s+\d+\.\d+\s+\d+")


def census_name_lists(source: str | Path | None, out_dir: str | Path) -> list[Path]:
    """The three lists in out_dir: copied from `source` (a folder holding them; default
    $ASR_CENSUS_NAMES), again at every call, or, with neither, downloaded from census.gov (once: a
    download already there is kept). Each is checked to be a name list (its first line) before it
    takes its place; otherwise, or if a file cannot be read or written, an AsrError names it."""
    out_dir = Path(out_dir)
    source = source or os.environ.get(ENV_VAR) or None
    if source is not None:
        folder = Path(source)
        if not folder.is_dir():
            raise AsrError(f"{folder}: no such folder (it should hold the census name lists {', '.join(FILES)})")
        missing = [name for name in FILES if not (folder / name).is_file()]
        if missing:
            raise AsrError(f"{folder}: no {', '.join(missing)} (the US Census 1990 name lists) in this folder")
    paths = []
    for name in FILES:
        dest = out_dir / name
        try:
            if source is not None:
                out_dir.mkdir(parents=True, exist_ok=True)
                part = dest.with_name(name + ".part")
                shutil.copyfile(Path(source) / name, part)
                check_name_list(part, shown=Path(source) / name)
                os.replace(part, dest)
            elif not dest.is_file():
                download(URL + name, dest, progress=False)
                try:
                    check_name_list(dest, shown=URL + name)
                except AsrError:
                    dest.unlink()  # not kept: the next call downloads it again
                    raise
        except OSError as e:
            raise AsrError(f"{dest}: cannot write the name list ({e.strerror or e})") from None
        paths.append(dest)
    return paths


def check_name_list(path: Path, shown: str | Path | None = None) -> None:
    """An AsrError, naming `shown` (default: the path), unless the file's first line reads as a
    census name list line."""
    shown = shown or path
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise AsrError(f"{shown}: cannot read name list ({e})") from None
    if not _LINE.fullmatch(first):
        raise AsrError(f"{shown}:1: not a census name list line (NAME FREQ CUM RANK): {first[:60]!r}")
