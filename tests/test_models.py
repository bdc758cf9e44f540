"""Real ONNX sessions of the shipped networks on real 300-W test crops."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rtalign.data import read_image
from rtalign.errors import DeviceError, ModelError
from rtalign.landmarks import landmark_box
from rtalign.metrics import nme_per_face
from rtalign.models import OnnxLandmarker, load_model, models_dir
from rtalign.models.session import create_session

NETWORKS = ["resnet", "cnn"]


@pytest.fixture(scope="module", params=NETWORKS)
def network(request):
    return load_model(request.param)


def test_shipped_network_is_accurate_on_real_test_faces(network, test_samples):
    samples = test_samples[::8]                     # 42 faces across the set
    gt = np.stack([s.points for s in samples])
    pred = np.stack([network.predict(read_image(s.image), landmark_box(s.points)[None])[0] for s in samples])
    nme = nme_per_face(gt, pred)
    assert pred.shape == (len(samples), 68, 2) and pred.dtype == np.float32
    assert nme.mean() < 5.0, f"{network.name}: NME {nme.mean():.2f} %"
    assert np.median(nme) < 4.5


def test_preprocessing_comes_from_the_model_metadata(network):
    shape = network.session.get_inputs()[0].shape
    assert shape[2:] == [network.input_size, network.input_size]
    assert network.metadata["rtalign.arch"] == network.name
    assert 1.0 < network.crop_scale < 2.0


def test_shipped_networks_carry_the_fast_int8_graph(network):
    """train.fast_graph's rewrites (a re-export that skipped train.quantize would lose 10-30 % of the speed)."""
    graph = onnx.load(str(models_dir() / f"{network.name}.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert "SpaceToDepth" in ops and "QLinearConv" not in ops        # QDQ, with the space-to-depth stem
    assert "space-to-depth" in network.metadata["rtalign.graph"]
    producer = {o: n for n in graph.node for o in n.output}
    consumer = {i: n for n in graph.node for i in n.input}

    def up(tensor, depth=3):          # op types of a tensor's producer, its first input's producer, ...
        node = producer.get(tensor)
        return [] if node is None or depth == 0 else [node.op_type] + up(node.input[0], depth - 1)

    def down(tensor):                 # the first op after a tensor that is not a max-pool
        node = consumer.get(tensor)
        return down(node.output[0]) if node is not None and node.op_type == "MaxPool" else getattr(node, "op_type", None)
    unfolded = [r.name for r in graph.node if r.op_type == "Relu" and down(r.output[0]) == "QuantizeLinear"
                and up(r.input[0]) == ["DequantizeLinear", "QuantizeLinear", "Conv"]]
    assert not unfolded, f"ReLUs still requantizing their convolution's output: {unfolded}"


def test_batch_of_faces_equals_faces_one_by_one(network, test_samples):
    frames = [read_image(s.image) for s in test_samples[:1]]
    box = landmark_box(test_samples[0].points)
    boxes = np.stack([box, box + 7.0, box - 5.0])
    batched = network.predict(frames[0], boxes)
    single = np.stack([network.predict(frames[0], b[None])[0] for b in boxes])
    # int8 dynamic quantization scales activations per batch: sub-pixel differences are expected there
    tolerance = 0.15 if "rtalign.quantized" in network.metadata else 1e-3
    np.testing.assert_allclose(batched, single, atol=tolerance)
    assert network.predict(frames[0], np.empty((0, 4))).shape == (0, 68, 2)


def test_an_injected_session_is_used_as_is():
    path = models_dir() / "cnn.onnx"
    session = create_session(path, threads=1)
    assert OnnxLandmarker(path, session=session).session is session


def test_a_corrupt_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        load_model(str(bad))


def test_an_onnx_file_without_rtalign_metadata_is_refused(tmp_path):
    node = helper.make_node("Identity", ["image"], ["points"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("points", TensorProto.FLOAT, [1, 1, 8, 8])])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelError, match="not an rtalign model"):
        load_model(str(path))


GOOD_META = {"rtalign.input_size": "112", "rtalign.crop_scale": "1.3", "rtalign.color": "gray",
             "rtalign.mean": "127.5", "rtalign.std": "127.5"}


def _tiny_model(path, channels=1, size=112, meta=GOOD_META, out_name="points", out_shape=(68, 2)):
    """A real ONNX graph that turns the first pixels of its input into the output."""
    k = int(np.prod(out_shape))
    nodes = [helper.make_node("Flatten", ["image"], ["flat"], axis=1),
             helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["cut"]),
             helper.make_node("Reshape", ["cut", "shape"], [out_name])]
    inits = [helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
             helper.make_tensor("ends", TensorProto.INT64, [1], [k]),
             helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
             helper.make_tensor("shape", TensorProto.INT64, [3], [-1, *out_shape])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", channels, size, size])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["n", *out_shape])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("kwargs, message", [
    (dict(channels=3), r"takes \[\['n', 3, 112, 112\]\], not the \(N, 1, 112, 112\) grey crops"),
    (dict(size=64), r"takes \[\['n', 1, 64, 64\]\], not the \(N, 1, 112, 112\)"),
    (dict(out_name="landmarks"), r"needs a 'points' output of shape \(N, 68, 2\); it has landmarks"),
    (dict(out_shape=(5, 2)), r"needs a 'points' output of shape \(N, 68, 2\); it has points"),
    (dict(meta={**GOOD_META, "rtalign.input_size": "abc"}), "rtalign.input_size='abc' is not a number within 16-1024"),
    (dict(meta={**GOOD_META, "rtalign.std": "0"}), "rtalign.std='0' is not a number within"),
    (dict(meta={**GOOD_META, "rtalign.crop_scale": "nan"}), "rtalign.crop_scale='nan' is not a number within"),
    (dict(meta={**GOOD_META, "rtalign.min_score": "high"}), "rtalign.min_score='high' is not a number within 0-1"),
])
def test_a_network_that_does_not_match_its_metadata_is_refused_at_load(tmp_path, kwargs, message):
    with pytest.raises(ModelError, match=message):
        load_model(_tiny_model(tmp_path / "m.onnx", **kwargs))
    assert load_model(_tiny_model(tmp_path / "ok.onnx")).input_size == 112


