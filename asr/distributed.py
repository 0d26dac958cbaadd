"""Data-parallel training across processes and machines, through torchrun.

    torchrun --nproc-per-node 4 -m asr train --train ... --dev ... --exp ...          # one machine
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \\
             --rdzv-endpoint HOST:29400 --rdzv-id RUN -m asr train ...                 # on each machine

`asr train` recognises the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, and the
rendezvous address) and joins the process group: NCCL when it trains on CUDA, gloo on the
CPU (`train.dist_backend` overrides). Without torchrun it is one process, as before, and none
of this is used. A collective that waits longer than `train.dist_timeout` seconds for a rank
(one that died) fails instead of hanging, and torchrun then ends the job with a non-zero exit.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist

from asr.errors import AsrError

BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def from_main(self, compute: Callable[[], Any]) -> Any:
        """`compute()` run on rank 0, its result on every rank; an AsrError it raises is raised
        on every rank (named "rank N: ..." on the others) instead of leaving them waiting."""
        outcome: dict = {}
        if self.is_main:
            try:
                outcome = {"result": compute()}
            except AsrError as e:
                outcome = {"error": str(e)}
        outcome = self.broadcast(outcome)
        if "error" in outcome:
            raise AsrError(outcome["error"] if self.is_main else f"rank {self.rank}: {outcome['error']}")
        return outcome["result"]

    def gather(self, obj: Any) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def sum(self, value: float) -> float:
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t)
        return float(t[0])

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def _collective_device() -> torch.device:
    """Where tensors for collectives live: NCCL only takes CUDA tensors (of this rank's device)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def from_environment() -> DistContext:
    """The process's place in a torchrun job (rank 0 of 1 without torchrun)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise AsrError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun)") from None
    return DistContext(rank, world, local_rank)


def device_for(ctx: DistContext, requested: torch.device) -> torch.device:
    """Each rank's CUDA device is its local rank; CPU stays CPU."""
    if ctx.active and requested.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise AsrError(f"rank {ctx.rank}: local rank {ctx.local_rank} but {torch.cuda.device_count()} CUDA devices")
        torch.cuda.set_device(ctx.local_rank)
        return torch.device("cuda", ctx.local_rank)
    return requested


def init(ctx: DistContext, device: torch.device, backend: str = "auto", timeout_s: float = 300.0) -> None:
    """Join the process group (a no-op for one process)."""
    if not ctx.active or dist.is_initialized():
        return
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend not in BACKENDS[1:]:
        raise AsrError(f"train.dist_backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    available = {"gloo": dist.is_gloo_available(), "nccl": dist.is_nccl_available() and torch.cuda.is_available()}
    if not available[backend]:
        raise AsrError(f"train.dist_backend {backend}: not available on this machine"
                       f"{' (NCCL needs CUDA)' if backend == 'nccl' else ''}")
    if backend == "nccl" and device.type != "cuda":
        raise AsrError("train.dist_backend nccl: needs --device cuda")
    if "MASTER_ADDR" not in os.environ:
        raise AsrError("WORLD_SIZE > 1 but no MASTER_ADDR: start distributed training with torchrun")
    dist.init_process_group(backend, rank=ctx.rank, world_size=ctx.world,
                            timeout=datetime.timedelta(seconds=timeout_s))


def shutdown(ctx: DistContext, finished: bool = False) -> None:
    """Leave the process group. After a finished run the ranks first meet, so that none tears
    down its connections while another still uses them (after a failure they may not meet)."""
    if ctx.active and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
