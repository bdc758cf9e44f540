"""Train a landmark network on ../shared/data/300w/train and export it to ONNX.

    python -m train.train_net --arch resnet --epochs 485 --out resnet3334.onnx   # then README's chain: shrunk to 2/2/3/2
    python -m train.train_net --arch cnn --input-size 112 --width 48 --epochs 733 --box-shift 0.04 --box-scale 0.94 1.07 --out exported/cnn.onnx
    python -m train.train_net --arch cnn ... --teacher exported/resnet.onnx   # distilled from the resnet
    python -m train.train_net --arch resnet ... --teacher A.onnx B.onnx --init A.ckpt   # from an ensemble
    python -m train.train_net --arch resnet --blocks 2 2 3 2 --init SMALL.ckpt --teacher A.onnx ...   # see train.shrink

The learning rate decays (cosine) over --epochs; --minutes caps a run on a slow machine. A checkpoint is
written every epoch and --resume continues from it.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import queue
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
import torch.nn.functional as F

from rtalign.crop import apply_affine, crop_affine, invert_affine
from rtalign.data import data_root
from rtalign.metrics import summarize
from train.augment import AugmentConfig, augmented_crop, eval_crop, load_faces, normalize
from train.nets import Exported, ResNetPIP, SmallCNN
from train.splits import validation_split

log = logging.getLogger("train")


def mean_shape_neighbours(points: np.ndarray, k: int) -> np.ndarray:
    """For each landmark, its k nearest landmarks in the box-normalized mean shape."""
    lo, hi = points.min(1, keepdims=True), points.max(1, keepdims=True)
    mean = ((points - lo) / (hi - lo)).mean(0)
    d = np.linalg.norm(mean[:, None] - mean[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1)[:, :k]


def batches(faces, args, first_epoch: int, out: queue.Queue, teachers=()):
    """Producer thread: augmented batches, epoch after epoch (cv2 releases the GIL, so this overlaps training):
    (crops, points), plus the teachers' mean points on the same crops when there are any.

    An epoch's batches depend only on (--seed, epoch), so a resumed run sees the batches the
    uninterrupted run would have seen.
    """
    cfg = AugmentConfig(rotation_deg=args.rotation, shift=args.box_shift, scale=tuple(args.box_scale))
    n = len(faces.images)
    for epoch in itertools.count(first_epoch):
        rng = np.random.default_rng([args.seed, epoch])
        order = rng.permutation(n)
        for start in range(0, n - args.batch + 1, args.batch):
            idx = order[start:start + args.batch]
            crops, pts = zip(*(augmented_crop(faces.images[i], faces.points[i], args.crop_scale,
                                              args.input_size, cfg, rng) for i in idx))
            crops = np.stack(crops)
            item = (torch.from_numpy(normalize(crops)[:, None]), torch.from_numpy(np.stack(pts)))
            if teachers:
                item += (torch.from_numpy(np.mean([teacher_points(t, crops, args.crop_scale) for t in teachers],
                                                  axis=0)),)
            out.put(item)
        out.put(None)  # epoch boundary


def teacher_points(teacher, crops: np.ndarray, crop_scale: float) -> np.ndarray:
    """A trained network's points (N, 68, 2) on uint8 training crops (N, s, s) cut at `crop_scale` × the face
    box, in crop pixels.

    Each crop's face box (side s / crop_scale, centred) is given to the teacher, which cuts its own crop
    around it at its own crop scale and input size, so it sees the face framed as in its training. A
    teacher with a wider crop reads past the crop's edge: each crop is padded with black (as the training
    images are past their borders) into a tile of its own, and the tiles are stacked into one tall frame:
    one batched inference. A teacher with a tighter crop reads inside the crop, so no tile is padded then.
    """
    n, s = crops.shape[:2]
    side = s / crop_scale
    pad = max(0, int(np.ceil((teacher.crop_scale * side - s) / 2)) + 1)
    tile = s + 2 * pad
    tiles = np.pad(crops, ((0, 0), (pad, pad), (pad, pad))) if pad else crops
    centre = pad + (s - 1) / 2
    tops = np.arange(n)[:, None] * tile
    boxes = np.hstack([np.full((n, 1), centre - side / 2), tops + centre - side / 2,
                       np.full((n, 1), centre + side / 2), tops + centre + side / 2])
    pts = teacher.predict(tiles.reshape(n * tile, tile), boxes)
    pts[..., 0] -= pad
    pts[..., 1] -= tops + pad
    return pts.astype(np.float32)


def cosine_lr(base: float, step: int, total: int) -> float:
    """The learning rate at optimizer step `step` of `total`: cosine decay from `base` to 0 (steps, never time)."""
    return float(base * 0.5 * (1 + np.cos(np.pi * min(step / total, 1.0))))


def pip_loss(net: ResNetPIP, outputs, pts: torch.Tensor) -> torch.Tensor:
    cls, off, nb = outputs
    g = net.grid
    cellf = (pts + 0.5) / net.stride
    cell = cellf.floor().clamp(0, g - 1)
    idx = (cell[..., 1] * g + cell[..., 0]).long()                    # (N, 68)
    off_t = cellf - cell - 0.5
    nb_t = cellf[:, net.neighbours] - (cell + 0.5)[:, :, None]        # (N, 68, K, 2)
    n, p = idx.shape
    off_p = torch.gather(off, 3, idx[:, :, None, None].expand(n, p, 2, 1))[..., 0]
    nb_p = torch.gather(nb, 4, idx[:, :, None, None, None].expand(n, p, nb.shape[2], 2, 1))[..., 0]
    return (F.cross_entropy(cls.reshape(n * p, -1), idx.reshape(-1))
            + F.l1_loss(off_p, off_t) + F.l1_loss(nb_p, nb_t))


def distilled(loss_fn, weight: float):
    """`loss_fn` against the labels and, taking `weight` of the total, against the teachers' points on the
    same crops (an ensemble's mean points are steadier targets than one annotator's clicks)."""
    def loss(net, outputs, pts, soft):
        return (1 - weight) * loss_fn(net, outputs, pts) + weight * loss_fn(net, outputs, soft)
    return loss


def cnn_loss(net: SmallCNN, outputs, pts: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Cross-entropy of each coordinate's bin distribution against a Gaussian around the target."""
    target_bin = (pts + 0.5) * (net.bins / net.input_size)                # (N, 68, 2) in bin units
    target = torch.exp(-0.5 * ((net.centres - target_bin[..., None]) / sigma) ** 2)
    target = target / target.sum(-1, keepdim=True).clamp_min(1e-12)
    return -(target * outputs[0].log_softmax(-1)).sum(-1).mean()


