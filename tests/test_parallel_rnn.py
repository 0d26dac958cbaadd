"""The two directions of a bidirectional layer run in two threads on a CPU (asr.parallel_rnn):
the same outputs and gradients as one after the other, under the caller's grad, inference and
autocast modes, with the process's thread count left as it was."""

import os
import subprocess
import sys
import threading

import pytest
import torch

import asr.model
import asr.parallel_rnn
from asr.model import RecurrentStack


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def stack(rnn_type):
    torch.manual_seed(0)
    return RecurrentStack(rnn_type, 24, 16, 2, True, 0.0)


def inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 30, 24, generator=g)
    return x, torch.tensor([30, 21, 9])


def run(model, x, lens, parallel, monkeypatch):
    """Outputs, input gradient and parameter gradients of a loss over the valid frames."""
    monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", "1" if parallel else "0")
    x = x.clone().requires_grad_(True)
    model.zero_grad()
    y = model(x, lens)
    mask = (torch.arange(y.shape[1]) < lens.unsqueeze(1)).unsqueeze(-1)
    ((y * mask) ** 2).sum().backward()
    return y.detach(), x.grad, [p.grad.clone() for p in model.parameters()], y.grad_fn


def backward_nodes(grad_fn):
    seen, todo = set(), [grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            todo += [n for n, _ in node.next_functions]
    return {type(n).__name__ for n in seen}


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_same_outputs_and_gradients_as_one_direction_after_the_other(rnn_type, two_threads, monkeypatch):
    model = stack(rnn_type)
    x, lens = inputs()
    y1, dx1, dp1, fn1 = run(model, x, lens, False, monkeypatch)
    y2, dx2, dp2, fn2 = run(model, x, lens, True, monkeypatch)
    assert "TwoDirectionsBackward" in backward_nodes(fn2)  # the threaded path ran
    assert "TwoDirectionsBackward" not in backward_nodes(fn1)
    torch.testing.assert_close(y2, y1)
    torch.testing.assert_close(dx2, dx1)
    assert len(dp2) == len(dp1) == 16
    for a, b in zip(dp2, dp1):
        torch.testing.assert_close(a, b)
    assert torch.get_num_threads() == 2


def test_frozen_parameters_and_an_input_without_gradient(two_threads, monkeypatch):
    x, lens = inputs()
    grads = {}
    for parallel in ("0", "1"):
        monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", parallel)
        model = stack("gru")
        for p in model.layers[0][1].parameters():
            p.requires_grad_(False)
        model(x, lens).pow(2).sum().backward()
        grads[parallel] = [p.grad for p in model.parameters()]
    assert sum(g is None for g in grads["1"]) == 4  # the frozen direction's four tensors
    for a, b in zip(grads["1"], grads["0"]):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


def test_a_hook_on_a_parameter_sees_its_gradient_once(two_threads, monkeypatch):
    x, lens = inputs()
    norms = {}
    for parallel in ("0", "1"):
        monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", parallel)
        model = stack("gru")
        calls = []
        model.layers[0][1].weight_hh_l0.register_hook(lambda g: calls.append(1) or g * 2)
        model(x, lens).pow(2).sum().backward()
        assert len(calls) == 1
        norms[parallel] = model.layers[0][1].weight_hh_l0.grad.norm()
    torch.testing.assert_close(norms["1"], norms["0"])


def test_higher_order_or_repeated_backward_passes_raise_clearly(two_threads, monkeypatch):
    monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", "1")
    model = stack("gru")
    x, lens = inputs()
    x.requires_grad_(True)
    loss = model(x, lens).pow(2).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="ASR_PARALLEL_DIRECTIONS=0"):
        loss.backward()
    (g,) = torch.autograd.grad(model(x, lens).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()  # not silently zero second-order terms


def test_activation_checkpointing_runs_the_directions_in_turn(two_threads, monkeypatch):
    """Saved-tensor hooks do not reach the worker threads: under them the layer runs in turn,
    with the same numbers."""
    from torch.utils.checkpoint import checkpoint

    monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", "1")
    x, lens = inputs()
    out = {}
    for use_checkpoint in (False, True):
        model = stack("gru")
        xx = x.clone().requires_grad_(True)
        y = checkpoint(model, xx, lens, use_reentrant=False) if use_checkpoint else model(xx, lens)
        y.pow(2).sum().backward()
        out[use_checkpoint] = (y.detach(), xx.grad)
        if use_checkpoint:
            assert "TwoDirectionsBackward" not in backward_nodes(y.grad_fn)
    torch.testing.assert_close(out[True], out[False])


def test_keeps_the_callers_modes(two_threads, monkeypatch):
    model = stack("gru")
    x, lens = inputs()
    monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", "1")
    seen = []
    hooks = [rnn.register_forward_pre_hook(
        lambda *_: seen.append((torch.is_grad_enabled(), torch.is_inference_mode_enabled())))
        for dirs in model.layers for rnn in dirs]
    with torch.inference_mode():
        y = model(x, lens)
    assert y.is_inference() and not y.requires_grad
    assert seen == [(False, True)] * 4  # two layers, two directions, each in a worker thread
    seen.clear()
    with torch.no_grad():
        assert not model(x, lens).requires_grad
    assert seen == [(False, False)] * 4
    seen.clear()
    model(x, lens)
    assert seen == [(True, False)] * 4
    for hook in hooks:
        hook.remove()
    # bf16 input to float32 weights: only autocast makes the recurrent layers take it
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = model(x.bfloat16(), lens)
    monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", "0")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        slow = model(x.bfloat16(), lens)
    assert fast.dtype == slow.dtype == torch.bfloat16
    torch.testing.assert_close(fast, slow)


def test_the_worker_threads_run_one_intra_op_thread_and_the_callers_count_stays(two_threads, monkeypatch):
    monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", "1")
    model = stack("gru")
    model(*inputs())

    def count():
        torch.ones(1 << 20).exp_()  # a parallel op, after which the thread's count is settled
        return torch.get_num_threads(), asr.parallel_rnn.use_parallel_directions(torch.zeros(1))

    counts = asr.parallel_rnn._both(lambda: count(), (), ())
    assert counts == ((1, False), (1, False))  # one thread each; no threads from inside a worker
    assert torch.get_num_threads() == 2
    seen = []
    new_thread = threading.Thread(target=lambda: seen.append(count()[0]))
    new_thread.start()
    new_thread.join()
    assert seen == [2]  # a thread started later gets the process's count


def test_not_used_with_one_thread_or_off_the_cpu(two_threads, monkeypatch):
    x = torch.zeros(1, 2, 3)
    monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", "1")
    assert asr.parallel_rnn.use_parallel_directions(x)
    assert not asr.parallel_rnn.use_parallel_directions(x.to("meta"))
    monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", "0")
    assert not asr.parallel_rnn.use_parallel_directions(x)
    monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", "1")
    torch.set_num_threads(1)
    assert not asr.parallel_rnn.use_parallel_directions(x)


def test_torchscript_runs_the_directions_in_turn(two_threads, monkeypatch):
    monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", "1")
    model = stack("lstm").eval()
    x, lens = inputs()
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x, lens), model(x, lens))


