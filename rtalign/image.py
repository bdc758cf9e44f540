"""`rtalign image`: one photo in, the annotated photo (and/or its landmarks as data) out. Files go
through bytes (read + decode, cv2.imencode + write), so any name the OS accepts works, UTF-8 or not."""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
import io
import logging
import re
import struct
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .errors import InputError, shown
from .export import open_writer
from .io_safety import check_input_file, check_output, write_bytes_atomic

if TYPE_CHECKING:
    from .align import FaceAligner

#: Images larger than this many pixels are refused before decoding (a header can claim 60000x60000);
#: below Pillow's own decompression-bomb limit (about 179 million).
MAX_PIXELS = 150_000_000
#: Formats that take only one channel: the picture is written in grey.
_GREY_ONLY = {".pgm", ".pbm"}
#: Formats that keep an alpha channel; the others get the picture as it looks on a white page.
_KEEPS_ALPHA = {".png", ".webp", ".tif", ".tiff"}
#: First bytes of PNG, JPEG, GIF, BMP, TIFF and WebP files, which Pillow decodes.
_PILLOW_SIGNATURES = (b"\x89PNG", b"\xff\xd8", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")
#: How much of a file the header of a format only OpenCV reads may take.
_HEADER_BYTES = 65536

log = logging.getLogger(__name__)

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


def over_white(image: np.ndarray) -> np.ndarray:
    """A BGRA image as BGR the way a viewer shows it on a white page, so that the colours hidden under
    transparent pixels (often black) never reach a detector or a format without alpha. BGR passes as is."""
    if image.ndim != 3 or image.shape[2] != 4:
        return image
    alpha = cv2.merge([image[:, :, 3]] * 3)
    return 255 - cv2.multiply(255 - image[:, :, :3], alpha, scale=1 / 255)  # white, less each colour's opacity


def _grey8(im, file_format: str | None) -> np.ndarray:
    """A wide grey image (16-bit, 32-bit integer "I", float "F") as uint8, scaled by the range its values
    use, since the mode alone does not say it: 16-bit files by 65535; "I" by 255 when every value fits
    8 bits, else 65535, else its maximum; "F" likewise, but by 1 when every value is within 0-1."""
    values = np.nan_to_num(np.array(im, np.float32), copy=False)
    if im.mode.startswith("I;16") or (im.mode == "I" and file_format == "PPM"):   # Pillow scales 16-bit PGM/PPM
        full = 65535.0                                                                    # to 0-65535 as "I"
    else:
        top = float(values.max())
        ranges = (1.0, 255.0, 65535.0) if im.mode == "F" else (255.0, 65535.0)
        full = next((r for r in ranges if top <= r), top)
    values *= 255 / full
    return np.clip(values, 0, 255, out=values).round(out=values).astype(np.uint8)


def _to_srgb(im, mode: str):
    """`im` converted to `mode` (RGB or RGBA) and, when it embeds a colour profile other than sRGB (Adobe
    RGB, Display P3, a CMYK press profile), to sRGB: else a wide-gamut photo comes out dull. A profile
    littleCMS cannot use is logged and the colours are kept as they are."""
    icc = im.info.get("icc_profile")
    if icc:
        from PIL import ImageCms
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if not re.search(r"\bsRGB\b", profile.profile.profile_description or ""):
                source = im if im.mode == "CMYK" else im.convert(mode)
                return ImageCms.profileToProfile(source, profile, ImageCms.createProfile("sRGB"), outputMode=mode)
        except (ImageCms.PyCMSError, OSError, ValueError) as e:
            log.debug("colour profile not applied: %s", e)
    return im.convert(mode)


def _to_bgr(im, file_format: str | None = None) -> np.ndarray:
    """A decoded Pillow image as uint8 BGR, or BGRA when it has transparency (RGBA, LA, a palette or grey
    with a transparent entry); wide greys scaled down, colours in sRGB."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return cv2.cvtColor(_grey8(im, file_format), cv2.COLOR_GRAY2BGR)
    alpha = im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info
    rgb = np.asarray(_to_srgb(im, "RGBA" if alpha else "RGB"))
    return cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA if alpha else cv2.COLOR_RGB2BGR)


def _header_pixels(data: bytes) -> int | None:
    """Width × height from the header of a format OpenCV reads and Pillow does not (PFM, PAM, Radiance
    HDR), so the pixel limit holds before decoding. None for any other file, and for a header that OpenCV
    might read otherwise than here: such a file is not read."""
    head = data[:_HEADER_BYTES]
    if m := re.match(rb"P[Ff]\s(\d+)\s(\d+)\s", head):                       # PFM: "PF" or "Pf", "W H"
        sides = m.groups()
    elif m := re.match(rb"#\?(?:RADIANCE|RGBE)\n(?:[^\n]+\n)*\n-Y (\d+) \+X (\d+)\n", head):
        sides = m.groups()                            # Radiance: text lines up to a blank one, "-Y H +X W"
    elif head.startswith(b"P7\n") and b"ENDHDR" in head:    # PAM: one "WIDTH w", one "HEIGHT h", ENDHDR
        fields = re.findall(rb"(WIDTH|HEIGHT)\s+(\S*)", head.split(b"ENDHDR")[0])
        once = sorted(name for name, _ in fields) == [b"HEIGHT", b"WIDTH"]
        sides = [value for _, value in fields] if once else []
    else:
        return None
    return int(sides[0]) * int(sides[1]) if len(sides) == 2 and all(side.isdigit() for side in sides) else None


def _too_large(path) -> InputError:
    """The one refusal of too many pixels, whichever decoder's header said so."""
    return InputError(f"{shown(path)}: the image is larger than rtalign reads ({MAX_PIXELS // 10**6} megapixels)")


@contextmanager
def _warnings_logged(path):
    """Warnings raised inside (Pillow's "corrupt EXIF data", "large image") go to the debug log, not to
    stderr; the warning filters are as before afterwards."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in said:
                log.debug("%s: %s", shown(path), w.message)


def _decode(data: bytes, path, upright: bool = True) -> np.ndarray:
    """Pillow first: it is quiet about damaged files (libpng and libjpeg inside OpenCV print to stderr),
    refuses truncated ones, and applies the EXIF orientation phones write (unless not `upright`). OpenCV
    reads the formats only it knows, once their header shows a size within MAX_PIXELS. BGRA when the image
    has transparency."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    try:
        with _warnings_logged(path), Image.open(io.BytesIO(data)) as im:
            if im.size[0] * im.size[1] > MAX_PIXELS:
                raise Image.DecompressionBombError
            frames = getattr(im, "n_frames", 1)
            if frames > 1 and im.format != "MPO":   # an MPO photo's other pictures are its previews or depth
                log.warning("%s has %d frames; only the first is used%s", shown(path), frames,
                            " (`rtalign video` reads GIF animations)" if im.format == "GIF" else "")
            return _to_bgr(ImageOps.exif_transpose(im) if upright else im, im.format)   # a turned copy has no format
    except Image.DecompressionBombError:
        raise _too_large(path) from None
    except UnidentifiedImageError:
        if data.startswith(_PILLOW_SIGNATURES):      # a format Pillow reads, too damaged to identify
            raise InputError(f"not a readable image: {shown(path)}") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, struct.error, ZeroDivisionError) as e:
        raise InputError(f"not a readable image: {shown(path)} ({e})") from None
    pixels = _header_pixels(data)
    if pixels is not None and pixels > MAX_PIXELS:
        raise _too_large(path)
    try:
        flags = cv2.IMREAD_COLOR if upright else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if pixels else None
    except (cv2.error, MemoryError):
        image = None
    if image is None or image.size == 0:
        raise InputError(f"not a readable image: {shown(path)}")
    return image


