"""train_net's reproducibility on a tiny run: the schedule follows steps, the split is seeded, and a
resumed run ends with exactly the weights of an uninterrupted one; int8 and the peak-cell head keep the outputs."""
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

import onnxruntime as ort                                          # noqa: E402
from train import train_net                                      # noqa: E402
from train.augment import FaceSet                                 # noqa: E402
from train.splits import validation_split                         # noqa: E402


def test_cosine_schedule_follows_steps_not_time():
    assert train_net.cosine_lr(1e-3, 0, 100) == pytest.approx(1e-3)
    assert train_net.cosine_lr(1e-3, 50, 100) == pytest.approx(5e-4)
    assert train_net.cosine_lr(1e-3, 100, 100) == pytest.approx(0.0)
    assert train_net.cosine_lr(1e-3, 150, 100) == pytest.approx(0.0)


def test_validation_split_is_seeded_disjoint_and_complete():
    faces = FaceSet(np.arange(20)[:, None, None] * np.ones((20, 2, 2)), np.zeros((20, 68, 2)), [f"f{i}" for i in range(20)])
    train, val = validation_split(faces, 0.25, seed=3)
    again = validation_split(faces, 0.25, seed=3)[1]
    other = validation_split(faces, 0.25, seed=4)[1]
    assert len(val.names) == 5 and len(train.names) == 15
    assert sorted(train.names + val.names) == sorted(faces.names)
    assert val.names == again.names and val.names != other.names
    assert [int(img[0, 0]) for img in val.images] == [int(n[1:]) for n in val.names]   # images follow names
    assert validation_split(faces, 0.0, seed=3)[1].names == []


@pytest.fixture
def tiny_data(tmp_path, test_samples, monkeypatch):
    """40 training and 6 test faces (links into 300-W test_common: only the mechanics are under test)."""
    for split, chosen in (("train", test_samples[:40]), ("test_common", test_samples[40:46])):
        folder = tmp_path / "data" / split
        folder.mkdir(parents=True)
        for s in chosen:
            for src in (s.image, s.image.with_suffix(".pts")):
                (folder / src.name).symlink_to(src)
    monkeypatch.setenv("RTALIGN_DATA", str(tmp_path / "data"))
    return tmp_path


