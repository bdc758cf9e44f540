"""Landmark files, dataset folders, and the face-box → crop affine with its exact inverse.

Coordinates in code are 0-based pixel centres; `.pts` files on disk are 1-based (Matlab).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, shown
from .image import load_image
from .landmarks import N_POINTS, interocular

log = logging.getLogger(__name__)

#: Where the 300-W crops live unless RTALIGN_DATA says otherwise (relative to the project root).
DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "300w"


def data_root() -> Path:
    """The 300-W folder: $RTALIGN_DATA, else ../shared/data/300w beside the project."""
    return Path(os.environ.get("RTALIGN_DATA", DEFAULT_DATA))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A dataset image, BGR, as stored: its `.pts` points were placed on the stored pixels (as MATLAB and dlib
    read them), so an EXIF orientation tag is not applied, as it is to a photo (rtalign.image.load_image)."""
    return load_image(path, upright=False)


def read_pts(path: str | os.PathLike) -> np.ndarray:
    """Read an iBUG `.pts` file into a (68, 2) float32 array of 0-based pixel centres.

    Raises:
        InputError: the file is missing, is not text, does not hold exactly 68 finite points, or its
            eye corners coincide (no face could be measured against it).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read landmark file {shown(path)}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{shown(path)}: not a .pts file (not text)") from None
    try:
        body = text[text.index("{") + 1: text.index("}")]
        pts = np.array([line.split() for line in body.strip().splitlines()], dtype=np.float64)
    except ValueError:
        raise InputError(f"{shown(path)}: not a .pts file (expected 'version', 'n_points', '{{ x y ... }}')") from None
    if pts.shape != (N_POINTS, 2):
        found = f"{len(pts)} rows of {pts.shape[1]} numbers" if pts.ndim == 2 else "none"
        raise InputError(f"{shown(path)}: expected {N_POINTS} points (x y), found {found}")
    with np.errstate(over="ignore"):            # 1e39 becomes inf: refused below, in one line, not warned about
        pts = (pts - 1.0).astype(np.float32)    # checked as returned: 1e39 is finite only before this
    if not np.isfinite(pts).all():
        raise InputError(f"{shown(path)}: holds a point that is not a finite number")
    if interocular(pts) <= 0:
        raise InputError(f"{shown(path)}: the outer eye corners (points 37 and 46) coincide")
    return pts


def write_pts(path: str | os.PathLike, points: np.ndarray) -> None:
    """Write (68, 2) 0-based points as a 1-based iBUG `.pts` file."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (N_POINTS, 2):
        raise ValueError(f"expected points of shape ({N_POINTS}, 2), got {points.shape}")
    lines = [f"{x + 1:.6f} {y + 1:.6f}" for x, y in points]
    Path(path).write_text("version: 1\nn_points:  68\n{\n" + "\n".join(lines) + "\n}\n")


@dataclass(frozen=True)
class Sample:
    """One annotated face: image path and its (68, 2) ground truth."""
    image: Path
    points: np.ndarray


def _where_data_is(folder: Path) -> str:
    """For a missing folder under the 300-W root: where that root is looked for, and how to change it."""
    root = data_root()
    if not folder.is_relative_to(root):
        return ""
    setting = f"now {root}" if "RTALIGN_DATA" in os.environ else f"not set, so {root}"
    return (f" (the 300-W faces are looked for in $RTALIGN_DATA, {setting}: set it to the folder that holds "
            "test_common/ and train/)")


#: Image suffixes a dataset's faces may have (any case), the first preferred where one name has several.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def list_samples(folder: str | os.PathLike) -> list[Sample]:
    """Every `NAME.jpg|jpeg|png` (any case) with a `NAME.pts` beside it, sorted by name. What is left out is
    logged (a warning): a `.pts` without its image, an image without its `.pts`, a second image of one name
    (`NAME.jpg` is used before `NAME.png`: one face never counts twice).

    Raises:
        InputError: the folder is missing or holds no annotated image.
    """
    if not os.fspath(folder).strip():        # Path("") is ".": `--data "$UNSET"` ran on the current folder
        raise InputError("no data folder given (an empty name)")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{shown(folder)} is a file, not a data folder" if folder.exists() else
                         f"no such data folder: {shown(folder)}{_where_data_is(folder)}")
    images: dict[str, list[Path]] = {}
    for p in folder.iterdir():
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            images.setdefault(p.stem, []).append(p)
    samples, no_image, extra = [], [], []
    for pts in sorted(p for p in folder.iterdir() if p.suffix.lower() == ".pts" and p.is_file()):
        found = sorted(images.pop(pts.stem, []), key=lambda p: (IMAGE_SUFFIXES.index(p.suffix.lower()), p.name))
        if not found:
            no_image.append(pts.name)
            continue
        extra += [p.name for p in found[1:]]
        samples.append(Sample(found[0], read_pts(pts)))
    if not samples:
        inner = sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.pts")))
        hint = f": give one of its folders ({', '.join(inner)})" if inner else ""
        raise InputError(f"no annotated images (NAME.jpg + NAME.pts) in {shown(folder)}{hint}")
    left = [(no_image, ".pts without its image"), (sorted(p.name for ps in images.values() for p in ps),
            "image(s) without a .pts"), (extra, "second image(s) of a name already used")]
    said = [f"{len(names)} {what} ({', '.join(shown(n) for n in names[:3])}{', ...' if len(names) > 3 else ''})"
            for names, what in left if names]
    if said:
        log.warning("%s: %d faces; left out %s", shown(folder), len(samples), "; ".join(said))
    return samples
