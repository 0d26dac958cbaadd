"""Distributed data-parallel training through torchrun, on the CPU with gloo: ranks stay
bit-identical, the result equals one process over the same global batches, two simulated
nodes rendezvous, and failures (a dead rank, ranks started alike or not, a missing backend)
end the job with a clear message instead of hanging."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import load_audio
from asr.manifest import Utterance, read_manifest, write_manifest

TORCHRUN = str(Path(sys.executable).parent / "torchrun")
TINY = ["model.hidden_size=24", "model.n_layers=2", "model.conv_channels=4", "model.dropout=0.0",
        "augment.n_freq_masks=0", "augment.n_time_masks=0", "train.warmup_steps=2", "train.epochs=2",
        "train.max_batch_frames=820", "train.sortagrad_epochs=0", "train.keep_checkpoints=5",
        "train.dist_timeout=60"]


@pytest.fixture(scope="module")
def equal_length_set(an4_prepared, tmp_path_factory):
    """16 AN4 training utterances padded with silence to 4 s each: 401 frames, two to a batch
    of 820 frames, so every epoch has 8 batches (an even number, which two ranks share
    without cutting any)."""
    out = tmp_path_factory.mktemp("ddp_data")
    utts = [u for u in read_manifest(an4_prepared / "manifests" / "train.jsonl") if u.duration < 3.9][:16]
    padded = []
    for u in utts:
        wave = load_audio(u.audio).numpy()
        path = out / f"{u.id}.wav"
        sf.write(str(path), np.pad(wave, (0, 64000 - len(wave))), 16000, subtype="FLOAT")
        padded.append(Utterance(u.id, str(path), 4.0, u.text, u.speaker))
    write_manifest(padded, out / "train.jsonl")
    write_manifest(padded[:4], out / "dev.jsonl")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_args(data: Path, exp: Path, extra=()) -> list[str]:
    args = ["-m", "asr", "train", "--train", str(data / "train.jsonl"), "--dev", str(data / "dev.jsonl"),
            "--exp", str(exp), "--no-progress"]
    for item in [*TINY, *extra]:
        args += ["--set", item]
    return args


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


def weights(exp: Path, epoch: int = 2) -> dict:
    return torch.load(exp / "checkpoints" / f"epoch-{epoch}.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def two_ranks(equal_length_set, tmp_path_factory):
    exp = tmp_path_factory.mktemp("ddp") / "exp"
    r = subprocess.run([TORCHRUN, "--standalone", "--nproc-per-node", "2",
                        *train_args(equal_length_set, exp, ["train.check_replicas=true", "train.average_last=2"])],
                       capture_output=True, text=True, env=env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return exp


def test_two_ranks_hold_identical_weights_after_every_step(two_ranks):
    log = (two_ranks / "train.log").read_text()
    assert "2 ranks (gloo)" in log
    assert "effective batch: 820 frames (8 s of padded audio) per rank x 2 rank(s) x 1 accumulation step(s)" in log
    assert "replicas: the 2 ranks held identical weights after each of 8 steps" in log  # 2 epochs x 8 batches / 2 ranks
    state = torch.load(two_ranks / "checkpoints" / "epoch-2.pt", weights_only=True)
    assert len(state["rng_ranks"]) == 2 and state["steps"] == 8
    # the mean of both epochs, scored on dev by both ranks' shares
    from asr.average import average_state_dicts
    from asr.checkpoint import load_bundle

    averaged = load_bundle(two_ranks / "model_avg.pt")
    assert averaged.info["averaged_epochs"] == [1, 2] and "model_avg.pt: the mean of epochs 1-2 |" in log
    want = average_state_dicts([weights(two_ranks, 1), weights(two_ranks, 2)])
    for name, value in averaged.model.state_dict().items():
        torch.testing.assert_close(value, want[name], msg=name)


def test_two_ranks_equal_one_process_accumulating_the_same_global_batches(equal_length_set, two_ranks, tmp_path):
    exp = tmp_path / "single"
    r = subprocess.run([sys.executable, *train_args(equal_length_set, exp, ["train.accum_steps=2"])],
                       capture_output=True, text=True, env=env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = weights(two_ranks), weights(exp)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-7, msg=name)
    assert any(not torch.equal(weights(exp, 1)[n], b[n]) for n in b)  # it did train


def launch_node(data, exp, node_rank, port, extra=()):
    return subprocess.Popen([TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(node_rank),
                             "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "asr-test",
                             *train_args(data, exp, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())


def test_two_nodes_rendezvous_and_train_the_same_weights(equal_length_set, two_ranks, tmp_path):
    port = free_port()
    exp = tmp_path / "nodes"
    nodes = [launch_node(equal_length_set, exp, k, port) for k in (0, 1)]
    outs = [n.communicate(timeout=600) for n in nodes]
    assert all(n.returncode == 0 for n in nodes), outs[0][1][-2000:] + outs[1][1][-2000:]
    a, b = weights(two_ranks), weights(exp)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-8, msg=name)


def test_ranks_started_with_different_configs_stop_with_a_clear_error(equal_length_set, tmp_path):
    port = free_port()
    nodes = [launch_node(equal_length_set, tmp_path / "exp", k, port, [f"train.lr={lr}"])
             for k, lr in ((0, 0.002), (1, 0.001))]
    outs = [n.communicate(timeout=300) for n in nodes]
    assert all(n.returncode != 0 for n in nodes)
    for _, node_err in outs:  # each node's worker says why, in one line (torchrun then reports the failure)
        assert "asr: error: " in node_err and "was started with another config than rank 0 (train.lr: 0.002 -> 0.001)" in node_err


def test_a_rank_that_dies_ends_the_job_with_a_non_zero_exit_in_bounded_time(equal_length_set, tmp_path):
    exp = tmp_path / "dies"
    job = subprocess.Popen([TORCHRUN, "--standalone", "--nproc-per-node", "2",
                            *train_args(equal_length_set, exp, ["train.epochs=200"])],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    deadline = time.time() + 300
    while not (exp / "train.log").exists() or "epoch   1" not in (exp / "train.log").read_text():
        assert job.poll() is None and time.time() < deadline
        time.sleep(0.5)
    victim = rank_pid(job.pid, 1)
    os.kill(victim, 9)
    t0 = time.time()
    _, err = job.communicate(timeout=180)
    assert job.returncode != 0 and time.time() - t0 < 120
    assert "FAILED" in err or "failed" in err.lower()


def rank_pid(parent: int, rank: int) -> int:
    """The pid of the worker of `rank` among the processes below `parent` (from /proc)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text().split()
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and b"LOCAL_RANK=" + str(rank).encode() in environ:
            if int(stat[3]) == parent or _descends(int(stat[3]), parent):
                return int(proc.name)
    raise AssertionError(f"no rank {rank} process under {parent}")


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().split()[3])
        except OSError:
            return False
    return False


