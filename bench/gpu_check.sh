#!/usr/bin/env bash
# The GPU checks of issue 18, for a device machine (CUDA):
#   1. tests/test_gpu.py  -- GPU prediction equals CPU prediction (skipped without CUDA);
#   2. bench/bench_segmentation.py --device cuda -- features + predict MPix/s on an 8192^2
#      image, whole-image segmentation vs reading its chunks, and the GPU-vs-CPU table.
# Needs only numpy, scipy, torch, scikit-learn, pydantic (+ pytest for step 1); no
# database, no zarr. Outputs go to "$OUT" when set (else bench/results/gpu/).
#   usage: bash bench/gpu_check.sh            (PYTHON=python3.12 to choose the interpreter)
set -u
cd "$(dirname "$0")/.."
dest="${OUT:-bench/results/gpu}"
mkdir -p "$dest"
py="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

"$py" - <<'PY' 2>&1 | tee "$dest/environment.txt"
import importlib, platform
print("python", platform.python_version())
for name in ("numpy", "scipy", "torch", "sklearn", "pydantic", "pytest"):
    try:
        m = importlib.import_module(name)
        print(name, getattr(m, "__version__", "?"))
    except ImportError as exc:
        print(name, "MISSING:", exc)
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY

status=0
if "$py" -c "import pytest" 2>/dev/null; then
    timeout 900 "$py" -m pytest tests/test_gpu.py --noconftest -p no:cacheprovider -q -rA 2>&1 | tee "$dest/test_gpu.txt"
    status=${PIPESTATUS[0]}
else
    echo "pytest missing: the GPU-vs-CPU table of the bench below is the equality check" | tee "$dest/test_gpu.txt"
fi
timeout 900 "$py" bench/bench_segmentation.py --device cuda --out "$dest/segmentation_gpu.txt" 2>&1 | tee "$dest/segmentation_gpu.log"
bench=${PIPESTATUS[0]}
echo "test_gpu exit $status, bench exit $bench" | tee -a "$dest/segmentation_gpu.log"
exit $(( status != 0 || bench != 0 ))
