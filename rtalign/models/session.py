"""The one place where onnxruntime sessions are made: providers and thread counts set deliberately."""
from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from ..errors import DeviceError, ModelError
from ..runtime import DEVICES, RuntimeOptions, resolve_runtime

log = logging.getLogger(__name__)

__all__ = ["DEVICES", "create_session"]


def _providers(runtime: RuntimeOptions) -> list[str]:
    available = ort.get_available_providers()
    if runtime.providers:
        missing = [p for p in runtime.providers if p not in available]
        if missing:
            raise DeviceError(f"this onnxruntime has no {', '.join(missing)} (it has {', '.join(available)})")
        return list(runtime.providers)
    if runtime.device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise DeviceError("--device cuda needs onnxruntime-gpu and an NVIDIA GPU: pip uninstall -y onnxruntime && "
                              "pip install onnxruntime-gpu (installed side by side, the CPU package hides the GPU one; "
                              f"this onnxruntime has only {', '.join(available)})")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def create_session(path: str | Path, runtime: RuntimeOptions | None = None, *, device: str | None = None,
                   threads: int | None = None) -> ort.InferenceSession:
    """An InferenceSession on `runtime`'s providers with its intra-op threads (one inter-op thread).

    `device`/`threads` are the older spelling of `runtime` (see resolve_runtime).

    Raises:
        ModelError: the file is missing or not a valid ONNX model.
        DeviceError: a provider (CUDA, or one named in runtime.providers) is missing or cannot start.
    """
    runtime = resolve_runtime(runtime, device, threads)
    providers = _providers(runtime)
    if not Path(path).is_file():
        raise ModelError(f"model file not found: {path}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = runtime.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL   # fusions, int8 QDQ kernels
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own untyped errors for corrupt files
        raise ModelError(f"cannot load ONNX model {path}: {str(e).splitlines()[0]}") from None
    failed = [p for p in providers if p not in session.get_providers()]
    if failed:
        raise DeviceError(f"{', '.join(failed)} could not start (no usable GPU or its libraries); use --device cpu")
    log.info("loaded %s with providers %s, %d threads", path, session.get_providers(), runtime.threads)
    return session