def test_an_unavailable_backend_is_one_clear_error(equal_length_set, tmp_path):
    r = subprocess.run([TORCHRUN, "--standalone", "--nproc-per-node", "2",
                        *train_args(equal_length_set, tmp_path / "exp", ["train.dist_backend=nccl"])],
                       capture_output=True, text=True, env=env(), timeout=300)
    assert r.returncode != 0
    assert "train.dist_backend nccl: not available on this machine (NCCL needs CUDA)" in r.stderr


def test_a_resumed_two_rank_run_continues_the_same_data_order(equal_length_set, two_ranks, tmp_path):
    """The two-rank run, stopped after epoch 1 (its later files removed) and resumed: the same
    weights after epoch 2 as without the stop."""
    import shutil

    exp = tmp_path / "resumed"
    shutil.copytree(two_ranks, exp)
    for name in ("checkpoints/epoch-2.pt", "model.pt"):
        (exp / name).unlink()
    again = [TORCHRUN, "--standalone", "--nproc-per-node", "2",
             *train_args(equal_length_set, exp, ["train.check_replicas=true"]), "--resume"]
    r = subprocess.run(again, capture_output=True, text=True, env=env(), timeout=600)
    assert r.returncode == 0, "\n".join(line for line in r.stderr.splitlines() if "elastic" not in line)[-4000:]
    assert "resuming from" in (exp / "train.log").read_text()
    a, b = weights(two_ranks), weights(exp)
    for name in a:
        assert torch.equal(a[name], b[name]), name
