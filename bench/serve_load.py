"""`asr serve` under load: N concurrent clients posting AN4 test files.

    python bench/serve_load.py --model data/an4/exp/model_lm.pt --manifest data/an4/manifests/test.jsonl \
        [--clients 50] [--requests 500] [--workers 1]

Starts `asr serve` on a free port, reads its resident memory, then runs --clients threads
that together send --requests uploads (the manifest's files in turn, raw bodies, word times
on); reports requests per second, p50/p95/max latency, the number of errors, and the
server's memory before and after (the sum over its processes with --workers > 1).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn's workers), from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, StopIteration):
            pass
    return total / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args()
    import httpx

    from asr.manifest import read_manifest

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "asr", "serve", "--model", a.model, "--port", str(port),
                               "--workers", str(a.workers)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        files = [Path(u.audio).read_bytes() for u in read_manifest(a.manifest)]
        before = rss_mb(server.pid)
        latencies, errors = [], []

        def one(k: int) -> None:
            t0 = time.perf_counter()
            try:
                r = httpx.post(f"{url}/transcribe", content=files[k % len(files)], timeout=300)
                if r.status_code != 200:
                    errors.append(r.status_code)
            except httpx.HTTPError as e:
                errors.append(type(e).__name__)
            latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(a.clients) as pool:
            list(pool.map(one, range(a.requests)))
        wall = time.perf_counter() - t0
        after = rss_mb(server.pid)
        lat = np.array(latencies)
        print(json.dumps({"clients": a.clients, "requests": a.requests, "workers": a.workers,
                          "requests_per_s": round(a.requests / wall, 1), "p50_s": round(float(np.percentile(lat, 50)), 3),
                          "p95_s": round(float(np.percentile(lat, 95)), 3), "max_s": round(float(lat.max()), 3),
                          "errors": len(errors), "server_rss_mb_before": round(before), "server_rss_mb_after": round(after)}))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
