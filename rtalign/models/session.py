"""The one place where onnxruntime sessions are made: providers and thread counts set deliberately."""
from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from ..errors import DeviceError, ModelError

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda")


def create_session(path: str | Path, device: str = "cpu", threads: int = 2) -> ort.InferenceSession:
    """An InferenceSession on `device` with `threads` intra-op threads (one inter-op thread).

    Raises:
        ModelError: the file is missing or not a valid ONNX model.
        DeviceError: CUDA was asked for but onnxruntime-gpu or a GPU is missing.
    """
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DeviceError("--device cuda needs onnxruntime-gpu and an NVIDIA GPU: "
                              "pip install onnxruntime-gpu (this onnxruntime has only "
                              f"{', '.join(ort.get_available_providers())})")
        providers.insert(0, "CUDAExecutionProvider")
    if not Path(path).is_file():
        raise ModelError(f"model file not found: {path}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own untyped errors for corrupt files
        raise ModelError(f"cannot load ONNX model {path}: {str(e).splitlines()[0]}") from None
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        raise DeviceError("CUDA provider could not start (no usable GPU or CUDA libraries); use --device cpu")
    log.info("loaded %s with providers %s, %d threads", path, session.get_providers(), threads)
    return session
