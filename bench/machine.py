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
    """One line: OS, CPU, cores, Python, load average."""
    load = tuple(round(x, 2) for x in os.getloadavg())
    return (f"{platform.system()} {platform.release()} {platform.machine()}, {cpu_model()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load}")