def evaluate(net, faces, args) -> dict:
    """Standard protocol on a face set: ground-truth landmark box → crop → predict → frame."""
    net.eval()
    crops, affines = zip(*(eval_crop(img, pts, args.crop_scale, args.input_size)
                           for img, pts in zip(faces.images, faces.points)))
    with torch.no_grad():
        x = torch.from_numpy(normalize(np.stack(crops))[:, None])
        pred = torch.cat([net.decode(*net(x[i:i + 64])) for i in range(0, len(x), 64)]).numpy()
    inv = np.stack([invert_affine(m) for m in affines])
    net.train()
    return summarize(faces.points, apply_affine(inv, pred))


def presence_threshold(net, faces, args) -> float:
    """The face-presence score below which a tracker should drop a face, measured on `faces`
    (the validation split when there is one).

    Halfway between the 2nd percentile of scores on face crops (standard crop) and the 98th
    percentile on background crops (the four image corners at face size, which hold hair,
    shoulders and scenery).
    """
    net.eval()
    size, s = args.input_size, faces.images.shape[1]
    face = [eval_crop(img, pts, args.crop_scale, size)[0] for img, pts in zip(faces.images, faces.points)]
    side = s * 0.3
    corners = [np.array([x, y, x + side, y + side]) for x in (0, s - side) for y in (0, s - side)]
    background = [cv2.warpAffine(img, crop_affine(b, args.crop_scale, size), (size, size))
                  for img in faces.images[::4] for b in corners]
    with torch.no_grad():
        score = lambda crops: torch.cat([net.presence(*net(torch.from_numpy(normalize(np.stack(crops[i:i + 64]))[:, None])))
                                         for i in range(0, len(crops), 64)]).numpy()
        on_faces, on_background = score(face), score(background)
    net.train()
    lo, hi = np.percentile(on_faces, 2), np.percentile(on_background, 98)
    log.info("presence score: faces p2 %.3f, background p98 %.3f", lo, hi)
    return float((lo + hi) / 2)


