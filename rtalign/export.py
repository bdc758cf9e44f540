"""Landmarks as data: one row per face per frame, to CSV, JSON Lines or (with pyarrow) Parquet.

Columns, in this order **(contract)**: file, frame, time_s, face_id, score, yaw, pitch, roll,
x0, y0, …, x67, y67 (0-based pixel centres of the frame as shown: a video's rotation metadata applied and its
pixels square, the frame the output video holds; with no output video, a stream that changes size mid-way gives
each frame's own size; angles in degrees, see rtalign.pose).
`file` is valid UTF-8: bytes of a file name that are not appear as \\xNN escapes, as error messages show them.
CSV and JSONL carry coordinates to 0.001 px, angles to 0.01°, scores to 1e-4, times to 1 µs, so
the same faces always give the same bytes; Parquet keeps the float32 values themselves.

Writers are context managers with one method, `write(file, frame, time_s, faces)`. Rows go to a
hidden temporary file beside the output, flushed after every frame, and `close()` renames it into
place; a run that did not finish (Ctrl-C, a truncated input) puts the frames done in OUT.partial.EXT
instead, so the final name only ever holds a whole, valid file; `abort()` removes it. A killed process
leaves the hidden file with every frame flushed.
"""
from __future__ import annotations

import importlib.util
import json
import math
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import InputError, shown
from .io_safety import move_into_place, partial_path, temp_path_for
from .landmarks import N_POINTS
from .pose import POSE_COLUMNS
from .types import FaceLandmarks

COLUMNS = ("file", "frame", "time_s", "face_id", "score", *POSE_COLUMNS,
           *(f"{axis}{i}" for i in range(N_POINTS) for axis in "xy"))
FORMATS = (".csv", ".jsonl", ".parquet")

_NUMBERS = ("%.6f", "%d", "%.4f")                  # time_s, face_id, score
_ANGLE, _COORD = "%.2f", "%.3f"


def _face_values(faces: FaceLandmarks):
    """Per face: (face_id, score, pose row or None, flat xy) as plain Python values."""
    ids = faces.track_id if faces.track_id is not None else np.arange(len(faces))
    pose = faces.pose if faces.pose is not None else [None] * len(faces)
    return zip(ids.tolist(), faces.score.tolist(), pose, faces.xy.reshape(len(faces), 2 * N_POINTS).tolist())


class _Writer:
    """Shared lifecycle: a temporary file beside `path`, renamed into place by `close()`."""

    def __init__(self, path):
        self.path = Path(path)
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise InputError(f"landmarks folder does not exist: {folder}")
        try:
            self._tmp = temp_path_for(self.path)
        except OSError as e:
            raise InputError(f"cannot write landmarks {path}: {e.strerror}") from None
        self.rows = 0
        #: frames written (with or without faces)
        self.frames = 0
        self._closed = False

    @contextmanager
    def _removed_on_failure(self):
        """The format's own opening of the temporary file: stopped (Ctrl-C, a stop signal) or failed, the file
        goes (a hidden file left there stayed for good: reruns skip it)."""
        try:
            yield
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        elif not issubclass(exc_type, Exception):
            # Ctrl-C, or a stop signal the caller turned into an exception of its own (not an Exception, as
            # KeyboardInterrupt is not): keep the frames done, never under the final name
            self.close(partial=True)
        else:
            self.abort()

    def write(self, file: str, frame: int, time_s: float, faces: FaceLandmarks) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def close(self, partial: bool = False) -> Path | None:
        """Flush and rename into place; `partial`: to OUT.partial.EXT instead (a run that did not finish
        never puts its rows under the final name). Returns where the file went (None if already closed)."""
        if self._closed:
            return None
        self._closed = True
        try:
            self._finish()
        except Exception:           # a failed last flush (a full disk) leaves no hidden file behind
            self._tmp.unlink(missing_ok=True)
            raise
        except BaseException:
            # Ctrl-C pressed again (or a stop signal turned into an exception) while finishing: the rows done
            # were lost with the temporary file. Finish once more (each step is done once: closing a closed
            # file does nothing), keep them in OUT.partial.EXT, and go on stopping
            with self._removed_on_failure():
                self._finish()
            move_into_place(self._tmp, partial_path(self.path))
            raise
        where = partial_path(self.path) if partial else self.path
        move_into_place(self._tmp, where)
        return where

    def abort(self) -> None:
        """Close and delete the temporary file: nothing appears under the final name."""
        if not self._closed:
            self._closed = True
            try:
                self._finish()
            finally:
                self._tmp.unlink(missing_ok=True)


