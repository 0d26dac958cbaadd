"""Run the two directions of a bidirectional recurrent layer at the same time on a CPU.

On a CPU the recurrence of a GRU/LSTM is a chain of small matrix products (batch x hidden
by hidden x 3-4 hidden per frame) that gain nothing from a second intra-op thread: on the
project's 2-core machine one step's recurrent product took 0.296 ms with 2 threads against
0.232 ms with 1. The two directions of a layer are independent, so each gets a thread of its
own with one intra-op thread: the calling thread runs the forward direction, one persistent
worker the backward one, in the forward pass and again in the backward pass (autograd would
run the two sub-graphs one after the other in the calling thread; `TwoDirections` hands
each its own `torch.autograd.grad` call instead).

The numbers are those of running the directions one after the other, up to the float
rounding of a matrix product computed with another thread count.

Used by asr.model.RecurrentStack when `use_parallel_directions` says so: on a CPU, with at
least two intra-op threads, not while TorchScript scripts or traces the model, and unless the
environment sets ASR_PARALLEL_DIRECTIONS=0 (which the benchmarks use to time the other way).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import torch
from torch import nn

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
# One layer at a time across the process's threads (a server's request threads, say): the
# thread count that _both lowers and restores is the process's, and two layers at once would
# not find more than two cores anyway.
_layer_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the worker thread does not exist: start a new one there if needed."""
    global _pool, _pool_lock, _layer_lock
    _pool, _pool_lock, _layer_lock = None, threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _worker() -> ThreadPoolExecutor:
    """The one worker thread, started on first use; it runs its ops on one intra-op thread."""
    global _pool
    with _pool_lock:
        if _pool is None:
            main_threads = torch.get_num_threads()

            def one_thread():
                # A thread's first parallel op sets its OpenMP thread count from the process's
                # (at::lazy_init_num_threads): run one first, so that the 1 set here stays.
                torch.ones(1 << 20).exp_()  # large enough to run in parallel
                torch.set_num_threads(1)

            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-rnn-direction",
                                       initializer=one_thread)
            _pool.submit(lambda: None).result()  # run the initializer now...
            torch.set_num_threads(main_threads)  # ...and give the process its count back
        return _pool


def use_parallel_directions(x: torch.Tensor) -> bool:
    """Whether a bidirectional layer over x should run its directions in two threads."""
    return (
        os.environ.get("ASR_PARALLEL_DIRECTIONS", "1") != "0"
        and x.device.type == "cpu"
        and torch.get_num_threads() >= 2
        and not torch.jit.is_scripting()
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
    )


class _ThreadState:
    """The calling thread's thread-local torch modes (grad, inference, autocast), to enter
    in the worker thread so that both directions run under the same ones."""

    def __init__(self):
        self.grad = torch.is_grad_enabled()
        self.inference = torch.is_inference_mode_enabled()
        self.autocast = torch.is_autocast_enabled("cpu")
        self.autocast_dtype = torch.get_autocast_dtype("cpu")

    def run(self, fn: Callable, *args):
        with torch.inference_mode(self.inference), torch.set_grad_enabled(self.grad), \
                torch.autocast("cpu", dtype=self.autocast_dtype, enabled=self.autocast):
            return fn(*args)


def _both(fn: Callable, args0: tuple, args1: tuple):
    """fn(*args0) in this thread and fn(*args1) in the worker, each on one intra-op thread."""
    state, worker = _ThreadState(), _worker()
    with _layer_lock:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            future = worker.submit(state.run, fn, *args1)
            first = fn(*args0)
        finally:
            torch.set_num_threads(threads)
        second = future.result()
    return first, second


def _run(rnn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return rnn(x)[0]


def run_directions(dirs: Sequence[nn.Module], x_fwd: torch.Tensor, x_bwd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dirs[0](x_fwd), dirs[1](x_bwd)) outputs, the two computed at the same time, with
    gradients to both inputs and to both modules' parameters."""
    params = [[p for p in d.parameters() if p.requires_grad] for d in dirs]
    needs_grad = torch.is_grad_enabled() and (x_fwd.requires_grad or x_bwd.requires_grad or any(params))
    if not needs_grad:
        return _both(_run, (dirs[0], x_fwd), (dirs[1], x_bwd))
    # Each direction's graph starts from a leaf of its own. They are built here, under the
    # caller's modes, rather than in a custom Function's forward (where grad mode is off);
    # TwoDirections then joins them to the caller's graph.
    graphs = _both(_build, (dirs[0], x_fwd, params[0]), (dirs[1], x_bwd, params[1]))
    return TwoDirections.apply(graphs, len(params[0]), x_fwd, x_bwd, *params[0], *params[1])


def _build(rnn: nn.Module, x: torch.Tensor, params: list) -> tuple:
    leaf = x.detach().requires_grad_(x.requires_grad)
    return _run(rnn, leaf), leaf, params


class TwoDirections(torch.autograd.Function):
    """Joins the two directions' graphs, built by run_directions, to the caller's graph as one
    node whose backward pass also runs them in two threads. Each sub-graph is kept until then."""

    @staticmethod
    def forward(ctx, graphs, n_params0: int, x_fwd, x_bwd, *params):
        ctx.graphs = graphs
        return graphs[0][0].detach(), graphs[1][0].detach()

    @staticmethod
    def backward(ctx, grad0, grad1):
        graphs, ctx.graphs = ctx.graphs, None  # free the sub-graphs with this pass
        (gx0, gp0), (gx1, gp1) = _both(_grads, (graphs[0], grad0), (graphs[1], grad1))
        return (None, None, gx0, gx1, *gp0, *gp1)


def _grads(graph: tuple, grad_out: torch.Tensor) -> tuple:
    """The gradients of one direction's graph: (to its input or None, to its parameters)."""
    y, leaf, params = graph
    if not y.requires_grad:  # nothing below it learns: a frozen direction over a constant input
        return None, [None] * len(params)
    inputs = ([leaf] if leaf.requires_grad else []) + list(params)
    found = torch.autograd.grad(y, inputs, grad_out, allow_unused=True)
    return (found[0] if leaf.requires_grad else None), found[len(inputs) - len(params):]
