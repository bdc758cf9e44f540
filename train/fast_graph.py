"""Two rewrites of an int8 (QDQ) landmark network that onnxruntime runs faster: one gives the same bytes,
the other removes a rounding.

    python -m train.fast_graph exported/resnet.onnx        # rewrites the file in place
    python -m train.fast_graph exported/cnn.onnx

onnxruntime's profile of the shipped resnet (1 thread, two faces a call) showed two costs that are not
arithmetic the network needs:

- **The stem.** A 7×7/2 convolution of one grey channel took 16 % of the convolutions' time for 4 % of
  their multiply-adds: with one input channel, each kernel tap is a single byte to gather. The same
  convolution on the image rearranged 2×2 into 4 channels (SpaceToDepth) is a 4×4/1 convolution whose
  kernel holds the 49 taps and zeros elsewhere (`space_to_depth_stem`): the same sums in integers, so the
  same bytes out, at a third of the time. The CNN's 5×5/2 first layer becomes a 3×3/1 the same way.
- **Requantizing before each ReLU.** The quantizer gave every convolution followed by a ReLU its own
  output scale, so onnxruntime writes the convolution's bytes, turns them back into floats and quantizes
  them again at the ReLU's scale (14 such pairs in the resnet, 6 % of its time). Quantizing the
  convolution's output at the ReLU's scale straight away (`fold_relu_requantize`) is what onnxruntime's
  quantizer itself does when ReLU is among the operators it quantizes; the ReLU is then the saturation
  at zero point 0 (a max-pool between them, as after the stem, stays, on that scale). It removes a rounding, so points move (0.12 px of 128 on average for the
  resnet); `main` measures the validation split's NME before and after (`NME_BOUND`). On a retrain that
  holds those faces out, float 3.602 %, int8 3.608 %, int8 with the fold 3.604 %.

`train.quantize` applies both to every file it writes.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

log = logging.getLogger("fast_graph")

#: The most the ReLU fold may raise validation NME (%): a third of issue 16's bound on what int8 may cost.
NME_BOUND = 0.01


class _Graph:
    """Who produces and who consumes each tensor of a graph, and its initializers by name."""

    def __init__(self, graph: onnx.GraphProto):
        self.init = {t.name: t for t in graph.initializer}
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        for name in {o.name for o in graph.output}:
            self.consumers.setdefault(name, []).append(None)     # a graph output counts as a consumer

    def only_consumer(self, tensor: str):
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 else None

    def array(self, name: str) -> np.ndarray | None:
        return numpy_helper.to_array(self.init[name]) if name in self.init else None


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _shape(model: onnx.ModelProto, tensor: str) -> list[int]:
    """A tensor's static shape (0 for an unknown dimension), by onnx's shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    for info in list(inferred.input) + list(inferred.value_info):
        if info.name == tensor:
            return [d.dim_value for d in info.type.tensor_type.shape.dim]
    return []


def space_to_depth_stem(model: onnx.ModelProto) -> bool:
    """Rewrite a stride-2 convolution of a one-channel image (through its QuantizeLinear and
    DequantizeLinear: the graph input, or the input beside its mirror image in a flip graph) as
    SpaceToDepth(2) and a stride-1 convolution over 4 channels. Integer weights only move into a larger,
    zero-filled kernel, so the file computes exactly the same numbers. Returns whether the graph had such
    a stem (and was changed)."""
    g = _Graph(model.graph)
    for conv in [n for n in model.graph.node if n.op_type == "Conv"]:
        dq, weights_dq = g.producer.get(conv.input[0]), g.producer.get(conv.input[1])
        q = g.producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if (q is None or q.op_type != "QuantizeLinear" or weights_dq is None or weights_dq.op_type != "DequantizeLinear"
                or g.only_consumer(q.output[0]) is not dq or g.only_consumer(dq.output[0]) is not conv):
            continue
        w = g.array(weights_dq.input[0])
        zero = g.array(weights_dq.input[2]) if len(weights_dq.input) > 2 else None
        a = _attrs(conv)
        if (w is None or w.shape[1] != 1 or (zero is not None and zero.any()) or a.get("strides") != [2, 2]
                or a.get("group", 1) != 1 or a.get("dilations", [1, 1]) != [1, 1]):
            continue
        dims = _shape(model, q.input[0])
        if len(dims) == 4 and dims[1] == 1 and dims[2] and dims[3] and dims[2] % 2 == 0 and dims[3] % 2 == 0:
            return _rearrange(model, g, q, conv, weights_dq, w, dims, a.get("pads", [0, 0, 0, 0]))
    return False


