"""Static int8 (QDQ) quantization of an exported landmark network, calibrated on training crops.

    python -m train.quantize exported/resnet.onnx          # writes exported/resnet.onnx in place
    python -m train.quantize exported/cnn.onnx             # (after its --quantize-dense export)

onnxruntime's static int8 convolutions took a ResNet-18 at 128 px from 4.0 to 1.6 ms per face
(../shared/NOTES-training.md). Only the backbone's convolutions are quantized: the head's 1×1
convolutions (cell scores and sub-pixel offsets) and the decoding inside the graph stay float, since
they set the precision of every point and cost little. The calibration crops are augmented training
crops (the runtime's kind of crop), never validation or test faces; the validation split's NME before
and after is logged and recorded in the metadata, so the card can say what int8 costs. The written
graph gets `train.fast_graph`'s two rewrites (the stem as a space-to-depth convolution, each ReLU folded
into the quantization of the convolution before it).
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from rtalign.data import data_root
from rtalign.metrics import summarize
from rtalign.models import OnnxLandmarker
from rtalign.landmarks import landmark_box
from train.augment import AugmentConfig, augmented_crop, load_faces, normalize
from train.fast_graph import faster
from train.splits import validation_split

log = logging.getLogger("quantize")

#: Convolutions kept in float, by module name: the pixel-in-pixel head (cell scores; in files exported
#: before the peak-cell head also the offsets and neighbour offsets, which are now float matrix products).
HEAD_MODULES = ("cls", "off", "nb")


class _Crops(CalibrationDataReader):
    """Batches of normalized crops for onnxruntime's calibration."""

    def __init__(self, crops: np.ndarray, input_name: str, batch: int = 16):
        x = normalize(crops)[:, None]
        self._batches = iter([{input_name: x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self._batches, None)


def calibration_crops(faces, input_size: int, crop_scale: float, n: int, seed: int = 0) -> np.ndarray:
    """`n` augmented crops of training faces, as the training run makes them."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(faces.images), n, replace=n > len(faces.images))
    return np.stack([augmented_crop(faces.images[i], faces.points[i], crop_scale, input_size, AugmentConfig(), rng)[0]
                     for i in idx])


def validation_nme(path: Path, faces) -> float:
    """NME (%) of an ONNX model on faces given by their ground-truth landmark box (the standard protocol)."""
    model = OnnxLandmarker(path)
    pred = np.stack([model.predict(img, landmark_box(pts)[None])[0] for img, pts in zip(faces.images, faces.points)])
    return summarize(faces.points, pred)["nme"]


def quantize_model(fp32: Path, out: Path, train_faces, n_calibration: int = 256) -> None:
    """Write `out`: `fp32` with int8 backbone convolutions (QDQ, per-channel weights), metadata kept."""
    model = onnx.load(str(fp32))
    meta = {p.key: p.value for p in model.metadata_props}
    size, scale = int(meta["rtalign.input_size"]), float(meta["rtalign.crop_scale"])
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    keep_float = [n for n in convs if any(f"/{m}/" in n for m in HEAD_MODULES)]
    crops = calibration_crops(train_faces, size, scale, n_calibration)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "int8.onnx"
        quantize_static(str(fp32), str(staged), _Crops(crops, model.graph.input[0].name),
                        quant_format=QuantFormat.QDQ, per_channel=True, op_types_to_quantize=["Conv"],
                        nodes_to_exclude=keep_float, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        q = onnx.load(str(staged))
    del q.metadata_props[:]
    done = f"static int8 (QDQ, per-channel) backbone convolutions, calibrated on {n_calibration} augmented training crops"
    meta["rtalign.quantized"] = "; ".join(filter(None, [done, meta.get("rtalign.quantized")]))   # the CNN's int8 dense stays
    for k, v in meta.items():
        q.metadata_props.add(key=k, value=v)
    faster(q)
    onnx.save(q, str(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="an exported float model; replaced by its int8 version")
    ap.add_argument("--out", type=Path, default=None, help="write here instead of replacing the model")
    ap.add_argument("--calibration", type=int, default=256, help="number of calibration crops")
    ap.add_argument("--val-share", type=float, default=0.1)
    ap.add_argument("--val-seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train, val = validation_split(load_faces(data_root() / "train"), args.val_share, args.val_seed)
    out = args.out or args.model
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        fp32.write_bytes(args.model.read_bytes())
        quantize_model(fp32, out, train, args.calibration)
        if len(val.images):
            before, after = validation_nme(fp32, val), validation_nme(out, val)
            log.info("validation NME: float %.3f %%, int8 %.3f %% (%+.3f)", before, after, after - before)
            q = onnx.load(str(out))
            q.metadata_props.add(key="rtalign.quantized_validation_nme",
                                 value=f"float {before:.3f} %, int8 {after:.3f} % ({len(val.images)} faces)")
            onnx.save(q, str(out))


if __name__ == "__main__":
    main()
