"""asr serve: the HTTP API through a real client against a server on a free port, and the page
in headless Chromium (Debian's chromium and chromium-driver, driven by Selenium)."""

import concurrent.futures
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from asr.checkpoint import build_model, save_bundle  # noqa: E402
from asr.config import load_config  # noqa: E402
from asr.features import FeatureStats  # noqa: E402
from asr.tokenizer import CharTokenizer  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny model whose output layer always prefers the letter A: every transcript is "A"."""
    cfg = load_config(None, ["model.hidden_size=16", "model.n_layers=1", "model.conv_channels=4"])
    tok = CharTokenizer.build(["AB C"])
    torch.manual_seed(0)
    model = build_model(cfg, len(tok))
    with torch.no_grad():
        model.output.weight.zero_()
        model.output.bias.fill_(-5.0)
        model.output.bias[tok.tokens.index("A")] = 5.0
    path = tmp_path_factory.mktemp("serve") / "model.pt"
    save_bundle(path, cfg=cfg, tokenizer=tok, stats=FeatureStats(torch.zeros(80), torch.ones(80)), model=model, info={})
    return path


@pytest.fixture(scope="module")
def server(model_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "asr", "serve", "--model", str(model_path), "--port", str(port),
                             "--max-upload-mb", "0.5", "--max-seconds", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def wav_bytes(seconds=1.5, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_raw_and_multipart_uploads_are_transcribed_with_word_times(server):
    r = httpx.post(f"{server}/transcribe", content=wav_bytes(), headers={"content-type": "audio/wav"}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == "A" and body["duration"] == pytest.approx(1.5)
    assert [w["word"] for w in body["words"]] == ["A"] and 0 <= body["words"][0]["start"] < body["words"][0]["end"]
    r = httpx.post(f"{server}/transcribe?timestamps=false", files={"file": ("x.wav", wav_bytes(2.0), "audio/wav")},
                   timeout=30)
    assert r.status_code == 200 and r.json()["text"] == "A" and r.json()["words"] == []
    health = httpx.get(f"{server}/health").json()
    assert health["status"] == "ok" and health["max_seconds"] == 8


def test_bad_requests_get_json_errors_and_the_server_goes_on(server):
    cases = [
        (dict(content=b"not audio at all" * 10), 400, "not audio"),
        (dict(content=b""), 400, "empty upload"),
        (dict(files={"other": ("x.wav", wav_bytes(), "audio/wav")}), 400, 'field named "file"'),
        (dict(content=os.urandom(600_000)), 413, "over the limit"),
        (dict(files={"file": ("big.wav", os.urandom(600_000), "audio/wav")}), 413, "over the limit"),
        (dict(content=wav_bytes(9.0, rate=8000)), 413, "longer than the limit of 8 s"),
        (dict(content=wav_bytes(0.005)), 400, "too short"),
        (dict(content=wav_bytes(), params={"timestamps": "maybe"}), 400, "timestamps"),
        (dict(content=flac_silence(600.0)), 413, "audio of 600.0 s is longer than the limit of 8 s"),
        (dict(content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"}), 400, ""),
    ]
    for kwargs, status, message in cases:
        r = httpx.post(f"{server}/transcribe", timeout=30, **kwargs)
        assert r.status_code == status, (message, r.text)
        assert message in r.json()["error"]  # every error is {"error": ...}
    assert httpx.post(f"{server}/transcribe", content=wav_bytes(), timeout=30).status_code == 200


def flac_silence(seconds: float) -> bytes:
    """Minutes of silence in a few kilobytes: a decompression bomb for a server that decodes first."""
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * 16000), dtype=np.int16), 16000, format="FLAC")
    return buf.getvalue()


def test_concurrent_requests_are_all_answered(server):
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda k: httpx.post(f"{server}/transcribe", content=wav_bytes(0.5 + 0.1 * (k % 5)),
                                                     timeout=60), range(24)))
    assert [r.status_code for r in results] == [200] * 24
    assert all(r.json()["text"] == "A" for r in results)


def chromium_driver():
    chrome, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chrome and driver):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are not installed (.ci/run installs Debian's)")
        pytest.skip("needs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_page_uploads_an_an4_file_and_shows_the_transcript(server, an4_prepared, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from asr.audio import load_audio
    from asr.manifest import read_manifest

    utt = read_manifest(an4_prepared / "manifests" / "test.jsonl")[0]
    wav = tmp_path / f"{utt.id}.wav"  # the browser's player takes WAV, not SPHERE
    sf.write(str(wav), load_audio(utt.audio).numpy(), 16000, subtype="PCM_16")
    driver = chromium_driver()
    try:
        driver.get(server + "/")
        assert "Speech recognition" in driver.title + driver.find_element(By.TAG_NAME, "h1").text
        driver.find_element(By.ID, "file").send_keys(str(wav))
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "status").text == "Done.")
        words = driver.find_elements(By.CSS_SELECTOR, "#transcript .word")
        assert [w.text for w in words] == ["A"]
        assert "s of audio" in driver.find_element(By.ID, "details").text
        # playing the audio lights up the word under the playhead
        driver.execute_script("const p = document.getElementById('player'); p.muted = true;"
                              "p.currentTime = arguments[0]; p.dispatchEvent(new Event('timeupdate'));",
                              json.loads(driver.execute_script("return JSON.stringify(words)"))[0]["start"] + 0.01)
        assert "active" in words[0].get_attribute("class")
        # recording: Chromium's fake microphone (a tone), MediaRecorder, decoded and sent as WAV
        driver.find_element(By.ID, "record").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "status").text.startswith("Recording"))
        time.sleep(1.5)
        driver.find_element(By.ID, "stop").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "status").text == "Done.")
        assert driver.find_element(By.ID, "transcript").text == "A"
        # a file that is not audio: the page shows the server's error
        bad = tmp_path / "notes.wav"
        bad.write_text("not audio")
        driver.find_element(By.ID, "file").send_keys(str(bad))
        WebDriverWait(driver, 30).until(lambda d: "not audio" in d.find_element(By.ID, "status").text)
        assert "error" in driver.find_element(By.ID, "status").get_attribute("class")
    finally:
        driver.quit()
