"""What the benches print about the machine they ran on (ratios are the result; this says
how noisy the absolute figures may be)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    """One line: OS, CPU, cores, memory, load average."""
    load = tuple(round(x, 2) for x in os.getloadavg())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"machine: {platform.system()} {platform.release()} {platform.machine()}; cpu: {cpu_model()}, "
            f"{os.cpu_count()} logical cores; memory {memory:.1f} GiB; load average {load}")


def versions(*modules) -> str:
    """``python 3.11.7; numpy 2.4.6, zarr 3.1.6, ...`` for the libraries a bench exercises."""
    return f"python {platform.python_version()}; " + ", ".join(
        f"{m.__name__} {getattr(m, '__version__', '?')}" for m in modules)
