"""Output files that never clobber the input, never appear half-written, and never replace a
finished file with a partial one."""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from .errors import InputError, shown


def check_input_file(spec: str, what: str = "video") -> None:
    """One clear error for a path that is missing, a folder, not a regular file (device, pipe), or empty."""
    kind = f"{'an' if what[0] in 'aeiou' else 'a'} {what} file"
    try:
        st = os.stat(spec)
        mode = st.st_mode
    except FileNotFoundError:
        raise InputError(f"no such file: {shown(spec)}") from None
    except OSError as e:
        raise InputError(f"cannot read {shown(spec)}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{shown(spec)} is a folder, not {kind}")
    if not stat.S_ISREG(mode):
        raise InputError(f"{shown(spec)} is a device, pipe or socket, not {kind}")
    if st.st_size == 0:
        raise InputError(f"{shown(spec)} is empty (0 bytes), not {kind}")


def check_destination(dst) -> None:
    """Refuse a folder or device as output, or an output folder that is missing or not writable."""
    dst = Path(dst)
    try:
        mode = os.stat(dst).st_mode
    except OSError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise InputError(f"output {shown(dst)} is a folder; give a file name inside it")
    if mode is not None and not stat.S_ISREG(mode):
        raise InputError(f"output {shown(dst)} is a device, pipe or socket; give a regular file name")
    folder = dst.parent
    if not folder.is_dir():
        raise InputError(f"output folder does not exist: {shown(folder)}")
    if len(os.fsencode(dst.name)) > _name_max(folder):
        raise InputError(f"output name is too long: {len(os.fsencode(dst.name))} bytes, the limit here is "
                         f"{_name_max(folder)}")
    if not os.access(folder, os.W_OK):
        raise InputError(f"output folder is not writable: {shown(folder)}")


def check_output(src, dst) -> None:
    """`check_destination`, and refuse an output that is the input file itself (after: a name too long for
    its folder makes `exists()` raise)."""
    src, dst = Path(src), Path(dst)
    check_destination(dst)
    if dst.resolve() == src.resolve() or (dst.exists() and src.exists() and os.path.samefile(src, dst)):
        raise InputError(f"output {shown(dst)} is the input file; choose another name")


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # Windows has no pathconf; 255 is the common limit
        return 255


def _fit(folder: Path, head: str, tail: str) -> str:
    """head + tail, with head shortened (whole characters) until the name fits the folder's limit in bytes."""
    limit = _name_max(folder)
    while head and len(os.fsencode(head + tail)) > limit:
        head = head[:-1]
    return head + tail


def partial_path(dst: Path) -> Path:
    """Where a run that did not finish (interrupted, truncated input) leaves what it wrote: OUT.partial.EXT
    (the name shortened to fit the folder's limit if it must)."""
    dst = Path(dst)
    return dst.parent / _fit(dst.parent, dst.stem, f".partial{dst.suffix}")


def temp_path_for(dst: Path) -> Path:
    """A fresh hidden file beside `dst` with the same extension, to be renamed onto it when complete.

    Created with mode 0666 so the OS applies the umask, as for any plainly created file (the finished
    output must not stay private, as mkstemp's 0600 would leave it); the name always fits the limit."""
    dst = Path(dst)
    for _ in range(100):
        name = dst.parent / _fit(dst.parent, f".{dst.stem}", f".{secrets.token_hex(4)}.tmp{dst.suffix}")
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
            return name
        except FileExistsError:
            continue
        except OSError as e:
            raise InputError(f"cannot write in {shown(dst.parent)}: {e.strerror}") from None
    raise InputError(f"cannot create a temporary file in {shown(dst.parent)}")


def move_into_place(tmp: Path, dst: Path) -> None:
    """Rename a finished temporary file onto `dst`. If that fails (an existing `dst` that may not be
    replaced, a folder of that name), the finished work stays in the temporary file, which the one-line
    error names."""
    try:
        os.replace(tmp, dst)
    except OSError as e:
        raise InputError(f"cannot write {shown(dst)}: {e.strerror}; the result is in {shown(tmp)}") from None


def write_bytes_atomic(dst: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `dst`, then rename: readers never see a partial file."""
    tmp = temp_path_for(Path(dst))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
    except BaseException as e:      # a full disk, or Ctrl-C mid-write: no temporary file stays
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise InputError(f"cannot write {shown(dst)}: {e.strerror}") from None
        raise
    move_into_place(tmp, dst)
