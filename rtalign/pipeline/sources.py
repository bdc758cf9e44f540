"""Frame sources. A file is read frame by frame (FILE mode: nothing dropped, each frame keeps its own
presentation time); a camera, stream or file-as-camera is LIVE (real time, the newest frame wins)."""
from __future__ import annotations

import enum
import inspect
import itertools
import re
import logging
import time
from fractions import Fraction

import av
import cv2
import numpy as np

from ..errors import DeviceError, InputError, reason, shown
from ..io_safety import check_input_file
from ..types import Frame
from .timeline import Timeline

log = logging.getLogger(__name__)


#: FFmpeg's per-track duration tag in Matroska/WebM, e.g. "00:01:02.500000000".
_DURATION_TAG = re.compile(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)")
#: Its key: "DURATION" as FFmpeg writes it, "DURATION-eng" as MKVToolNix does (FFmpeg appends a tag's language).
_DURATION_KEY = re.compile(r"duration(-\w+)?", re.IGNORECASE)


class SourceMode(enum.Enum):
    FILE = "file"
    LIVE = "live"


#: Seconds a stream URL may stay silent, opening and then between packets, before it counts as ended:
#: FFmpeg waits forever otherwise, deaf to Ctrl-C while it blocks.
URL_TIMEOUT_S = 10.0


#: Frames a decoder may still show after the last one it decoded (B-frames; x264's default is 3).
_REORDER_WINDOW = 4
#: Containers (FFmpeg's names) with no index or frame count: MPEG transport and program streams, raw
#: H.264 / HEVC / MPEG video.
_NO_INDEX = frozenset({"mpegts", "mpeg", "mpegvideo", "h264", "hevc"})
#: Raw video streams (FFmpeg's names): no container around them, so FFmpeg's average frame rate is only its
#: demuxer's default (25), while the guessed rate reads the stream's own timing (30 for a 30 fps camera).
_RAW_VIDEO = frozenset({"h264", "hevc", "mpegvideo", "m4v"})
#: Packets in a row the decoder may reject as invalid data before the video counts as undecodable. Damaged
#: bytes get only the packets they cover rejected (a whole damaged keyframe is one packet; the frames that
#: refer to it are dropped or concealed, not rejected), while video that cannot be decoded at all
#: (encrypted, mislabelled) has every packet rejected and is given up after this many, not read to its end
#: for nothing. 250 is x264's default keyframe interval: a file may lose a whole group of pictures.
_MAX_FAILED_IN_A_ROW = 250


def _open_video(spec: str):
    """(container, video stream) with one clear error for every way a file can be unusable."""
    url = "://" in spec
    if not url:
        check_input_file(spec)
    try:
        container = av.open(spec, "r", timeout=(URL_TIMEOUT_S, URL_TIMEOUT_S) if url else None)
    except av.error.ExitError:      # the timeout's interrupt
        raise InputError(f"cannot read video {shown(spec)}: no answer within {URL_TIMEOUT_S:g} s") from None
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"cannot read video {shown(spec)}: {reason(e)}") from None
    stream = _main_video(container)
    if stream is None:
        only = " (only a cover picture)" if container.streams.video else ""
        container.close()
        raise InputError(f"{shown(spec)} has no video stream{only}")
    # frame threading, except for formats without an index: there a cut shows only as damaged last frames,
    # and with frame threads whether a damaged frame is flagged depends on timing (VideoFileSource.truncated)
    stream.thread_type = "NONE" if container.format.name in _NO_INDEX else "AUTO"
    return container, stream


def _main_video(container):
    """The video a player shows: FFmpeg's pick (av_find_best_stream: the stream flagged default, else the one
    with most frames, then most bits), but never a cover picture (attached_pic: album art, the thumbnail
    yt-dlp embeds; a song with its cover is no video). None without one."""
    cover = av.stream.Disposition.attached_pic
    best = container.streams.best("video")
    if best is not None and best.disposition & cover:
        return next((s for s in container.streams.video if not s.disposition & cover), None)
    return best


