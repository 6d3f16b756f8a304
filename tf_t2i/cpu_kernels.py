"""oneDNN's CPU kernels on every x86-64 CPU, not only the ones TensorFlow picks them for.

TensorFlow's Linux x86 wheels turn their oneDNN kernels on by default only on CPUs with
AVX512_VNNI, AVX512_BF16 or AMX; elsewhere, on an AVX2-only CPU say, convolutions and their
gradients run on Eigen's kernels. On a 2-vCPU AVX2-only AMD EPYC the `flowers64` step ran
2.3x faster with oneDNN (4.52 against 10.05-10.64 s/step, float32; docs/BENCHMARKS.md,
"Training step speed", session 12). The choice has to be made before TensorFlow starts, so the
command-line tools make it when they are imported; a TF_ENABLE_ONEDNN_OPTS the user set wins.
"""
from __future__ import annotations

import os
import platform

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
_X86_64 = ("x86_64", "amd64")


def enable_onednn(environ=None, machine: str | None = None) -> bool:
    """Sets TF_ENABLE_ONEDNN_OPTS=1 on x86-64 unless it is set already.

    Args:
        environ: the environment to change (default: os.environ).
        machine: the machine architecture (default: platform.machine()); elsewhere (aarch64)
            TensorFlow's own default stays.

    Returns:
        Whether oneDNN's kernels are on as far as the environment says (True where the variable
        is now "1", False where the user turned them off or the architecture is left alone).
    """
    environ = os.environ if environ is None else environ
    machine = platform.machine() if machine is None else machine
    if machine.lower() in _X86_64:
        environ.setdefault(ONEDNN_VARIABLE, "1")
    return environ.get(ONEDNN_VARIABLE, "").strip().lower() in ("1", "true")