def train(monkeypatch, out, *extra):
    argv = ["train_net", "--arch", "cnn", "--input-size", "32", "--width", "4", "--batch", "8", "--threads", "1",
            "--epochs", "3", "--val-share", "0.2", "--eval-every", "1", "--out", str(out), *extra]
    monkeypatch.setattr(sys, "argv", argv)
    train_net.main()
    return torch.load(out.with_suffix(".ckpt"), weights_only=True)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tiny_data, monkeypatch):
    whole = train(monkeypatch, tiny_data / "whole.onnx")
    saves, real_save = [], torch.save

    def dies_after_two_epochs(obj, path):
        real_save(obj, path)
        saves.append(obj["epoch"])
        if len(saves) == 2:
            raise KeyboardInterrupt                               # the process is killed after a checkpoint
    monkeypatch.setattr(train_net.torch, "save", dies_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        train(monkeypatch, tiny_data / "cut.onnx")
    monkeypatch.setattr(train_net.torch, "save", real_save)
    resumed = train(monkeypatch, tiny_data / "cut.onnx", "--resume")
    assert (whole["epoch"], resumed["epoch"]) == (3, 3)
    for name, tensor in whole["net"].items():
        assert torch.equal(tensor, resumed["net"][name]), name
    assert [h["nme"] for h in whole["history"]] == [h["nme"] for h in resumed["history"]]     # validation, per epoch
    assert "validation split: share 0.2 of train, seed 0 (8 faces; 32 trained on)" == whole["split"]


def test_static_int8_keeps_the_metadata_and_the_head_float_and_stays_close(tiny_data, monkeypatch):
    import onnx
    from rtalign.data import data_root
    from rtalign.models import OnnxLandmarker
    from train.augment import load_faces, normalize
    from train.quantize import calibration_crops, quantize_model
    fp32 = tiny_data / "resnet.onnx"
    argv = ["train_net", "--arch", "resnet", "--input-size", "64", "--width", "8", "--batch", "8", "--threads", "1",
            "--epochs", "2", "--val-share", "0.2", "--flip", "--out", str(fp32)]
    monkeypatch.setattr(sys, "argv", argv)
    train_net.main()
    faces = load_faces(data_root() / "train")
    int8 = tiny_data / "int8.onnx"
    quantize_model(fp32, int8, faces, n_calibration=32)
    graph = onnx.load(str(int8))
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["rtalign.flip"] == "mean of the crop and its mirror image"
    assert meta["rtalign.quantized"].startswith("static int8") and meta["rtalign.input_size"] == "64"
    assert "SpaceToDepth" in {n.op_type for n in graph.graph.node} and "stem as a space-to-depth" in meta["rtalign.graph"]
    quantized_inputs = {i for n in graph.graph.node if n.op_type == "DequantizeLinear" for i in n.output}
    convs = {n.name: n for n in graph.graph.node if n.op_type == "Conv"}
    assert convs["/cls/Conv"].input[1] not in quantized_inputs
    assert sum(n.input[1] in quantized_inputs for n in convs.values()) == len(convs) - 1
    offsets = [n for n in graph.graph.node if n.op_type == "MatMul"]      # the peak-cell offset heads
    assert offsets and not any(set(n.input) & quantized_inputs for n in offsets)
    crops = calibration_crops(faces, 64, 1.3, 8, seed=1)
    a, b = (OnnxLandmarker(p).session.run(None, {"image": normalize(crops)[:, None]})[0]
            for p in (fp32, int8))
    assert np.median(np.abs(a - b)) < 2.0            # crop pixels: int8 moves points little (untrained net)


@pytest.mark.parametrize("crop_scale", [1.3, 1.2, 1.45])
def test_a_teacher_sees_each_stacked_crop_framed_as_in_its_training(test_samples, crop_scale):
    """Distillation targets: the shipped resnet's points on a batch of stacked 112-px training crops, cut at
    the student's crop scale, are its points on each crop alone, and within 0.3 px (mean) of what it predicts
    on the whole image from the same face box: a teacher framed at its own crop scale (1.3) whatever the
    student's (a 1.2 crop is padded; framed at the student's scale instead, the errors are 0.3-0.5 px)."""
    from rtalign.data import read_image
    from rtalign.landmarks import landmark_box
    from rtalign.models import load_model
    from train.augment import eval_crop
    import cv2
    teacher = load_model("resnet", threads=1)
    crops, whole = [], []
    for s in test_samples[:6]:
        image = read_image(s.image)
        crop, m = eval_crop(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), s.points, crop_scale, 112)
        crops.append(crop)
        whole.append(train_net.apply_affine(m, teacher.predict(image, landmark_box(s.points)[None])[0].astype(float)))
    crops, whole = np.stack(crops), np.stack(whole)
    together = train_net.teacher_points(teacher, crops, crop_scale)
    alone = np.concatenate([train_net.teacher_points(teacher, c[None], crop_scale) for c in crops])
    assert np.abs(together - alone).mean() < 0.05            # only the tiles' edge rows touch each other
    assert np.median(np.abs(together - whole).mean(axis=(1, 2))) < 0.3