class _TextWriter(_Writer):
    """One text line per face, the frame's lines written and flushed at once."""

    def __init__(self, path):
        super().__init__(path)
        with self._removed_on_failure():
            self._f = open(self._tmp, "w", encoding="utf-8", newline="")
            self._f.write(self._header())
            self._f.flush()

    def _header(self) -> str:
        return ""

    def _line(self, file: str, frame: int, time_s: float, face) -> str:
        raise NotImplementedError

    def write(self, file: str, frame: int, time_s: float, faces: FaceLandmarks) -> None:
        file = shown(file)          # a Linux file name may hold bytes that are not UTF-8: as \xNN escapes
        lines = [self._line(file, frame, time_s, face) for face in _face_values(faces)]
        if lines:
            self._f.write("".join(lines))
            self._f.flush()
            self.rows += len(lines)
        self.frames += 1

    def _finish(self) -> None:
        self._f.close()


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


class CsvWriter(_TextWriter):
    """CSV with a header row (RFC 4180 quoting of the file name; empty pose fields when not estimated)."""
    _xy = ",".join([_COORD] * (2 * N_POINTS))
    _pose = ",".join([_ANGLE] * 3)

    def _header(self) -> str:
        return ",".join(COLUMNS) + "\r\n"

    def _line(self, file, frame, time_s, face) -> str:
        face_id, score, pose, xy = face
        head = ",".join(fmt % v for fmt, v in zip(_NUMBERS, (time_s, face_id, score)))
        angles = self._pose % tuple(pose.tolist()) if pose is not None else ",,"
        return f"{_csv_field(file)},{frame},{head},{angles},{self._xy % tuple(xy)}\r\n"


def _json(fmt: str, value: float) -> str:
    """A number as the CSV writes it, or null where JSON has none (NaN, infinity)."""
    return fmt % value if math.isfinite(value) else "null"


class JsonlWriter(_TextWriter):
    """One JSON object per face per frame, keys in column order, numbers as in the CSV (pose null when
    not estimated, any value null that is not finite)."""
    _xy = ", ".join(f'"{c}": {_COORD}' for c in COLUMNS[8:])

    def _line(self, file, frame, time_s, face) -> str:
        face_id, score, pose, xy = face
        angles = (", ".join(f'"{c}": {_json(_ANGLE, v)}' for c, v in zip(POSE_COLUMNS, pose.tolist()))
                  if pose is not None else ", ".join(f'"{c}": null' for c in POSE_COLUMNS))
        head = ", ".join(f'"{c}": {_json(fmt, v)}'
                         for c, fmt, v in zip(COLUMNS[2:5], _NUMBERS, (time_s, face_id, score)))
        points = (self._xy % tuple(xy) if all(map(math.isfinite, xy))
                  else ", ".join(f'"{c}": {_json(_COORD, v)}' for c, v in zip(COLUMNS[8:], xy)))
        return f'{{"file": {json.dumps(file)}, "frame": {frame}, {head}, {angles}, {points}}}\n'


