"""A thin wrapper around an exported landmark network: crop, run, map back."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort

from ..crop import apply_affine, box_affines, compose_affine, frame_crops, invert_affine
from ..errors import ModelError
from ..runtime import RuntimeOptions
from .session import create_session

_REQUIRED = ("rtalign.input_size", "rtalign.crop_scale", "rtalign.color", "rtalign.mean", "rtalign.std")


def _number(path, meta: dict, key: str, low: float, high: float) -> float:
    try:
        value = float(meta[key])
    except ValueError:
        value = float("nan")
    if not low <= value <= high:            # NaN fails too
        raise ModelError(f"{path}: metadata {key}={meta[key]!r} is not a number within {low:g}-{high:g}")
    return value


def _checked_input(path, session: ort.InferenceSession, size: int) -> str:
    """The input's name, once its shape is (batch, 1, size, size): a graph made for other crops would
    fail on every frame inside onnxruntime."""
    inputs = session.get_inputs()
    shape = inputs[0].shape if len(inputs) == 1 else None
    fixed = None if shape is None or len(shape) != 4 else [d if isinstance(d, int) else None for d in shape[1:]]
    if fixed is None or any(d is not None and d != want for d, want in zip(fixed, (1, size, size))):
        raise ModelError(f"{path}: the network takes {[i.shape for i in inputs]}, not the (N, 1, {size}, {size}) "
                         "grey crops its metadata describes")
    return inputs[0].name


class OnnxLandmarker:
    """Landmarks from an ONNX network whose preprocessing is read from its own metadata.

    Args:
        path: the .onnx file.
        session: an existing InferenceSession to use instead of creating one (tests, sharing).
        runtime: device, threads and providers of the session created here.
    """

    def __init__(self, path, session: ort.InferenceSession | None = None, *, runtime: RuntimeOptions = RuntimeOptions(),
                 name: str | None = None):
        self.session = session or create_session(path, runtime)
        self.threads = self.session.get_session_options().intra_op_num_threads or runtime.threads
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = [k for k in _REQUIRED if k not in meta]
        if missing:
            raise ModelError(f"{path}: not an rtalign model (metadata lacks {', '.join(missing)})")
        self.name = name or meta.get("rtalign.arch", "onnx")
        if meta["rtalign.color"] != "gray":
            raise ModelError(f"{path}: colour mode {meta['rtalign.color']!r} is not supported")
        self.input_size = int(_number(path, meta, "rtalign.input_size", 16, 1024))
        self.crop_scale = _number(path, meta, "rtalign.crop_scale", 0.5, 4.0)
        self.mean = _number(path, meta, "rtalign.mean", -1e6, 1e6)
        self.std = _number(path, meta, "rtalign.std", 1e-6, 1e6)
        #: score below which a tracked face counts as lost (measured at export; 0 = never)
        self.min_score = _number(path, meta, "rtalign.min_score", 0.0, 1.0) if "rtalign.min_score" in meta else 0.0
        self.metadata = dict(meta)
        self._input = _checked_input(path, self.session, self.input_size)
        self._outputs = [o.name for o in self.session.get_outputs()]
        points = {o.name: o.shape for o in self.session.get_outputs()}.get("points")
        if points is None or len(points) != 3 or any(isinstance(d, int) and d != want
                                                     for d, want in zip(points[1:], (68, 2))):
            raise ModelError(f"{path}: not an rtalign model (it needs a 'points' output of shape (N, 68, 2); "
                             f"it has {', '.join(self._outputs)})")
        self.has_score = "score" in self._outputs

    def predict(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, 68, 2) frame-pixel landmarks for N face boxes (see LandmarkModel)."""
        return self.predict_scored(frame, boxes)[0]

    def predict_scored(self, frame: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks and a (N,) face-presence score in [0, 1] (1.0 when the model has no score output)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        return self._predict_crops(frame, box_affines(boxes, self.crop_scale, self.input_size))

    def predict_turned(self, frame: np.ndarray, to_upright: np.ndarray, boxes: np.ndarray):
        """Landmarks (frame pixels) and scores of faces boxed in their own upright views: `to_upright`
        (N, 2, 3) maps the frame to each face's upright view (rtalign.crop.upright_affines), `boxes` (N, 4)
        are the faces' boxes there. Each crop is warped straight from the frame, one resampling as in
        training, instead of from a resampled upright copy (which also costs a second warp)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        return self._predict_crops(frame, compose_affine(box_affines(boxes, self.crop_scale, self.input_size),
                                                         np.asarray(to_upright, np.float64).reshape(-1, 2, 3)))

    def _predict_crops(self, frame: np.ndarray, affines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points in frame pixels and scores of the crops that the (N, 2, 3) affines frame → crop cut."""
        n = len(affines)
        if n == 0:
            return np.empty((0, 68, 2), np.float32), np.empty(0, np.float32)
        crops = frame_crops(frame, affines, self.input_size)    # a buffer per call: threads may share a model
        x = ((crops.astype(np.float32) - self.mean) / self.std)[:, None]
        out = dict(zip(self._outputs, self.session.run(None, {self._input: x})))
        score = out["score"].astype(np.float32) if self.has_score else np.ones(n, np.float32)
        if out["points"].shape != (n, 68, 2) or score.shape != (n,):     # a file's dimensions may be left open
            raise ModelError(f"{self.name}: gave points of shape {out['points'].shape} and scores of shape "
                             f"{score.shape} for {n} faces, not ({n}, 68, 2) and ({n},)")
        return apply_affine(invert_affine(affines), out["points"]).astype(np.float32), score