def test_the_distillation_target_is_the_teachers_mean_and_takes_its_weight(tiny_data):
    """Two stub teachers answering each face box's centre, and 2 px right of it: the targets are the crops'
    centre + 1 px; the loss mixes labels and targets by the weight."""
    from train.augment import load_faces
    import queue
    import threading
    import types

    class Stub:
        crop_scale = 1.3

        def __init__(self, dx):
            self.dx = dx

        def predict(self, frame, boxes):
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2 + [self.dx, 0]
            return np.repeat(centres[:, None], 68, axis=1)
    args = types.SimpleNamespace(rotation=30.0, box_shift=0.08, box_scale=(0.88, 1.15), seed=0, batch=4,
                                 crop_scale=1.2, input_size=32)
    q = queue.Queue(maxsize=1)
    threading.Thread(target=train_net.batches, args=(load_faces(tiny_data / "data" / "train"), args, 0, q,
                                                     [Stub(0.0), Stub(2.0)]), daemon=True).start()
    _, _, soft = q.get(timeout=30)
    np.testing.assert_allclose(soft.numpy()[..., 0], 15.5 + 1, atol=1e-4)
    np.testing.assert_allclose(soft.numpy()[..., 1], 15.5, atol=1e-4)
    loss = train_net.distilled(lambda net, outputs, target: target, 0.25)
    assert loss(None, None, 0.0, 4.0) == pytest.approx(1.0)


def test_a_distilled_cnn_trains_and_says_from_what(tiny_data, monkeypatch):
    import onnx
    train(monkeypatch, tiny_data / "teacher.onnx")
    train(monkeypatch, tiny_data / "student.onnx", "--teacher", str(tiny_data / "teacher.onnx"),
          "--teacher-weight", "0.7")
    meta = {p.key: p.value for p in onnx.load(str(tiny_data / "student.onnx")).metadata_props}
    assert meta["rtalign.teacher"] == "teacher.onnx, weight 0.7"


def test_a_network_distilled_from_an_ensemble_starts_from_init_and_says_from_what(tiny_data, monkeypatch):
    """--init loads the checkpoint's weights (no epochs: the exported student answers as that network does);
    several --teacher files are averaged, and the resnet's grid loss takes them too."""
    import onnx
    from rtalign.models import OnnxLandmarker
    resnet = ("--arch", "resnet", "--input-size", "64")
    train(monkeypatch, tiny_data / "a.onnx", *resnet)
    train(monkeypatch, tiny_data / "b.onnx", *resnet, "--seed", "1")
    monkeypatch.setattr(sys, "argv", ["train_net", *resnet, "--width", "4", "--epochs", "0", "--val-share", "0.2",
                                      "--init", str(tiny_data / "a.ckpt"), "--out", str(tiny_data / "copy.onnx")])
    train_net.main()
    crops = np.random.default_rng(0).integers(0, 256, (4, 1, 64, 64)).astype(np.float32) / 127.5 - 1
    same, original = (OnnxLandmarker(tiny_data / f).session.run(None, {"image": crops})[0] for f in ("copy.onnx", "a.onnx"))
    np.testing.assert_allclose(same, original, atol=1e-4)
    train(monkeypatch, tiny_data / "student.onnx", *resnet, "--teacher", str(tiny_data / "a.onnx"),
          str(tiny_data / "b.onnx"), "--init", str(tiny_data / "a.ckpt"))
    meta = {p.key: p.value for p in onnx.load(str(tiny_data / "student.onnx")).metadata_props}
    assert meta["rtalign.teacher"] == "a.onnx, b.onnx, weight 0.5"
    assert meta["rtalign.init"] == "a.ckpt"


def test_init_and_resume_refuse_what_does_not_fit_in_one_line(tiny_data, monkeypatch):
    train(monkeypatch, tiny_data / "a.onnx")
    for extra, message in (
            (("--init", str(tiny_data / "b.ckpt"), "--out", str(tiny_data / "b.onnx")), "this run's own checkpoint"),
            (("--init", str(tiny_data / "a.ckpt"), "--width", "8"), "is not a --arch cnn --width 8 checkpoint"),
            (("--resume", "--out", str(tiny_data / "a.onnx"), "--teacher", str(tiny_data / "a.onnx")),
             "resume with the same --teacher, --teacher-weight and --init")):
        with pytest.raises(SystemExit, match=message):
            train(monkeypatch, tiny_data / "c.onnx", *extra)


