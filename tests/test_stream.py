"""The public streaming API, `rtalign.track`, on a real clip, on arrays, and as the README shows it."""
import re
from pathlib import Path

import numpy as np
import pytest

import rtalign
from rtalign.errors import InputError
from rtalign.synth import ASSET, asset_frames, smooth_similarity_path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_a_file_gives_every_frame_in_order_with_one_stable_id(face_clip):
    with rtalign.track(face_clip, model="cnn", runtime=rtalign.RuntimeOptions(threads=1)) as stream:
        assert stream.fps == 30.0
        seen = [(frame.index, frame.timestamp, faces.track_id.tolist(), faces.xy.shape) for frame, faces in stream]
    assert [s[0] for s in seen] == list(range(45))
    assert [s[1] for s in seen] == pytest.approx([i / 30 for i in range(45)])
    assert all(s[2] == seen[0][2] and s[3] == (1, 68, 2) for s in seen)
    assert stream._source is None                                   # closed at the end of the loop


def test_leaving_the_loop_early_closes_the_file_once(face_clip, monkeypatch):
    from rtalign.pipeline.sources import VideoFileSource
    closed = []
    real_close = VideoFileSource.close
    monkeypatch.setattr(VideoFileSource, "close", lambda self: (closed.append(self.path), real_close(self)))
    with rtalign.track(str(face_clip), model="cnn") as stream:
        for frame, _ in stream:
            if frame.index == 2:
                break
    assert closed == [str(face_clip)]                               # closed once, at the break
    for frame, _ in rtalign.track(str(face_clip), model="cnn"):     # no `with`: the loop's end closes it
        pass
    assert len(closed) == 2


def test_a_closed_stream_refuses_to_run_again_instead_of_crashing(face_clip):
    """A decoder resumed over its closed container crashed the process (segfault): now the stream ends or
    says it is closed."""
    stream = rtalign.track(str(face_clip), model="cnn")
    for frame, _ in stream:
        break
    with pytest.raises(InputError, match="this stream is closed"):
        next(iter(stream))
    stream = rtalign.track(str(face_clip), model="cnn")
    it = iter(stream)
    next(it)
    stream.close()
    assert list(it) == []


def test_arrays_one_image_and_an_iterable_give_the_same_faces():
    frames = [f for f, _ in asset_frames((320, 240), smooth_similarity_path(5, seed=2))]
    model = rtalign.load_model("cnn", runtime=rtalign.RuntimeOptions(threads=1))
    from_list = [faces.xy for _, faces in rtalign.track(iter(frames), model=model, smoothing=None)]
    from_array = [faces.xy for _, faces in rtalign.track(np.stack(frames), model=model, smoothing=None)]
    [(frame, one)] = list(rtalign.track(frames[0], model=model, fps=10.0))
    assert len(from_list) == 5 and all(xy.shape == (1, 68, 2) for xy in from_list)
    np.testing.assert_array_equal(np.stack(from_list), np.stack(from_array))
    np.testing.assert_array_equal(one.xy, from_list[0])
    assert frame.timestamp == 0.0 and one.track_id.tolist() == [0]


def test_grey_and_bgra_arrays_track_like_bgr_and_every_tracked_face_has_a_pose():
    """The stream takes what FaceAligner.align takes, and gives head pose as the README says."""
    import cv2
    frames = [f for f, _ in asset_frames((320, 240), smooth_similarity_path(4, seed=2))]
    model = rtalign.load_model("cnn", runtime=rtalign.RuntimeOptions(threads=1))
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    runs = {kind: list(rtalign.track(images, model=model, smoothing=None)) for kind, images in
            (("bgr", frames), ("grey", grey), ("bgra", [cv2.cvtColor(f, cv2.COLOR_BGR2BGRA) for f in frames]))}
    np.testing.assert_array_equal(np.stack([f.xy for _, f in runs["bgr"]]), np.stack([f.xy for _, f in runs["bgra"]]))
    # the model sees grey crops anyway; only the detector saw colour (a slightly different first box)
    np.testing.assert_allclose(np.stack([f.xy for _, f in runs["bgr"]]), np.stack([f.xy for _, f in runs["grey"]]),
                               atol=1.0)
    assert all(frame.image.shape == (240, 320, 3) for frame, _ in runs["grey"])
    poses = np.stack([faces.pose for _, faces in runs["bgr"]])
    assert poses.shape == (4, 1, 3) and np.isfinite(poses).all() and (np.abs(poses) < 45).all()
    [(_, single)] = list(rtalign.track(grey[0], model=model))                   # one grey image alone
    assert single.pose.shape == (1, 3)


