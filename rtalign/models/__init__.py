"""Landmark models by name: `load_model("resnet")` gives an object with `predict(frame, boxes)`."""
from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path

from ..errors import ModelError
from ..runtime import RuntimeOptions, resolve_runtime
from .base import LandmarkModel
from .onnx_landmarker import OnnxLandmarker
from .refine import refine

log = logging.getLogger(__name__)

#: Shipped models: CLI name → file in the models folder.
MODEL_FILES = {"resnet": "resnet.onnx", "cnn": "cnn.onnx", "cascade": "cascade.npz"}
MODEL_NAMES = tuple(MODEL_FILES)


def models_dir() -> Path:
    """Where the shipped models are: $RTALIGN_MODELS, else the `exported` folder inside the package.

    setup.cfg installs the repository's `exported/` (written by train/, the one copy of the models
    and their cards) as `rtalign/exported`, so a wheel carries its models; a source checkout or an
    editable install reads the repository's folder itself.
    """
    if os.environ.get("RTALIGN_MODELS"):
        return Path(os.environ["RTALIGN_MODELS"])
    installed = resources.files("rtalign") / "exported"
    if installed.is_dir():
        return Path(str(installed))
    return Path(__file__).resolve().parents[2] / "exported"


def _where_models_come_from() -> str:
    if os.environ.get("RTALIGN_MODELS"):
        return f" (RTALIGN_MODELS={os.environ['RTALIGN_MODELS']}: point it at a folder holding the shipped models, or unset it)"
    return " (this installation lacks its models: reinstall it, e.g. pip install --force-reinstall rtalign)"


def model_path(name: str | os.PathLike) -> Path:
    """The file a model name or path stands for, without loading it.

    Raises:
        ModelError: unknown name, or a file that is missing.
    """
    name = os.fsdecode(name)
    if name in MODEL_FILES:
        path = models_dir() / MODEL_FILES[name]
    elif name.endswith((".onnx", ".npz")):
        path = Path(name)
    else:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)} or give a .onnx/.npz file")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}" + (_where_models_come_from() if name in MODEL_FILES else ""))
    return path


def load_model(name: str | os.PathLike, device: str | None = None, threads: int | None = None, *,
               runtime: RuntimeOptions | None = None) -> LandmarkModel:
    """A shipped model by name, or any .onnx / .npz file by path (str or Path), on `runtime` (default: CPU,
    2 threads).

    `device`/`threads` are the older spelling of `runtime` and still work alone.

    Raises:
        ModelError: unknown name, or a file that is missing or malformed.
        DeviceError: the runtime asks for a provider that is missing.
    """
    runtime = resolve_runtime(runtime, device, threads)
    name = os.fsdecode(name)
    path = model_path(name)
    if path.suffix == ".npz":
        from .cascade import CascadeLandmarker  # numba compiles on import: only when asked for
        if runtime.device != "cpu":
            log.warning("%s runs on the CPU: device %s is for the networks (resnet, cnn)", name, runtime.device)
        return CascadeLandmarker(path, threads=runtime.threads, name=name)
    return OnnxLandmarker(path, runtime=runtime, name=name)



def as_model(model, runtime: RuntimeOptions) -> LandmarkModel:
    """`model` loaded on `runtime` when it is a name or path (str, bytes, os.PathLike), else as it is when it is a
    LandmarkModel (anything with `predict_scored`).

    Raises:
        ModelError: anything else (None, a number): said now, not as an AttributeError at the first frame.
    """
    if isinstance(model, (str, bytes, os.PathLike)):
        return load_model(model, runtime=runtime)
    if not callable(getattr(model, "predict_scored", None)):
        raise ModelError(f"model must be a name ({', '.join(MODEL_NAMES)}), a .onnx/.npz path or a LandmarkModel, "
                         f"got {type(model).__name__}")
    return model


__all__ = ["LandmarkModel", "OnnxLandmarker", "as_model", "load_model", "model_path", "MODEL_NAMES", "models_dir",
           "refine"]
