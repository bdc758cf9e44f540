"""Landmark models by name: `load_model("resnet")` gives an object with `predict(frame, boxes)`."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelError
from .base import LandmarkModel
from .onnx_landmarker import OnnxLandmarker

#: Shipped models: CLI name → file in the models folder.
MODEL_FILES = {"resnet": "resnet.onnx", "cnn": "cnn.onnx", "cascade": "cascade.npz"}
MODEL_NAMES = tuple(MODEL_FILES)


def models_dir() -> Path:
    """$RTALIGN_MODELS, else the project's exported/ folder."""
    return Path(os.environ.get("RTALIGN_MODELS", Path(__file__).resolve().parents[2] / "exported"))


def load_model(name: str, device: str = "cpu", threads: int = 2) -> LandmarkModel:
    """A shipped model by name, or any .onnx / .npz file by path.

    Raises:
        ModelError: unknown name, or a file that is missing or malformed.
    """
    if name in MODEL_FILES:
        path = models_dir() / MODEL_FILES[name]
    elif name.endswith((".onnx", ".npz")):
        path = Path(name)
    else:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)} or give a .onnx/.npz file")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if path.suffix == ".npz":
        from .cascade import CascadeLandmarker  # numba compiles on import: only when asked for
        return CascadeLandmarker(path, threads=threads, name=name)
    return OnnxLandmarker(path, device=device, threads=threads, name=name)


__all__ = ["LandmarkModel", "OnnxLandmarker", "load_model", "MODEL_NAMES", "models_dir"]
