"""Output files that never clobber the input and never appear half-written."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2

from .errors import InputError

#: The process's file-creation mask, read once at import (os.umask can only be read by setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)


def check_output(src: Path, dst: Path) -> None:
    """Refuse an output equal to the input or in a folder that cannot be written."""
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve() or (dst.exists() and src.exists() and os.path.samefile(src, dst)):
        raise InputError(f"output {dst} is the input file; choose another name")
    folder = dst.parent if str(dst.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise InputError(f"output folder is not writable: {folder}")


def temp_path_for(dst: Path) -> Path:
    """A fresh hidden file beside `dst` with the same extension, to be renamed onto it when complete.

    mkstemp makes it private (0600); it gets the mode a plainly created `dst` would have (0666 less the
    umask), or the finished photo or video could not be read by anyone else."""
    fd, name = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=dst.suffix, dir=dst.parent if str(dst.parent) else ".")
    os.close(fd)
    os.chmod(name, 0o666 & ~_UMASK)              # by path: os.fchmod is missing on Windows before 3.13
    return Path(name)


def write_image_atomic(dst: Path, image) -> None:
    """cv2.imwrite to a temporary file, then rename: readers never see a partial image."""
    tmp = temp_path_for(Path(dst))
    try:
        if not cv2.imwrite(str(tmp), image):
            raise InputError(f"cannot write image {dst} (unknown extension?)")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
