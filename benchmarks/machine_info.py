"""What every benchmark prints about the machine it ran on: the CPU model, how many logical CPUs, whether it
multiplies bf16 natively, and the load average (the machines are shared).

Not a benchmark: the scripts import it (`from benchmarks.machine_info import machine`) with the checkout on sys.path.
"""
from __future__ import annotations

import os
import platform
import subprocess


def machine() -> str:
    """"AMD EPYC, 2 logical CPUs" (lscpu's model name; the platform's processor string where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or platform.machine() or "unknown CPU"
    return f"{name}, {os.cpu_count()} logical CPUs"


def cpu_kind() -> str:
    """The machine plus whether bf16 is native here: "Intel(R) Xeon(R) Processor, 2 logical CPUs; bf16 emulated
    (no amx_bf16 / avx512_bf16 in /proc/cpuinfo)" — every figure must say which kind of CPU it came from."""
    from taesan.util import native_bf16

    bf16 = "bf16 native (AMX or AVX512-BF16)" if native_bf16() else "bf16 emulated (no amx_bf16 / avx512_bf16 in /proc/cpuinfo)"
    return f"{machine()}; {bf16}"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
