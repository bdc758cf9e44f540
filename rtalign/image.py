"""`rtalign image`: one photo in, the annotated photo out."""
from __future__ import annotations

from pathlib import Path

from .align import FaceAligner
from .data import read_image
from .errors import InputError
from .io_safety import check_output, write_image_atomic
from .render import annotator_for


def process_image(src, dst, model="resnet", device="cpu", threads=2, draw="points", max_faces=4,
                  effects=()) -> int:
    """Find faces in `src`, draw them (and apply `effects`) and write `dst`. Returns the face count.

    Raises:
        InputError: unreadable input, no face found, or a bad output path.
    """
    src, dst = Path(src), Path(dst)
    check_output(src, dst)
    image = read_image(src)
    faces = FaceAligner(model, max_faces=max_faces, device=device, threads=threads).align(image)
    if len(faces) == 0:
        raise InputError(f"no face found in {src}")
    out = image.copy()
    for effect in effects:
        out = effect.annotate(out, faces)
    annotator = annotator_for(draw)
    if annotator is not None:
        out = annotator.annotate(out, faces)
    write_image_atomic(dst, out)
    return len(faces)
