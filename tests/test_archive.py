"""asr.corpora.archive.extract_tar: hostile archives write nothing outside their folder, on any
Python version (the extractor never relies on tarfile's filters), and harmless links inside an
archive become copies of the files they name."""

import io
import os
import tarfile

import pytest

from asr.corpora.archive import extract_tar
from asr.errors import AsrError


def add_file(tar, name, data=b"hello"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_link(tar, name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    tar.addfile(info)


def cve_2025_4517_archive(path, victim):
    """The published shape of CVE-2025-4517: directories with long names and a chain of
    symlinks to them, so that os.path.realpath gives up before the final link, which climbs
    back out; then a link through it to `victim` (outside the target folder), a hard link to
    that, and a regular member of the hard link's name that overwrites what it points at.
    No member name holds a '..' component."""
    comp = "d" * 247
    steps = "abcdefghijklmnop"
    with tarfile.open(path, "w") as tar:
        prefix = ""
        for step in steps:
            add_dir(tar, os.path.join(prefix, comp))
            add_link(tar, os.path.join(prefix, step), comp)
            prefix = os.path.join(prefix, comp)
        long_link = os.path.join(*steps, "l" * 254)
        add_link(tar, long_link, os.path.join(*[".."] * len(steps)))
        depth = len(os.path.normpath(str(victim.parent)).strip("/").split("/"))
        add_link(tar, "escape", long_link + "/" + "/".join([".."] * (depth + 2)) + str(victim.parent))
        add_link(tar, "flaglink", "escape/" + victim.name, kind=tarfile.LNKTYPE)
        add_file(tar, "flaglink", b"overwritten by the archive")
        add_file(tar, "escape/" + victim.name + ".new", b"created by the archive")
    return path


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_cve_2025_4517_archive_writes_nothing_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("original")
    archive = cve_2025_4517_archive(tmp_path / "evil.tar", victim)
    before = tree(tmp_path)
    with pytest.raises(AsrError, match=r"evil\.tar: refusing to extract \(member .* lies below the link"):
        extract_tar(archive, tmp_path / "out")
    assert victim.read_text() == "original"
    assert not (outside / "victim.txt.new").exists()
    assert all(not p.is_symlink() for p in (tmp_path / "out").rglob("*"))  # no link ever created
    assert [p for p in tree(tmp_path) if not p.startswith("out")] == [p for p in before if not p.startswith("out")]


@pytest.mark.parametrize("target, kind", [
    ("../outside.txt", tarfile.SYMTYPE),
    ("/etc/passwd", tarfile.SYMTYPE),
    ("corpus/../../outside.txt", tarfile.LNKTYPE),
    ("corpus/dir", tarfile.SYMTYPE),  # a folder
    ("corpus/missing.txt", tarfile.SYMTYPE),
])
def test_links_out_of_the_archive_or_to_folders_are_refused(tmp_path, target, kind):
    (tmp_path / "outside.txt").write_text("original")
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_dir(tar, "corpus/dir")
        add_file(tar, "corpus/a.txt")
        add_link(tar, "corpus/link", target, kind)
    with pytest.raises(AsrError, match="refusing to extract .*link 'corpus/link'"):
        extract_tar(archive, tmp_path / "out")
    assert (tmp_path / "outside.txt").read_text() == "original"
    assert not any(p.is_symlink() for p in (tmp_path / "out").rglob("*"))


def test_member_below_a_link_is_refused(tmp_path):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        add_link(tar, "corpus/up", "..")
        add_file(tar, "corpus/up/escape.txt")
    with pytest.raises(AsrError, match="lies below the link 'corpus/up'"):
        extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()


def test_link_cycle_is_refused(tmp_path):
    archive = tmp_path / "cycle.tar"
    with tarfile.open(archive, "w") as tar:
        add_link(tar, "a", "b")
        add_link(tar, "b", "a")
    with pytest.raises(AsrError, match="more than 40 links"):
        extract_tar(archive, tmp_path / "out")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_special_members_are_refused(tmp_path, kind):
    archive = tmp_path / "dev.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("corpus/dev")
        info.type = kind
        tar.addfile(info)
    with pytest.raises(AsrError, match="device, FIFO or other special file"):
        extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "corpus" / "dev").exists()


def test_links_inside_become_copies_of_the_files(tmp_path):
    archive = tmp_path / "ok.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        add_file(tar, "corpus/data/talk.sph", b"audio")
        add_link(tar, "corpus/legacy/test/talk.sph", "../../data/talk.sph")
        add_link(tar, "corpus/legacy/dev/via.sph", "../test/talk.sph")  # a chain of two links
        add_link(tar, "corpus/hard.sph", "corpus/data/talk.sph", tarfile.LNKTYPE)
        add_link(tar, "corpus/d2", "data")  # a folder link nothing reads through ...
        add_file(tar, "corpus/d2", b"... replaced by a regular member of its name")
    assert extract_tar(archive, tmp_path / "out") == 5
    out = tmp_path / "out" / "corpus"
    for name in ("legacy/test/talk.sph", "legacy/dev/via.sph", "hard.sph"):
        assert (out / name).read_bytes() == b"audio" and not (out / name).is_symlink()
    assert (out / "d2").read_bytes().startswith(b"... replaced")
    assert oct((out / "data" / "talk.sph").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_modes_of_the_archive_are_not_kept(tmp_path):
    archive = tmp_path / "modes.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("x.sh")
        info.size, info.mode = 2, 0o4777  # setuid, world-writable
        tar.addfile(info, io.BytesIO(b"hi"))
    extract_tar(archive, tmp_path / "out")
    assert (tmp_path / "out" / "x.sh").stat().st_mode & 0o7777 == 0o666 & ~_umask()


def test_truncated_archive_is_one_error(tmp_path):
    archive = tmp_path / "cut.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "a.txt", os.urandom(100_000))
    archive.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(AsrError, match=r"cut\.tar\.gz: cannot extract archive"):
        extract_tar(archive, tmp_path / "out")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_not_an_archive_is_one_clear_error(tmp_path):
    (tmp_path / "notes.tgz").write_text("not an archive\n")
    with pytest.raises(AsrError, match=r"notes\.tgz: cannot extract archive \(not a readable \.tar, \.tar\.gz"):
        extract_tar(tmp_path / "notes.tgz", tmp_path / "out")


@pytest.mark.parametrize("name, message", [
    ("a/" * 300 + "f", "more than 256 folders deep"),
    ("x" * 300, "name part over 255 bytes"),
    ("ab/" * 2000 + "f", "name longer than 4096 bytes"),
])
def test_absurd_member_names_are_refused_quickly(tmp_path, name, message):
    archive = tmp_path / "deep.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        add_file(tar, name)
    with pytest.raises(AsrError, match=message):
        extract_tar(archive, tmp_path / "out")


def test_corrupt_compressed_streams_are_one_error(tmp_path):
    """Bytes changed in the middle of .tar.xz / .tar.bz2 / .tar.gz streams: an AsrError, never
    lzma's, bz2's or zlib's own exception."""
    import random

    rng = random.Random(0)
    for mode in ("w:xz", "w:bz2", "w:gz"):
        archive = tmp_path / f"a.{mode[2:]}"
        with tarfile.open(archive, mode) as tar:
            for k in range(5):
                add_file(tar, f"corpus/{k}.txt", bytes(rng.randrange(256) for _ in range(3000)))
        good = archive.read_bytes()
        for trial in range(20):
            data = bytearray(good)
            for _ in range(3):
                data[rng.randrange(20, len(data))] ^= 0xFF
            archive.write_bytes(bytes(data))
            try:
                extract_tar(archive, tmp_path / f"out-{mode[2:]}-{trial}")
            except AsrError as e:
                assert str(e).startswith(str(archive))
