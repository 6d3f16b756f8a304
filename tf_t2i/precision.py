"""`train.precision=auto`: the fastest dtype policy this machine runs natively, chosen once.

bfloat16 halves memory traffic and runs on matrix units where the hardware has them (CPUs with
AVX512_BF16 or AMX, GPUs of compute capability 8.0 and newer). Elsewhere TensorFlow emulates it:
on an AVX2-only CPU a mixed_bfloat16 GAN step ran 6-8x slower than float32, because the
convolution gradient kernels fall back to slow reference code. float16 needs loss scaling and is
never chosen automatically; an explicit `train.precision` always wins.
"""
from __future__ import annotations

import dataclasses
import os
import re

AUTO = "auto"
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_MIN_BF16_GPU_CAPABILITY = (8, 0)


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    """A resolved precision and the one-line reason for it."""

    policy: str
    reason: str


def cpu_flags(cpuinfo_path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags of the first processor listed, or an empty set where unreadable."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if re.match(r"^(flags|Features)\s*:", line):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_capabilities() -> list[tuple[int, int]]:
    """Compute capabilities of the visible GPUs ((0, 0) where TensorFlow does not report one)."""
    import tensorflow as tf

    capabilities = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        capabilities.append(tuple(details.get("compute_capability", (0, 0))))
    return capabilities


def resolve_precision(requested: str, flags: set[str] | None = None,
                      gpus: list[tuple[int, int]] | None = None) -> PrecisionChoice:
    """Resolves `train.precision`; anything but "auto" is returned as it is.

    Args:
        requested: "auto", "float32", "mixed_bfloat16" or "mixed_float16".
        flags: CPU feature flags (default: read from /proc/cpuinfo). An ONEDNN_MAX_CPU_ISA
            below bfloat16 (e.g. AVX2, which emulates an older CPU) counts as no native bf16.
        gpus: compute capabilities of the GPUs training will use (default: the visible ones).
    """
    if requested != AUTO:
        return PrecisionChoice(requested, "set explicitly")
    gpus = gpu_capabilities() if gpus is None else gpus
    if gpus:
        oldest = min(gpus)
        if oldest >= _MIN_BF16_GPU_CAPABILITY:
            return PrecisionChoice("mixed_bfloat16", f"every GPU has compute capability >= 8.0 "
                                                     f"(bfloat16 tensor cores; oldest {oldest})")
        return PrecisionChoice("float32", f"a GPU of compute capability {oldest[0]}.{oldest[1]} "
                                          "< 8.0 has no native bfloat16")
    isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa_cap and isa_cap not in ("ALL", "DEFAULT") and not any(
            name in isa_cap for name in ("BF16", "AMX")):
        return PrecisionChoice("float32", f"ONEDNN_MAX_CPU_ISA={isa_cap} keeps oneDNN from the "
                                          "CPU's bfloat16 instructions")
    flags = cpu_flags() if flags is None else flags
    native = sorted(flag for flag in _CPU_BF16_FLAGS if flag in flags)
    if native:
        return PrecisionChoice("mixed_bfloat16", f"the CPU has native bfloat16 ({', '.join(native)})")
    return PrecisionChoice("float32", "the CPU has no native bfloat16 (neither avx512_bf16 nor "
                                      "amx_bf16), where bfloat16 runs several times slower")
