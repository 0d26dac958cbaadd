"""download(): resume with Range requests, checksums, reuse; extract_tar: refuses unsafe members.

A small HTTP server runs in a thread for these tests; its handler serves one payload
with Range support, and can be told to cut a reply short or to ignore Range.
"""

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from asr.corpora.common import download, extract_tar, file_digest
from asr.errors import AsrError

PAYLOAD = bytes(range(256)) * 400  # 102400 bytes
MD5 = hashlib.md5(PAYLOAD).hexdigest()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    requests: ClassVar[list] = []  # (path, Range header) of each request
    cut_after: int | None = None  # send only this many body bytes, then close (once)
    honour_range = True

    def do_GET(self):
        type(self).requests.append((self.path, self.headers.get("Range")))
        if self.path != "/file.bin":
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and self.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).cut_after is not None:
            body = body[: type(self).cut_after]
            type(self).cut_after = None
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.requests, Handler.cut_after, Handler.honour_range = [], None, True
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    dest = tmp_path / "d" / "file.bin"
    Handler.cut_after = 30000
    with pytest.raises(AsrError, match="run again to resume"):
        download(f"{server}/file.bin", dest, md5=MD5)
    part = dest.with_name("file.bin.part")
    assert part.read_bytes() == PAYLOAD[:30000] and not dest.exists()
    assert download(f"{server}/file.bin", dest, md5=MD5) == dest
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert Handler.requests == [("/file.bin", None), ("/file.bin", "bytes=30000-")]


def test_server_ignoring_range_restarts(server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.with_name("file.bin.part").write_bytes(b"stale bytes from elsewhere")
    Handler.honour_range = False
    download(f"{server}/file.bin", dest, sha256=SHA256)
    assert dest.read_bytes() == PAYLOAD
    assert Handler.requests == [("/file.bin", "bytes=26-")]


def test_complete_part_is_finished_without_body(server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.with_name("file.bin.part").write_bytes(PAYLOAD)
    download(f"{server}/file.bin", dest, sha256=SHA256)  # the server answers 416
    assert dest.read_bytes() == PAYLOAD
    assert Handler.requests == [("/file.bin", f"bytes={len(PAYLOAD)}-")]


def test_part_longer_than_the_file_is_removed(server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.with_name("file.bin.part").write_bytes(PAYLOAD + b"extra")
    with pytest.raises(AsrError, match="longer than the file"):
        download(f"{server}/file.bin", dest)
    assert not dest.with_name("file.bin.part").exists()
    assert download(f"{server}/file.bin", dest).read_bytes() == PAYLOAD  # the next run starts over


def test_wrong_checksum_deletes_the_download(server, tmp_path):
    dest = tmp_path / "file.bin"
    wrong = "0" * 32
    with pytest.raises(AsrError) as e:
        download(f"{server}/file.bin", dest, md5=wrong)
    message = str(e.value)
    assert f"{server}/file.bin" in message and wrong in message and MD5 in message
    assert not dest.exists() and not dest.with_name("file.bin.part").exists()


def test_existing_file_is_reused_without_a_request(server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.write_bytes(PAYLOAD)
    assert download(f"{server}/file.bin", dest, md5=MD5) == dest
    assert download(f"{server}/file.bin", dest) == dest
    assert Handler.requests == []
    dest.write_bytes(b"something else")
    with pytest.raises(AsrError, match="delete the file"):
        download(f"{server}/file.bin", dest, md5=MD5)
    assert Handler.requests == []


def test_http_errors_name_the_url(server, tmp_path):
    with pytest.raises(AsrError, match="cannot download .*/missing.bin"):
        download(f"{server}/missing.bin", tmp_path / "x")


def test_file_digest(tmp_path):
    (tmp_path / "f").write_bytes(PAYLOAD)
    assert file_digest(tmp_path / "f", "md5") == MD5 and file_digest(tmp_path / "f", "sha256") == SHA256


def make_tar(path, names, mode="w:gz"):
    with tarfile.open(path, mode) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"hello"))
    return path


@pytest.mark.parametrize("bad", ["../escape.txt", "corpus/../../escape.txt", "/tmp/absolute.txt"])
def test_extract_refuses_members_outside_the_target(tmp_path, bad):
    archive = make_tar(tmp_path / "bad.tar.gz", ["corpus/ok.txt", bad])
    with pytest.raises(AsrError, match="refusing to extract") as e:
        extract_tar(archive, tmp_path / "out")
    assert bad.lstrip("/") in str(e.value)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out" / "tmp").exists()


def test_extract_handles_bz2(tmp_path):
    archive = make_tar(tmp_path / "ok.tar.bz2", ["LJSpeech-1.1/metadata.csv"], mode="w:bz2")
    extract_tar(archive, tmp_path / "out")
    assert (tmp_path / "out" / "LJSpeech-1.1" / "metadata.csv").read_bytes() == b"hello"
