"""Which torch device segmentation runs on."""

from __future__ import annotations

import torch

from mis.settings import settings

__all__ = ["describe_device", "pick_device"]


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to compute on.

    ``prefer``: None or ``"auto"`` -> ``$MIS_DEVICE`` if set, else CUDA when available,
    else CPU; ``"cpu"``; ``"cuda"`` / ``"cuda:N"`` (a clear error if CUDA is not there
    or N does not exist); a ``torch.device`` is checked the same way.
    """
    if isinstance(prefer, torch.device):
        prefer = str(prefer)
    if prefer is None or prefer == "auto":
        configured = (settings().device or "").strip()
        if configured and configured != "auto":
            return pick_device(configured)
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    p = prefer.strip().lower()
    if p == "cpu":
        return torch.device("cpu")
    if p.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} asked for, but CUDA is not available (torch {torch.__version__})")
        dev = torch.device(p)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"device {prefer!r}: only {torch.cuda.device_count()} CUDA device(s)")
        return dev
    if p == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise RuntimeError("device 'mps' asked for, but MPS is not available")
        return torch.device("mps")
    raise ValueError(f"unknown device {prefer!r}: use auto, cpu, cuda, cuda:N or mps")


def describe_device(device: torch.device | str | None = None) -> str:
    """One line: device, its name, and the CPU thread count torch uses."""
    dev = pick_device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        return f"{dev} ({name}), torch {torch.__version__}"
    return f"cpu, torch {torch.__version__}, {torch.get_num_threads()} threads"
