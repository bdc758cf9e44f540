"""Where inference runs: one options object, so device and threads are not threaded through every signature."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

from .errors import DeviceError

DEVICES = ("cpu", "cuda")
#: More threads than this only costs time to start (onnxruntime spawns them all), as the CLI's limit.
MAX_THREADS = 64


@dataclass(frozen=True)
class RuntimeOptions:
    """Which hardware runs the landmark model (MediaPipe's BaseOptions, without the model path).

    Args:
        device: "cpu", or "cuda" (needs onnxruntime-gpu and an NVIDIA GPU).
        threads: CPU threads for one inference (the cascade always uses one).
        providers: onnxruntime execution providers in priority order, e.g.
            ("CoreMLExecutionProvider", "CPUExecutionProvider"); None derives them from `device`.

    Raises:
        DeviceError: an unknown device.
        ValueError: threads not a whole number within 1-MAX_THREADS, providers given as one string.
    """
    device: str = "cpu"
    threads: int = 2
    providers: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.device not in DEVICES:
            raise DeviceError(f"unknown device {self.device!r}; expected one of {', '.join(DEVICES)}")
        if not isinstance(self.threads, numbers.Integral) or isinstance(self.threads, bool) \
                or not 1 <= self.threads <= MAX_THREADS:
            raise ValueError(f"threads must be a whole number within 1-{MAX_THREADS}, got {self.threads!r}")
        if isinstance(self.providers, str):
            raise ValueError(f"providers is a sequence of names, e.g. ({self.providers!r},), not one string")
        if self.providers is not None:
            object.__setattr__(self, "providers", tuple(self.providers))


def resolve_runtime(runtime: RuntimeOptions | None = None, device: str | None = None,
                    threads: int | None = None) -> RuntimeOptions:
    """`runtime`, or one made from the older device=/threads= keywords (which still work alone).

    Raises:
        ValueError: both `runtime` and device/threads were given.
        TypeError: `runtime` is not a RuntimeOptions.
    """
    if runtime is None:
        return RuntimeOptions(device or "cpu", 2 if threads is None else threads)
    if not isinstance(runtime, RuntimeOptions):
        raise TypeError(f"runtime must be a RuntimeOptions, e.g. RuntimeOptions(device='cuda'), not {runtime!r}")
    if device is not None or threads is not None:
        raise ValueError("give either runtime=RuntimeOptions(...) or device=/threads=, not both")
    return runtime
