"""train_net's reproducibility on a tiny run: the schedule follows steps, the split is seeded, and a
resumed run ends with exactly the weights of an uninterrupted one."""
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

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