def test_a_network_whose_output_shape_is_left_open_is_checked_when_it_answers():
    """Open dimensions pass the load (the shipped files have them too): a file that then gave 5 points a face
    ended in a traceback from the metrics."""
    path = models_dir() / "cnn.onnx"
    real = create_session(path, threads=1)

    class FivePoints:
        """The real session, its points cut to 5 a face."""
        def __getattr__(self, name):
            return getattr(real, name)

        def run(self, names, feeds):
            return [out[:, :5] if out.ndim == 3 else out for out in real.run(names, feeds)]

    model = OnnxLandmarker(path, session=FivePoints())
    with pytest.raises(ModelError, match=r"cnn: gave points of shape \(1, 5, 2\) .* not \(1, 68, 2\)"):
        model.predict(np.zeros((200, 200, 3), np.uint8), np.array([[50.0, 50, 150, 150]]))


def test_unknown_names_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'vgg'"):
        load_model("vgg")
    with pytest.raises(ModelError, match="not found"):
        load_model(str(tmp_path / "none.onnx"))


def test_a_models_folder_without_the_models_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("RTALIGN_MODELS", str(tmp_path))
    with pytest.raises(ModelError, match=f"cnn.onnx \\(RTALIGN_MODELS={tmp_path}: point it at a folder holding"):
        load_model("cnn")


def test_cuda_without_a_gpu_says_what_to_install():
    import onnxruntime as ort
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(DeviceError, match=r"pip uninstall -y onnxruntime && pip install onnxruntime-gpu"):
        load_model("resnet", device="cuda")


def test_the_cascade_says_it_runs_on_the_cpu_when_asked_for_cuda(caplog):
    with caplog.at_level("WARNING", logger="rtalign.models"):
        assert load_model("cascade", device="cuda").name == "cascade"
    assert "cascade runs on the CPU: device cuda is for the networks" in caplog.text
