"""Writing a file whole or not at all: what every file dlrun writes for keeps goes through.

``write_atomic`` writes into a temporary file beside the target, fsyncs it and renames it over
the target, so a reader (or a resume) sees the old file or the new one, never half of one. A
failed write (a full disk, a folder where the file should be) removes its temporary file and
says which file it could not write. The file gets the mode any other new file of the user
gets (0666 less the umask), not the 0600 of a temporary file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def umask() -> int:
    """The process's umask, read without changing it where /proc says it (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and put back (the only portable way to read it)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, write: Callable[[Any], Any]) -> None:
    """``write(file)`` (a binary file) into a temporary file beside ``path``, fsync, then rename
    it over ``path``. On any failure the temporary file is removed; an ``OSError`` names
    ``path`` (``cannot write <path>: No space left on device``)."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # the target's name, not the temporary file's
            if e.errno is None:
                raise OSError(f"cannot write {path}: {e}") from e
            raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from e
        raise


def link_atomic(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """``path`` becomes a second name of the file ``source`` (a hard link, no second copy of
    its bytes), replacing what was there atomically; where the filesystem has no hard links
    (or refuses one across devices) it becomes a copy, written as :func:`write_atomic`
    writes. An ``OSError`` names ``path``."""
    import shutil

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.link.tmp")
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
    except OSError:  # FAT, some network filesystems, another device: a copy instead
        with open(source, "rb") as src:
            write_atomic(path, lambda f: shutil.copyfileobj(src, f))
        return
    try:
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from e