def export(net, args, path: Path, extra: dict, threshold_faces=None) -> None:
    net.eval()
    x = torch.zeros(1, 1, args.input_size, args.input_size)
    graph = Exported(net, flip=args.flip)
    torch.onnx.export(graph, x, str(path), input_names=["image"], output_names=graph.outputs,
                      dynamic_axes={name: {0: "n"} for name in ["image", *graph.outputs]},
                      opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    extra = {**extra, "rtalign.min_score": round(presence_threshold(net, threshold_faces, args), 4)}
    meta = {"rtalign.arch": args.arch, "rtalign.input_size": args.input_size,
            "rtalign.crop_scale": args.crop_scale, "rtalign.color": "gray",
            "rtalign.mean": 127.5, "rtalign.std": 127.5,
            "rtalign.output": "points (N,68,2) in crop pixel centres",
            "rtalign.flip": "mean of the crop and its mirror image" if args.flip else "no", **extra}
    if args.arch == "resnet":
        meta["rtalign.blocks"] = "/".join(map(str, args.blocks))
    if args.quantize_dense:
        meta["rtalign.quantized"] = "dynamic int8 weights for MatMul/Gemm (dense layers)"
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=str(v))
    onnx.save(model, str(path))
    if args.quantize_dense:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(str(path), str(path), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)


def load_weights(net, state: dict, what: str, args) -> None:
    """`state` into `net`, or a one-line exit naming the options the checkpoint does not fit."""
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        blocks = f"--blocks {' '.join(map(str, args.blocks))} " if args.arch == "resnet" else ""
        detail = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e))
        raise SystemExit(f"{what} is not a --arch {args.arch} --width {args.width} {blocks}checkpoint: "
                         f"{detail[:200]}") from None


