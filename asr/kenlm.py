"""KenLM's lmplz and build_binary: n-gram estimation at full corpus scale.

No PyPI wheel or Debian package ships lmplz, but the `kenlm` source distribution on PyPI holds
KenLM's whole source. `asr lm install-kenlm` (install_kenlm) downloads it from PyPI (checked
against PyPI's sha256), extracts it, builds `lmplz` and `build_binary` with cmake and make
(Debian: cmake, g++, libboost-program-options-dev, libboost-system-dev,
libboost-thread-dev, libboost-test-dev, zlib1g-dev, libbz2-dev, liblzma-dev) and keeps them in
a cache folder ($ASR_KENLM_DIR, default ~/.cache/asr/kenlm). `find_kenlm` looks there, then on
PATH. `asr lm build --backend kenlm` streams the text to lmplz, which sorts on disk within a
memory budget instead of holding every n-gram in Python: the Python estimator (asr.lm) stays
as the reference (the two agree within 1e-4 in log10, tested) and the fallback.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Iterable

from asr.atomic import atomic_path
from asr.errors import AsrError, first_line

KENLM_VERSION = "0.3.0"  # of the PyPI source distribution
KENLM_SHA256 = "c4628bb9fb63c8a6f9240035b8b037385cfc404cb72e933cf48878291edac1e8"
PYPI_SIMPLE = "https://pypi.org/simple/kenlm/"
TOOLS = ("lmplz", "build_binary")


def cache_dir() -> Path:
    return Path(os.environ.get("ASR_KENLM_DIR") or Path.home() / ".cache" / "asr" / "kenlm")


def find_kenlm() -> dict[str, Path] | None:
    """Paths of lmplz and build_binary (the cache folder's, else PATH's), or None."""
    cached = cache_dir() / "bin"
    found = {}
    for tool in TOOLS:
        path = cached / tool if (cached / tool).is_file() else shutil.which(tool)
        if path is None:
            return None
        found[tool] = Path(path)
    return found


def install_kenlm(jobs: int = 2, log=print) -> dict[str, Path]:
    """Build lmplz and build_binary from PyPI's kenlm source into the cache (once)."""
    if (found := find_kenlm()) is not None and all(p.parent == cache_dir() / "bin" for p in found.values()):
        log(f"KenLM tools already in {cache_dir() / 'bin'}")
        return found
    for tool in ("cmake", "make", "g++"):
        if shutil.which(tool) is None:
            raise AsrError(f"building KenLM needs {tool} (Debian: apt-get install cmake g++ "
                           "libboost-program-options-dev libboost-system-dev libboost-thread-dev "
                           "libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev)")
    from asr.corpora.archive import extract_tar

    with tempfile.TemporaryDirectory(prefix="asr-kenlm-") as tmp:
        archive = _download_sdist(Path(tmp), log)
        extract_tar(archive, Path(tmp) / "src")
        source = next((Path(tmp) / "src").iterdir())
        build = source / "build"
        build.mkdir()
        log(f"building lmplz and build_binary from {archive.name} ({jobs} jobs)")
        for cmd in (["cmake", "..", "-DCMAKE_BUILD_TYPE=Release", "-DKENLM_MAX_ORDER=6"],
                    ["make", f"-j{jobs}", *TOOLS]):
            r = subprocess.run(cmd, cwd=build, capture_output=True, text=True)
            if r.returncode:
                tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
                raise AsrError(f"building KenLM failed at `{' '.join(cmd[:2])}`: {' / '.join(tail)} "
                               "(are Boost's and zlib/bz2/lzma's development packages installed?)")
        target = cache_dir() / "bin"
        target.mkdir(parents=True, exist_ok=True)
        for tool in TOOLS:
            with atomic_path(target / tool) as t:
                shutil.copy2(build / "bin" / tool, t)
            os.chmod(target / tool, 0o755)
    log(f"KenLM tools in {target}")
    return find_kenlm()


def _download_sdist(folder: Path, log) -> Path:
    """kenlm-KENLM_VERSION.tar.gz from PyPI's simple index (PEP 691 JSON), checked against
    the sha256 pinned here."""
    name = f"kenlm-{KENLM_VERSION}.tar.gz"
    try:
        request = urllib.request.Request(PYPI_SIMPLE, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            entry = next(f for f in json.load(r)["files"] if f["filename"] == name)
        path = folder / name
        log(f"downloading {entry['url']}")
        with urllib.request.urlopen(entry["url"], timeout=120) as r, open(path, "wb") as f:
            shutil.copyfileobj(r, f)
    except (OSError, KeyError, StopIteration, ValueError) as e:
        raise AsrError(f"cannot download {name} from PyPI ({first_line(e) if str(e) else 'not listed'})") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != KENLM_SHA256:
        raise AsrError(f"{entry['url']}: sha256 {digest}, expected {KENLM_SHA256}")
    return path


def lmplz(sentences: Iterable[str], order: int, out: Path, prune: list[int] | None = None,
          memory: str = "20%", binary: Path | None = None) -> None:
    """Estimate a modified Kneser-Ney model of `sentences` (one string each) with lmplz and
    write it as ARPA to `out` (and, with `binary`, KenLM's binary form there)."""
    tools = find_kenlm()
    if tools is None:
        raise AsrError("the kenlm backend needs lmplz and build_binary: run `asr lm install-kenlm` "
                       "(or put them on PATH), or use --backend python")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(tools["lmplz"]), "-o", str(order), "-S", memory, "--discount_fallback"]
    if prune:
        cmd += ["--prune", *map(str, prune)]
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".lmplz-") as tmp, atomic_path(out) as arpa:
        cmd += ["-T", tmp, "--arpa", str(arpa)]
        err_path = Path(tmp) / "stderr"
        with open(err_path, "w") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
            try:
                for sentence in sentences:
                    proc.stdin.write((sentence + "\n").encode("utf-8"))
            except BrokenPipeError:
                pass  # lmplz stopped reading: its exit status and stderr say why
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            code = proc.wait()
        if code:
            lines = [ln for ln in err_path.read_text(errors="replace").splitlines() if ln.strip()]
            raise AsrError(f"lmplz failed ({lines[-1] if lines else f'exit status {code}'})")
    if binary is not None:
        with atomic_path(binary) as tmp_bin:
            r = subprocess.run([str(tools["build_binary"]), str(out), str(tmp_bin)], capture_output=True, text=True)
            if r.returncode:
                raise AsrError(f"build_binary failed ({(r.stderr.strip().splitlines() or ['?'])[-1]})")
