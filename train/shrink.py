"""A shallower resnet that starts as a trained one: some residual blocks left out, the rest kept, as a
checkpoint that `train_net --init` fine-tunes (the shipped resnet was made so: exported/MODELS.md).

    python -m train.shrink resnet.ckpt --drop layer1.2 layer2.2 layer4.1 layer4.2 --out student.ckpt
    python -m train.train_net --arch resnet --blocks 2 2 3 2 --init student.ckpt --teacher TEACHER.onnx ...

The network comes from a train_net checkpoint, or from a float ONNX file with every head at every cell, as
train_net wrote them before the peak-cell head (train.peak_head; the float file of the 3/3/3/4 resnet shipped
before session 22 is
`git show dc83630^:exported/resnet.onnx`). Such a file has each batch norm folded into its convolution;
they are unfolded again as batch norms that are the identity on training crops (running statistics and
scale measured on them, shift the folded bias), so the network computes the file's function in eval mode
and about the same in train mode, and fine-tuning starts from there (same outputs: tests/test_train_net.py).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from rtalign.data import data_root
from rtalign.models import OnnxLandmarker
from rtalign.runtime import RuntimeOptions
from train.augment import load_faces, normalize
from train.nets import ResNetPIP
from train.peak_head import file_neighbours
from train.quantize import calibration_crops

log = logging.getLogger("train")

STAGES = ("layer1", "layer2", "layer3", "layer4")


def folded_convs(model: onnx.ModelProto) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{torch module name: (weight, bias)} of every convolution in a float ResNetPIP export, named by the
    node names torch.onnx gives them ('/net/layer1/layer1.0/conv1/conv1.0/Conv' → 'layer1.0.conv1.0')."""
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = {}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        scopes = node.name.split("/")[1:-1]
        if scopes[:1] == ["net"]:           # the export wrapper's own scope
            scopes = scopes[1:]
        if not scopes or node.input[1] not in init:
            raise ValueError(f"{node.name} is not a float ResNetPIP convolution (an int8 file? "
                             "use the float export)")
        # each scope is its module's name within the one before ('layer1', 'layer1.0', 'conv1', 'conv1.0')
        parts = scopes[:1] + [s[len(prev) + 1:] if s.startswith(prev + ".") else s for prev, s in zip(scopes, scopes[1:])]
        convs[".".join(parts)] = (init[node.input[1]].copy(), init[node.input[2]].copy())
    missing = sorted({"stem.0.0", "cls", "off", "nb"} - convs.keys())
    if missing:
        raise ValueError(f"no {', '.join(missing)} convolution: not a float ResNetPIP file with every "
                         "head at every cell (see train.shrink)")
    return convs


def blocks_of(names) -> tuple[int, ...]:
    """Blocks per stage of the network whose module or parameter names these are ('layer1.0.conv1.0', ...)."""
    return tuple(len({name.split(".")[1] for name in names if name.startswith(stage + ".")}) for stage in STAGES)


def from_checkpoint(path: Path, input_size: int = 128) -> ResNetPIP:
    """The ResNetPIP of a train_net checkpoint (eval mode), with as many blocks as it holds (its weights do not
    depend on the input size, which the checkpoint does not record)."""
    state = torch.load(path, weights_only=True)["net"]
    net = ResNetPIP(input_size, state["stem.0.0.weight"].shape[0], state["neighbours"].numpy(),
                    blocks=blocks_of(state))
    net.load_state_dict(state)
    return net.eval()


def _bn_after(modules: dict, conv_name: str) -> nn.BatchNorm2d | None:
    """The batch norm that follows convolution `conv_name` ('layer1.0.conv1.0' → 'layer1.0.conv1.1') among a
    network's named modules."""
    head, _, last = conv_name.rpartition(".")
    if not last.isdigit():
        return None
    module = modules.get(f"{head}.{int(last) + 1}")
    return module if isinstance(module, nn.BatchNorm2d) else None


def _accumulate(stats: dict, name: str, out: torch.Tensor) -> None:
    """Add a convolution's output (N, C, H, W) to its per-channel count, sum and sum of squares."""
    o = out.detach().double()
    count, total, squares = stats.get(name, (0, 0.0, 0.0))
    stats[name] = (count + o.numel() // o.shape[1], total + o.sum((0, 2, 3)), squares + (o * o).sum((0, 2, 3)))


def unfolded(convs, neighbours: np.ndarray, input_size: int, crops: np.ndarray) -> ResNetPIP:
    """A ResNetPIP (eval mode) computing the folded file's function: each convolution's weight as it is, its
    batch norm set to add the folded bias after normalizing by statistics measured on `crops` (N, s, s)
    uint8 and scaling back (so train-mode batch statistics near them change little)."""
    width = convs["stem.0.0"][0].shape[0]
    net = ResNetPIP(input_size, width, neighbours, blocks=blocks_of(convs))
    modules = dict(net.named_modules())
    convs_here = {name for name, m in modules.items() if isinstance(m, nn.Conv2d)}
    if convs_here != set(convs):
        raise ValueError(f"the file's convolutions do not fit a ResNetPIP: {sorted(convs_here ^ set(convs))[:4]}")
    stats, hooks = {}, []
    with torch.no_grad():
        for name, (w, b) in convs.items():
            conv = modules[name]
            conv.weight.copy_(torch.from_numpy(w))
            bn = _bn_after(modules, name)
            if bn is None:                      # a head convolution: its own bias
                conv.bias.copy_(torch.from_numpy(b))
                continue
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(b))
            hooks.append(conv.register_forward_hook(lambda m, i, o, name=name: _accumulate(stats, name, o)))
        net.eval()
        for i in range(0, len(crops), 64):
            net.predict(torch.from_numpy(normalize(crops[i:i + 64])[:, None]))
        for h in hooks:
            h.remove()
        for name, (count, total, squares) in stats.items():
            mean = total / count
            var = (squares / count - mean ** 2).clamp_min(0.0)
            bn = _bn_after(modules, name)
            bn.running_mean.copy_(mean.float())
            bn.running_var.copy_(var.float())
            bn.weight.copy_(torch.sqrt(var + bn.eps).float())
            bn.bias.add_(mean.float())
    return net