def load_image(path, alpha: bool = False, upright: bool = True) -> np.ndarray:
    """Read a photo as BGR uint8, upright by its EXIF orientation (as stored without `upright`), with one
    clear error for every way a file can be unusable. A transparent image comes as it looks over white, or
    with `alpha` as BGRA.

    Raises:
        InputError: missing, a folder or device, not an image, damaged, or larger than MAX_PIXELS.
    """
    check_input_file(path, "image")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError(f"cannot read {shown(path)}: {e.strerror}") from None
    image = _decode(data, path, upright)
    return image if alpha else over_white(image)


def save_image(dst, image: np.ndarray) -> None:
    """Encode by the extension of `dst` and write it atomically (a temporary file, then a rename). BGRA
    keeps its alpha in formats that have it (.png, .webp, .tif) and is shown over white in the others."""
    check_image_output(dst)
    suffix = Path(dst).suffix.lower()
    if suffix not in _KEEPS_ALPHA:
        image = over_white(image)
    if suffix in _GREY_ONLY and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if suffix == ".pbm":    # one bit a pixel: OpenCV keeps only pixels at exactly 0 black; dither instead
        from PIL import Image
        image = np.asarray(Image.fromarray(image).convert("1"), np.uint8) * np.uint8(255)
    try:
        ok, buf = cv2.imencode(suffix, image)
    except cv2.error:
        ok = False
    if not ok:
        raise InputError(f"cannot encode {image.shape[1]}x{image.shape[0]} image as {suffix} ({shown(dst)})")
    write_bytes_atomic(dst, buf.tobytes())