class ParquetWriter(_Writer):
    """Parquet through pyarrow (`pip install 'rtalign[parquet]'`): a row group every `group` frames.

    Valid once closed (also after Ctrl-C); a killed process leaves an unreadable temporary file.
    """

    def __init__(self, path, group: int = 256):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise InputError(_PARQUET_NEEDS) from None
        super().__init__(path)
        self._pa = pa
        f32 = pa.float32()
        self.schema = pa.schema([("file", pa.string()), ("frame", pa.int64()), ("time_s", pa.float64()),
                                 ("face_id", pa.int64()), *((c, f32) for c in COLUMNS[4:])])
        with self._removed_on_failure():
            self._out = pq.ParquetWriter(str(self._tmp), self.schema)
        self._pending: list[tuple] = []
        self.group = group

    def write(self, file: str, frame: int, time_s: float, faces: FaceLandmarks) -> None:
        file, n = shown(file), len(faces)
        if n:
            ids = faces.track_id if faces.track_id is not None else np.arange(n)
            pose = faces.pose if faces.pose is not None else np.full((n, 3), np.nan, np.float32)
            self._pending.append(([file] * n, np.full(n, frame), np.full(n, time_s), ids, faces.score,
                                  pose, faces.xy.reshape(n, -1)))
            self.rows += n
        self.frames += 1
        if self.frames % self.group == 0:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        parts = list(zip(*self._pending))
        head = [sum(parts[0], []), *(np.concatenate(p) for p in parts[1:5])]
        body = np.concatenate([np.concatenate(parts[5]), np.concatenate(parts[6])], axis=1).astype(np.float32)
        arrays = [*head, *body.T]
        self._out.write_table(self._pa.Table.from_arrays([self._pa.array(a, t.type) for a, t in zip(arrays, self.schema)],
                                                         schema=self.schema))
        self._pending.clear()

    def _finish(self) -> None:
        try:
            self._flush()
        finally:
            self._out.close()


_PARQUET_NEEDS = "Parquet output needs pyarrow: pip install 'rtalign[parquet]'"


def check_format(suffix: str) -> None:
    """Refuse, before any work, a landmarks format that cannot be written here.

    Raises:
        InputError: not one of FORMATS, or .parquet without pyarrow.
    """
    if suffix not in FORMATS:
        raise InputError(f"landmarks format {suffix!r}: expected one of {', '.join(FORMATS)}")
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise InputError(_PARQUET_NEEDS)


def open_writer(path) -> _Writer:
    """The writer for `path`'s extension (.csv, .jsonl or .parquet).

    Raises:
        InputError: another extension, a missing folder, or Parquet without pyarrow.
    """
    suffix = Path(path).suffix.lower()
    writers = {".csv": CsvWriter, ".jsonl": JsonlWriter, ".parquet": ParquetWriter}
    if suffix not in writers:
        raise InputError(f"landmarks file {path}: expected one of {', '.join(FORMATS)}, got {suffix or 'no extension'!r}")
    return writers[suffix](path)


def read_landmarks(path) -> dict:
    """A landmarks file back as columns: 'file' (list of str), 'frame', 'face_id' (int64), 'time_s',
    'score' (float64), 'pose' ((m, 3), NaN where not estimated) and 'xy' ((m, 68, 2)) arrays."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq
        table = pq.read_table(path).to_pydict()
        rows = [[table[c][i] for c in COLUMNS] for i in range(len(table["file"]))]
    elif suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            rows = [[obj[c] for c in COLUMNS] for obj in map(json.loads, f)]
    else:
        import csv
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            if tuple(next(reader)) != COLUMNS:
                raise InputError(f"{path}: not an rtalign landmarks CSV (unexpected header)")
            rows = list(reader)
    nums = np.array([[np.nan if v in ("", None) else float(v) for v in r[1:]] for r in rows], np.float64).reshape(-1, len(COLUMNS) - 1)
    return {"file": [r[0] for r in rows], "frame": nums[:, 0].astype(np.int64), "time_s": nums[:, 1],
            "face_id": nums[:, 2].astype(np.int64), "score": nums[:, 3], "pose": nums[:, 4:7],
            "xy": nums[:, 7:].reshape(-1, N_POINTS, 2)}
