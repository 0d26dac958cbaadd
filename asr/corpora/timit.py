"""TIMIT (LDC93S1): phone recognition on read American English, 630 speakers in 8 dialect regions.

TIMIT is licensed by the LDC, so there is no download: `--source` takes the user's copy,
the folder holding TRAIN/ and TEST/ (or a folder up to two levels above it) or a .tar.gz
of it. Layout: {TRAIN,TEST}/DR1..DR8/<SPEAKER>/<SENTENCE>.{WAV,PHN,WRD,TXT}; names are
matched case-insensitively, since some copies are all lower case. The .WAV files are NIST
SPHERE, which soundfile reads.

Splits, the standard ones (the speaker lists are those of Kaldi's egs/timit/s5/conf):
  train  all of TRAIN (462 speakers), 3696 utterances
  dev    the 50-speaker development set, from TEST: 400 utterances
  test   the 24-speaker core test set, from TEST: 192 utterances
The other 94 TEST speakers are not used. The SA1/SA2 sentences, which every speaker
reads, are left out everywhere (as is standard: they would be learnt by heart).

Transcripts are the .PHN phone sequences, 61 symbols, folded to the 39 classes of
Lee & Hon (1989) with the table of Kaldi's conf/phones.60-48-39.map (`FOLD_61_TO_39`):
  - the closures bcl dcl gcl pcl tcl kcl, the pause pau, epenthetic silence epi and the
    begin/end marker h# all become `sil`;
  - the glottal stop q is removed;
  - ao->aa, ax ax-h->ah, axr->er, hv->hh, ix->ih, el->l, em->m, en nx->n, eng->ng,
    zh->sh, ux->uw; the other phones stay.
Then a run of `sil` (h# then a closure, say) becomes one `sil`: a CTC model cannot tell
two silences apart inside one silent stretch. (Kaldi keeps such runs, so PER here is not
counted over exactly the same tokens.) Training and scoring both use the 39 classes.
The manifest text is the folded phones, lower case and space-separated; the recipe makes
each phone a token (tokenizer unit "word"), so the WER it reports is the phone error rate.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from asr.corpora.common import PrepareReport, audio_duration, extract_once
from asr.errors import AsrError
from asr.manifest import Utterance, write_manifest

ENV_VAR = "ASR_TIMIT_SOURCE"  # the folder with TRAIN/ and TEST/, or a .tar.gz of it
DESCRIPTION = "TIMIT phone recognition, LDC93S1 (licensed by the LDC: pass your copy with --source)"
NO_SOURCE = (
    "TIMIT (LDC93S1) is licensed by the Linguistic Data Consortium and cannot be downloaded: pass your copy "
    f"(the folder with TRAIN/ and TEST/) with --source or ${ENV_VAR}"
)
PHONES_61 = tuple(
    "aa ae ah ao aw ax ax-h axr ay b bcl ch d dcl dh dx eh el em en eng epi er ey f g gcl h# hh hv ih ix iy jh k "
    "kcl l m n ng nx ow oy p pau pcl q r s sh t tcl th uh uw ux v w y z zh".split()
)
SILENCE = "sil"
_FOLDED = {
    "ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l", "em": "m", "en": "n",
    "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw", "q": None,
    **dict.fromkeys(("bcl", "dcl", "gcl", "pcl", "tcl", "kcl", "pau", "epi", "h#"), SILENCE),
}
FOLD_61_TO_39: dict[str, str | None] = {p: _FOLDED.get(p, p) for p in PHONES_61}  # None: removed
PHONES_39 = tuple(sorted({p for p in FOLD_61_TO_39.values() if p}))

# The 24 speakers of the core test set, 2 men and 1 woman per dialect region (DR1..DR8).
CORE_TEST_SPEAKERS = (
    "MDAB0", "MWBT0", "FELC0",  # DR1
    "MTAS1", "MWEW0", "FPAS0",  # DR2
    "MJMP0", "MLNT0", "FPKT0",  # DR3
    "MLLL0", "MTLS0", "FJLM0",  # DR4
    "MBPM0", "MKLT0", "FNLP0",  # DR5
    "MCMJ0", "MJDH0", "FMGD0",  # DR6
    "MGRT0", "MNJM0", "FDHC0",  # DR7
    "MJLN0", "MPAM0", "FMLD0",  # DR8
)
# The 50 speakers of the standard development set (from TEST, none in the core test set).
DEV_SPEAKERS = tuple(
    "FAKS0 FDAC1 FJEM0 MGWT0 MJAR0 MMDB1 MMDM2 MPDF0 FCMH0 FKMS0 MBDG0 MBWM0 MCSH0 FADG0 FDMS0 FEDW0 MGJF0 "
    "MGLB0 MRTK0 MTAA0 MTDT0 MTHC0 MWJG0 FNMR0 FREW0 FSEM0 MBNS0 MMJR0 MDLS0 MDLF0 MDVC0 MERS0 FMAH0 FDRW0 "
    "MRCS0 MRJM4 FCAL1 MMWH0 FJSJ0 MAJC0 MJSW0 MREB0 FGJD0 FJMG0 MROA0 MTEB0 MJFC0 MRJR0 FMML0 MRWS1".split()
)
EXPECTED = {"train": 3696, "dev": 400, "test": 192}  # utterances of a complete copy
_DIALECT_REGION = re.compile(r"^DR[1-8]$")


def fold_phones(phones: list[str]) -> list[str]:
    """61-phone sequence -> 39 classes, q removed, runs of sil merged into one."""
    out: list[str] = []
    for p in phones:
        folded = FOLD_61_TO_39[p]
        if folded is None or (folded == SILENCE and out and out[-1] == SILENCE):
            continue
        out.append(folded)
    return out


def read_phn(path: Path) -> list[str]:
    """The phones of a .PHN file (`<start sample> <end sample> <phone>` lines). Raises ValueError."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read ({e})") from None
    phones = []
    for n, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
            raise ValueError(f"line {n}: expected '<start sample> <end sample> <phone>'")
        phone = fields[2].lower()
        if phone not in FOLD_61_TO_39:
            raise ValueError(f"line {n}: '{fields[2]}' is not one of TIMIT's 61 phones")
        phones.append(phone)
    if not phones:
        raise ValueError("no phones")
    return phones