def full_head_file(path, net, size: int = 64):
    """`net` exported as files were before the peak-cell head (every head at every cell, then decoded), as
    the shipped resnet's float file was. Returns the path."""
    class FullHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = self.net(x)
            return self.net.decode(*out), self.net.presence(*out)
    torch.onnx.export(FullHead(), torch.zeros(1, 1, size, size), str(path), input_names=["image"],
                      output_names=["points", "score"], dynamic_axes={k: {0: "n"} for k in ("image", "points", "score")},
                      opset_version=17, dynamo=False)
    return path


def tiny_resnet(blocks=(3, 3, 3, 4), seed: int = 0):
    """A width-8 ResNetPIP at 64 px with random weights and batch-norm statistics, in eval mode."""
    from train.nets import ResNetPIP
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = ResNetPIP(64, 8, np.stack([rng.choice(np.delete(np.arange(68), k), 10, replace=False) for k in range(68)]),
                    blocks=blocks)
    torch.nn.init.normal_(net.nb.bias, 0, 0.5)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):     # folding them into the convolutions must matter
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return net.eval()


def test_an_old_full_head_file_gets_the_peak_cell_head_with_the_same_outputs(tmp_path):
    import onnx
    from train.peak_head import with_peak_head
    old = full_head_file(tmp_path / "old.onnx", tiny_resnet())
    model = onnx.load(str(old))
    model.metadata_props.add(key="rtalign.input_size", value="64")
    new = with_peak_head(model)
    assert [o.name for o in new.graph.output] == ["points", "score"]
    assert {p.key: p.value for p in new.metadata_props}["rtalign.input_size"] == "64"
    assert not any(n.op_type == "Conv" and "/nb/" in n.name for n in new.graph.node)
    x = {"image": np.random.default_rng(1).standard_normal((3, 1, 64, 64)).astype(np.float32)}
    (p0, s0), (p1, s1) = (ort.InferenceSession(m.SerializeToString()).run(None, x) for m in (model, new))
    np.testing.assert_allclose(p1, p0, atol=1e-4)
    np.testing.assert_allclose(s1, s0, atol=1e-6)
    model.metadata_props.add(key="rtalign.flip", value="mean of the crop and its mirror image")
    with pytest.raises(ValueError, match="--flip"):       # its mirror averaging follows the head
        with_peak_head(model)


def test_a_float_file_unfolds_into_the_network_it_was_exported_from(tmp_path):
    """train.shrink reads the convolutions back (batch norms folded in) and unfolds them: the same points and
    scores as the file in eval mode, and about the same in train mode on crops like its calibration crops."""
    import onnx
    from train.nets import Exported
    from train.peak_head import file_neighbours
    from train.shrink import blocks_of, folded_convs, unfolded
    original = tiny_resnet(blocks=(2, 1, 2, 3))
    path = full_head_file(tmp_path / "fp32.onnx", original)
    convs = folded_convs(onnx.load(str(path)))
    assert blocks_of(convs) == (2, 1, 2, 3)
    np.testing.assert_array_equal(file_neighbours(onnx.load(str(path))), original.neighbours.numpy())
    crops = np.random.default_rng(2).integers(0, 256, (100, 64, 64)).astype(np.uint8)   # two calibration batches
    net = unfolded(convs, file_neighbours(onnx.load(str(path))), 64, crops)
    x = (crops[:8, None].astype(np.float32) - 127.5) / 127.5
    points, score = ort.InferenceSession(str(path)).run(None, {"image": x})
    with torch.no_grad():
        mine = net.predict(torch.from_numpy(x))
        np.testing.assert_allclose(mine[0].numpy(), points, atol=1e-3)
        np.testing.assert_allclose(mine[1].numpy(), score, atol=1e-5)
        net.train()
        batch_stats = net.predict(torch.from_numpy((crops[:32, None].astype(np.float32) - 127.5) / 127.5))[0][:8]
    # batch statistics of crops like the calibration ones: only this catches a missing or wrong calibration
    assert np.abs(batch_stats.numpy() - points).mean() < 1.0
    peak_head = tmp_path / "peak.onnx"        # what train_net writes now: offsets as matrix products, no convolutions
    torch.onnx.export(Exported(original), torch.zeros(1, 1, 64, 64), str(peak_head), input_names=["image"],
                      output_names=Exported.outputs, opset_version=17, dynamo=False)
    with pytest.raises(ValueError, match="no nb, off convolution"):
        folded_convs(onnx.load(str(peak_head)))


