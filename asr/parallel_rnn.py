"""Run the two directions of a bidirectional recurrent layer at the same time on a CPU.

On a CPU the recurrence of a GRU/LSTM is a chain of small matrix products (batch x hidden
by hidden x 3-4 hidden per frame) that gain nothing from a second intra-op thread: on the
project's 2-core machine one step's recurrent product took 0.29 ms with 2 threads against
0.21 ms with 1. The two directions of a layer are independent, so each runs in a thread of
its own with one intra-op thread: two persistent worker threads take one direction each,
in the forward pass and again in the backward pass (autograd would run the two sub-graphs
one after the other in the calling thread; `TwoDirections` hands each its own
`torch.autograd.grad` call instead), while the calling thread waits. The calling thread's
own thread count is never changed.

The numbers are those of running the directions one after the other, up to the float
rounding of a matrix product computed with another thread count (bit for bit on the AN4
model). Each direction runs on detached copies of its parameters, so hooks on them see one
gradient, once. Second derivatives (create_graph) and a second backward pass through the
same graph (retain_graph) are not supported: they raise, naming the switch below.

Used by asr.model.RecurrentStack when `use_parallel_directions` says so: on a CPU, with at
least two intra-op threads, not while TorchScript scripts (asr.model keeps that branch out of
the script) or traces the model, not inside a worker thread itself, not under saved-tensor
hooks or dispatch modes (activation checkpointing, offloading, FLOP counters: they would not
reach the workers), and unless the environment sets ASR_PARALLEL_DIRECTIONS=0.
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
_in_worker = threading.local()  # .active is True in the worker threads
# functional_call swaps a module's parameters for the copies while it runs: two callers
# training the same model from two threads must not interleave that.
_build_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the worker threads do not exist: start new ones there if needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _worker_pool() -> ThreadPoolExecutor:
    """The two worker threads, started on first use; each runs its ops on one intra-op thread."""
    global _pool
    with _pool_lock:
        if _pool is None:
            caller_threads = torch.get_num_threads()
            # torch re-creates its internal thread pool lazily after a fork(), and two threads
            # doing so at once fail an assert: create it here, then set the workers up in turn.
            torch.set_num_threads(caller_threads)
            one_at_a_time = threading.Lock()
            started = threading.Barrier(3)

            def one_thread():
                _in_worker.active = True
                try:
                    with one_at_a_time:
                        # A thread's first parallel op sets its OpenMP thread count from the
                        # process's (at::lazy_init_num_threads): run one first, so the 1 stays.
                        torch.ones(1 << 20).exp_()  # large enough to run in parallel
                        torch.set_num_threads(1)
                except BaseException:
                    started.abort()  # the caller raises instead of waiting for ever
                    raise
                started.wait()

            pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="asr-rnn-direction",
                                      initializer=one_thread)
            for _ in range(2):  # a task each, so that both threads start now
                pool.submit(lambda: None)
            started.wait()
            # torch.set_num_threads also sets the process-wide count that new threads start
            # from: give it back, once.
            torch.set_num_threads(caller_threads)
            _pool = pool
        return _pool


def _hooks_or_modes_active() -> bool:
    """Saved-tensor hooks or dispatch modes in this thread (thread-local: not in the workers)."""
    try:
        return (
            torch._C._autograd._top_saved_tensors_default_hooks(True) is not None
            or torch._C._len_torch_dispatch_stack() > 0
            or torch._C._len_torch_function_stack() > 0
        )
    except AttributeError:  # private API moved: be safe
        return True


def use_parallel_directions(x: torch.Tensor) -> bool:
    """Whether a bidirectional layer over x should run its directions in two threads."""
    return (
        os.environ.get("ASR_PARALLEL_DIRECTIONS", "1") != "0"
        and x.device.type == "cpu"
        and torch.get_num_threads() >= 2
        and not getattr(_in_worker, "active", False)
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
        and not _hooks_or_modes_active()
    )


class _ThreadState:
    """The calling thread's thread-local torch modes (grad, inference, autocast), to enter
    in a worker thread so that both directions run under the same ones."""

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
    """fn(*args0) and fn(*args1), one in each worker thread, each on one intra-op thread."""
    state, pool = _ThreadState(), _worker_pool()
    futures = [pool.submit(state.run, fn, *args) for args in (args0, args1)]
    return futures[0].result(), futures[1].result()


def _run(rnn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return rnn(x)[0]


def run_directions(dirs: Sequence[nn.Module], x_fwd: torch.Tensor, x_bwd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dirs[0](x_fwd), dirs[1](x_bwd)) outputs, the two computed at the same time, with
    gradients to both inputs and to both modules' parameters."""
    params = [dict(d.named_parameters()) for d in dirs]
    needs_grad = torch.is_grad_enabled() and (
        x_fwd.requires_grad or x_bwd.requires_grad or any(p.requires_grad for ps in params for p in ps.values())
    )
    if not needs_grad:
        return _both(_run, (dirs[0], x_fwd), (dirs[1], x_bwd))
    # Each direction's graph starts from leaves of its own (its input and detached copies of
    # its parameters). They are built here, under the caller's modes, rather than in a custom
    # Function's forward (where grad mode is off); TwoDirections then joins them to the
    # caller's graph.
    with _build_lock:
        graphs = _both(_build, (dirs[0], x_fwd, params[0]), (dirs[1], x_bwd, params[1]))
    return TwoDirections.apply(graphs, x_fwd, x_bwd, *params[0].values(), *params[1].values())