def child(folder: Path, name: str) -> Path | None:
    """The entry of `folder` called `name`, ignoring case."""
    for entry in folder.iterdir():
        if entry.name.upper() == name.upper():
            return entry
    return None


def subfolders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name.upper())


def is_timit_root(path: Path) -> bool:
    return path.is_dir() and all((c := child(path, name)) is not None and c.is_dir() for name in ("TRAIN", "TEST"))


def find_timit_root(path: Path) -> Path | None:
    if not path.is_dir():
        return None
    for candidate in (path, *subfolders(path), *(g for c in subfolders(path) for g in subfolders(c))):
        if is_timit_root(candidate):
            return candidate
    return None


def locate_timit(source: str | Path | None, work_dir: str | Path) -> Path:
    """The folder holding TRAIN/ and TEST/ of the user's copy, extracting an archive into work_dir."""
    source = source or os.environ.get(ENV_VAR) or None
    if source is None:
        raise AsrError(NO_SOURCE)
    path, work_dir = Path(source), Path(work_dir)
    if path.is_dir():
        root = find_timit_root(path)
        if root is None:
            raise AsrError(f"{path}: holds no TIMIT copy (a folder with TRAIN/ and TEST/)")
        return root
    if not path.is_file():
        raise AsrError(f"{path}: no such TIMIT archive or folder")
    return extract_once(path, work_dir, find_timit_root, "TIMIT (no folder with TRAIN/ and TEST/)")


def read_speaker(folder: Path, report: PrepareReport, split: str) -> tuple[list[Utterance], int]:
    """One speaker's utterances (SA sentences left out) and the number of SA sentences."""
    speaker = folder.name.upper()
    files = {p.name.upper(): p for p in folder.iterdir()}
    utts, n_sa = [], 0
    for name in sorted(n for n in files if n.endswith(".PHN")):
        sentence = name.removesuffix(".PHN")
        if sentence.startswith("SA"):
            n_sa += 1
            continue
        phn = files[name]
        try:
            phones = fold_phones(read_phn(phn))
            if f"{sentence}.WAV" not in files:
                raise ValueError(f"no {sentence}.WAV beside it")
            audio = files[f"{sentence}.WAV"]
            duration = audio_duration(audio)
        except ValueError as e:
            report.skip(split, f"{phn}: {e}")
            continue
        uid = f"{speaker}_{sentence}"
        utts.append(Utterance(uid, str(audio.resolve()), round(duration, 4), " ".join(phones), speaker))
    return utts, n_sa


def prepare_timit(root: str | Path, out_dir: str | Path) -> PrepareReport:
    """Write train.jsonl, dev.jsonl (50 speakers) and test.jsonl (core test set) under out_dir."""
    root, out_dir = Path(root), Path(out_dir)
    if not is_timit_root(root):
        raise AsrError(f"{root}: not a TIMIT folder (no TRAIN/ and TEST/ in it)")
    report = PrepareReport()
    wanted = {"dev": set(DEV_SPEAKERS), "test": set(CORE_TEST_SPEAKERS)}
    splits: dict[str, list[Utterance]] = {"train": [], "dev": [], "test": []}
    found: dict[str, set[str]] = {"dev": set(), "test": set()}
    n_sa, unused = 0, set()
    for part in ("TRAIN", "TEST"):
        for region in subfolders(child(root, part)):
            if not _DIALECT_REGION.match(region.name.upper()):
                continue
            for folder in subfolders(region):
                speaker = folder.name.upper()
                if part == "TRAIN":
                    split = "train"
                else:
                    split = next((s for s in ("dev", "test") if speaker in wanted[s]), None)
                    if split is None:
                        unused.add(speaker)
                        continue
                    found[split].add(speaker)
                utts, n = read_speaker(folder, report, split)
                splits[split] += utts
                n_sa += n
    for split, utts in splits.items():
        report.kept[split] = write_manifest(utts, out_dir / f"{split}.jsonl")
    report.notes.append(f"left out by rule: {n_sa} SA1/SA2 sentences; {len(unused)} TEST speakers outside the dev "
                        f"and core test sets")
    for split in ("dev", "test"):
        missing = sorted(wanted[split] - found[split])
        if missing:
            report.notes.append(f"{split}: {len(missing)} of its speakers not found: {' '.join(missing)}")
    report.notes.append("a complete TIMIT gives " + ", ".join(f"{s} {n}" for s, n in EXPECTED.items())
                        + " utterances; text: 39 phone classes (Lee & Hon), sil runs merged, q removed")
    return report


def add_arguments(parser) -> None:
    """TIMIT needs no options beyond --source and --out."""


def run_prepare(args) -> tuple[Path, PrepareReport]:
    root = locate_timit(args.source, args.out)
    return root, prepare_timit(root, Path(args.out) / "manifests")