def test_dropping_blocks_keeps_the_rest_and_refuses_a_stage_s_first_block():
    from torch import nn
    from train.shrink import without
    net = tiny_resnet()
    small = without(net, ["layer1.1", "layer4.3"])
    assert [len(getattr(small, s)) for s in ("layer1", "layer2", "layer3", "layer4")] == [2, 3, 3, 3]
    ref = tiny_resnet()
    ref.layer1[1], ref.layer4[3] = nn.Identity(), nn.Identity()   # a block's input is a ReLU's output: ≥ 0
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((3, 1, 64, 64)).astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(small.predict(x)[0], ref.predict(x)[0])
    with pytest.raises(ValueError, match="first block of its stage"):
        without(net, ["layer3.0"])
    with pytest.raises(ValueError, match="no block layer2.3"):
        without(net, ["layer2.3"])


def test_a_shallower_resnet_trains_from_its_shrunk_checkpoint_and_says_its_blocks(tiny_data, monkeypatch):
    """train.shrink on a train_net checkpoint, then train_net --blocks --init (no epochs: the exported network
    answers as the shrunk one)."""
    import onnx
    from train import shrink
    train(monkeypatch, tiny_data / "a.onnx", "--arch", "resnet", "--input-size", "64", "--width", "8")
    monkeypatch.setattr(sys, "argv", ["shrink", str(tiny_data / "a.ckpt"), "--drop", "layer2.2", "layer4.03",
                                      "--out", str(tiny_data / "shrunk.ckpt")])
    shrink.main()
    net = shrink.without(shrink.from_checkpoint(tiny_data / "a.ckpt", 64), ["layer2.2", "layer4.3"])
    args = lambda *blocks: ["train_net", "--arch", "resnet", "--input-size", "64", "--width", "8", "--blocks", *blocks,
                            "--epochs", "0", "--val-share", "0.2", "--init", str(tiny_data / "shrunk.ckpt"),
                            "--out", str(tiny_data / "small.onnx")]
    monkeypatch.setattr(sys, "argv", args("3", "2", "3", "3"))
    train_net.main()
    meta = {p.key: p.value for p in onnx.load(str(tiny_data / "small.onnx")).metadata_props}
    assert meta["rtalign.blocks"] == "3/2/3/3" and meta["rtalign.init"] == "shrunk.ckpt"
    x = np.random.default_rng(4).standard_normal((2, 1, 64, 64)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(ort.InferenceSession(str(tiny_data / "small.onnx")).run(None, {"image": x})[0],
                                   net.predict(torch.from_numpy(x))[0].numpy(), atol=1e-3)
    monkeypatch.setattr(sys, "argv", args("3", "3", "3", "3"))
    with pytest.raises(SystemExit, match="is not a --arch resnet --width 8 --blocks 3 3 3 3 checkpoint"):
        train_net.main()
    monkeypatch.setattr(sys, "argv", args("3", "2", "3", "3")[:-4] + ["--export-only", "--out", str(tiny_data / "a.onnx")])
    with pytest.raises(SystemExit, match=r"a\.ckpt is not a --arch resnet --width 8 --blocks 3 2 3 3 checkpoint"):
        train_net.main()          # a.ckpt is the full network's
