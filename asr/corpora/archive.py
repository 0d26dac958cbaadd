"""Extracting corpus archives without trusting them, on any Python version.

tarfile's own "data" filter checks link targets with os.path.realpath, which some Python
releases get wrong (CVE-2025-4517: a chain of symlinks over long path components makes a
link look inside the folder while it points outside). This extractor does not depend on it:

- every member name must be relative, without `..` components (else the archive is refused);
- regular files and folders are written by this code, never through a link: no symbolic
  link is ever created on disk, so no later member can be written through one;
- a symbolic or hard link member whose target, resolved inside the archive's own name
  space, is a regular file of the archive becomes a copy of that file (corpora such as
  TED-LIUM 3 may share audio between splits that way); any other link (to a folder, to a
  path outside the archive, to nothing, or a cycle) refuses the archive;
- devices, FIFOs and other special members refuse the archive;
- modes come from umask (files 0644, folders 0755 before it), not from the archive.
"""

from __future__ import annotations

import lzma
import os
import posixpath
import re
import shutil
import tarfile
import zlib
from pathlib import Path

from asr.errors import AsrError, first_line

MAX_LINK_HOPS = 40  # as the kernel's limit on symbolic links followed in one lookup
MAX_NAME_BYTES, MAX_PART_BYTES, MAX_DEPTH = 4096, 255, 256  # PATH_MAX, NAME_MAX, and far deeper than any corpus


class UnsafeMember(Exception):
    """A member that would write outside the target folder or is not plain data."""


def extract_tar(archive: str | Path, dest: str | Path) -> int:
    """Extract `archive` (.tar, .tar.gz, .tar.bz2, .tar.xz) into `dest`; returns the number of
    files written. Raises AsrError naming the archive (and the member) when it is unreadable
    or holds a member that is unsafe (see the module docstring)."""
    archive, dest = Path(archive), Path(dest)
    try:
        with tarfile.open(archive) as tar:  # mode "r": any compression tarfile knows
            return _extract_members(tar, dest)
    except UnsafeMember as e:
        raise AsrError(f"{archive}: refusing to extract ({e})") from None
    except tarfile.ReadError as e:
        if "could not be opened" in str(e):
            raise AsrError(f"{archive}: cannot extract archive (not a readable .tar, .tar.gz, .tar.bz2 or .tar.xz; "
                           "truncated?)") from None
        raise AsrError(f"{archive}: cannot extract archive ({first_line(e)})") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError, UnicodeError) as e:
        raise AsrError(f"{archive}: cannot extract archive ({first_line(e)})") from None


