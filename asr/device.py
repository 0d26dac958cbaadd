"""Where a model runs: the torch device and the autocast precision."""

from __future__ import annotations

import torch

from asr.errors import AsrError


def pick_device(name: str | None = None) -> torch.device:
    """The named torch device, or cuda when available, else cpu."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AsrError(f"--device {name}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AsrError(f"--device {name}: CUDA is not available on this machine")
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for train.precision on `device`, or None for float32.

    "auto": bf16 on a CUDA GPU that supports it, and on a CPU with native bf16 arithmetic
    (AVX512-BF16 or AMX instructions). On the CPU, autocast runs the convolutions and linear
    layers in bf16 and keeps the recurrent layers and the CTC loss in float32; the AN4 model
    trains about 1.6x faster that way on a 2-core CPU with those instructions, and about 1.9x
    slower on one with AVX-512 but without them, where oneDNN emulates bf16
    (bench/train_throughput.py; README, "Distributed training").
    """
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if precision == "auto" and device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return None


def cpu_has_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic in hardware (AVX512-BF16 or AMX tiles).

    oneDNN's own check (torch.ops.mkldnn._is_mkldnn_bf16_supported) also says yes on plain
    AVX-512, where bf16 is emulated and slower than float32."""
    try:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return bool(native and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