def _build(rnn: nn.Module, x: torch.Tensor, params: dict) -> tuple:
    leaf = x.detach().requires_grad_(x.requires_grad)
    copies = {name: p.detach().requires_grad_(p.requires_grad) for name, p in params.items()}
    y = torch.func.functional_call(rnn, copies, (leaf,))[0]
    return y, leaf, list(copies.values())


class TwoDirections(torch.autograd.Function):
    """Joins the two directions' graphs, built by run_directions, to the caller's graph as one
    node whose backward pass also runs them in two threads. Each sub-graph is kept until then."""

    @staticmethod
    def forward(ctx, graphs, x_fwd, x_bwd, *params):
        ctx.graphs = graphs
        return graphs[0][0].detach(), graphs[1][0].detach()

    @staticmethod
    @torch.autograd.function.once_differentiable  # create_graph=True raises rather than drop terms
    def backward(ctx, grad0, grad1):
        if ctx.graphs is None:
            raise RuntimeError("a second backward pass through the two-thread recurrent layers "
                               "(retain_graph) is not supported: set ASR_PARALLEL_DIRECTIONS=0")
        graphs, ctx.graphs = ctx.graphs, None  # free the sub-graphs with this pass
        need = ctx.needs_input_grad  # (graphs, x_fwd, x_bwd, direction 0's params, direction 1's)
        n0 = len(graphs[0][2])
        wanted = ((need[1], need[3:3 + n0]), (need[2], need[3 + n0:]))
        (gx0, gp0), (gx1, gp1) = _both(_grads, (graphs[0], grad0, wanted[0]), (graphs[1], grad1, wanted[1]))
        return (None, gx0, gx1, *gp0, *gp1)


def _grads(graph: tuple, grad_out: torch.Tensor, wanted: tuple) -> tuple:
    """The gradients of one direction's graph that autograd asks for: (to its input or None,
    to each of its parameters or None)."""
    y, leaf, params = graph
    want_x, want_params = wanted
    inputs = ([leaf] if want_x else []) + [p for p, w in zip(params, want_params) if w]
    if not inputs or not y.requires_grad:
        return None, [None] * len(params)
    found = iter(torch.autograd.grad(y, inputs, grad_out, allow_unused=True))
    g_leaf = next(found) if want_x else None
    return g_leaf, [next(found) if w else None for w in want_params]
