"""`rtalign image`: one photo in, the annotated photo (and/or its landmarks as data) out."""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from .align import FaceAligner
from .data import read_image
from .errors import InputError
from .export import open_writer
from .io_safety import check_output, write_image_atomic
from .render import annotator_for


def annotate_image(src, dst, aligner: FaceAligner, draw="points", effects=(), writer=None, label=None) -> int:
    """Faces of photo `src` (with head pose) drawn into `dst` and/or written as rows to `writer`
    (frame 0, time 0, `file` = `label` or the file name). Returns the face count.

    Raises:
        InputError: unreadable input, no face found, or a bad output path.
    """
    src = Path(src)
    if dst is not None:
        check_output(src, Path(dst))
    image = read_image(src)
    faces = aligner.align(image)
    if len(faces) == 0:
        raise InputError(f"no face found in {src}")
    if writer is not None:
        writer.write(label or src.name, 0, 0.0, faces)
    if dst is not None:
        out = image.copy()
        for effect in effects:
            out = effect.annotate(out, faces)
        annotator = annotator_for(draw)
        if annotator is not None:
            out = annotator.annotate(out, faces)
        write_image_atomic(Path(dst), out)
    return len(faces)


def process_image(src, dst, model="resnet", device="cpu", threads=2, draw="points", max_faces=4,
                  effects=(), landmarks=None) -> int:
    """Find faces in `src`, draw them (and apply `effects`) into `dst` (None: no image) and write their
    landmarks and head pose to the `landmarks` file (.csv/.jsonl/.parquet, optional). Returns the face count.

    Raises:
        InputError: unreadable input, no face found, or a bad output path.
    """
    if dst is None and landmarks is None:
        raise InputError("nothing to write: give an output image and/or a landmarks file")
    if landmarks is not None:
        check_output(Path(src), Path(landmarks))
    aligner = FaceAligner(model, max_faces, device, threads)
    with open_writer(landmarks) if landmarks is not None else nullcontext() as writer:
        return annotate_image(src, dst, aligner, draw, effects, writer)
