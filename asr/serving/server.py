"""`asr serve`: an HTTP JSON API and a web page in front of a Recognizer (FastAPI + uvicorn).

  GET  /             the page (asr/serving/static): upload a file or record from the
                     microphone, read the transcript, words highlighted as the audio plays
  GET  /health       {"status": "ok", "model": ..., "queued": N}
  POST /transcribe   audio as the raw request body or a multipart form field "file";
                     ?timestamps=false skips the word times. 200: the Transcript as JSON
                     (text, words with start/end/score, segments, duration); 400: not audio
                     or a bad request; 408: an upload slower than 60 s; 413: larger than
                     --max-upload-mb or longer than --max-seconds (refused from the header,
                     before decoding); 503: 256 requests already waiting. Every error is
                     {"error": message}.

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


class Busy(Exception):
    """The decoding queue is full."""


class BatchingTranscriber:
    """One thread that decodes queued jobs in batches of whatever has arrived."""

    def __init__(self, recognizer, max_batch: int = 16, max_queued: int = 256):
        self.recognizer = recognizer
        self.max_batch = max_batch
        self.max_queued = max_queued
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="asr-decoder", daemon=True)
        self.thread.start()

    def submit(self, wave, timestamps: bool) -> Future:
        """Queue a job; Busy when max_queued jobs are waiting already."""
        if self.jobs.qsize() >= self.max_queued:
            raise Busy
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
            try:
                self._take_and_decode(first)
            except Exception:  # noqa: BLE001 - never let the decoding thread die
                pass

    def _take_and_decode(self, first: Job) -> None:
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
        batch = [j for j in batch if j.future.set_running_or_notify_cancel()]  # drop requests gone
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
               max_batch: int = 16, device: str | None = "cpu", read_timeout: float = 60.0):
    """The FastAPI application (arguments default from ASR_SERVE_* variables, for --workers)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    import asr
    from asr.recognizer import AudioTooLong

    model = model or os.environ.get("ASR_SERVE_MODEL")
    max_bytes = int(float(os.environ.get("ASR_SERVE_MAX_UPLOAD_MB", max_upload_mb)) * 2**20)
    max_seconds = float(os.environ.get("ASR_SERVE_MAX_SECONDS", max_seconds))
    max_batch = int(os.environ.get("ASR_SERVE_BATCH", max_batch))
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

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request, exc):
        return error(400, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request, exc):
        return error(500, f"{type(exc).__name__}: {exc}")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/health")
    def health():
        return {"status": "ok" if transcriber.thread.is_alive() else "decoder stopped", "model": str(model),
                "queued": transcriber.queued, "max_upload_mb": max_bytes / 2**20, "max_seconds": max_seconds}

    @app.post("/transcribe")
    async def transcribe(request: Request, timestamps: bool = True):
        t0 = time.perf_counter()
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD:
            return error(413, f"upload of {int(declared)} bytes is over the limit of {max_bytes} bytes")
        try:
            data = await asyncio.wait_for(_read_audio(request, max_bytes), read_timeout)
        except _TooLarge:
            return error(413, f"upload over the limit of {max_bytes} bytes")
        except (TimeoutError, asyncio.TimeoutError):
            return error(408, f"the upload took more than {read_timeout:g} s")
        except ValueError as e:
            return error(400, str(e))
        try:
            wave = await asyncio.to_thread(recognizer.read, data, None, max_seconds)
        except AudioTooLong as e:
            return error(413, str(e))
        except AudioError as e:
            return error(400, f"not audio that can be read: {str(e).removeprefix('<bytes>: ')}")
        try:
            future = transcriber.submit(wave, timestamps)
        except Busy:
            return error(503, "too many requests are waiting; try again shortly")
        try:
            transcript = await asyncio.wrap_future(future)
        except AsrError as e:
            return error(400, str(e).removeprefix("<audio>: "))
        result = transcript.to_dict()
        result.pop("file", None)
        result["processing_seconds"] = round(time.perf_counter() - t0, 4)
        return result

    return app


FORM_OVERHEAD = 64 * 1024  # multipart boundaries and headers allowed on top of the audio


class _TooLarge(Exception):
    pass


async def _read_audio(request, max_bytes: int) -> bytes:
    """The uploaded bytes: a multipart form's "file" field, or the raw body. The body is read
    with a limit whatever its form (a multipart body is parsed from what was read), so no
    upload beyond the limit is ever held in memory or spooled to disk."""
    from starlette.requests import Request

    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes + FORM_OVERHEAD:
            raise _TooLarge
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, receive).form(max_files=1, max_fields=8)
        except Exception as e:  # noqa: BLE001 - a malformed form is the client's error
            raise ValueError(f"malformed multipart upload ({e})") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ValueError('a multipart upload needs its audio in a field named "file"')
        body = await upload.read()
        await form.close()
    if len(body) > max_bytes:
        raise _TooLarge
    if not body:
        raise ValueError("empty upload: send the audio as the request body or a form field named \"file\"")
    return body


def app_from_env():
    """For uvicorn --factory (several worker processes): the app from ASR_SERVE_* variables."""
    return create_app()


def serve(model: str, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, max_upload_mb: float = 20.0,
          max_seconds: float = 600.0, max_batch: int = 16) -> None:
    import uvicorn

    os.environ.update(ASR_SERVE_MODEL=str(model), ASR_SERVE_MAX_UPLOAD_MB=str(max_upload_mb),
                      ASR_SERVE_MAX_SECONDS=str(max_seconds), ASR_SERVE_BATCH=str(max_batch))
    limits = dict(host=host, port=port, log_level="warning", limit_concurrency=512, timeout_keep_alive=10)
    if workers > 1:
        uvicorn.run("asr.serving.server:app_from_env", factory=True, workers=workers, **limits)
    else:
        uvicorn.run(create_app(model, max_upload_mb, max_seconds, max_batch), **limits)