@pytest.mark.parametrize("source,message", [
    ("no/such/clip.mp4", "no such file"),
    ([np.zeros((8, 8, 2), np.uint8)], r"frame 0: expected an \(H, W, 3\) BGR.*got shape \(8, 8, 2\)"),
    ([np.zeros((8, 8, 3), np.float32)], r"frame 0: expected uint8 pixels"),
    (np.zeros((4, 4, 4, 4, 3), np.uint8), "got shape"),
    (3.5, "cannot track float"),
    (True, "cannot track a bool"),
    ([np.zeros((8, 8, 3), np.uint8), np.zeros((1, 0, 3), np.uint8)], r"frame 1: .*got shape \(1, 0, 3\)"),
    (["a.jpg"], "frame 0: expected a numpy image, got str"),         # was "expected uint8 pixels, got <U5"
    ([None], "frame 0: expected a numpy image, got NoneType"),
])
def test_unusable_sources_are_clear_errors(source, message):
    with pytest.raises(InputError, match=message):
        list(rtalign.track(source, model="cnn"))


@pytest.mark.parametrize("leave", ["break", "with"])
def test_leaving_a_stream_leaves_the_callers_generator_to_the_caller(leave):
    """Read until a face shows, then read on from one's own generator: the stream must not have closed it."""
    def frames():
        k = 0
        while True:
            k += 1
            yield np.full((64, 64, 3), k, np.uint8)

    mine = frames()
    if leave == "break":
        for _ in rtalign.track(mine, model="cnn"):
            break
    else:
        with rtalign.track(mine, model="cnn") as stream:
            next(iter(stream))
    assert next(mine)[0, 0, 0] == 2


def test_a_negative_camera_index_is_refused_before_opencv_sees_it():
    from rtalign.errors import DeviceError
    for index in (-1, np.int64(-1)):                   # a numpy integer is a camera index too
        with pytest.raises(DeviceError, match="no camera at index -1: camera indexes are 0, 1"):
            rtalign.track(index, model="cnn")


def test_closing_a_stream_ends_its_background_detector_thread():
    import threading
    image = np.ascontiguousarray(next(asset_frames((320, 240), smooth_similarity_path(1, 0)))[0])
    with rtalign.track([image] * 3, model="cnn", options=rtalign.TrackerOptions(background=True)) as stream:
        for _ in stream:
            pass
    assert not [t.name for t in threading.enumerate() if t.name.startswith("rtalign-detector")]


@pytest.mark.parametrize("fps", [0, -30, float("nan"), float("inf"), "30"])
def test_array_frame_rate_must_be_a_positive_number(fps):
    with pytest.raises(ValueError, match="fps must be a positive number"):
        rtalign.track(np.zeros((2, 8, 8, 3), np.uint8), model="cnn", fps=fps)


def test_runtime_or_the_older_keywords_but_not_both():
    assert rtalign.FaceAligner("cnn", threads=1).model.threads == 1
    assert rtalign.FaceAligner("cnn", runtime=rtalign.RuntimeOptions(threads=1)).model.threads == 1
    with pytest.raises(ValueError, match="not both"):
        rtalign.FaceAligner("cnn", runtime=rtalign.RuntimeOptions(), threads=1)
    with pytest.raises(rtalign.DeviceError, match="unknown device"):
        rtalign.RuntimeOptions(device="tpu")
    with pytest.raises(rtalign.DeviceError, match="has no NoSuchExecutionProvider"):
        rtalign.load_model("cnn", runtime=rtalign.RuntimeOptions(providers=["NoSuchExecutionProvider"]))


@pytest.mark.parametrize("kwargs, message", [
    (dict(threads=0), "threads must be a whole number within 1-64, got 0"),
    (dict(threads=1.5), "got 1.5"), (dict(threads="2"), "got '2'"), (dict(threads=10**6), "got 1000000"),
    (dict(threads=True), "got True"),
    (dict(providers="CPUExecutionProvider"), r"providers is a sequence of names, e.g. \('CPUExecutionProvider',\)"),
])
def test_runtime_options_refuse_what_onnxruntime_would_choke_on(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rtalign.RuntimeOptions(**kwargs)


def test_a_runtime_that_is_not_runtime_options_is_a_clear_error():
    with pytest.raises(TypeError, match="runtime must be a RuntimeOptions"):
        rtalign.FaceAligner("cnn", runtime="cuda")


def test_the_readme_python_examples_run(face_clip, tmp_path, monkeypatch, capsys):
    section = README.read_text().split("## Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2 and "rtalign.track(" in blocks[1]
    (tmp_path / "photo.jpg").symlink_to(ASSET)
    (tmp_path / "in.mp4").symlink_to(face_clip)
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["(1, 68, 2)", "(1, 3)"]
    assert lines[2:] == [f"{i} [0] (1, 68, 2)" for i in range(45)]
