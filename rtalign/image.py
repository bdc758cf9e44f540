"""`rtalign image`: one photo in, the annotated photo out. Files go through bytes (read + decode,
cv2.imencode + write), so any name the OS accepts works, UTF-8 or not."""
from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError, shown
from .io_safety import check_input_file, check_output, write_bytes_atomic

#: Images larger than this many pixels are refused before decoding (a header can claim 60000x60000);
#: below Pillow's own decompression-bomb limit (about 179 million).
MAX_PIXELS = 150_000_000
#: Formats that take only one channel: the picture is written in grey.
_GREY_ONLY = {".pgm", ".pbm"}
#: First bytes of PNG, JPEG, GIF, BMP, TIFF and WebP files, which Pillow decodes.
_PILLOW_SIGNATURES = (b"\x89PNG", b"\xff\xd8", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


def check_image_output(dst) -> None:
    """Refuse, before any work, an output whose extension OpenCV cannot write."""
    suffix = Path(dst).suffix.lower()
    try:
        ok = bool(suffix) and cv2.haveImageWriter("x" + suffix)
    except cv2.error:  # a codec compiled in but disabled (OpenEXR) raises instead of answering
        ok = False
    if not ok:
        raise InputError(f"cannot write images as {suffix or 'a file without extension'!s} ({shown(dst)}); "
                         "use .png (lossless), .jpg, .webp, .bmp, .tif or another format OpenCV writes")


def _to_bgr(im) -> np.ndarray:
    """A decoded Pillow image as BGR uint8: 16-bit and float greys scaled down, palettes and alpha resolved."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = (np.asarray(im, np.uint32) >> 8).clip(0, 255).astype(np.uint8)
    elif im.mode == "F":
        grey = np.asarray(im).clip(0, 255).astype(np.uint8)
    else:
        return cv2.cvtColor(np.asarray(im.convert("RGB")), cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def _decode(data: bytes, path) -> np.ndarray:
    """Pillow first: it is quiet about damaged files (libpng and libjpeg inside OpenCV print to stderr),
    refuses truncated ones, and applies the EXIF orientation phones write. OpenCV for formats only it reads."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.size[0] * im.size[1] > MAX_PIXELS:
                    raise Image.DecompressionBombError
                return _to_bgr(ImageOps.exif_transpose(im))
    except Image.DecompressionBombError:
        raise InputError(f"{shown(path)}: the image is larger than rtalign reads ({MAX_PIXELS // 10**6} megapixels)") \
            from None
    except UnidentifiedImageError:
        if data.startswith(_PILLOW_SIGNATURES):      # a format Pillow reads, too damaged to identify
            raise InputError(f"not a readable image: {shown(path)}") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, struct.error, ZeroDivisionError) as e:
        raise InputError(f"not a readable image: {shown(path)} ({e})") from None
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except (cv2.error, MemoryError):
        image = None
    if image is None or image.size == 0:
        raise InputError(f"not a readable image: {shown(path)}")
    return image


def load_image(path) -> np.ndarray:
    """Read a photo as BGR uint8, upright by its EXIF orientation, with one clear error for every way a
    file can be unusable.

    Raises:
        InputError: missing, a folder or device, not an image, damaged, or larger than MAX_PIXELS.
    """
    check_input_file(path, "image")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError(f"cannot read {shown(path)}: {e.strerror}") from None
    return _decode(data, path)


def save_image(dst, image: np.ndarray) -> None:
    """Encode by the extension of `dst` and write it atomically (a temporary file, then a rename)."""
    check_image_output(dst)
    suffix = Path(dst).suffix.lower()
    if suffix in _GREY_ONLY and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    try:
        ok, buf = cv2.imencode(suffix, image)
    except cv2.error:
        ok = False
    if not ok:
        raise InputError(f"cannot encode {image.shape[1]}x{image.shape[0]} image as {suffix} ({shown(dst)})")
    write_bytes_atomic(dst, buf.tobytes())


def process_image(src, dst, model="resnet", device="cpu", threads=2, draw="points", max_faces=4,
                  effects=()) -> int:
    """Find faces in `src`, draw them (and apply `effects`) and write `dst`. Returns the face count.

    Raises:
        InputError: unreadable input, no face found, or a bad output path.
    """
    from .align import FaceAligner
    from .render import annotator_for

    src, dst = Path(src), Path(dst)
    check_output(src, dst)
    check_image_output(dst)
    image = load_image(src)
    faces = FaceAligner(model, max_faces=max_faces, device=device, threads=threads).align(image)
    if len(faces) == 0:
        raise InputError(f"no face found in {shown(src)}")
    out = image.copy()
    for effect in effects:
        out = effect.annotate(out, faces)
    annotator = annotator_for(draw)
    if annotator is not None:
        out = annotator.annotate(out, faces)
    save_image(dst, out)
    return len(faces)
