"""Every benchmark still runs: each ``bench/bench_*.py`` in its ``--quick`` mode, end to end.

A bench that only runs on the machine that wrote it cannot be re-checked, and one nobody
runs rots with every change. ``--quick`` exercises the whole path (data, anchor, ours, the
report) on tiny data; it must exit 0 and must not overwrite the recorded results.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
BENCHES = sorted(BENCH.glob("bench_*.py"))


def _results_digest() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((BENCH / "results").glob("*"))}


def test_there_are_benches() -> None:
    assert len(BENCHES) >= 5


@pytest.mark.slow
@pytest.mark.parametrize("bench", BENCHES, ids=[b.stem for b in BENCHES])
def test_bench_runs_quick(bench: Path) -> None:
    before = _results_digest()
    env = {k: v for k, v in os.environ.items() if k not in ("MIS_DATABASE_URL", "MIS_HOME")}
    out = subprocess.run([sys.executable, str(bench), "--quick"], cwd=BENCH.parent, env=env,
                         capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, (
        f"{bench.name} --quick exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}")
    assert out.stdout.strip(), f"{bench.name} --quick printed nothing"
    assert _results_digest() == before, f"{bench.name} --quick changed bench/results/"