def split_note(args, train, val) -> str:
    """How the data was divided, as recorded in the checkpoint, the metadata and the history."""
    return (f"validation split: share {args.val_share} of train, seed {args.val_seed} "
            f"({len(val.images)} faces; {len(train.images)} trained on)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=["resnet", "cnn"], required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, required=True, help="length of the run (the learning rate decays over it)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="wall-clock cap: stop after the epoch that passes it (recorded as capped)")
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--blocks", type=int, nargs=4, default=[3, 3, 3, 4], metavar="N",
                    help="resnet: residual blocks per stage (train.shrink makes a shallower --init from a trained file)")
    ap.add_argument("--crop-scale", type=float, default=1.3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--val-share", type=float, default=0.1,
                    help="share of train held out to evaluate and choose settings (0: train on all, choose on train)")
    ap.add_argument("--val-seed", type=int, default=0, help="which faces the validation split holds")
    ap.add_argument("--eval-every", type=int, default=10, help="epochs between validation evaluations")
    ap.add_argument("--rotation", type=float, default=30.0, help="augmentation: max in-plane rotation, degrees")
    ap.add_argument("--box-shift", type=float, default=AugmentConfig.shift,
                    help="augmentation: max box shift, share of the crop side")
    ap.add_argument("--box-scale", type=float, nargs=2, default=AugmentConfig.scale, metavar=("MIN", "MAX"),
                    help="augmentation: range of the crop-size multiplier")
    ap.add_argument("--seed", type=int, default=0, help="weights and augmentation")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--quantize-dense", action="store_true",
                    help="store dense-layer weights as int8 (dynamic quantization): the CNN's head is memory-bound")
    ap.add_argument("--flip", action="store_true",
                    help="export a graph that averages each crop with its mirror image (test-time flip)")
    ap.add_argument("--teacher", type=Path, nargs="+", action="extend", default=[],
                    help="distil from these exported networks (their mean points on the same augmented crops)")
    ap.add_argument("--teacher-weight", type=float, default=0.5,
                    help="share of the loss taken by the teachers' points (the rest: the labels)")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this training checkpoint's weights (same --arch, --width and --blocks; input size and "
                         "crop may differ), on a new schedule")
    ap.add_argument("--export-only", action="store_true",
                    help="no training: export the checkpoint beside --out (e.g. after a change to the exported graph)")
    args = ap.parse_args()
    if min(args.blocks) < 1:
        ap.error("--blocks: every stage needs at least one block")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    root = data_root()
    train, val = validation_split(load_faces(root / "train"), args.val_share, args.val_seed)
    split = split_note(args, train, val)
    log.info("%s; args %s", split, vars(args))
    if args.arch == "resnet":
        net = ResNetPIP(args.input_size, args.width, mean_shape_neighbours(train.points, 10), blocks=tuple(args.blocks))
        loss_fn = pip_loss
    else:
        net = SmallCNN(args.input_size, args.width)
        loss_fn = cnn_loss
    if args.teacher:
        loss_fn = distilled(loss_fn, args.teacher_weight)
    ckpt = args.out.with_suffix(".ckpt")
    if args.init is not None:
        if args.init.resolve() == ckpt.resolve():
            raise SystemExit(f"--init {args.init} is this run's own checkpoint (it is overwritten every epoch): "
                             "use --resume to continue it")
        load_weights(net, torch.load(args.init, weights_only=True)["net"], f"--init {args.init}", args)
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    threshold_faces = val if len(val.images) else train
    meta = {"rtalign.split": split,
            "rtalign.min_score_from": "validation split" if len(val.images) else "training faces (no validation split)"}
    sources = {}        # what the weights came from besides the labels (in the checkpoint and the metadata)
    if args.teacher:
        sources["rtalign.teacher"] = ", ".join(p.name for p in args.teacher) + f", weight {args.teacher_weight}"
    if args.init is not None:
        sources["rtalign.init"] = args.init.name
    elapsed, epoch, history = 0.0, 0, []
    if args.export_only:
        state = torch.load(ckpt, weights_only=False)  # our own training checkpoint, never a shipped file
        load_weights(net, state["net"], str(ckpt), args)
        log.info("checkpoint of epoch %d, %.1f min", state["epoch"], state["elapsed"] / 60)
        export(net, args, args.out, {**meta, **state.get("sources", {}), "rtalign.epochs": state["epoch"],
                                     "rtalign.train_minutes": round(state["elapsed"] / 60, 1)}, threshold_faces)
        return
    meta.update(sources)
    if args.resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        if (state["seed"], state["split"]) != (args.seed, split):
            raise SystemExit(f"{ckpt} was made with seed {state['seed']}, {state['split']}: resume with the same")
        if state.get("sources", sources) != sources:
            raise SystemExit(f"{ckpt} was made with {state['sources'] or 'no teacher or init'}: "
                             "resume with the same --teacher, --teacher-weight and --init")
        load_weights(net, state["net"], str(ckpt), args)
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["torch_rng"])
        elapsed, epoch, history = state["elapsed"], state["epoch"], state["history"]
        log.info("resumed at epoch %d, %.1f min", epoch, elapsed / 60)

    teachers = []
    if args.teacher:   # one thread: the two training threads keep theirs
        from rtalign.models import OnnxLandmarker
        from rtalign.runtime import RuntimeOptions
        teachers = [OnnxLandmarker(t, runtime=RuntimeOptions(threads=1)) for t in args.teacher]
    q: queue.Queue = queue.Queue(maxsize=8)
    threading.Thread(target=batches, args=(train, args, epoch, q, teachers), daemon=True).start()
    steps_per_epoch = len(train.images) // args.batch
    total_steps = args.epochs * steps_per_epoch
    t0 = time.time() - elapsed
    capped = False
    while epoch < args.epochs:
        if args.minutes is not None and time.time() - t0 >= args.minutes * 60:
            capped = True
            log.info("stopped by the %.0f-minute cap after %d of %d epochs", args.minutes, epoch, args.epochs)
            break
        losses = []
        step = epoch * steps_per_epoch
        while (item := q.get()) is not None:
            for g in opt.param_groups:
                g["lr"] = cosine_lr(args.lr, step, total_steps)
            x, *targets = item
            loss = loss_fn(net, net(x.contiguous(memory_format=torch.channels_last)), *targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
        epoch += 1
        elapsed = time.time() - t0
        msg = f"epoch {epoch} {elapsed / 60:.1f} min loss {np.mean(losses):.4f}"
        if len(val.images) and (epoch % args.eval_every == 0 or epoch == args.epochs):
            m = evaluate(net, val, args)
            history.append({"epoch": epoch, "minutes": round(elapsed / 60, 1), **m})
            msg += f" validation NME {m['nme']:.3f} MSE256 {m['mse256']:.2f} FR10 {m['fr10']:.2f}"
        log.info(msg)
        staged = ckpt.with_suffix(".ckpt.partial")   # a run killed while saving keeps the previous epoch's
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "elapsed": elapsed, "epoch": epoch,
                    "seed": args.seed, "split": split, "sources": sources, "torch_rng": torch.get_rng_state(),
                    "history": history}, staged)
        staged.replace(ckpt)

    final_val = evaluate(net, val, args) if len(val.images) else None
    final_test = evaluate(net, load_faces(root / "test_common"), args)   # reported, never used to choose
    log.info("final: validation %s, test_common %s", final_val, final_test)
    export(net, args, args.out, {**meta, "rtalign.epochs": epoch, "rtalign.train_minutes": round(elapsed / 60, 1)},
           threshold_faces)
    args.out.with_suffix(".history.json").write_text(json.dumps(
        {"args": {k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in vars(args).items()},
         "split": split, "epochs": epoch,
         "capped_by_minutes": capped, "minutes": elapsed / 60, "final_validation": final_val,
         "final_test_common": final_test, "history": history}, indent=1))
    log.info("exported %s", args.out)


if __name__ == "__main__":
    main()
