"""Time forward+backward of a 3-layer bidirectional RNN: torch's packed sequences versus
asr's dense two-direction stack (asr.model.RecurrentStack), on a bucketed-like batch.

    python bench/rnn_layout.py [--threads 2] [--rnn lstm] [--hidden 256] [--batch 32] [--frames 100]
    python bench/rnn_layout.py --device cuda --bf16 --layers 5 --hidden 512 --batch 75 --frames 300

On CUDA both run cuDNN kernels; the packed one runs the two directions in one call. On a CPU
with 2 or more threads asr's stack runs its two directions at once, in two threads
(asr.parallel_rnn); `ASR_PARALLEL_DIRECTIONS=0` times it one direction after the other. Times
are synchronized and the best of --repeats.
"""

import argparse
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.model import RecurrentStack


def timed(fn, repeats, device):
    def run():
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rnn", default="lstm", choices=["lstm", "gru"])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", type=int, default=100, help="output frames (after subsampling)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="under bf16 autocast, as training with train.precision bf16")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    x = torch.randn(a.batch, a.frames, a.hidden, device=dev, requires_grad=True)
    lens = torch.randint(int(a.frames * 0.9), a.frames + 1, (a.batch,))
    lens[0] = a.frames
    cls = torch.nn.LSTM if a.rnn == "lstm" else torch.nn.GRU
    packed_rnn = cls(a.hidden, a.hidden, a.layers, bidirectional=True, batch_first=True).to(dev)
    dense_rnn = RecurrentStack(a.rnn, a.hidden, a.hidden, a.layers, True, 0.0).to(dev)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16)

    def packed():
        with autocast:
            y, _ = packed_rnn(pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False))
            out = pad_packed_sequence(y, batch_first=True)[0]
        out.float().sum().backward()

    def dense():
        with autocast:
            out = dense_rnn(x, lens.to(dev))
        out.float().sum().backward()

    t_packed, t_dense = timed(packed, a.repeats, dev), timed(dense, a.repeats, dev)
    where = (str(dev) if dev.type == "cuda" else f"{a.threads} threads") + (" bf16" if a.bf16 else "")
    print(f"{a.rnn} {a.layers}x{a.hidden} bi, batch {a.batch}x{a.frames}, {where}: "
          f"packed {t_packed * 1000:.0f} ms, dense {t_dense * 1000:.0f} ms, speed-up {t_packed / t_dense:.2f}x")


if __name__ == "__main__":
    main()