def _rearrange(model, g: _Graph, q, conv, weights_dq, w: np.ndarray, dims: list[int], pads: list[int]) -> bool:
    """`space_to_depth_stem`'s rewrite of one convolution (weights `w`, input of shape `dims`)."""
    kh, kw = w.shape[2:]
    top, left, bottom, right = pads
    # tap offset t = 2·a + p: block offset a in the 2×2-rearranged image, phase p its channel
    rows, cols = np.arange(kh) - top, np.arange(kw) - left
    ar, pr, ac, pc = rows // 2, rows % 2, cols // 2, cols % 2
    kernel = np.zeros((w.shape[0], 4, ar.max() - ar.min() + 1, ac.max() - ac.min() + 1), w.dtype)
    for i in range(kh):
        kernel[:, 2 * pr[i] + pc, ar[i] - ar.min(), ac - ac.min()] = w[:, 0, i, :]
    out_h = (dims[2] + top + bottom - kh) // 2 + 1
    out_w = (dims[3] + left + right - kw) // 2 + 1
    new_pads = [-ar.min(), -ac.min(), out_h - 1 + ar.max() - (dims[2] // 2 - 1),
                out_w - 1 + ac.max() - (dims[3] // 2 - 1)]
    if min(new_pads) < 0:
        return False
    g.init[weights_dq.input[0]].CopyFrom(numpy_helper.from_array(kernel, weights_dq.input[0]))
    rearranged = q.input[0] + "_space_to_depth"
    nodes = model.graph.node
    nodes.insert(list(nodes).index(q), helper.make_node("SpaceToDepth", [q.input[0]], [rearranged], blocksize=2,
                                                          name="stem_space_to_depth"))
    q.input[0] = rearranged
    del conv.attribute[:]
    conv.attribute.extend([helper.make_attribute("kernel_shape", list(kernel.shape[2:])),
                           helper.make_attribute("strides", [1, 1]),
                           helper.make_attribute("pads", [int(p) for p in new_pads])])
    return True


def fold_relu_requantize(model: onnx.ModelProto) -> int:
    """Conv → Q → DQ → Relu → Q(zero point 0) becomes Conv → Q(zero point 0): the convolution's output
    quantized at the ReLU's scale, the ReLU done by saturation. Max-pools between the ReLU and that Q
    (the stem's) stay, and read the convolution's output at the same scale: max-pooling commutes with
    the ReLU, and values already on the scale's grid requantize exactly. Returns how many were folded."""
    g = _Graph(model.graph)
    dead = []
    for relu in [n for n in model.graph.node if n.op_type == "Relu"]:
        dq = g.producer.get(relu.input[0])
        q = g.producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        conv = g.producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if conv is None or conv.op_type != "Conv" or not (g.only_consumer(conv.output[0]) is q
                                                          and g.only_consumer(q.output[0]) is dq
                                                          and g.only_consumer(dq.output[0]) is relu):
            continue
        pools, after = [], g.only_consumer(relu.output[0])
        while after is not None and after.op_type == "MaxPool":
            pools.append(after)
            after = g.only_consumer(after.output[0])
        zero = g.array(after.input[2]) if after is not None and after.op_type == "QuantizeLinear" and len(after.input) > 2 else None
        if zero is None or zero.dtype != np.uint8 or zero.any():
            continue
        if pools:       # keep Q → DQ before the pools, at the ReLU's quantization
            q.input[1:3], dq.input[1:3] = after.input[1:3], after.input[1:3]
            pools[0].input[0] = dq.output[0]
            dead.append(relu)
        else:
            after.input[0] = conv.output[0]
            dead += [q, dq, relu]
    for node in dead:
        model.graph.node.remove(node)
    unused = {t.name for t in model.graph.initializer} - {i for n in model.graph.node for i in n.input}
    for t in [t for t in model.graph.initializer if t.name in unused]:
        model.graph.initializer.remove(t)
    return sum(n.op_type == "Relu" for n in dead)


def faster(model: onnx.ModelProto) -> tuple[bool, int]:
    """Both rewrites, in place, recorded in the metadata (`rtalign.graph`); (stem rewritten, ReLUs folded)."""
    stem, folded = space_to_depth_stem(model), fold_relu_requantize(model)
    _record(model, stem, folded)
    onnx.checker.check_model(model)
    return stem, folded


def _record(model: onnx.ModelProto, stem: bool, folded: int) -> None:
    done = "; ".join(filter(None, ["stem as a space-to-depth convolution" if stem else "",
                                   f"{folded} ReLUs folded into their convolutions' quantization" if folded else ""]))
    if done:
        kept = [p for p in model.metadata_props if p.key != "rtalign.graph"]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
        model.metadata_props.add(key="rtalign.graph", value=done)


def main():
    from train.augment import load_faces
    from train.peak_head import compare
    from train.quantize import calibration_crops, validation_nme
    from train.splits import validation_split
    from rtalign.data import data_root
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="where to write (default: in place)")
    ap.add_argument("--check-crops", type=int, default=256)
    ap.add_argument("--val-share", type=float, default=0.1)
    ap.add_argument("--val-seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model = onnx.load(str(args.model))
    meta = {p.key: p.value for p in model.metadata_props}
    train, val = validation_split(load_faces(data_root() / "train"), args.val_share, args.val_seed)
    crops = calibration_crops(train, int(meta["rtalign.input_size"]), float(meta["rtalign.crop_scale"]),
                              args.check_crops, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        stemmed, staged = Path(tmp) / "stem.onnx", Path(tmp) / "fast.onnx"
        stem = space_to_depth_stem(model)
        onnx.save(model, str(stemmed))
        if stem and compare(args.model, stemmed, crops) != (0.0, 0.0):
            raise SystemExit(f"{args.model}: the space-to-depth stem changed the answers: not written")
        folded = fold_relu_requantize(model)
        if not stem and not folded:
            raise SystemExit(f"{args.model}: nothing to rewrite (no one-channel stride-2 stem, no ReLU to fold)")
        _record(model, stem, folded)
        onnx.checker.check_model(model)
        onnx.save(model, str(staged))
        before, after = validation_nme(args.model, val), validation_nme(staged, val)
        log.info("stem rewritten: %s (same answers on %d training crops); ReLUs folded: %d; validation NME "
                 "%.3f -> %.3f %% (%d faces)", stem, len(crops), folded, before, after, len(val.images))
        if after > before + NME_BOUND:
            raise SystemExit(f"the ReLU fold raised validation NME by {after - before:.3f}: not written")
        staged.replace(args.out or args.model)
    log.info("wrote %s", args.out or args.model)


if __name__ == "__main__":
    main()