def checked_blocks(net: ResNetPIP, drop: list[str]) -> set[str]:
    """The blocks named in `drop` as 'layerS.I' ('layer4.03' is 'layer4.3').

    Raises:
        ValueError: a block `net` does not have, or the first block of a stage (it changes the stride or width).
    """
    named = set()
    for name in drop:
        stage, _, index = name.partition(".")
        if stage not in STAGES or not index.isdigit() or int(index) >= len(getattr(net, stage)):
            raise ValueError(f"no block {name}")
        if int(index) == 0:
            raise ValueError(f"{name} is the first block of its stage (it changes the stride or width)")
        named.add(f"{stage}.{int(index)}")
    return named


def without(net: ResNetPIP, drop: list[str]) -> ResNetPIP:
    """A copy of `net` without the blocks named in `drop` ('layer4.3'; see checked_blocks)."""
    drop = checked_blocks(net, drop)
    kept = {stage: [b for i, b in enumerate(getattr(net, stage)) if f"{stage}.{i}" not in drop] for stage in STAGES}
    small = ResNetPIP(net.input_size, net.stem[0][0].out_channels, net.neighbours.numpy(),
                      blocks=tuple(len(kept[s]) for s in STAGES))
    with torch.no_grad():
        for stage in STAGES:
            for mine, theirs in zip(getattr(small, stage), kept[stage]):
                mine.load_state_dict(theirs.state_dict())
        for part in ("stem", "cls", "off", "nb"):
            getattr(small, part).load_state_dict(getattr(net, part).state_dict())
    return small.eval()


def from_file(path: Path, n_calibration: int) -> ResNetPIP:
    """The network of a float file (see the module's doc), checked against the file on training crops.

    Raises:
        ValueError: not such a file, or the rebuilt network's points differ from the file's by 1e-3 px or more.
    """
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    size, scale = int(meta["rtalign.input_size"]), float(meta["rtalign.crop_scale"])
    convs, neighbours = folded_convs(model), file_neighbours(model)     # a wrong file goes before the crops are made
    crops = calibration_crops(load_faces(data_root() / "train"), size, scale, n_calibration)
    net = unfolded(convs, neighbours, size, crops)
    x = normalize(crops[:64])[:, None]
    with torch.no_grad():
        mine = net.predict(torch.from_numpy(x))[0].numpy()
    theirs = OnnxLandmarker(path, runtime=RuntimeOptions(threads=1)).session.run(None, {"image": x})[0]
    gap = float(np.abs(mine - theirs).max())
    log.info("rebuilt from %s: points within %.1e px of the file's on 64 training crops", path, gap)
    if gap >= 1e-3:
        raise ValueError(f"the rebuilt network's points differ from the file's by {gap:.3g} px")
    return net


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="a train_net checkpoint (.ckpt) or a float ResNetPIP export with "
                                             "every head at every cell (.onnx)")
    ap.add_argument("--drop", nargs="*", default=[], help="blocks to leave out, e.g. layer4.3")
    ap.add_argument("--out", type=Path, required=True, help="the checkpoint to write (for train_net --init)")
    ap.add_argument("--calibration", type=int, default=512, help="training crops that set the unfolded batch norms")
    args = ap.parse_args()
    try:
        net = from_checkpoint(args.model) if args.model.suffix == ".ckpt" else from_file(args.model, args.calibration)
        dropped = sorted(checked_blocks(net, args.drop))
        small = without(net, dropped)
    except (ValueError, StopIteration, KeyError, AssertionError, OSError, RuntimeError) as e:
        raise SystemExit(f"train.shrink: {args.model}: {e or type(e).__name__} (a float file with every head at every cell, or "
                         "a train_net .ckpt: train_net's own float files have the peak-cell head, shrink their .ckpt)") from None
    torch.save({"net": small.state_dict(), "blocks": blocks_of(small.state_dict()), "from": args.model.name,
                "dropped": dropped}, args.out)
    log.info("wrote %s: blocks %s (dropped %s)", args.out, blocks_of(small.state_dict()), ", ".join(dropped) or "none")


if __name__ == "__main__":
    main()
