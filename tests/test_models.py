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


def test_unknown_names_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'vgg'"):
        load_model("vgg")
    with pytest.raises(ModelError, match="not found"):
        load_model(str(tmp_path / "none.onnx"))


def test_cuda_without_a_gpu_says_what_to_install():
    import onnxruntime as ort
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(DeviceError, match="onnxruntime-gpu"):
        load_model("resnet", device="cuda")
