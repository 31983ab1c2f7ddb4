"""What a latency was measured under, beyond the settings: software versions and the device model.

These are recorded with every timing and profile, shown on the dashboard, and only warned about
when they differ: a profile measured on the robot (a Jetson's `torch 2.5.0a0+...nv24.08`) never
has the search server's torch build, and refusing it would make profiles useless. What decides
whether latencies are comparable is the backbone, input size, batch, precision and runtime.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch

from attnas.evaluators.latency.timing import device_name


def driver_version() -> str:
    """The NVIDIA kernel driver's version ('' without one)."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        return ""
    for word in text.split():
        if word.count(".") >= 1 and word.replace(".", "").isdigit():
            return word
    return ""


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def software(device: str, runtime: str = "eager") -> dict[str, str]:
    """Versions that shape a timing on `device` with `runtime` (empty values left out)."""
    found = {"torch": torch.__version__}
    if torch.device(device).type == "cuda":
        found |= {"cuda": torch.version.cuda or "", "cudnn": str(torch.backends.cudnn.version() or ""), "driver": driver_version()}
    if runtime == "onnxruntime":
        found["onnxruntime"] = _version("onnxruntime") or _version("onnxruntime-gpu")
    elif runtime == "tensorrt":
        found["tensorrt"] = _version("tensorrt")
    return {k: v for k, v in found.items() if v}


def timing_device(device: str, threads: int) -> str:
    """The model of device a latency is timed on, as the study compares it between workers: the
    GPU's name, or the CPU's with its thread count (ratios move with both)."""
    torch_device = torch.device(device)
    name = device_name(torch_device)
    return name if torch_device.type == "cuda" else f"{name}, {threads} threads"


def differences(recorded: dict[str, str], here: dict[str, str]) -> list[str]:
    """`torch 2.5.0a0+nv24.08 (here 2.14.1)` for each version that differs (warned, never refused)."""
    return [f"{name} {value} (here {here[name]})" for name, value in recorded.items() if name in here and here[name] != value]
