"""What every benchmark prints about the machine it ran on: the CPU model and how many logical CPUs.

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
