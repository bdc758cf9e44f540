"""train.fast_graph on hand-built int8 (QDQ) graphs run by onnxruntime: the space-to-depth stem gives the
same bytes for every kernel and padding a stem may have, and the ReLU fold removes the requantization."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import onnxruntime as ort                                 # noqa: E402
from onnx import TensorProto, helper, numpy_helper        # noqa: E402

from train.fast_graph import fold_relu_requantize, space_to_depth_stem   # noqa: E402


def _qdq_net(size: int, kernel: int, pad, channels: int = 6, in_channels: int = 1, stride: int = 2,
             relu_zero: int = 0, pool: bool = False, seed: int = 0) -> onnx.ModelProto:
    """image → Q → DQ → Conv(kernel, stride, pad; int8 per-channel weights) → Q → DQ → Relu [→ MaxPool 2×2]
    → Q → DQ → Conv 3×3 → output: the pattern the quantizer writes for a network's first layers."""
    rng = np.random.default_rng(seed)
    pads = list(pad) if isinstance(pad, (list, tuple)) else [pad] * 4
    w1 = rng.integers(-127, 128, (channels, in_channels, kernel, kernel), dtype=np.int8)
    w2 = rng.integers(-127, 128, (4, channels, 3, 3), dtype=np.int8)
    init = [numpy_helper.from_array(np.array(v, dtype=t), n) for n, v, t in (
        ("in_s", 2 / 255, np.float32), ("in_z", 128, np.uint8), ("c_s", 0.9, np.float32), ("c_z", 120, np.uint8),
        ("r_s", 0.5, np.float32), ("r_z", relu_zero, np.uint8))]
    init += [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
             numpy_helper.from_array(rng.uniform(1e-3, 3e-3, channels).astype(np.float32), "w1_s"),
             numpy_helper.from_array(np.zeros(channels, np.int8), "w1_z"),
             numpy_helper.from_array(rng.uniform(1e-3, 3e-3, 4).astype(np.float32), "w2_s"),
             numpy_helper.from_array(np.zeros(4, np.int8), "w2_z"),
             numpy_helper.from_array(rng.normal(0, 0.5, channels).astype(np.float32), "b1")]
    nodes = [
        helper.make_node("QuantizeLinear", ["image", "in_s", "in_z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "in_s", "in_z"], ["x"]),
        helper.make_node("DequantizeLinear", ["w1", "w1_s", "w1_z"], ["w1f"], axis=0),
        helper.make_node("Conv", ["x", "w1f", "b1"], ["c"], kernel_shape=[kernel, kernel], strides=[stride, stride],
                         pads=pads),
        helper.make_node("QuantizeLinear", ["c", "c_s", "c_z"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "c_s", "c_z"], ["cf"]),
        helper.make_node("Relu", ["cf"], ["r0" if pool else "r"]),
        *([helper.make_node("MaxPool", ["r0"], ["r"], kernel_shape=[2, 2], strides=[2, 2])] if pool else []),
        helper.make_node("QuantizeLinear", ["r", "r_s", "r_z"], ["rq"]),
        helper.make_node("DequantizeLinear", ["rq", "r_s", "r_z"], ["rf"]),
        helper.make_node("DequantizeLinear", ["w2", "w2_s", "w2_z"], ["w2f"], axis=0),
        helper.make_node("Conv", ["rf", "w2f"], ["out"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                            ["n", in_channels, size, size])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 4, None, None])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


def _images(model, n=3, seed=1):
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return np.random.default_rng(seed).uniform(-1, 1, (n, *dims[1:])).astype(np.float32)


@pytest.mark.parametrize("size, kernel, pad", [(128, 7, 3), (112, 5, 2), (32, 3, 1), (30, 4, 1), (24, 7, (3, 2, 2, 3))])
def test_the_space_to_depth_stem_gives_the_same_bytes(size, kernel, pad):
    model = _qdq_net(size, kernel, pad)
    x = _images(model)
    before = _run(model, x)
    assert space_to_depth_stem(model)
    onnx.checker.check_model(model)
    after = _run(model, x)
    assert after.shape == before.shape and np.array_equal(after, before)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    assert attrs["strides"] == [1, 1] and max(attrs["kernel_shape"]) <= (kernel + 1) // 2 + 1
    assert model.graph.node[0].op_type == "SpaceToDepth" and model.graph.node[1].input[0] == model.graph.node[0].output[0]


@pytest.mark.parametrize("change", ["three channels", "stride 1", "odd side"])
def test_a_stem_that_does_not_fit_is_left_alone(change):
    model = {"three channels": lambda: _qdq_net(32, 7, 3, in_channels=3),
             "stride 1": lambda: _qdq_net(32, 3, 1, stride=1),
             "odd side": lambda: _qdq_net(33, 7, 3)}[change]()
    before = model.SerializeToString()
    assert not space_to_depth_stem(model)
    assert model.SerializeToString() == before


@pytest.mark.parametrize("pool", [False, True])
def test_the_relu_fold_quantizes_the_convolution_at_the_relus_scale(pool):
    model = _qdq_net(32, 3, 1, pool=pool)
    x = _images(model, n=4)
    before = _run(model, x)
    assert fold_relu_requantize(model) == 1
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert "Relu" not in ops and ops.count("QuantizeLinear") == 2 + pool
    assert not {"c_s", "c_z"} & {t.name for t in model.graph.initializer}     # the dropped scale is gone
    if pool:       # the pool reads the convolution's output quantized at the ReLU's scale
        maxpool = next(n for n in model.graph.node if n.op_type == "MaxPool")
        dq = next(n for n in model.graph.node if maxpool.input[0] in n.output)
        assert dq.op_type == "DequantizeLinear" and dq.input[1:] == ["r_s", "r_z"]
    after = _run(model, x)
    # the ReLU'd values quantized once instead of twice: each input of the last convolution moves by at
    # most one step of the ReLU's scale (0.5), so each output by at most that step times its |weights|
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    bound = 0.5 * np.abs(weights["w2"].astype(np.float64)).sum(axis=(1, 2, 3)) * weights["w2_s"]
    assert np.all(np.abs(after - before) <= bound[None, :, None, None] + 1e-4)
    assert np.any(after != before)                  # double rounding did differ somewhere: the fold did something


def test_a_relu_whose_quantizer_has_a_zero_point_is_kept():
    model = _qdq_net(32, 3, 1, relu_zero=3)        # saturation at the zero point would not be ReLU
    assert fold_relu_requantize(model) == 0
    assert "Relu" in [n.op_type for n in model.graph.node]
