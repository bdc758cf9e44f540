"""Give an exported resnet the peak-cell head (`ResNetPIP.points_from_features`) without retraining.

    python -m train.peak_head exported/resnet.onnx        # rewrites the file in place

Files exported before that head existed evaluate the offset and neighbour-offset convolutions at every
cell of the grid, then keep one cell per landmark. This keeps the backbone as it is in the file (int8
included), rebuilds the head in torch from the file's own weights, exports it with the same code a new
export uses, and joins the two graphs. The joined file must give the same points as the old one on
augmented training crops (1e-3 px) and the same presence scores (1e-5), or nothing is written.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import compose, numpy_helper
from torch import nn

from rtalign.data import data_root
from rtalign.models import OnnxLandmarker
from train.augment import load_faces, normalize
from train.nets import N_POINTS, ResNetPIP
from train.quantize import calibration_crops

log = logging.getLogger("peak_head")

FEATURES = "features"
TOLERANCE_PX, TOLERANCE_SCORE = 1e-3, 1e-5


class _Head(nn.Module):
    """features → (points, score), the exported graph's head."""

    def __init__(self, net: ResNetPIP):
        super().__init__()
        self.net = net

    def forward(self, f):
        return self.net.points_from_features(f)


def file_neighbours(model: onnx.ModelProto) -> np.ndarray:
    """(68, K) neighbour lists of a ResNetPIP file with every head at every cell, read from its vote matrix
    (votes[j, k*K + m] is non-zero where neighbour m of landmark k is j) and checked by rebuilding it."""
    votes = next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == "net.vote_nb")
    neighbours = votes.argmax(0).reshape(N_POINTS, -1)
    np.testing.assert_allclose(ResNetPIP(16, 1, neighbours).vote_nb.numpy(), votes, rtol=1e-6)
    return neighbours


def head_from_file(model: onnx.ModelProto) -> tuple[ResNetPIP, str]:
    """A ResNetPIP whose head holds the file's head weights (its backbone is left untrained and unused),
    and the name of the features tensor the file's head reads."""
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    cls_conv = next(n for n in model.graph.node if n.op_type == "Conv" and "/cls/" in n.name)
    channels = weights["net.cls.weight"].shape[1]
    meta = {p.key: p.value for p in model.metadata_props}
    net = ResNetPIP(int(meta["rtalign.input_size"]), channels // 12, file_neighbours(model))
    state = {f"{h}.{p}": torch.from_numpy(weights[f"net.{h}.{p}"].copy())
             for h in ("cls", "off", "nb") for p in ("weight", "bias")}
    net.load_state_dict(state, strict=False)
    return net.eval(), cls_conv.input[0]


def with_peak_head(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same network with the peak-cell head; metadata kept.

    Raises:
        ValueError: a file exported with test-time flip (its mirror averaging follows the head: re-export it
            from its checkpoint instead, `train_net --export-only --flip`, which gives the new head).
    """
    if {p.key: p.value for p in model.metadata_props}.get("rtalign.flip", "no") != "no":
        raise ValueError("a file exported with --flip: re-export it from its checkpoint (train_net --export-only --flip)")
    net, features = head_from_file(model)
    if features not in {v.name for v in model.graph.value_info}:      # the extractor needs its type
        model = onnx.ModelProto.FromString(model.SerializeToString())
        model.graph.value_info.append(onnx.helper.make_tensor_value_info(
            features, onnx.TensorProto.FLOAT, ["n", net.cls.in_channels, net.grid, net.grid]))
    backbone = onnx.utils.Extractor(model).extract_model([model.graph.input[0].name], [features])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "head.onnx"
        f = torch.zeros(1, net.cls.in_channels, net.grid, net.grid)
        torch.onnx.export(_Head(net), f, str(path), input_names=[FEATURES], output_names=["points", "score"],
                          dynamic_axes={k: {0: "n"} for k in (FEATURES, "points", "score")}, opset_version=17,
                          dynamo=False)
        head = onnx.load(str(path))
    head.ir_version = backbone.ir_version
    joined = compose.merge_models(backbone, head, io_map=[(features, FEATURES)], prefix2="head")
    joined.graph.output.sort(key=lambda o: ["headpoints", "headscore"].index(o.name))
    for node in joined.graph.node:      # the outputs keep their names: the runtime asks for them
        node.output[:] = [{"headpoints": "points", "headscore": "score"}.get(o, o) for o in node.output]
    for o in joined.graph.output:
        o.name = o.name.removeprefix("head")
    del joined.metadata_props[:]
    joined.metadata_props.extend(model.metadata_props)
    joined.metadata_props.add(key="rtalign.head", value="offsets evaluated at each landmark's peak cell only")
    onnx.checker.check_model(joined)
    return joined


def compare(old: Path, new: Path, crops: np.ndarray) -> tuple[float, float]:
    """Largest point (px) and score differences of two files on the same crops."""
    a, b = OnnxLandmarker(old).session, OnnxLandmarker(new).session
    x = {a.get_inputs()[0].name: normalize(crops)[:, None]}
    (pa, sa), (pb, sb) = a.run(["points", "score"], x), b.run(["points", "score"], x)
    return float(np.abs(pa - pb).max()), float(np.abs(sa - sb).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="where to write (default: in place)")
    ap.add_argument("--check-crops", type=int, default=256)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model = onnx.load(str(args.model))
    if any(p.key == "rtalign.head" for p in model.metadata_props):
        raise SystemExit(f"{args.model} already has the peak-cell head")
    meta = {p.key: p.value for p in model.metadata_props}
    crops = calibration_crops(load_faces(data_root() / "train"), int(meta["rtalign.input_size"]),
                              float(meta["rtalign.crop_scale"]), args.check_crops, seed=1)
    out = args.out or args.model
    with tempfile.TemporaryDirectory() as tmp:
        joined = Path(tmp) / "joined.onnx"
        try:
            onnx.save(with_peak_head(model), str(joined))
        except ValueError as e:
            raise SystemExit(f"{args.model}: {e}") from None
        px, score = compare(args.model, joined, crops)
        log.info("largest difference on %d training crops: %.2e px, score %.2e", len(crops), px, score)
        if px > TOLERANCE_PX or score > TOLERANCE_SCORE:
            raise SystemExit(f"the rewritten head differs by {px:.2e} px / {score:.2e}: not written")
        joined.replace(out)
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