def annotate_image(src, dst, aligner: FaceAligner, draw="points", effects=(), writer=None, label=None,
                   need_face: bool = True) -> int:
    """Faces of photo `src` (with head pose) drawn into `dst` and/or written as rows to `writer`
    (frame 0, time 0, `file` = `label` or the file name). Returns the face count.

    Every face is processed unless the aligner's `max_faces` caps them (the largest first); faces left
    out that way are reported with a warning, never skipped silently. Without `need_face` (a folder of
    photos, as a video's faceless frames), a photo without a face is written as it is, with no rows, and
    said in a warning.

    Raises:
        InputError: unreadable input, no face found (with `need_face`), or a bad output path.
    """
    from .detectors import detect_faces
    from .render import annotator_for

    src = Path(src)
    if dst is not None:
        check_output(src, Path(dst))
        check_image_output(dst)
    image = load_image(src, alpha=True)
    seen = over_white(image)    # faces are looked for in what the user sees, not in colours alpha hides
    faces = aligner.align(seen, detections=detect_faces(aligner.detector, seen).largest_first())   # uncapped
    if aligner.max_faces is not None and len(faces) > aligner.max_faces:
        log.warning("%d faces found in %s; processing the largest %d (--max-faces)", len(faces), shown(src),
                    aligner.max_faces)
        faces = faces[: aligner.max_faces]
    if len(faces) == 0:
        if need_face:
            raise InputError(f"no face found in {shown(src)}")
        log.warning("no face found in %s: written as it is, with no landmark rows", shown(src))
    if writer is not None:
        writer.write(label or src.name, 0, 0.0, faces)
    if dst is not None:
        out = image.copy()
        for effect in effects:
            out = effect.annotate(out, faces)
        annotator = annotator_for(draw)
        if annotator is not None:
            out = annotator.annotate(out, faces)
        save_image(dst, out)
    return len(faces)


def process_image(src, dst, model="resnet", device="cpu", threads=2, draw="points", max_faces=None,
                  effects=(), landmarks=None, detector=None) -> int:
    """Find faces in `src`, draw them (and apply `effects`) into `dst` (None: no image) and write their
    landmarks and head pose to the `landmarks` file (.csv/.jsonl/.parquet, optional). Returns the face count.
    `detector`: a name from rtalign.detectors (None: its default) or a detector object.

    Raises:
        InputError: unreadable input, no face found, or a bad output path.
    """
    if dst is None and landmarks is None:
        raise InputError("nothing to write: give an output image and/or a landmarks file")
    if landmarks is not None:
        check_output(Path(src), Path(landmarks))
    from .align import FaceAligner
    aligner = FaceAligner(model, max_faces=max_faces, device=device, threads=threads, detector=detector)
    with open_writer(landmarks) if landmarks is not None else nullcontext() as writer:
        return annotate_image(src, dst, aligner, draw, effects, writer)
