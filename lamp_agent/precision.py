"""Which training precision a device computes fast: ``precision: auto`` resolved per machine.

bfloat16 autocast pays only where the hardware multiplies bf16 natively. On CPUs with AMX or
AVX512-BF16 it is 1.26–1.37x faster than float32 at the ``small`` preset; on CPUs with AVX2
alone (many AMD EPYC) oneDNN emulates it and an update is 4–5x slower (``bench/train.py``
measures both on the machine it runs on). ``auto`` therefore picks bf16 on a GPU that supports
it and on a CPU with one of those instruction sets, and float32 everywhere else.
"""

from __future__ import annotations

import os
from pathlib import Path

NATIVE_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
"""``/proc/cpuinfo`` flags of the instruction sets that multiply bfloat16 natively."""
ONEDNN_ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"
"""oneDNN's cap on the instruction sets its kernels use; a cap below AVX512_CORE_BF16 emulates bf16."""
_ONEDNN_NATIVE_BF16 = ("AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
                       "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL", "DEFAULT")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of the first CPU in ``cpuinfo`` (empty where the file does not exist)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def native_bf16_cpu(flags: frozenset[str] | None = None, onednn_cap: str | None = None) -> str | None:
    """The name of the CPU feature that computes bf16 natively (``amx_bf16``, ``avx512_bf16``), or
    None when this CPU has none or oneDNN is capped below it (``ONEDNN_MAX_CPU_ISA``)."""
    flags = cpu_flags() if flags is None else flags
    cap = os.environ.get(ONEDNN_ISA_VARIABLE) if onednn_cap is None else onednn_cap
    if cap and cap.upper() not in _ONEDNN_NATIVE_BF16:
        return None
    return next((flag for flag in NATIVE_BF16_CPU_FLAGS if flag in flags), None)


def resolve_precision(requested: str, device: str) -> tuple[str, str]:
    """The precision an agent trains with, and why.

    Args:
        requested: ``fp32``, ``bf16`` or ``auto``.
        device: The torch device string (``cpu``, ``cuda``, ``cuda:1``).

    Returns:
        ``(precision, reason)``: ``fp32`` or ``bf16``, and a short phrase saying why.
    """
    if requested != "auto":
        return requested, "as configured"
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_bf16_supported():
            return "bf16", "auto: the GPU supports bfloat16"
        return "fp32", "auto: the GPU has no bfloat16 support"
    feature = native_bf16_cpu()
    if feature:
        return "bf16", f"auto: the CPU has {feature}"
    return "fp32", "auto: the CPU has neither AMX nor AVX512-BF16 (bf16 would be emulated, several times slower)"
