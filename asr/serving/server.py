"""`asr serve`: an HTTP JSON API and a web page in front of a Recognizer (FastAPI + uvicorn).

  GET  /             the page (asr/serving/static): upload a file or record from the
                     microphone, read the transcript, words highlighted as the audio plays
  GET  /health       {"status": "ok", "model": ..., "queued": N}
  POST /transcribe   audio as the raw request body or a multipart form field "file";
                     ?timestamps=false skips the word times. 200: the Transcript as JSON
                     (text, words with start/end/score, segments, duration); 400: not audio;
                     413: larger than --max-upload-mb or longer than --max-seconds. Every
                     error is {"error": message}.

Requests are queued to one decoding thread, which takes what has arrived (up to --batch of
them) and decodes it together (Recognizer.transcribe_batch): concurrent requests share
forward passes, and the event loop stays free to accept and refuse requests meanwhile. An
exception in one request is that request's error response; the server goes on.
"""


import asyncio
import contextlib
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from asr.errors import AsrError, AudioError

STATIC = Path(__file__).resolve().parent / "static"


@dataclass
class Job:
    wave: object  # float32 numpy array at the model's rate
    timestamps: bool
    future: Future = field(default_factory=Future)


class BatchingTranscriber:
    """One thread that decodes queued jobs in batches of whatever has arrived."""

    def __init__(self, recognizer, max_batch: int = 16):
        self.recognizer = recognizer
        self.max_batch = max_batch
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="asr-decoder", daemon=True)
        self.thread.start()

    def submit(self, wave, timestamps: bool) -> Future:
        job = Job(wave, timestamps)
        self.jobs.put(job)
        return job.future

    @property
    def queued(self) -> int:
        return self.jobs.qsize()

    def close(self) -> None:
        self.jobs.put(None)

    def _run(self) -> None:
        while (first := self.jobs.get()) is not None:
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self.jobs.put(None)
                    break
                batch.append(job)
            for timestamps in (False, True):
                group = [j for j in batch if j.timestamps == timestamps]
                if group:
                    self._decode(group, timestamps)

    def _decode(self, group: list[Job], timestamps: bool) -> None:
        try:
            results = self.recognizer.transcribe_batch([j.wave for j in group], timestamps=timestamps)
        except Exception:  # one bad item: decode them one by one so that only it fails
            results = []
            for j in group:
                try:
                    results.append(self.recognizer.transcribe(j.wave, timestamps=timestamps))
                except Exception as e:  # noqa: BLE001 - reported to that request only
                    results.append(e)
        for job, result in zip(group, results):
            if isinstance(result, Exception):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)


def create_app(model: str | None = None, max_upload_mb: float = 20.0, max_seconds: float = 600.0,
               max_batch: int = 16, device: str | None = "cpu"):
    """The FastAPI application (arguments default from ASR_SERVE_* variables, for --workers)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    import asr

    model = model or os.environ.get("ASR_SERVE_MODEL")
    max_bytes = int(float(os.environ.get("ASR_SERVE_MAX_UPLOAD_MB", max_upload_mb)) * 2**20)
    max_seconds = float(os.environ.get("ASR_SERVE_MAX_SECONDS", max_seconds))
    recognizer = asr.load_model(model, device=device)
    transcriber = BatchingTranscriber(recognizer, max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        transcriber.close()

    app = FastAPI(title="asr", description="Speech recognition: POST audio to /transcribe.", lifespan=lifespan)
    app.state.transcriber = transcriber
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/health")
    def health():
        return {"status": "ok", "model": str(model), "queued": transcriber.queued,
                "max_upload_mb": max_bytes / 2**20, "max_seconds": max_seconds}

    @app.post("/transcribe")
    async def transcribe(request: Request, timestamps: bool = True):
        t0 = time.perf_counter()
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes + 4096:  # form overhead allowed
            return error(413, f"upload of {int(declared)} bytes is over the limit of {max_bytes} bytes")
        try:
            data = await _read_audio(request, max_bytes)
        except _TooLarge:
            return error(413, f"upload over the limit of {max_bytes} bytes")
        except ValueError as e:
            return error(400, str(e))
        try:
            wave = await asyncio.to_thread(recognizer.read, data)
        except AudioError as e:
            return error(400, f"not audio that can be read: {str(e).removeprefix('<bytes>: ')}")
        seconds = len(wave) / recognizer.sample_rate
        if seconds > max_seconds:
            return error(413, f"audio of {seconds:.1f} s is longer than the limit of {max_seconds:g} s")
        try:
            transcript = await asyncio.wrap_future(transcriber.submit(wave, timestamps))
        except AsrError as e:
            return error(400, str(e).removeprefix("<audio>: "))
        except Exception as e:  # noqa: BLE001 - the request fails, the server goes on
            return error(500, f"{type(e).__name__}: {e}")
        result = transcript.to_dict()
        result.pop("file", None)
        result["processing_seconds"] = round(time.perf_counter() - t0, 4)
        return result

    return app


class _TooLarge(Exception):
    pass


async def _read_audio(request, max_bytes: int) -> bytes:
    """The uploaded bytes: a multipart form's "file" field, or the raw body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_part_size=max_bytes + 1)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ValueError('a multipart upload needs its audio in a field named "file"')
        data = await upload.read()
    else:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise _TooLarge
            chunks.append(chunk)
        data = b"".join(chunks)
    if len(data) > max_bytes:
        raise _TooLarge
    if not data:
        raise ValueError("empty upload: send the audio as the request body or a form field named \"file\"")
    return data


def app_from_env():
    """For uvicorn --factory (several worker processes): the app from ASR_SERVE_* variables."""
    return create_app()


def serve(model: str, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, max_upload_mb: float = 20.0,
          max_seconds: float = 600.0, max_batch: int = 16) -> None:
    import uvicorn

    os.environ.update(ASR_SERVE_MODEL=str(model), ASR_SERVE_MAX_UPLOAD_MB=str(max_upload_mb),
                      ASR_SERVE_MAX_SECONDS=str(max_seconds))
    if workers > 1:
        uvicorn.run("asr.serving.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="warning")
    else:
        uvicorn.run(create_app(model, max_upload_mb, max_seconds, max_batch), host=host, port=port,
                    log_level="warning")