#: Colour spaces whose YUV → BGR matrix is OpenCV's (BT.601): unspecified (FFmpeg then assumes BT.601 too),
#: BT470BG, SMPTE170M. Others (BT.709 …) go through FFmpeg's converter.
_BT601 = (2, 5, 6)


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as BGR uint8. Limited-range BT.601 4:2:0, what most files hold, goes through OpenCV
    (0.6 ms a 720p frame against 2-3.5 ms in FFmpeg's swscale, measured on this machine; chroma upsampled
    by nearest neighbour, within 3 levels of swscale's); any other frame through PyAV."""
    if (frame.format.name == "yuv420p" and frame.color_range != 2 and frame.colorspace in _BT601
            and frame.width % 2 == 0 and frame.height % 2 == 0):
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """The frame as it is meant to be seen: `rotation` is the display matrix's angle (degrees,
    counter-clockwise), rounded to a quarter turn. A contiguous copy when turned (stages draw in place)."""
    k = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` scaled to fit (width, height) with its proportions kept, centred on black; `image` itself when it
    has that size. A stream that changes size or turns mid-way (joined recordings, HLS, DVB) keeps one frame
    size, and its faces their shapes, from the first frame on: the landmarks, the drawing and the output
    video all see the same frame."""
    w, h = size
    ih, iw = image.shape[:2]
    if (iw, ih) == (w, h):
        return image
    k = min(w / iw, h / ih)
    nw, nh = max(1, min(w, round(iw * k))), max(1, min(h, round(ih * k)))
    out = np.zeros((h, w, *image.shape[2:]), image.dtype)
    x0, y0 = (w - nw) // 2, (h - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    return out


class _Source:
    """Sources are context managers that release their file or device on exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoFileSource(_Source):
    """Every frame of a video file, in order, upright, as BGR `Frame`s (FILE mode).

    `Frame.timestamp` is the frame's own presentation time in seconds (variable frame rates stay
    variable). Damage never raises: a packet that does not decode as valid data is skipped, the frames after
    it still come, and other errors end the frames early; `truncated` then says the file is damaged.

    Attributes:
        fps: average frame rate (Fraction). time_base: the stream's time unit (Fraction).
        size: upright (width, height), in square pixels: a stored frame whose pixels are not square (its
        sample aspect ratio) is resized to the shape players show. With `fixed_size` (frames for an output
        of one size: a video file, a virtual camera) every frame has the first one's size (`letterbox`); without,
        a stream that changes size mid-way gives frames of each size. rotation: display rotation applied,
        degrees counter-clockwise.
        frames: count the container announces (0 if unknown). expected: that count, or else one
        estimated from the duration (0 if unknown; also where the count holds samples an edit list hides, as
        in a stream-copied trim). decoded: frames delivered so far.
        error: why decoding stopped early, or None. skipped: packets skipped, rejected as invalid data.
        start: when the file's first stream starts, seconds (an MPEG-TS camcorder clip starts at its clock,
        hours in; one cut across its clock's wrap, or audio before the video, before 0): what outputs count
        their time from, as FFmpeg's tools and players do.
    """
    mode = SourceMode.FILE
    error: str | None = None

    def __init__(self, path: str, fixed_size: bool = False):
        self.path = str(path)
        self._fixed_size = fixed_size
        self._container, self._stream = _open_video(self.path)
        self.decoded = self.corrupt = self.skipped = 0
        self._last_damaged = -1            # index of the newest frame that decoded damaged
        self._shown_until = 0.0
        self._packets_until = 0.0          # where the packets read so far end, any stream, seconds
        self._hides_frames = False         # a packet of the video comes before its start: an edit list cuts it
        self._timeline = Timeline(self._container)
        try:
            self._decoder = self._frames = self._decoded_frames()
            first = next(self._frames, None)
        except BaseException:
            self._container.close()
            raise
        if first is None:
            self._container.close()
            raise InputError(f"{shown(self.path)}: no frames could be decoded"
                             + (f" ({self._why})" if self._why else ""))
        self._frames = itertools.chain([first], self._frames)
        s = self._stream
        raw = first.pts is None or self._container.format.name in _RAW_VIDEO
        rates = (s.guessed_rate, s.average_rate) if raw else (s.average_rate, s.guessed_rate)
        self.fps = Fraction(next((r for r in rates if r), 30))
        self.time_base = self._stream.time_base or 1 / self.fps
        self.rotation = float(first.rotation or 0)
        sar = self._stream.sample_aspect_ratio
        self._sar = Fraction(sar) if sar and sar > 0 and sar != 1 else None
        width = self._square_width(first.width)
        self.size = (first.height, width) if round(self.rotation / 90) % 2 else (width, first.height)
        self.frames = int(self._stream.frames or 0)
        lasting = round(float(s.duration * s.time_base) * self.fps) if s.duration and s.time_base else None
        #: a stream-copied trim: packets before the stream's start that its edit list hides (the header counts
        #: them too), read with the first frame
        self._trimmed = self._hides_frames or (lasting is not None and self.frames > lasting + 1)
        self._end = self._announced_end()
        start = float(first.time or 0)
        self.expected = lasting if self._trimmed and lasting is not None else (
            self.frames or (round((self._end[0] - start) * self.fps) if self._end else 0))
        self.has_audio = self._container.streams.best("audio") is not None
        self.start = (self._container.start_time or 0) / av.time_base

    def _announced_end(self) -> tuple[float, float, bool] | None:
        """(seconds, tolerance, of_file): where the container says the video ends, from the stream's own
        duration (edit lists applied) or its Matroska DURATION tag (of_file False), else where the whole file
        ends (of_file True): that is where its longest stream ends, and audio may run far past the video, so
        `truncated` compares it with where any stream's packets ended, with a wider tolerance (packets may
        not say how long they last). None when nothing is said. The last frame is shown until its own
        duration ends: half a frame of slack (a file that lost its last frame is short by one); but a trim cut
        between two frames (`ffmpeg -ss 7.77 -t 1 -c copy`) announces up to a frame more than its frames
        cover: a whole frame for those."""
        s, step = self._stream, 1 / float(self.fps)
        slack = step if self._trimmed else step / 2
        if s.duration and s.time_base:
            return float(((s.start_time or 0) + s.duration) * s.time_base), slack, False
        tag = next((m for key, value in s.metadata.items()
                    if _DURATION_KEY.fullmatch(key) and (m := _DURATION_TAG.fullmatch(value))), None)
        if tag:
            return int(tag[1]) * 3600 + int(tag[2]) * 60 + float(tag[3]), slack, False
        if self._container.duration:        # a length: the file ends that long after it starts
            c = self._container
            return ((c.start_time or 0) + c.duration) / av.time_base, max(step, 0.5), True
        return None

    def _decoded_frames(self):
        """The video's frames, decoded packet by packet as FFmpeg's own tools do: a packet the decoder rejects
        as invalid data (damaged bytes) is counted in `skipped` and the next one decoded; any other error
        (a read error, a decoder missing), or _MAX_FAILED_IN_A_ROW rejections, end the frames (`error` says
        why). Packets of the other streams are only read past, noting where they end; PyAV ends each stream
        with an empty packet that drains the frames its decoder still holds (with frame threads, several)."""
        failed = 0
        try:
            for packet in self._container.demux():
                self._timeline.place(packet)
                if packet.pts is not None and packet.time_base:
                    end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                    self._packets_until = max(self._packets_until, end)
                if packet.stream is not self._stream:      # not by index: PyAV's final empty packets all say 0
                    continue
                if packet.pts is not None and packet.pts < (self._stream.start_time or 0):
                    self._hides_frames = True
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError as e:
                    self.skipped += 1
                    failed += 1
                    if failed == _MAX_FAILED_IN_A_ROW:
                        self.error = f"gave up after {failed} undecodable packets in a row: {reason(e)}"
                        return
                    continue
                failed = 0
                yield from frames
        except av.error.ExitError:      # the read timeout's interrupt (a stream that stopped sending)
            self.error = f"no data for {URL_TIMEOUT_S:g} s"
        except (av.error.FFmpegError, ValueError, MemoryError) as e:
            self.error = reason(e)

    @property
    def truncated(self) -> bool:
        """Decoding stopped on an error or skipped damaged packets, the frames end well before the container
        says the video does (and, where the header counts frames, fewer were decoded), or a file without an
        index ends in damaged frames (see `_ends_damaged`). Time decides, not the count alone: a trimmed
        clip's edit list hides frames the header still counts. A file whose clock jumped (Timeline) is judged by
        its frames alone: its header's end is on the clock as it was written (a join 20 s on: "120 of 658")."""
        if self.error or self.skipped or self._ends_damaged:
            return True
        if self._end is None or self._timeline.breaks:
            return False
        end, tolerance, of_file = self._end
        reached = max(self._shown_until, self._packets_until) if of_file else self._shown_until
        short = reached < end - tolerance
        return short and (self.decoded < self.frames if self.frames else True)

    @property
    def _ends_damaged(self) -> bool:
        """A file in a format without an index (_NO_INDEX: its end is read from whatever data it ends with,
        so a cut file announces its cut end) whose last frames decoded damaged: all that a cut inside its
        last frame leaves (with B-frames that frame is shown up to _REORDER_WINDOW before the end). Such
        formats decode on one thread (_open_video), where the damage flag does not depend on timing."""
        return (self._last_damaged >= 0 and self._container.format.name in _NO_INDEX
                and self.decoded - self._last_damaged <= _REORDER_WINDOW)

    def damage(self) -> str:
        """What decoding achieved, for a truncated file: "30 of 45 frames decoded (reason)"."""
        about = "about " if self.expected != self.frames else ""     # not the header's count: from the duration
        what = (f"{self.decoded} of {about}{self.expected} frames decoded" if self.expected
                else f"decoding stopped after {self.decoded} frames")
        return what + (f" ({self._why})" if self._why else "")

    @property
    def _why(self) -> str:
        """Every reason the frames are incomplete, "" when none is known."""
        return "; ".join(filter(None, [f"{self.skipped} damaged packet(s) skipped" if self.skipped else None,
                                       self.error,
                                       "its last frames are damaged" if self._ends_damaged else None]))

    def _square_width(self, width: int) -> int:
        """A stored frame width as shown with square pixels (anamorphic video: DV, DVD, some broadcast)."""
        return max(1, round(width * self._sar)) if self._sar else width

    def __iter__(self):
        step = 1 / float(self.fps)
        for frame in self._frames:
            # without a timestamp (a raw stream) a frame follows the previous one after that one's duration
            t = float(frame.time) if frame.pts is not None and frame.time is not None else self._shown_until
            image = to_bgr(frame)
            if self._sar:       # widened (or narrowed) as players show it: faces keep their proportions
                image = cv2.resize(image, (self._square_width(frame.width), frame.height), interpolation=cv2.INTER_LINEAR)
            image = upright(image, frame.rotation or 0)
            if self._fixed_size:
                image = letterbox(image, self.size)
            if frame.is_corrupt:
                self.corrupt += 1
                self._last_damaged = self.decoded
            yield Frame(image, t, self.decoded, time.perf_counter())
            self.decoded += 1
            shown_for = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else step
            self._shown_until = t + shown_for

    def close(self) -> None:
        """End decoding, then free the container: a decoder left suspended over a closed container would
        crash the process on its next frame. Safe to call twice; no frame comes after it. Left as it is while
        another thread is still inside a read (a stream that stopped sending, given up on by a second Ctrl-C):
        closing it under that read would crash; the process's end frees it."""
        if inspect.getgeneratorstate(self._decoder) == inspect.GEN_RUNNING:
            return
        self._decoder.close()
        self._container.close()


class LiveFileSource(VideoFileSource):
    """A video file or stream URL played in real time, as if it were a camera (LIVE mode).

    Frames are released at their presentation time; the runner keeps only the newest, so a slow
    consumer sees fresh frames (and drops), exactly as with a camera. Ends at the end of the file. Frames
    keep one size, as a camera's do (`fixed_size`): a virtual camera takes no other.
    """
    mode = SourceMode.LIVE

    def __init__(self, path: str):
        super().__init__(path, fixed_size=True)
    #: A step between two frames' times beyond this, or backwards, is a break (a paused recording, streams
    #: joined end to end): pacing starts afresh there instead of sleeping through the gap (a stop waited
    #: that long) or releasing every later frame at once.
    MAX_STEP_S = 1.0

    def __iter__(self):
        start = anchor = None           # clock at the first frame; (clock, media time) pacing runs from
        previous = None
        for frame in super().__iter__():
            now, t = time.perf_counter(), frame.timestamp
            if start is None:
                start = now
            if previous is None or not 0 <= t - previous <= self.MAX_STEP_S:
                anchor = (now, t)
            previous = t
            delay = anchor[0] + t - anchor[1] - now
            if delay > 0:
                time.sleep(delay)
            frame.captured_at = time.perf_counter()
            frame.timestamp = frame.captured_at - start
            yield frame


class CameraSource(_Source):
    """A local camera through OpenCV (LIVE mode), timestamps from the monotonic clock."""
    mode = SourceMode.LIVE

    def __init__(self, index: int, size: tuple[int, int] | None = None):
        if index < 0:     # VideoCapture(-1) crashes some OpenCV builds
            raise DeviceError(f"no camera at index {index}: camera indexes are 0, 1, ...")
        if index >= 2 ** 31:      # OpenCV takes a C int ("integer won't fit into a C int")
            raise DeviceError(f"no camera at index {index}")
        self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            raise DeviceError(f"no camera at index {index}")
        if size:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        ok, first = self._cap.read()
        if not ok:
            raise DeviceError(f"camera {index} opened but delivered no frame")
        self._first = first
        self.size = (first.shape[1], first.shape[0])
        self.fps = Fraction(round(self._cap.get(cv2.CAP_PROP_FPS) or 30))
        self.frames = 0
        self.has_audio = False

    def __iter__(self):
        start = time.perf_counter()
        image, index = self._first, 0
        while True:
            now = time.perf_counter()
            yield Frame(image, now - start, index, now)
            ok, image = self._cap.read()
            if not ok:
                return
            index += 1

    def close(self) -> None:
        self._cap.release()


def open_source(spec: str, live: bool):
    """A camera index ("0"), or a file / URL read frame by frame (live=False) or in real time (live=True)."""
    if spec.isdigit():
        return CameraSource(int(spec))
    return LiveFileSource(spec) if live else VideoFileSource(spec)