def member_path(name: str) -> str:
    """The normalized relative path of a member name; UnsafeMember if it is absolute, has a
    drive letter, or a `..` component."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        raise UnsafeMember(f"member {name!r} has an absolute path")
    if len(clean.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise UnsafeMember(f"member {name[:80]!r}...: name longer than {MAX_NAME_BYTES} bytes")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if len(parts) > MAX_DEPTH or any(len(p.encode("utf-8", "surrogateescape")) > MAX_PART_BYTES for p in parts):
        raise UnsafeMember(f"member {name[:80]!r}...: more than {MAX_DEPTH} folders deep or a name part over "
                           f"{MAX_PART_BYTES} bytes")
    if ".." in parts:
        raise UnsafeMember(f"member {name!r} leads outside the target folder ('..')")
    if any("\0" in p for p in parts):
        raise UnsafeMember(f"member {name!r} has a NUL byte in its name")
    return "/".join(parts)


def _extract_members(tar: tarfile.TarFile, dest: Path) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    files: set[str] = set()
    folders: set[str] = set()
    links: dict[str, tuple[str, str]] = {}  # path -> (name of the member, target path in the archive)
    for member in tar:  # streamed: members are read in order, once
        path = member_path(member.name)
        if not path:  # the archive's "." entry
            continue
        _refuse_through_link(member.name, path, links)
        if member.isdir():
            _make_folder(dest, path)
            folders.add(path)
        elif member.isreg():
            _write_file(dest, path, tar.extractfile(member))
            files.add(path)
            links.pop(path, None)  # a later regular member replaces an earlier link of that name
        elif member.issym() or member.islnk():
            links[path] = (member.name, _link_target(member, path))
            files.discard(path)
        else:
            raise UnsafeMember(f"member {member.name!r} is a device, FIFO or other special file")
    for path, (name, target) in links.items():
        source = _resolve(target, links, name)
        if source in folders or source not in files:
            what = "a folder" if source in folders else "no regular file of the archive"
            raise UnsafeMember(f"link {name!r} points to {what} ({target!r})")
        _copy_inside(dest, source, path)
    return len(files) + len(links)


def _refuse_through_link(name: str, path: str, links: dict) -> None:
    """A member below a link member (`link/file`) would be written through that link."""
    if not links:
        return
    at = path.find("/")
    while at != -1:
        if path[:at] in links:
            raise UnsafeMember(f"member {name!r} lies below the link {path[:at]!r}")
        at = path.find("/", at + 1)


def _link_target(member: tarfile.TarInfo, path: str) -> str:
    """The archive path a link member points at: a hard link names it from the archive root,
    a symbolic link from the link's own folder. UnsafeMember if it leaves the archive."""
    target = member.linkname.replace("\\", "/")
    if member.issym():
        if target.startswith("/"):
            raise UnsafeMember(f"link {member.name!r} points to an absolute path ({member.linkname!r})")
        target = posixpath.join(posixpath.dirname(path), target)
    normalized = posixpath.normpath(target)
    if normalized.startswith("/") or normalized == ".." or normalized.startswith("../"):
        raise UnsafeMember(f"link {member.name!r} points outside the archive ({member.linkname!r})")
    return member_path(normalized)


def _resolve(target: str, links: dict[str, tuple[str, str]], name: str) -> str:
    """Follow links of the archive (also through folder components) to a path that is not a link."""
    for _ in range(MAX_LINK_HOPS):
        parts = target.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if prefix in links:
                rest = parts[i:]
                target = "/".join([links[prefix][1], *rest]) if rest else links[prefix][1]
                target = member_path(posixpath.normpath(target))
                break
        else:
            return target
    raise UnsafeMember(f"link {name!r}: more than {MAX_LINK_HOPS} links in a chain (a cycle?)")


def _inside(dest: Path, path: str) -> Path:
    """dest/path, after checking lexically that it stays in dest (defence in depth: member_path
    already refused every name that could leave it)."""
    full = Path(os.path.normpath(dest / path))
    if os.path.commonpath([full, os.path.normpath(dest)]) != os.path.normpath(dest):
        raise UnsafeMember(f"member {path!r} leads outside the target folder")
    return full


def _make_folder(dest: Path, path: str) -> None:
    if not path:
        return
    folder = _inside(dest, path)
    if folder.is_symlink():  # never the case: this code creates none
        raise UnsafeMember(f"member {path!r}: a link is in the way")
    folder.mkdir(parents=True, exist_ok=True)


def _write_file(dest: Path, path: str, data) -> None:
    target = _inside(dest, path)
    _make_folder(dest, posixpath.dirname(path))
    if target.is_dir() and not target.is_symlink():
        raise UnsafeMember(f"member {path!r} is a file where the archive has a folder")
    # O_NOFOLLOW: the last component is never followed, even if a link were there.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o666)
    with os.fdopen(fd, "wb") as out:
        if data is not None:
            shutil.copyfileobj(data, out, 1 << 20)


def _copy_inside(dest: Path, source: str, path: str) -> None:
    """A link member as a copy of the archive's file `source` (a hard link where possible)."""
    src, target = _inside(dest, source), _inside(dest, path)
    _make_folder(dest, posixpath.dirname(path))
    if target.is_dir() and not target.is_symlink():
        raise UnsafeMember(f"link {path!r} is where the archive has a folder")
    if target.exists() or target.is_symlink():
        target.unlink()
    try:
        os.link(src, target, follow_symlinks=False)
    except OSError:
        shutil.copyfile(src, target, follow_symlinks=False)