def test_a_forked_child_starts_its_own_worker(two_threads, monkeypatch, tmp_path):
    """The parent's worker thread does not survive fork(): the child must not wait on it."""
    code = (
        "import os, sys, torch\n"
        "from asr.model import RecurrentStack\n"
        "torch.set_num_threads(2)\n"
        "m = RecurrentStack('gru', 8, 8, 1, True, 0.0)\n"
        "x, lens = torch.randn(2, 5, 8), torch.tensor([5, 3])\n"
        "m(x, lens)\n"  # the worker thread starts in the parent
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    m(x, lens).sum().backward()\n"
        "    os._exit(0)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "sys.exit(os.waitstatus_to_exitcode(status))\n"
    )
    env = dict(os.environ, ASR_PARALLEL_DIRECTIONS="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=60)
    assert done.returncode == 0


def test_the_acoustic_model_uses_it(two_threads, monkeypatch):
    monkeypatch.setenv("ASR_PARALLEL_DIRECTIONS", "1")
    assert asr.model.run_directions is asr.parallel_rnn.run_directions
    from asr.config import ModelConfig

    model = asr.model.AcousticModel(ModelConfig(n_layers=2, hidden_size=16, conv_channels=4), 20, 5)
    log_probs, _ = model(torch.randn(2, 40, 20), torch.tensor([40, 31]))
    assert "TwoDirectionsBackward" in backward_nodes(log_probs.grad_fn)
